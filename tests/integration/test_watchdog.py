"""The watchdog against the real engine when the SIGKILLed kernel stays a zombie.

test_lab.py's SIGKILL test reaps its kernel at once (`kernel.wait()`); a Jupyter server or nbval
does not always do so, and a killed kernel that nobody has reaped yet keeps its pid and start time
in /proc (state Z). Here the kernel runs under a parent that never reaps it."""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from labkit.core.reaper import remove_session
from labkit.core.session import state_dir

TARGET = 10.0  # seconds from SIGKILL to the session's containers being gone

KERNEL = textwrap.dedent("""
    import time, labkit
    lab = labkit.Lab("welcome")
    lab.start("labkit/busybox:latest", ["sleep", "600"], name="leftover")
    print("session", lab.session, flush=True)
    time.sleep(600)
""")

# Starts the kernel and never waits for it, so the kernel stays a zombie once it is killed.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    kernel = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    print("kernel", kernel.pid, flush=True)
    time.sleep(600)
""")


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _containers(client, session):
    return client.containers.list(all=True, filters={"label": f"labkit.session={session}"})


def _lines(proc: subprocess.Popen, n: int, log: Path, timeout: float = 60) -> dict[str, str]:
    """The first n "key value" lines the process prints (no waiting forever if it failed)."""
    lines: dict[str, str] = {}
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < n:
            assert sel.select(timeout), f"no output within {timeout} s; its stderr:\n{log.read_text()[-2000:]}"
            key, _, value = proc.stdout.readline().strip().partition(" ")
            lines[key] = value
    return lines


def test_watchdog_cleans_up_after_a_sigkilled_kernel_that_stays_a_zombie(docker_client, tmp_path):
    log = tmp_path / "kernel.log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, KERNEL], stdout=subprocess.PIPE, text=True,
                              stderr=open(log, "w"), start_new_session=True)
    session = None
    try:
        lines = _lines(parent, 2, log)
        kernel, session = int(lines["kernel"]), lines["session"]
        assert len(_containers(docker_client, session)) == 1
        os.kill(kernel, signal.SIGKILL)
        killed = time.monotonic()
        while _state(kernel) != "Z" and time.monotonic() - killed < 5:
            time.sleep(0.01)
        assert _state(kernel) == "Z", "the killed kernel should stay a zombie: its parent does not reap it"
        while _containers(docker_client, session) and time.monotonic() - killed < TARGET + 5:
            time.sleep(0.1)
        took = time.monotonic() - killed
        print(f"watchdog removed the zombie kernel's containers {took:.2f} s after SIGKILL")
        assert _containers(docker_client, session) == [], f"still there {took:.1f} s after SIGKILL"
        assert took <= TARGET, f"took {took:.1f} s (target {TARGET:.0f} s)"
        assert _state(kernel) == "Z", "the kernel was reaped meanwhile: this test proved nothing"
        deadline = time.monotonic() + 5
        while (state_dir() / session).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (state_dir() / session).exists()
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the parent and the zombie kernel; the watchdog has its own group
        parent.wait()
        if session:
            log = state_dir() / session / "watchdog.log"
            if log.exists():
                print("watchdog.log:", log.read_text())
            remove_session(docker_client, session)
            shutil.rmtree(state_dir() / session, ignore_errors=True)
