"""The host resources a session owns that labels cannot mark (processes it started, directories
it made, tags it put on images, unlabelled images, build cache records, user namespaces), noted
as files in the session's state directory, so that its cleanup, its watchdog and `labkit clean`
(another process, maybe after the kernel died) can remove them.

One registry holds every kind with its remover. The core registers its own kinds (core.reaper);
a component above registers the kinds it owns (the build cache), never the other way round."""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker

Remover = Callable[[docker.DockerClient, list[str]], int]  # (client, values) -> how many things went


@dataclass(frozen=True)
class Kind:
    name: str  # the file prefix: "pid", "path", ...
    counts_as: str  # the CleanupReport key: "processes", "paths", ...
    order: int  # removal order: images before the processes that may hold them, paths last
    remove: Remover


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc/PID/stat (fields 3 and 22); None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, start: str | None) -> bool:
    """Is `pid` still the process that started at `start`, and not dead? A SIGKILLed process whose
    parent has not reaped it yet is a zombie (state Z) that still shows its start time; X is dead;
    another start time means the pid was reused. All three count as dead."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x") and stat[1] == start


KINDS: dict[str, Kind] = {}


def register(name: str, counts_as: str, order: int) -> Callable[[Remover], Remover]:
    """Declare a kind of tracked resource and how to remove one."""
    def decorate(fn: Remover) -> Remover:
        KINDS[name] = Kind(name, counts_as, order, fn)
        return fn
    return decorate


class Tracker:
    """One session's tracked host resources: a file <kind>-<key> holding each value."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.children: list[subprocess.Popen] = []  # processes of this Python process: reaped at cleanup

    def note(self, name: str, value: str) -> None:
        """A plain fact about the session (its owner, its engine)."""
        (self.dir / name).write_text(value)

    def _file(self, kind: str, key: str) -> Path:
        return self.dir / f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def add(self, kind: str, value: str, key: str | None = None) -> None:
        self._file(kind, key or value).write_text(value)

    def has(self, kind: str, key: str) -> bool:
        """Does this session track that resource (e.g. has("pid", "1234"))?"""
        return self._file(kind, key).exists()

    def add_many(self, kind: str, values: list[str]) -> None:
        """Many values of one kind in one file (e.g. build cache record ids), appended."""
        if values:
            with open(self.dir / kind, "a") as fh:
                fh.writelines(f"{v}\n" for v in values)

    def process(self, proc: "int | subprocess.Popen") -> int:
        """A host process this session started: its process group is killed at cleanup."""
        if isinstance(proc, subprocess.Popen):
            self.children.append(proc)
            proc = proc.pid
        self.add("pid", f"{proc}:{start_time(proc)}", key=str(proc))
        return proc

    def user_namespace(self, pid: int) -> str:
        """Every process in `pid`'s user namespace is killed at cleanup (a rootless engine's tree)."""
        ns = os.readlink(f"/proc/{pid}/ns/user")
        self.add("userns", ns)
        return ns

    def image(self, image_id: str) -> None:
        """An image without labels (e.g. a classic build's step): removed if still untagged."""
        self.add("image", image_id)

    def tag(self, ref: str) -> None:
        """A tag this session put on an image (e.g. for a push): only the tag is removed."""
        self.add("tag", ref)

    def path(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        self.add("path", str(p))
        return p

    def reap_children(self, timeout: float = 5) -> None:
        for child in self.children:
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.children.clear()


def entries(directory: Path, kind: Kind) -> list[tuple[Path, list[str]]]:
    """The files of one kind in a session directory, with the values each holds."""
    files = sorted(directory.glob(f"{kind.name}-*")) + ([directory / kind.name] if (directory / kind.name).exists() else [])
    return [(f, f.read_text().split("\n") if f.name == kind.name else [f.read_text()]) for f in files]
