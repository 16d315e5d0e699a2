"""A session's identity: its id, labels, names and ports on one engine, and whether the process
that owns it is still alive. Everything a lab creates carries the session's labels; names and
ports derive from the id, so two copies of a notebook run side by side on one engine."""
from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

import docker

from .locks import runtime_dir
from .tracker import Tracker, process_alive, start_time

SESSION_LABEL = "labkit.session"
LAB_LABEL = "labkit.lab"
OWNER_LABEL = "labkit.owner"
LOOPBACK = "127.0.0.1"


def state_dir() -> Path:
    """Per-user runtime state: one directory per session (what it tracks on the host)."""
    path = runtime_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def owner_id(pid: int | None = None) -> str:
    """host:pid:start-time of a process; the start time guards against pid reuse."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host, None when it lives elsewhere (can't tell)."""
    try:
        host, pid, start = owner.rsplit(":", 2)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    return process_alive(int(pid), start)


class Session:
    """One notebook's identity on one engine: what every component receives.

    `str(session)` is the id ("buildkit-3f9a1c"); the session compares equal to that string, so a
    label value can be compared with it directly."""

    def __init__(self, topic: str, client: docker.DockerClient, daemon_url: str, *, rootless: bool = False,
                 id: str | None = None, tracker: Tracker | None = None) -> None:
        self.topic = topic
        self.id = id or f"{topic}-{secrets.token_hex(3)}"
        self.client = client
        self.daemon_url = daemon_url
        self.rootless = rootless
        self.owner = owner_id()
        self.tracker = tracker or Tracker(state_dir() / self.id)
        self.tracker.note("owner", self.owner)
        self.pending: list[threading.Thread] = []  # background work to finish before a cleanup (cache notes)

    @property
    def labels(self) -> dict[str, str]:
        return {SESSION_LABEL: self.id, LAB_LABEL: self.topic, OWNER_LABEL: self.owner}

    @property
    def state(self) -> Path:
        """This session's private state directory on the host."""
        return self.tracker.dir

    def name(self, suffix: str) -> str:
        """The engine-wide name of something this session makes: lab-<session>-<suffix>."""
        return f"lab-{self.id}-{suffix}"

    def port(self, index: int = 0) -> int:
        """A free 127.0.0.1 port derived from the session id (stable for the session)."""
        base = 20000 + int(hashlib.sha256(self.id.encode()).hexdigest(), 16) % 20000
        for candidate in range(base + index * 7, base + index * 7 + 200):
            with socket.socket() as s:
                try:
                    s.bind((LOOPBACK, candidate))
                    return candidate
                except OSError:
                    continue
        raise OSError("no free port near the session's range")

    def join_pending(self, timeout: float = 30) -> None:
        for work in self.pending:
            work.join(timeout=timeout)
        self.pending.clear()

    def tracks(self, kind: str, key: str) -> bool:
        """Does this session track that host resource? A view also answers for its session: host
        processes and paths belong to the host, whichever engine the view drives."""
        if self.tracker.has(kind, key):
            return True
        return self.is_view and Tracker(self.tracker.dir.parent).has(kind, key)

    @property
    def is_view(self) -> bool:
        """A view of another session on a second engine (see `on`)."""
        return self.tracker.dir.parent != state_dir()

    def on(self, client: docker.DockerClient, daemon_url: str, rootless: bool = False) -> "Session":
        """The same identity on another engine, with a tracker of its own (a subdirectory of
        this session's), so cleaning it up never touches this session's host resources."""
        key = hashlib.sha1(daemon_url.encode()).hexdigest()[:8]
        tracker = Tracker(self.tracker.dir / f"on-{key}")
        tracker.note("engine", daemon_url)
        view = Session(self.topic, client, daemon_url, rootless=rootless, id=self.id, tracker=tracker)
        view.owner = self.owner
        return view

    def __str__(self) -> str:
        return self.id

    def __format__(self, spec: str) -> str:
        return format(self.id, spec)

    def __repr__(self) -> str:
        return f"Session({self.id!r}, {self.daemon_url!r})"

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Session):
            return self.id == other.id and self.daemon_url == other.daemon_url
        return isinstance(other, str) and self.id == other

    def __hash__(self) -> int:
        return hash(self.id)
