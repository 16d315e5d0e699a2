"""Removing what lab sessions created, and only that: by label (containers, networks, volumes,
images), and from each session's state directory (host processes, paths, tags, unlabelled images,
build cache records, user namespaces). Used by `Lab.cleanup()`, the watchdog and `labkit clean`."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from . import engine, images
from .display import Renderable, callout, stable
from .locks import runtime_dir

SESSION_LABEL = "labkit.session"
LAB_LABEL = "labkit.lab"
OWNER_LABEL = "labkit.owner"


def state_dir() -> Path:
    """Per-user runtime state (session files for host processes and paths)."""
    path = runtime_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc/PID/stat (fields 3 and 22); None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, start: str | None) -> bool:
    """Is `pid` still the process that started at `start`, and not dead? A SIGKILLed process whose
    parent has not reaped it yet is a zombie (state Z) that still shows its start time; X is dead;
    another start time means the pid was reused. All three count as dead."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x") and stat[1] == start


def owner_id(pid: int | None = None) -> str:
    """host:pid:start-time of a process; the start time guards against pid reuse."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host, None when it lives elsewhere (can't tell)."""
    try:
        host, pid, start = owner.rsplit(":", 2)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    return process_alive(int(pid), start)


# --- removal by label (the only way labkit removes things) -----------------------------------

_SINGULAR = {"processes": "process", "build cache records": "build cache record"}


@dataclass
class CleanupReport(Renderable):
    removed: dict[str, int] = field(default_factory=lambda: {"containers": 0, "networks": 0, "volumes": 0,
                                                                 "images": 0, "tags": 0, "build cache records": 0,
                                                                 "processes": 0, "paths": 0})
    sessions: list[str] = field(default_factory=list)

    def add(self, other: "CleanupReport") -> None:
        for k, v in other.removed.items():
            self.removed[k] += v
        self.sessions += other.sessions

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def _render(self):
        # The counts depend on how often a check ran (CI runs each one twice) and on BuildKit's
        # bookkeeping: stable mode names what was removed, not how many.
        what = ", ".join(k if stable() else f"{v} {k if v != 1 else _SINGULAR.get(k, k[:-1])}"
                         for k, v in self.removed.items() if v)
        return callout("success", "Cleaned up", f"Removed {what}." if what else "Nothing was left to remove.")


def _kill_tree(pid: int) -> bool:
    try:
        os.killpg(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def kill_user_namespace(ns: str) -> int:
    """SIGKILL every process whose user namespace is `ns` ("user:[4026532...]"); never ours."""
    if not ns.startswith("user:[") or ns == os.readlink("/proc/self/ns/user"):
        return 0
    killed = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "ns" / "user") == ns:
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed += 1
            except (OSError, ProcessLookupError):
                pass
    return killed


