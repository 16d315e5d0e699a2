"""The watchdog's liveness decision and its patience with an absent engine, without a daemon."""
from __future__ import annotations

import os
import socket
import time

import pytest

from labkit import watchdog
from labkit.core import engine, reaper, session
from labkit.core.errors import DaemonUnavailable


def _state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def zombie():
    """A real zombie: a child that has exited and that nobody has reaped yet; (pid, start time while it ran)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child waits for a byte, then exits
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        start = session.start_time(pid)
        assert session.process_alive(pid, start), "the child should be alive before it exits"
        os.write(write_end, b"x")
        deadline = time.monotonic() + 5
        while _state(pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(pid) == "Z" and session.start_time(pid) == start  # what fooled the old check
        yield pid, start
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def test_a_zombie_is_dead(zombie):
    pid, start = zombie
    assert not session.process_alive(pid, start)
    assert session.owner_alive(f"{socket.gethostname()}:{pid}:{start}") is False


def test_watchdog_does_not_wait_for_a_zombie_to_be_reaped(zombie):
    began = time.monotonic()
    watchdog.wait_for_death(zombie[0])
    assert time.monotonic() - began < 0.1


def test_a_reused_pid_is_dead_and_a_live_process_alive():
    me, start = os.getpid(), session.start_time(os.getpid())
    assert session.process_alive(me, start)
    assert not session.process_alive(me, str(int(start) + 1))  # same pid, another process
    assert session.owner_alive(session.owner_id()) is True
    assert session.owner_alive(f"{socket.gethostname()}:{me}:{int(start) + 1}") is False
    assert session.owner_alive(f"{socket.gethostname()}:999999999:1") is False  # no such pid
    assert session.owner_alive(f"another-host:{me}:{start}") is None  # cannot tell


@pytest.fixture
def session_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(watchdog, "RETRY", 0.01)
    d = session.state_dir() / "welcome-abc123"
    d.mkdir()
    return d


def test_watchdog_retries_until_the_engine_answers(monkeypatch, session_dir):
    answers = iter([DaemonUnavailable("The Docker engine does not answer: ConnectionError."),
                    DaemonUnavailable("The Docker engine does not answer: ConnectionError."), "client"])

    def client():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    removed = []
    monkeypatch.setattr(engine, "client", client)
    monkeypatch.setattr(reaper, "remove_session", lambda cli, session: removed.append((cli, session)))
    assert watchdog.remove_when_engine_answers(session_dir.name, wait=5)
    assert removed == [("client", session_dir.name)] and not session_dir.exists()


def test_watchdog_gives_up_after_its_bound_and_keeps_the_state_for_labkit_clean(monkeypatch, session_dir):
    def client():
        raise DaemonUnavailable("The Docker engine does not answer: ConnectionError.")

    monkeypatch.setattr(engine, "client", client)
    began = time.monotonic()
    assert not watchdog.remove_when_engine_answers(session_dir.name, wait=0.2)
    assert time.monotonic() - began < 2 and session_dir.exists()
