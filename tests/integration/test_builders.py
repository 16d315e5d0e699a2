"""buildah through labkit: session-private storage, reproducible digests, an unprivileged build."""
from __future__ import annotations

import os
import time

import pytest

import labkit
from labkit import builders

DOCKERFILE = "FROM labkit/busybox:latest\nRUN echo x > /x\nCOPY a /a\n"


@pytest.fixture
def buildah(lab):
    if builders.find_tool("buildah") is None and not os.environ.get("CI"):
        pytest.skip("buildah not installed")
    return builders.Buildah(lab)


def test_timestamp_makes_two_builds_identical_and_its_absence_does_not(buildah):
    a = buildah.build("a", DOCKERFILE, {"a": "1"}, timestamp=1700000000)
    time.sleep(1.1)
    b = buildah.build("b", DOCKERFILE, {"a": "1"}, timestamp=1700000000)
    assert a.digest == b.digest and a.image_id == b.image_id and a.created.startswith("2023-11-14")
    c = buildah.build("c", DOCKERFILE, {"a": "1"})
    time.sleep(1.1)
    d = buildah.build("d", DOCKERFILE, {"a": "1"})
    assert c.digest != d.digest
    changed = buildah.build("e", DOCKERFILE, {"a": "2"}, timestamp=1700000000)
    assert changed.digest != a.digest  # same time, other content: another image


def test_storage_is_the_sessions_and_goes_at_cleanup(lab, buildah):
    run = buildah.build("s", DOCKERFILE, {"a": "1"})
    assert run.store.exists() and str(run.store).startswith("/tmp/labkit-buildah-")
    name = buildah.to_docker(run, "copied")
    assert lab.run(name, "cat /a").stdout == "1"
    lab.cleanup()
    assert not run.store.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged lab user is set up by root")
def test_unprivileged_build_cannot_reach_the_docker_socket(lab):
    user = builders.Buildah(lab, rootless=True)
    run = user.build("u", DOCKERFILE, {"a": "1"})
    assert run.user == builders.LAB_USER and len(run.layers) == 3
    assert not builders.can_use(builders.LAB_USER, "/var/run/docker.sock")


def test_a_failing_step_and_a_missing_base_are_clear_errors(buildah):
    with pytest.raises(labkit.CommandFailed) as info:
        buildah.build("f", "FROM labkit/busybox:latest\nRUN exit 3\n")
    assert "Hint:" in str(info.value)
    with pytest.raises(labkit.LabkitError, match="labkit prepare"):
        buildah.build("g", "FROM labkit/never-prepared:1\n")