def remove_images(cli: docker.DockerClient, filters: dict) -> int:
    """Remove (force) the images these label filters select; how many went. A parent goes once
    its children are gone (e.g. a session's copy of a base under its classic builds)."""
    removed, pending = 0, cli.images.list(filters=filters)
    while pending:
        conflicts = []
        for img in pending:
            try:
                cli.images.remove(img.id, force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                conflicts.append(img)
        if len(conflicts) == len(pending):
            break
        pending = conflicts
    return removed


def remove_session(cli: docker.DockerClient, session: str | None, include_images: bool = True) -> CleanupReport:
    """Remove every resource labelled with `session` (every labkit session if None)."""
    report = CleanupReport(sessions=[session] if session else [])
    label = f"{SESSION_LABEL}={session}" if session else SESSION_LABEL
    flt = {"label": label}
    for c in cli.containers.list(all=True, filters=flt):
        try:
            c.remove(force=True, v=True)
            report.removed["containers"] += 1
        except docker.errors.NotFound:
            pass
    for n in cli.networks.list(filters=flt):
        try:
            n.remove()
            report.removed["networks"] += 1
        except docker.errors.NotFound:
            pass
    for v in cli.volumes.list(filters=flt):
        try:
            v.remove(force=True)
            report.removed["volumes"] += 1
        except docker.errors.NotFound:
            pass
    if include_images:
        report.removed["images"] += remove_images(cli, flt)
    # Host-side leftovers the session registered (processes it started, directories it made),
    # tags it put on images it did not build, and the build cache records its builds created.
    for sdir in ([state_dir() / session] if session else list(state_dir().iterdir())):
        for imagefile in sorted(sdir.glob("image-*")):
            try:
                image = cli.images.get(imagefile.read_text())
                if not image.tags:  # an untagged step image; anything tagged is somebody's image now
                    cli.images.remove(image.id, force=True)
                    report.removed["images"] += 1
            except docker.errors.APIError:  # gone with its child already, or used by someone else now
                pass
            imagefile.unlink(missing_ok=True)
        for tagfile in sorted(sdir.glob("tag-*")):
            try:
                cli.images.remove(tagfile.read_text())  # by name and without force: removes just the tag
                report.removed["tags"] += 1
            except docker.errors.APIError:
                pass
            tagfile.unlink(missing_ok=True)
        report.removed["build cache records"] += _prune_session_cache(cli, sdir)
        for pidfile in sorted(sdir.glob("pid-*")):
            pid, _, start = pidfile.read_text().partition(":")
            if _start_time(int(pid)) == start and _kill_tree(int(pid)):  # same process, not a reused pid
                report.removed["processes"] += 1
            pidfile.unlink(missing_ok=True)
        for nsfile in sorted(sdir.glob("userns-*")):  # e.g. a rootless engine and all its containers
            report.removed["processes"] += kill_user_namespace(nsfile.read_text())
            nsfile.unlink(missing_ok=True)
        for pathfile in sorted(sdir.glob("path-*")):
            target = Path(pathfile.read_text())
            if target.exists():
                remove_path(target)
                report.removed["paths"] += 1
            pathfile.unlink(missing_ok=True)
    return report


def remove_path(target: Path) -> None:
    """rm -rf that also works for a user who is not root: what a rootless engine or buildah leaves
    (overlayfs work dirs of mode 000, read-only image directories) is the user's own, but rmtree
    needs write and search permission on each directory, so give the owner those and retry."""
    def allow_and_retry(func, path, _exc):
        for p in {os.path.dirname(path), path}:
            try:
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
            except OSError:
                pass
        try:
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else func(path)
        except OSError:
            pass
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, **({"onexc": allow_and_retry} if sys.version_info >= (3, 12) else {"onerror": allow_and_retry}))
    else:
        target.unlink(missing_ok=True)


def build_cache_records(cli: docker.DockerClient) -> list[dict]:
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


def _cache_ids(cli: docker.DockerClient) -> set[str]:
    return {r["ID"] for r in build_cache_records(cli)}


def _prune_session_cache(cli: docker.DockerClient, sdir: Path) -> int:
    """Prune the build cache records a session's builds created (build.py notes them); returns how many."""
    cache_file = sdir / "build-cache"
    if not cache_file.exists():
        return 0
    from .build import prune_cache
    ids = set(cache_file.read_text().split())
    prune_cache(cli, ids)
    cache_file.unlink()
    return len(ids - _cache_ids(cli))


def clean(all_sessions: bool = False, include_images: bool = False) -> CleanupReport:
    """`labkit clean`: leftovers of dead sessions (or of every session with all_sessions).
    With include_images, also the catalog images `labkit prepare` made."""
    cli = engine.client()
    report = CleanupReport()
    if all_sessions:
        report.add(remove_session(cli, None))
    else:
        owners: dict[str, str] = {}
        for c in cli.containers.list(all=True, filters={"label": SESSION_LABEL}):
            owners.setdefault(c.labels[SESSION_LABEL], c.labels.get(OWNER_LABEL, ""))
        for kind in (cli.networks, cli.volumes, cli.images):
            for obj in kind.list(filters={"label": SESSION_LABEL}):
                labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
                if SESSION_LABEL in labels:
                    owners.setdefault(labels[SESSION_LABEL], labels.get(OWNER_LABEL, ""))
        for sdir in state_dir().iterdir():
            owner_file = sdir / "owner"
            owners.setdefault(sdir.name, owner_file.read_text() if owner_file.exists() else "")
        for session, owner in owners.items():
            if owner_alive(owner) is False:
                report.add(remove_session(cli, session))
                shutil.rmtree(state_dir() / session, ignore_errors=True)
    if include_images:
        report.removed["images"] += remove_images(cli, {"label": images.CATALOG_LABEL})
    return report
