from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import labkit
from labkit.core import reaper, session

BUSYBOX = "labkit/busybox:latest"


def session_containers(client, session):
    return client.containers.list(all=True, filters={"label": f"labkit.session={session}"})


def test_everything_created_is_labelled(lab, docker_client):
    c = lab.start(BUSYBOX, ["sleep", "60"], name="x")
    net = lab.network()
    vol = lab.volume()
    for obj_labels in (c.attrs()["Config"]["Labels"], net.attrs["Labels"], vol.attrs["Labels"]):
        assert obj_labels["labkit.session"] == lab.session and obj_labels["labkit.lab"] == "test"
    report = lab.cleanup()
    assert report.removed["containers"] == 1 and report.removed["networks"] == 1 and report.removed["volumes"] == 1
    assert session_containers(docker_client, lab.session) == []


def test_two_sessions_get_different_names_and_ports(docker_client):
    a, b = labkit.Lab("same", watchdog=False), labkit.Lab("same", watchdog=False)
    try:
        assert a.session != b.session and a.name("web") != b.name("web")
        assert a.port(0) != b.port(0) and a.port(0) == a.port(0)
        ca = a.start(BUSYBOX, ["sleep", "60"], name="web")
        cb = b.start(BUSYBOX, ["sleep", "60"], name="web")
        assert ca.name != cb.name
    finally:
        a.cleanup(), b.cleanup()


def test_watchdog_cleans_up_after_sigkill(docker_client, tmp_path):
    """nbval SIGKILLs kernels; the session's leftovers must be gone within 10 s."""
    script = textwrap.dedent("""
        import sys, time, labkit
        lab = labkit.Lab("watchdog")
        lab.start("labkit/busybox:latest", ["sleep", "300"], name="leftover")
        lab.network()
        print(lab.session, flush=True)
        time.sleep(300)
    """)
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    session = kernel.stdout.readline().strip()
    assert session and len(session_containers(docker_client, session)) == 1
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    killed = time.monotonic()
    while session_containers(docker_client, session) and time.monotonic() - killed < 10:
        time.sleep(0.2)
    took = time.monotonic() - killed
    assert session_containers(docker_client, session) == [], "watchdog did not clean up within 10 s"
    assert docker_client.networks.list(filters={"label": f"labkit.session={session}"}) == []
    print(f"watchdog cleaned up {took:.1f} s after SIGKILL")


def test_clean_spares_foreign_containers_and_live_sessions(docker_client):
    foreign = docker_client.containers.run(BUSYBOX, ["sleep", "60"], detach=True, labels={"owner": "attendee"})
    live = labkit.Lab("live", watchdog=False)
    dead_session = "dead-000000"
    dead = docker_client.containers.create(BUSYBOX, ["sleep", "60"], labels={
        session.SESSION_LABEL: dead_session, session.LAB_LABEL: "dead",
        session.OWNER_LABEL: f"{socket.gethostname()}:999999999:1"})
    try:
        live_c = live.start(BUSYBOX, ["sleep", "60"])
        report = reaper.clean(docker_client)
        assert dead_session in report.sessions
        foreign.reload()
        live_c.model.reload()
        assert foreign.status == "running" and live_c.model.status == "running"
        with pytest.raises(Exception):
            dead.reload()
    finally:
        foreign.remove(force=True)
        live.cleanup()


def test_host_processes_and_paths_are_tracked(lab, tmp_path):
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    lab.track_process(proc.pid)
    d = tmp_path / "lab-data"
    d.mkdir()
    lab.track_path(d)
    report = lab.cleanup()
    assert report.removed["processes"] == 1 and report.removed["paths"] == 1
    assert proc.wait(timeout=5) == -signal.SIGKILL and not d.exists()


def test_lab_with_stopped_daemon_says_so_quickly(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    start = time.monotonic()
    with pytest.raises(labkit.DaemonUnavailable) as err:
        labkit.Lab("nodaemon")
    assert time.monotonic() - start < 5 and "Hint: " in str(err.value)


def test_require_raises_skip_with_fix(lab):
    with pytest.raises(labkit.LabSkipped) as err:
        lab.require("no-such-tool-xyz")
    assert "Hint: Install no-such-tool-xyz" in str(err.value)


def test_preflight_renders(lab):
    bundle = lab._repr_mimebundle_()
    assert "labkit/busybox:latest" in bundle["text/plain"] and "present" in bundle["text/plain"]
