"""The session's build cache. Build cache records carry no labels: labkit notes the records created
while each of its builds ran and prunes only those. So that no other session's record falls into
that window, builds of different processes on one engine take turns (a file lock per engine, held
from the build's start until its records are noted); builds of one process (notebook 15's queue)
still run side by side."""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import threading
import time
from typing import Iterable, Iterator

import docker

from .core.locks import open_locked
from .core.session import Session
from .core.tracker import register

KIND = "build-cache"  # the tracker's file of noted record ids


class _Gate:
    def __init__(self, name: str) -> None:
        self.name, self.users, self.fd, self.lock = name, 0, -1, threading.Lock()
        self.turn = threading.Lock()  # one thread of this process waits for the file lock at a time

    def acquire(self) -> None:
        with self.turn:
            with self.lock:
                if self.users:
                    self.users += 1
                    return
            fd = open_locked(self.name)  # released by the kernel too when this process dies
            with self.lock:
                self.fd, self.users = fd, self.users + 1

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.fd >= 0:
                os.close(self.fd)  # closing drops the lock
                self.fd = -1


_GATES: dict[str, _Gate] = {}


@contextlib.contextmanager
def exclusive(session: Session) -> Iterator[None]:
    """Builds of other processes (other kernels, other learners) on this engine wait until the block
    ends; this process's own builds still run side by side: a measurement that needs the machine."""
    gate = _gate(session.daemon_url)
    gate.acquire()
    try:
        yield
    finally:
        gate.release()


def _gate(daemon_url: str) -> _Gate:
    return _GATES.setdefault(daemon_url, _Gate(f"build-gate {daemon_url}"))


@contextlib.contextmanager
def noting(session: Session) -> Iterator[None]:
    """Around one build: wait for this engine's turn, and afterwards note the records the build
    made (in the background: a /system/df call costs about 10 ms; the session joins it before any
    prune). The turn ends once they are noted."""
    gate = _gate(session.daemon_url)
    gate.acquire()
    since = time.time()
    try:
        yield
    except BaseException:
        gate.release()
        raise
    note = threading.Thread(target=_remember, args=(session, since, time.time(), gate), daemon=True)
    note.start()
    session.pending.append(note)


def _remember(session: Session, since: float, until: float, gate: _Gate) -> None:
    """Note the records created between `since` and `until` (wall clock; the daemon stamps CreatedAt)."""
    try:
        session.tracker.add_many(KIND, sorted(r["ID"] for r in records(session.client)
                                              if since - 0.05 <= _timestamp(r.get("CreatedAt", "")) <= until + 0.05))
    finally:
        gate.release()


def records(cli: docker.DockerClient) -> list[dict]:
    """The engine's build cache records (/system/df). The engine runs one disk-usage query at a
    time and refuses a second one meanwhile: wait for it instead of failing."""
    for attempt in range(50):
        try:
            return cli.df().get("BuildCache") or []
        except docker.errors.APIError as exc:
            if "already running" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)
    return []


@register(KIND, "build cache records", order=30)
def _prune_noted(cli: docker.DockerClient, ids: list[str]) -> int:
    """Prune the records a session's builds created; how many went."""
    wanted = set(ids)
    prune(cli, wanted)
    return len(wanted - {r["ID"] for r in records(cli)})


def prune_session(session: Session) -> int:
    """Drop the build cache records this session's builds created (nobody else's); how many."""
    session.join_pending()
    notes = session.state / KIND
    if not notes.exists():
        return 0
    removed = _prune_noted(session.client, [i for i in notes.read_text().split() if i])
    notes.unlink()
    return removed


def _timestamp(rfc3339: str) -> float:
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if not m:
        return 0.0
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(m.group(2) or 0)


def prune(cli: docker.DockerClient, ids: Iterable[str]) -> int:
    """Prune the given build cache records (a parent goes once its children are gone); bytes reclaimed."""
    pending, reclaimed = set(ids), 0
    while pending:
        removed = set()
        for rid in sorted(pending):
            try:
                result = cli.api.prune_builds(filters={"id": rid})  # the API takes one value per filter
            except docker.errors.APIError:
                continue
            if result.get("CachesDeleted"):
                removed |= set(result["CachesDeleted"])
                reclaimed += result.get("SpaceReclaimed", 0)
        if not removed & pending:
            break
        pending -= removed
    return reclaimed

