"""The progress dashboard and the per-lab reset."""
from __future__ import annotations

import docker
import pytest

import labkit
from labkit import exercises


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path


def test_reset_forgets_one_lab_and_removes_only_its_resources(state, docker_client):
    exercises.record("welcome", "first-container", True)
    exercises.record("container-universe", "three-layers", False)
    a, b = labkit.Lab("welcome"), labkit.Lab("container-universe")
    try:
        gone = a.start("labkit/busybox", ["sleep", "60"], name="one")
        kept = b.start("labkit/busybox", ["sleep", "60"], name="two")
        assert exercises.reset("welcome") >= 1  # the container, and host paths such as its endpoint's socket
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(gone.name)
        assert "welcome" not in exercises.load_progress() and "container-universe" in exercises.load_progress()
        assert kept.status() == "running"
    finally:
        a.cleanup()
        b.cleanup()


def test_dashboard_is_a_table_outside_jupyter_and_in_stable_mode(state, monkeypatch):
    assert isinstance(exercises.dashboard(), exercises.Progress)
    from IPython.testing.globalipapp import start_ipython
    start_ipython()
    assert type(exercises.dashboard()).__name__ == "VBox"
    monkeypatch.setenv("LABKIT_STABLE", "1")
    assert isinstance(exercises.dashboard(), exercises.Progress)
