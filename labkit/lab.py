"""`Lab`: the facade a notebook uses. A thin layer over a `Session` (identity, labels, names,
ports, tracked host resources: labkit.core) and the per-noun components (containers, builds,
registries, exercises), with the short aliases notebooks use (`lab.run`, `lab.build`, ...)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import docker

from . import buildcache, builds, containers, images
from .buildlog import BuildReport
from .core import engine, ipython, reaper
from .core.capabilities import Capabilities, probe
from .core.errors import DaemonUnavailable, LabSkipped, UnknownImage
from .core import render
from .core.render import Commands, Renderable, Stack, table, volatile
from .core.reaper import CleanupReport
from .core.session import SESSION_LABEL, Session
from .endpoint import SessionEndpoint
from .exercises import push_progress

LISTENERS: list[Callable[["Lab"], None]] = []  # told of every new Lab (labkit verify lists the images used)


def subscribe(listener: Callable[["Lab"], None]) -> None:
    """Call `listener` with every Lab made from now on, in this process."""
    LISTENERS.append(listener)


class Lab(Renderable):
    """One notebook's session: `lab = Lab("buildkit", images=["labkit/busybox"])`.

    Makes the lab's images if they are missing, starts a watchdog that removes the session's
    leftovers if the kernel dies, and stops the notebook with a skip banner when this machine
    lacks something in `needs` ("buildkit", "privileged", "registry", "binfmt:arm64", a tool)."""

    def __init__(self, topic: str, images: Sequence[str] = ("labkit/busybox:latest",),
                 needs: Sequence[str] = (), prepare: bool = True, watchdog: bool = True,
                 endpoint: bool = True) -> None:
        self.topic = topic
        push_progress()  # in a classroom: the roster gets this learner's record again after a restart
        self.session = Session(topic, _client_or_read_only(), engine.find_daemon()[0])
        self.needed_images = [_image_name(i) for i in images]  # the catalog images this lab uses (lab.image(tag) names one it built)
        self._commands_from = len(render.COMMANDS)
        self._caps: Capabilities | None = None
        self._watchdog: subprocess.Popen | None = None
        self._view_of: Lab | None = None
        for listener in LISTENERS:
            listener(self)
        # the preflight as it was when the lab started: showing it again asks the engine nothing
        self._present = {i: not _missing(i, self.session.client) for i in self.needed_images}
        if prepare and not all(self._present.values()):
            _prepare([i for i, ok in self._present.items() if not ok])
            self._present = {i: ok or not _missing(i, self.session.client) for i, ok in self._present.items()}
        if watchdog:
            self._watchdog = reaper.start_watchdog(self.session)
        self.endpoint: SessionEndpoint | None = None
        if endpoint:
            # the session's own socket: a kernel's shell cells (`!docker ...`) use it, and what
            # they create carries the session's labels (labkit.endpoint)
            self.endpoint = SessionEndpoint(self.session).start()
            if ipython.in_kernel():
                self.endpoint.export()
        self.require(*needs)
        ipython.install_error_display()

    def on(self, client: docker.DockerClient, daemon_url: str, rootless: bool = False) -> "Lab":
        """The same session driving another engine (e.g. the rootless one of notebook 06): run,
        start, create and build go there. The view tracks what it makes on its own; its
        cleanup() never touches this session's things or its watchdog."""
        view = Lab.__new__(Lab)
        view.topic, view.needed_images, view._caps, view._watchdog = self.topic, self.needed_images, self._caps, None
        view._present = self._present
        view._commands_from = self._commands_from
        view.session = self.session.on(client, daemon_url, rootless)
        view._view_of = self
        view.endpoint = None
        return view

    # --- identity (see labkit.core.session) ----------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        return self.session.client

    @property
    def daemon_url(self) -> str:
        return self.session.daemon_url

    @property
    def rootless(self) -> bool:
        return self.session.rootless

    @property
    def labels(self) -> dict[str, str]:
        return self.session.labels

    @property
    def state(self) -> Path:
        """This session's private state directory on the host."""
        return self.session.state

    def name(self, suffix: str) -> str:
        """The engine-wide name of something this session makes: lab-<session>-<suffix>."""
        return self.session.name(suffix)

    def image(self, tag: str) -> str:
        """The full name of an image this session built as `tag` (lab.build(tag, ...))."""
        return self.session.name(tag)

    def port(self, index: int = 0) -> int:
        """A free 127.0.0.1 port derived from the session id (stable for the session)."""
        return self.session.port(index)

    # --- what this machine can do ----------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = probe()
        return self._caps

    def require(self, *needs: str) -> None:
        """Stop the notebook with a skip banner when this machine lacks something."""
        caps = self.capabilities if needs else None
        for need in needs:
            ok, fix = _need(caps, need)  # type: ignore[arg-type]
            if not ok:
                raise LabSkipped(f"This lab needs {need}, which this machine does not have.", fix)

    # --- containers (labkit.containers) -----------------------------------------------------------
    def run(self, image: str, command: Sequence[str] | str | None = None, *, check: bool = False,
            timeout: float | None = 300, **options: Any) -> containers.RunResult:
        """`docker run --rm IMAGE COMMAND`: run to completion, stdout and stderr apart, always removed.
        `check=True` raises CommandFailed on a non-zero exit. `options` are the docker SDK's
        `containers.create` options (user, environment, volumes, cap_add, pid_mode, ...)."""
        return containers.run(self.session, image, command, check=check, timeout=timeout, **options)

    def start(self, image: str, command: Sequence[str] | str | None = None, *, name: str | None = None,
              wait: containers.WaitStrategy | None = None, timeout: float = 30, **options: Any) -> containers.Container:
        """`docker run -d --name lab-<session>-NAME IMAGE COMMAND`: a labelled container, ready when
        `wait` says so (LogLine, TcpPort, Http, Exec), removed if it never gets ready. Published
        ports (`ports={80: None}`) bind to 127.0.0.1. `options`: the SDK's `containers.create` options."""
        return containers.start(self.session, image, command, name=name, wait=wait, timeout=timeout, **options)

    def create(self, image: str, command: Sequence[str] | str | None = None, *, name: str | None = None,
               **options: Any) -> containers.Container:
        """`docker create`: a labelled container that exists but runs nothing (yet)."""
        return containers.create(self.session, image, command, name=name, **options)

    def network(self, suffix: str = "net", *, driver: str | None = None, internal: bool = False, **options: Any):
        """`docker network create lab-<session>-SUFFIX`, labelled (removed at cleanup): the SDK's Network,
        shown with its command line."""
        from .resources import network_command, shown
        net = self.client.networks.create(self.name(suffix), driver=driver, internal=internal,
                                          labels=dict(self.labels), **options)
        return shown(net, network_command(self.name(suffix), driver=driver, internal=internal, **options))

    def volume(self, suffix: str = "data", *, driver: str | None = None, **options: Any):
        """`docker volume create lab-<session>-SUFFIX`, labelled (removed at cleanup): the SDK's Volume,
        shown with its command line."""
        from .resources import shown, volume_command
        vol = self.client.volumes.create(self.name(suffix), driver=driver or "local", labels=dict(self.labels),
                                         **options)
        return shown(vol, volume_command(self.name(suffix), driver or "local", options.get("driver_opts")))

    # --- builds (labkit.builds, labkit.buildcache) ------------------------------------------------
    def build(self, tag: str, dockerfile: str | None = None, context: str | os.PathLike | None = None, *,
              files: Mapping[str, str | bytes] | None = None, build_args: Mapping[str, str] | None = None,
              target: str | None = None, secrets: Mapping[str, str] | None = None,
              secret_files: Mapping[str, str | os.PathLike] | None = None, ssh: Any = None,
              cache_from: Sequence[str] = (), inline_cache: bool = False, no_cache: bool = False,
              platform: str | None = None, labels: Mapping[str, str] | None = None,
              builder: str = "buildkit", salt: bool = True) -> BuildReport:
        """`docker build -t lab-<session>-TAG`: BuildKit (or builder="classic"), labelled with the
        session. `dockerfile` is the Dockerfile's text (or the context's Dockerfile), `files` the
        build context as {path: content}. `secrets` are values and `secret_files` paths, both for
        `RUN --mount=type=secret` only; `ssh` an agent from lab.ssh_agent() or "default".
        `salt=False` shares the engine's build cache with other sessions (see notebook 03)."""
        return builds.build(self.session, tag, dockerfile, context, files=files, build_args=build_args,
                            target=target, secrets=secrets, secret_files=secret_files, ssh=ssh,
                            cache_from=cache_from, inline_cache=inline_cache, no_cache=no_cache,
                            platform=platform, labels=labels, builder=builder, salt=salt)

    def exclusive_builds(self):
        """`with lab.exclusive_builds():` other sessions' builds on this engine wait until the block
        ends (for measurements that need the machine to themselves)."""
        return buildcache.exclusive(self.session)

    def ssh_agent(self):
        """A throwaway ssh-agent with one fresh key, for `lab.build(..., ssh=agent)`."""
        from . import hosttools
        return hosttools.ssh_agent(self.session)

    def prune_build_cache(self) -> int:
        """Drop the build cache records this session's builds created (nobody else's); how many."""
        return buildcache.prune_session(self.session)

    def wipe_builds(self) -> CleanupReport:
        """Like a fresh CI runner: remove this session's images and build cache (nothing else)."""
        report = CleanupReport()
        report.removed["images"] = reaper.remove_images(self.client, {"label": f"{SESSION_LABEL}={self.session.id}"})
        report.removed["build cache records"] = self.prune_build_cache()
        return report

    # --- registries (labkit.registry) -------------------------------------------------------------
    def registry(self, timeout: float = 15):
        """A local registry on 127.0.0.1 for this session; stopped and deleted at cleanup."""
        from .registry import Registry
        return Registry(self.session, timeout=timeout)

    def platforms(self, ref: str):
        """The platforms of an image in a registry on this machine (what `mquery` shows)."""
        from .registry import RegistryClient
        host, _, name = ref.partition("/")
        return RegistryClient(host).platforms(name)

    # --- exercises (labkit.exercises) -------------------------------------------------------------
    def check(self, exercise_id: str, **answers: Any):
        """Check an exercise against the real state; shows a green or red callout."""
        from . import exercises
        return exercises.run_check(self, exercise_id, **answers)

    def commands(self) -> Commands:
        """Every command line this lab's labkit calls stood for, in order: what to type at work."""
        return Commands(render.COMMANDS[self._commands_from:])

    def hint(self, exercise_id: str):
        """The next hint for an exercise: a nudge, then where to look, then the answer."""
        from . import exercises
        return exercises.hint(self.topic, exercise_id)

    def solution(self, exercise_id: str):
        """The reference solution of an exercise (recorded in your progress as shown)."""
        from . import exercises
        return exercises.solution(self.topic, exercise_id)

    def engine_facts(self, *topics: str):
        """Where Docker 20.10 and current Docker differ (buildkit, buildx, save, image-store,
        cache-export): both, and which applies to this engine."""
        from . import enginefacts
        return enginefacts.facts(*topics)

    def predict(self, question_id: str, choice: "str | int | None" = None):
        """Predict, then run: the question (buttons in JupyterLab), or record `choice` ("a", "b", ...)
        and say whether it was right. The first answer is the one kept."""
        from . import predictions
        from .core.ipython import in_kernel
        if choice is None and in_kernel() and not render.stable():
            try:
                return predictions.widget(self.topic, question_id)
            except ImportError:  # no ipywidgets: the text form below still works
                pass
        return predictions.predict(self.topic, question_id, choice)

    def exercises(self):
        from . import exercises
        return exercises.progress(self.topic)

    def progress(self):
        """Your progress over every lab and exercise: a dashboard with a reset per lab in
        JupyterLab, a table elsewhere."""
        from . import exercises
        return exercises.dashboard()

    # --- host-side things the watchdog must also remove (labkit.core.tracker) ----------------------
    def track_process(self, proc: "int | subprocess.Popen") -> None:
        """A host process this session started (its process group is killed at cleanup)."""
        self.session.tracker.process(proc)

    def track_user_namespace(self, pid: int) -> str:
        """Every process in `pid`'s user namespace is killed at cleanup (a rootless engine's tree)."""
        return self.session.tracker.user_namespace(pid)

    def track_image(self, image_id: str) -> None:
        """An image this session created that carries no label: removed at cleanup if still untagged."""
        self.session.tracker.image(image_id)

    def track_tag(self, ref: str) -> None:
        """A tag this session put on an image (e.g. for a push): removed at cleanup."""
        self.session.tracker.tag(ref)

    def track_path(self, path: str | os.PathLike) -> Path:
        """A file or directory this session made on the host: deleted at cleanup."""
        return self.session.tracker.path(path)

    def cleanup(self) -> CleanupReport:
        """Remove everything this session created; stop its watchdog. On a view (`lab.on`), only
        what the view made, on its engine."""
        if self.endpoint is not None:
            self.endpoint.stop()  # first: nothing new is created through it while removing
        self.session.join_pending()
        report = reaper.remove_session(self.client, self.session)
        self.session.tracker.reap_children()
        if self._watchdog is not None:
            reaper.stop_watchdog(self._watchdog)
            self._watchdog = None
        shutil.rmtree(self.session.state, ignore_errors=True)
        return report

    def _render(self):
        # the address differs between machines (a private CI engine, a rootless one): hidden in stable mode
        rows: list[tuple[str, str, str]] = [("Docker engine", volatile(self.daemon_url, "found"), "ok"),
                                            ("session", volatile(self.session.id, self.topic + "-…"), "ok")]
        for image in self.needed_images:
            rows.append((image, "image", "present" if self._present.get(image) else "missing"))
        return Stack([table(["item", "value", "status"], rows, title=f"Lab {self.topic!r}: preflight",
                            status_column="status")])


def on_binder() -> bool:
    """Public Binder (and repo2docker images started by it) sets BINDER_* variables."""
    return any(k.startswith("BINDER_") for k in os.environ)


def _client_or_read_only() -> docker.DockerClient:
    try:
        return engine.client()
    except DaemonUnavailable:
        if on_binder():
            raise LabSkipped("This Binder has no Docker engine, so this notebook is read-only here: "
                             "the outputs you see are the ones it was committed with.",
                             "Run the labs where a Docker engine is reachable: `make lab` on your machine, or "
                             "the classroom image with the engine's socket mounted (README, Binder section).") from None
        raise


def _image_name(name: str) -> str:
    try:
        return images.spec(name).name
    except UnknownImage:  # not a catalog image: the notebook builds or loads it itself
        return name


def _missing(name: str, client: docker.DockerClient) -> bool:
    return images.present(name, client) is None


def _prepare(names: Iterable[str]) -> None:
    catalog_names = [n for n in names if n in images.CATALOG]
    if catalog_names:
        images.prepare(catalog_names)


def _need(caps: Capabilities, need: str) -> tuple[bool, str]:
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
