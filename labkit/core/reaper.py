"""Removing what lab sessions created, and only that: by label (containers, networks, volumes,
images), then the host resources each session tracked (core.tracker's kinds). Used by
`Lab.cleanup()`, the watchdog and `labkit clean`. labkit never removes anything it did not label
or track: no `docker system prune`, ever."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from .render import Renderable, callout, stable
from .session import SESSION_LABEL, OWNER_LABEL, Session, owner_alive, process_alive, start_time, state_dir
from .tracker import KINDS, entries, register

_SINGULAR = {"processes": "process", "build cache records": "build cache record"}


@dataclass
class CleanupReport(Renderable):
    removed: dict[str, int] = field(default_factory=lambda: {"containers": 0, "networks": 0, "volumes": 0,
                                                                 "images": 0, "tags": 0, "build cache records": 0,
                                                                 "processes": 0, "paths": 0})
    sessions: list[str] = field(default_factory=list)

    def add(self, other: "CleanupReport") -> None:
        for k, v in other.removed.items():
            self.removed[k] = self.removed.get(k, 0) + v
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


# --- the core's kinds of tracked resources -------------------------------------------------------

@register("image", "images", order=10)
def _remove_untagged(cli: docker.DockerClient, ids: list[str]) -> int:
    removed = 0
    for image_id in ids:
        try:
            image = cli.images.get(image_id)
            if not image.tags:  # an untagged step image; anything tagged is somebody's image now
                cli.images.remove(image.id, force=True)
                removed += 1
        except docker.errors.APIError:  # gone with its child already, or used by someone else now
            pass
    return removed


@register("tag", "tags", order=20)
def _remove_tags(cli: docker.DockerClient, refs: list[str]) -> int:
    removed = 0
    for ref in refs:
        try:
            cli.images.remove(ref)  # by name and without force: removes just the tag
            removed += 1
        except docker.errors.APIError:
            pass
    return removed


@register("pid", "processes", order=40)
def _kill_processes(_: docker.DockerClient, values: list[str]) -> int:
    killed = 0
    for value in values:
        pid, _, start = value.partition(":")
        if process_alive(int(pid), start) and _kill_tree(int(pid)):  # same process, not a reused pid
            killed += 1
    return killed


@register("userns", "processes", order=50)
def _kill_namespaces(_: docker.DockerClient, namespaces: list[str]) -> int:
    return sum(kill_user_namespace(ns) for ns in namespaces)  # e.g. a rootless engine and its containers


@register("path", "paths", order=90)
def _remove_paths(_: docker.DockerClient, paths: list[str]) -> int:
    removed = 0
    for path in map(Path, paths):
        if path.exists() or path.is_symlink():
            remove_path(path)
            removed += 1
    return removed


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


# --- removal ------------------------------------------------------------------------------------

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


def remove_labelled(cli: docker.DockerClient, session: str | None, include_images: bool = True) -> CleanupReport:
    """Remove every container, network, volume (and image) labelled with `session` (any if None)."""
    report = CleanupReport(sessions=[session] if session else [])
    flt = {"label": f"{SESSION_LABEL}={session}" if session else SESSION_LABEL}
    for kind, key, remove in ((cli.containers, "containers", lambda o: o.remove(force=True, v=True)),
                              (cli.networks, "networks", lambda o: o.remove()),
                              (cli.volumes, "volumes", lambda o: o.remove(force=True))):
        for obj in (kind.list(all=True, filters=flt) if key == "containers" else kind.list(filters=flt)):
            try:
                remove(obj)
                report.removed[key] += 1
            except docker.errors.NotFound:
                pass
    if include_images:
        report.removed["images"] += remove_images(cli, flt)
    return report


def remove_tracked(cli: docker.DockerClient, directory: Path) -> CleanupReport:
    """Remove what a session directory tracks, kind by kind in order, forgetting each as it goes."""
    report = CleanupReport()
    for kind in sorted(KINDS.values(), key=lambda k: k.order):
        for f, values in entries(directory, kind):
            report.removed[kind.counts_as] = report.removed.get(kind.counts_as, 0) + kind.remove(cli, [v for v in values if v])
            f.unlink(missing_ok=True)
    return report


def remove_session(cli: docker.DockerClient, session: "Session | str | None", include_images: bool = True) -> CleanupReport:
    """Everything labelled with `session` (every labkit session if None), and everything its state
    directory tracks, with the views it made on other engines (`Session.on`). For a view itself,
    only what that view made, on its engine."""
    if isinstance(session, Session) and session.is_view:
        report = remove_labelled(cli, session.id, include_images)
        report.add(remove_tracked(cli, session.tracker.dir))
        return report
    sid = str(session) if session is not None else None
    report = remove_labelled(cli, sid, include_images)
    for sdir in ([state_dir() / sid] if sid else [d for d in state_dir().iterdir() if d.is_dir()]):
        for view in sorted(sdir.glob("on-*")):
            report.add(_remove_view(view, sid or sdir.name, include_images))
        if sdir.is_dir():
            report.add(remove_tracked(cli, sdir))
    return report


def _remove_view(view: Path, session: str, include_images: bool) -> CleanupReport:
    from .engine import client_for
    report = CleanupReport()
    try:
        cli = client_for((view / "engine").read_text())
        report.add(remove_labelled(cli, session, include_images))
    except Exception:  # that engine is gone (e.g. a rootless engine the session stopped): its things with it
        cli = None
    report.add(remove_tracked(cli, view))  # type: ignore[arg-type]
    shutil.rmtree(view, ignore_errors=True)
    return report


def clean(cli: docker.DockerClient, all_sessions: bool = False) -> CleanupReport:
    """`labkit clean`: leftovers of dead sessions (or of every session with all_sessions)."""
    report = CleanupReport()
    if all_sessions:
        report.add(remove_session(cli, None))
        return report
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
    return report


# --- the watchdog ---------------------------------------------------------------------------------

def start_watchdog(session: Session) -> subprocess.Popen:
    """A detached process that removes the session's leftovers when this process dies (nbval
    SIGKILLs kernels, so atexit never runs). `python -m labkit.watchdog SESSION PID`."""
    env = dict(os.environ, DOCKER_HOST=session.daemon_url)
    with open(session.state / "watchdog.log", "ab") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen([sys.executable, "-m", "labkit.watchdog", session.id, str(os.getpid())],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True)


def stop_watchdog(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=5)


def wait_for_death(pid: int, poll: float = 0.5) -> None:
    start = start_time(pid)
    while start is not None and process_alive(pid, start):
        time.sleep(poll)
