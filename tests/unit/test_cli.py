from __future__ import annotations

import subprocess
import sys

import pytest

from labkit import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "images", "prepare", "clean", "lab"):
        assert command in out


def test_console_script_module_runs():
    out = subprocess.run([sys.executable, "-m", "labkit.cli", "prepare", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--offline" in out.stdout


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_:
        cli.main(["frobnicate"])
    assert exit_.value.code == 2


def test_on_binder_without_an_engine_the_notebook_says_read_only(monkeypatch, tmp_path):
    import labkit
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://binder.invalid/")
    from labkit.core import engine
    engine.client_for.cache_clear()
    with pytest.raises(labkit.LabSkipped, match="read-only"):
        labkit.Lab("welcome", watchdog=False)
    monkeypatch.delenv("BINDER_LAUNCH_HOST")
    with pytest.raises(labkit.DaemonUnavailable):
        labkit.Lab("welcome", watchdog=False)
