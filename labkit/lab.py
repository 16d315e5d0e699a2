"""`Lab`: the per-notebook session. Labels everything it creates, derives names and ports from
the session, starts a watchdog that cleans up if the kernel dies, and removes only its own things."""
from __future__ import annotations

import copy
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import docker

from . import containers, engine, images
from .display import Renderable, Stack, table, volatile
from .cleanup import (LAB_LABEL, OWNER_LABEL, SESSION_LABEL, CleanupReport, _prune_session_cache, _start_time,
                      owner_id, remove_images, remove_session, state_dir)
from .errors import UnknownImage

LISTENERS: list[Callable[["Lab"], None]] = []  # told of every new Lab (labkit verify lists the images used)


def subscribe(listener: Callable[["Lab"], None]) -> None:
    """Call `listener` with every Lab made from now on, in this process."""
    LISTENERS.append(listener)


# --- the session ---------------------------------------------------------------------------

class Lab(Renderable):
    """One notebook's session: `lab = Lab("buildkit", images=["labkit/busybox"])`."""

    def __init__(self, topic: str, images: Sequence[str] = ("labkit/busybox:latest",),
                 needs: Sequence[str] = (), prepare: bool = True, watchdog: bool = True) -> None:
        self.topic = topic
        self.session = f"{topic}-{secrets.token_hex(3)}"
        self.client = _client_or_read_only()  # DaemonUnavailable (with a hint) within 5 s
        self.daemon_url = engine.find_daemon()[0]
        self.rootless = False
        self.labels = {SESSION_LABEL: self.session, LAB_LABEL: topic, OWNER_LABEL: owner_id()}
        self.images = [self._image_name(i) for i in images]
        for listener in LISTENERS:
            listener(self)
        self._caps: engine.Capabilities | None = None
        self._watchdog: subprocess.Popen | None = None
        self._children: list[subprocess.Popen] = []
        self._cache_notes: list[threading.Thread] = []  # build.py notes new build cache records in these
        self._dir = state_dir() / self.session
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / "owner").write_text(self.labels[OWNER_LABEL])
        if prepare:
            missing = [i for i in self.images if _missing(i)]
            if missing:
                _prepare(missing)
        if watchdog:
            self._start_watchdog()
        self.require(*needs)
        from . import notebook
        notebook.install_error_display()

    def on(self, client: docker.DockerClient, daemon_url: str, rootless: bool = False) -> "Lab":
        """The same session driving another engine (e.g. the rootless one of notebook 06):
        run, start, create and build go there; names, labels and tracked host things are shared."""
        other = copy.copy(self)
        other.client, other.daemon_url, other.rootless = client, daemon_url, rootless
        return other

    def track_user_namespace(self, pid: int) -> str:
        """Every process in `pid`'s user namespace is killed at cleanup (a rootless engine's tree)."""
        ns = os.readlink(f"/proc/{pid}/ns/user")
        (self._dir / f"userns-{hashlib.sha1(ns.encode()).hexdigest()[:12]}").write_text(ns)
        return ns

    @staticmethod
    def _image_name(name: str) -> str:
        try:
            return images.spec(name).name
        except UnknownImage:  # not a catalog image: the notebook builds or loads it itself
            return name

    # names and ports derive from the session, so two copies of a notebook never collide
    def name(self, suffix: str) -> str:
        return f"lab-{self.session}-{suffix}"

    def port(self, index: int = 0) -> int:
        """A free 127.0.0.1 port derived from the session id (stable for the session)."""
        base = 20000 + int(hashlib.sha256(self.session.encode()).hexdigest(), 16) % 20000
        for candidate in range(base + index * 7, base + index * 7 + 200):
            with socket.socket() as s:
                try:
                    s.bind((containers.LOOPBACK, candidate))
                    return candidate
                except OSError:
                    continue
        raise OSError("no free port near the session's range")

    @property
    def capabilities(self) -> engine.Capabilities:
        if self._caps is None:
            self._caps = engine.probe()
        return self._caps

    def require(self, *needs: str) -> None:
        """Stop the notebook with a skip banner when this machine lacks something."""
        from .errors import LabSkipped
        caps = self.capabilities if needs else None
        for need in needs:
            ok, fix = _need(caps, need)  # type: ignore[arg-type]
            if not ok:
                raise LabSkipped(f"This lab needs {need}, which this machine does not have.", fix)

    # containers
    def run(self, image: str, command: Sequence[str] | str | None = None, **kwargs: Any) -> containers.RunResult:
        return containers.run(self, image, command, **kwargs)

    def start(self, image: str, command: Sequence[str] | str | None = None, **kwargs: Any) -> containers.Container:
        return containers.start(self, image, command, **kwargs)

    def create(self, image: str, command: Sequence[str] | str | None = None, **kwargs: Any) -> containers.Container:
        return containers.create(self, image, command, **kwargs)

    def network(self, suffix: str = "net", **kwargs: Any):
        return self.client.networks.create(self.name(suffix), labels=dict(self.labels), **kwargs)

    def volume(self, suffix: str = "data", **kwargs: Any):
        return self.client.volumes.create(self.name(suffix), labels=dict(self.labels), **kwargs)

    def build(self, tag: str, dockerfile: str | None = None, **kwargs: Any):
        """BuildKit build, tagged lab.name(tag) and labelled with the session."""
        from . import build
        return build.build(self, tag, dockerfile, **kwargs)

    def exclusive_builds(self):
        """`with lab.exclusive_builds():` other sessions' builds on this engine wait until the block
        ends (for measurements that need the machine to themselves)."""
        from . import build
        return build.exclusive(self)

    def ssh_agent(self):
        """A throwaway ssh-agent with one fresh key, for `lab.build(..., ssh=agent)`."""
        from . import build
        return build.ssh_agent(self)

    def registry(self, timeout: float = 15):
        """A local registry on 127.0.0.1 for this session; stopped and deleted at cleanup."""
        from .registry import Registry
        return Registry(self, timeout=timeout)

    def platforms(self, ref: str):
        """The platforms of an image in a registry on this machine (what `mquery` shows)."""
        from .registry import RegistryClient
        host, _, name = ref.partition("/")
        return RegistryClient(host).platforms(name)

    def prune_build_cache(self) -> int:
        """Drop the build cache records this session's builds created (nobody else's); how many."""
        self._join_cache_notes()
        return _prune_session_cache(self.client, self._dir)

    def _join_cache_notes(self) -> None:
        for note in self._cache_notes:
            note.join(timeout=30)
        self._cache_notes.clear()

    def wipe_builds(self) -> CleanupReport:
        """Like a fresh CI runner: remove this session's images and build cache (nothing else)."""
        report = CleanupReport()
        report.removed["images"] = remove_images(self.client, {"label": f"{SESSION_LABEL}={self.session}"})
        report.removed["build cache records"] = self.prune_build_cache()
        return report

    def image(self, tag: str) -> str:
        """The full name of an image this session built as `tag`."""
        return self.name(tag)

    # exercises
    def check(self, exercise_id: str, **kwargs: Any):
        """Check an exercise against the real state; shows a green or red callout."""
        from . import exercises
        return exercises.run_check(self, exercise_id, **kwargs)

    def exercises(self):
        from . import exercises
        return exercises.progress(self.topic)

    def progress(self):
        """Your progress over every lab and exercise: a dashboard with a reset per lab in
        JupyterLab, a table elsewhere."""
        from . import exercises
        return exercises.dashboard()

    # host-side things the watchdog must also remove
    def track_process(self, proc: "int | subprocess.Popen") -> None:
        """A host process this session started (its process group is killed at cleanup)."""
        if isinstance(proc, subprocess.Popen):
            self._children.append(proc)  # reaped at cleanup, so no zombie stays behind
            proc = proc.pid
        (self._dir / f"pid-{proc}").write_text(f"{proc}:{_start_time(proc)}")

    def track_image(self, image_id: str) -> None:
        """An image this session created that carries no label (e.g. a classic build's step): removed at cleanup."""
        (self._dir / f"image-{image_id}").write_text(image_id)

    def track_tag(self, ref: str) -> None:
        """A tag this session put on an image (e.g. for a push): removed at cleanup."""
        (self._dir / f"tag-{hashlib.sha1(ref.encode()).hexdigest()[:12]}").write_text(ref)

    @property
    def state(self) -> Path:
        """This session's private state directory on the host."""
        return self._dir

    def track_path(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        (self._dir / f"path-{hashlib.sha1(str(p).encode()).hexdigest()[:12]}").write_text(str(p))
        return p

    def _start_watchdog(self) -> None:
        env = dict(os.environ, DOCKER_HOST=engine.find_daemon()[0])
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "labkit.watchdog", self.session, str(os.getpid())],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self._dir / "watchdog.log", "ab"), start_new_session=True, close_fds=True)

    def cleanup(self) -> CleanupReport:
        """Remove everything this session created; stop its watchdog."""
        self._join_cache_notes()
        report = remove_session(self.client, self.session)
        for child in self._children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._children.clear()
        if self._watchdog is not None:
            self._watchdog.terminate()
            self._watchdog.wait(timeout=5)
            self._watchdog = None
        shutil.rmtree(self._dir, ignore_errors=True)
        return report

    def _render(self):
        # the address differs between machines (a private CI engine, a rootless one): hidden in stable mode
        rows: list[tuple[str, str, str]] = [("Docker engine", volatile(engine.find_daemon()[0], "found"), "ok"),
                                            ("session", volatile(self.session, self.topic + "-…"), "ok")]
        for image in self.images:
            rows.append((image, "image", "missing" if _missing(image) else "present"))
        return Stack([table(["item", "value", "status"], rows, title=f"Lab {self.topic!r}: preflight",
                            status_column="status")])


