"""A learner's hand-typed docker commands through the session endpoint: what they create is the
session's (labelled, seen by checks, removed by cleanup), and nothing else is touched."""
from __future__ import annotations

import os
import subprocess

import docker
import pytest

import labkit
from labkit.core.session import SESSION_LABEL


def sh(lab, *args, check=True, **kw):
    env = dict(os.environ, **lab.endpoint.env())
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=check, **kw)


def test_hand_made_things_are_the_sessions_and_cleanup_removes_them(docker_client, tmp_path):
    lab = labkit.Lab("welcome")
    outsider = docker_client.containers.create("labkit/busybox", "true", name=f"outsider-{lab.session.id}")
    other = labkit.Lab("welcome")
    try:
        sh(lab, "run", "-d", "--name", lab.name("greeter"), "labkit/busybox", "sh", "-c",
           "echo hello, labs; sleep 60")
        sh(other, "run", "-d", "--name", other.name("greeter"), "labkit/busybox", "sleep", "60")
        sh(lab, "network", "create", lab.name("net"))
        sh(lab, "volume", "create", lab.name("vol"))
        (tmp_path / "Dockerfile").write_text("FROM labkit/busybox\nRUN --mount=type=secret,id=tok wc -c /run/secrets/tok > /n\n")
        (tmp_path / "tok").write_text("s3cret")
        sh(lab, "build", "--secret", f"id=tok,src={tmp_path / 'tok'}", "-t", lab.image("app"), str(tmp_path))
        sh(lab, "tag", "labkit/busybox", lab.image("tagged"))
        assert docker_client.containers.get(lab.name("greeter")).labels[SESSION_LABEL] == lab.session.id
        assert docker_client.images.get(lab.image("app")).labels[SESSION_LABEL] == lab.session.id
        assert lab.check("first-container").passed  # the check finds the hand-made container
        report = lab.cleanup()
        assert report.total >= 5, report.text()
        for getter, name in ((docker_client.containers.get, lab.name("greeter")),
                             (docker_client.networks.get, lab.name("net")),
                             (docker_client.volumes.get, lab.name("vol")),
                             (docker_client.images.get, lab.image("app")),
                             (docker_client.images.get, lab.image("tagged"))):
            with pytest.raises(docker.errors.NotFound):
                getter(name)
        # the other session's container and one made without labkit are untouched
        assert docker_client.containers.get(other.name("greeter")).status == "running"
        docker_client.containers.get(outsider.id)
        assert not lab.endpoint.path.exists()
    finally:
        other.cleanup()
        outsider.remove(force=True)


def test_a_typo_fails_with_the_clis_own_message(lab):
    out = sh(lab, "run", "--rm", "labkit/busybx", "true", check=False)
    assert out.returncode != 0 and "labkit/busybx" in out.stderr
