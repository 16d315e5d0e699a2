"""Per-user runtime directory and host-wide file locks, so that two sessions on one machine take
turns where they would otherwise trip over each other (preparing the same image, noting build
cache). A lock is a `flock` on a file: the kernel drops it when its holder dies, so a SIGKILLed
kernel never leaves a stale lock."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Iterator


def runtime_dir() -> Path:
    """This user's labkit runtime directory ($XDG_RUNTIME_DIR/labkit, else /tmp/labkit-UID/labkit)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/labkit-{os.getuid()}"
    path = Path(base) / "labkit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_path(name: str) -> Path:
    return runtime_dir() / f"lock-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def open_locked(name: str) -> int:
    """Block until this process holds the lock `name`; returns the fd (close it to release)."""
    fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    fd = open_locked(name)
    try:
        yield
    finally:
        os.close(fd)