def on_binder() -> bool:
    """Public Binder (and repo2docker images started by it) sets BINDER_* variables."""
    return any(k.startswith("BINDER_") for k in os.environ)


def _client_or_read_only() -> docker.DockerClient:
    from .errors import DaemonUnavailable, LabSkipped
    try:
        return engine.client()
    except DaemonUnavailable:
        if on_binder():
            raise LabSkipped("This Binder has no Docker engine, so this notebook is read-only here: "
                             "the outputs you see are the ones it was committed with.",
                             "Run the labs where a Docker engine is reachable: `make lab` on your machine, or "
                             "the classroom image with the engine's socket mounted (README, Binder section).") from None
        raise


def _missing(name: str) -> bool:
    return images._present(name) is None


def _prepare(names: Iterable[str]) -> None:
    catalog_names = [n for n in names if n in images.CATALOG]
    if catalog_names:
        images.prepare(catalog_names)


def _need(caps: engine.Capabilities, need: str) -> tuple[bool, str]:
    """(available, fix) for a named requirement."""
    if need == "buildkit":
        return bool(caps.buildkit_cli), "Install the buildx plugin or Debian's docker.io 20.10 client."
    if need == "privileged":
        return caps.privileged, "Run the lab on a rootful engine whose daemon has every capability."
    if need == "userns":
        return caps.user_namespaces, "apt-get install uidmap and enable unprivileged user namespaces."
    if need.startswith("binfmt:"):
        arch = need.split(":", 1)[1]
        return arch in caps.binfmt, "apt-get install qemu-user-static binfmt-support (see notebook 08)."
    if need == "registry":
        return bool(caps.registry_tool), "apt-get install docker-registry."
    return bool(shutil.which(need)), f"Install {need} (see `labkit doctor`)."
