"""Notebook 11: image builders side by side. buildah builds Dockerfiles without any daemon (as you,
and as an unprivileged user: the lab user, which may not use the Docker socket, when you are root,
else you), into a storage that belongs to the session; `timestamp=` makes its builds reproducible
(same image id twice)."""
from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .buildlog import BuildReport
from .builds import prepare_context
from .core.render import Renderable, callout, command_line, human_bytes, seconds, short_name, table, volatile
from .core.capabilities import as_root, socket_access
from .core.engine import find_tool
from .core.errors import CommandFailed, LabSkipped
from .archive import save_command, save_image
from .rootless import LAB_USER, requirements

if TYPE_CHECKING:
    from .lab import Lab
    from .registry import Registry

_FROM = re.compile(r"^(\s*FROM\s+)(labkit/\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class BuilderRun(Renderable):
    """One buildah build: the image id is the digest of its config, so equal ids are equal images."""

    tag: str
    image_id: str  # the digest of the config
    digest: str  # the digest of the manifest, what a registry names it by
    created: str
    layers: list[str]
    size: int
    duration: float
    user: str
    store: Path
    uid: int = 0
    equivalent: str = ""  # the docker save of its bases and the buildah bud, as run

    @property
    def unprivileged(self) -> bool:
        return self.uid != 0

    def ran_as(self) -> str:
        """Who built it, the same words whoever runs the notebook (the user differs: you, or the lab user)."""
        return volatile(self.user, "an unprivileged user") if self.unprivileged else "root"

    def _render(self):
        return table(["image", "builder", "manifest digest", "created", "layers", "build time", "ran as"],
                     [(short_name(self.tag), "buildah", volatile(self.digest[:19] + "…"), volatile(self.created),
                       len(self.layers), seconds(self.duration), self.ran_as())], title="buildah build (no daemon)")


class Buildah:
    """A buildah with the session's own storage (vfs: works as root and rootless, anywhere)."""

    def __init__(self, lab: "Lab", rootless: bool = False) -> None:
        self.binary = find_tool("buildah")
        if self.binary is None:
            raise LabSkipped("buildah is not installed.", f"`{as_root('apt-get install buildah')}` (Debian/Ubuntu).")
        self.lab = lab
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.home = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-buildah-{lab.session}-")))
        self.prefix: list[str] = []
        self.ran: list[str] = []  # the command lines of the current build (its equivalent)
        if rootless and os.geteuid() == 0:  # as root, run as the unprivileged lab user of notebook 06
            try:
                entry = pwd.getpwnam(LAB_USER)
            except KeyError:
                raise LabSkipped(f"The user {LAB_USER} does not exist.",
                                 f"`{as_root('scripts/setup-host.sh')}` creates it.") from None
            self.user = LAB_USER
            os.chmod(self.home, 0o755)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", LAB_USER, "--", "env", f"HOME={self.home}",
                           f"XDG_RUNTIME_DIR={self.home}/run", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        self.uid = pwd.getpwnam(self.user).pw_uid
        if self.uid != 0:  # an unprivileged buildah builds in a user namespace of its user's subordinate ids
            missing = [(what, fix) for what, ok, fix in requirements(self.user)
                       if not ok and what.startswith(("newuidmap", "/etc/subuid", "user namespaces"))]
            if missing:
                raise LabSkipped(f"buildah cannot build as {self.user} here: missing "
                                 + ", ".join(w for w, _ in missing) + ".", "; ".join(f for _, f in missing))

    def command(self, *args: str) -> list[str]:
        """The argv of `buildah ARGS` with this session's storage (as the lab user when rootless)."""
        return [*self.prefix, str(self.binary), "--storage-driver", "vfs", "--root", str(self.home / "root"),
                "--runroot", str(self.home / "run"), *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        cmd = self.command(*args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(self.home))
        if check and proc.returncode != 0:
            raise CommandFailed(["buildah", *args], proc.returncode, proc.stdout, proc.stderr,
                                hint="Read buildah's message above (a Dockerfile step failed, or a base image is missing).")
        return proc

    def _own(self, path: Path) -> None:
        if self.prefix:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, -1)

    def base_archives(self, dockerfile: str) -> str:
        """FROM labkit/... read from the Docker engine as a docker-archive file, so buildah needs
        neither the Docker socket nor a registry."""
        def swap(m: re.Match) -> str:
            name = m.group(2) if ":" in m.group(2) else m.group(2) + ":latest"
            target = self.home / (re.sub(r"[^a-z0-9]+", "-", name) + ".tar")
            if not target.exists():
                with open(target, "wb") as fh:
                    save_image(name, fh, self.lab.client)  # ImageMissing (hint: labkit prepare) if absent
                self._own(target)
                self.ran.append(save_command(name, target))
            return f"{m.group(1)}docker-archive:{target}"
        return _FROM.sub(swap, dockerfile)

    def build(self, tag: str, dockerfile: str, files: Mapping[str, str | bytes] | None = None,
              timestamp: int | None = None, build_args: Mapping[str, str] | None = None) -> BuilderRun:
        self.ran = []
        ctx_dir = self.home / f"context-{len(list(self.home.glob('context-*'))) + 1}"  # named alike every run
        ctx_dir.mkdir()
        ctx, df = prepare_context(ctx_dir, self.base_archives(dockerfile), None, files)
        self._own(ctx_dir)
        args = ["bud", "--isolation", "chroot", "--layers", "--no-cache", "-q", "-f", str(df), "-t", tag]
        for k, v in self.lab.labels.items():  # so the copy in the Docker engine (to_docker) is removed at cleanup
            args += ["--label", f"{k}={v}"]
        for k, v in (build_args or {}).items():
            args += ["--build-arg", f"{k}={v}"]
        if timestamp is not None:
            args += ["--timestamp", str(int(timestamp))]
        start = time.monotonic()
        self(*args, str(ctx))
        self.ran.append(buildah_command(self.command(*args, str(ctx)), self.lab.labels))
        duration = time.monotonic() - start
        info = json.loads(self("inspect", "--type", "image", tag).stdout)
        config = info.get("OCIv1") or {}
        manifest = info.get("Manifest")
        manifest = json.loads(manifest) if isinstance(manifest, str) else manifest or {}
        size = sum(ly.get("size", 0) for ly in manifest.get("layers", []))
        return BuilderRun(tag, "sha256:" + info["FromImageID"], info.get("FromImageDigest", ""),
                          config.get("created", "?"), config.get("rootfs", {}).get("diff_ids", []), size,
                          duration, self.user, self.home, self.uid, " && ".join(self.ran))

    def push(self, run: BuilderRun, registry: "Registry", name: str) -> str:
        """Push to the session registry (plain HTTP on 127.0.0.1); returns the reference."""
        ref = registry.ref(name)
        self("push", "--tls-verify=false", run.tag, f"docker://{ref}")
        return ref

    def to_docker(self, run: BuilderRun, tag: str) -> str:
        """Copy the image into the Docker engine (as the session's image, removed at cleanup)."""
        archive = self.home / f"{tag}.tar"
        self("push", run.tag, f"docker-archive:{archive}:{self.lab.name(tag)}")
        with open(archive, "rb") as fh:
            self.lab.client.images.load(fh.read())
        self.lab.track_tag(self.lab.name(tag))
        return self.lab.name(tag)


def buildah_command(argv: list[str], hidden: Mapping[str, str]) -> str:
    """The command line of a buildah run: `buildah` for its path, without the session's labels
    (`hidden`, as build_command leaves them out of docker build), the rest as run."""
    args: list[str] = []
    for arg in argv:
        if args and args[-1] == "--label" and arg.split("=", 1)[0] in hidden:
            args.pop()
            continue
        args.append(arg)
    return command_line([os.path.basename(a) if a.endswith("/buildah") else a for a in args])


def comparison(reports: list[BuildReport | BuilderRun]):
    rows = []
    for r in reports:
        if isinstance(r, BuilderRun):
            rows.append(("buildah" + (" (rootless)" if r.unprivileged else ""), "none", r.ran_as(),
                         seconds(r.duration), len(r.layers), human_bytes(r.size)))
        else:
            rows.append((r.builder, "dockerd (root)", "the daemon's user", seconds(r.duration), r.layers,
                         human_bytes(r.size)))
    return table(["builder", "daemon", "runs as", "build time", "layers", "size"], rows,
                 title="One Dockerfile, three builders")


@dataclass
class SocketNote(Renderable):
    """Whether the user who built without a daemon could have used the Docker engine anyway."""

    user: str
    socket: str
    group: str
    allowed: bool

    def _render(self):
        if not self.allowed:
            return callout("success", "No way to the engine", f"{self.user} may not use {self.socket}: this build "
                           "could not have asked Docker for anything.")
        return callout("warning", "The engine was within reach", f"{self.user} may use {self.socket} (group "
                       f"{self.group}). buildah did not need it (the base image came as a file labkit saved), but "
                       f"whoever may use that socket is root on this machine (notebook 05).",
                       hint=f"On a build machine, build as a user outside the group {self.group}: "
                            "what a Dockerfile runs then cannot reach the engine.")


def socket_note(run: BuilderRun, daemon_url: str) -> SocketNote:
    """May the user who made `run` use the Docker engine's socket (asked as that user)?"""
    access = socket_access(daemon_url)
    if access is None:  # tcp:// or ssh://: no file on this machine says who may use it
        return SocketNote(run.user, daemon_url, "none", False)
    return SocketNote(run.user, access.path, access.group, can_use(run.user, access.path))


def can_use(user: str, path: str) -> bool:
    """Whether `user` may read and write `path` (asked as that user, not guessed from modes)."""
    if pwd.getpwuid(os.getuid()).pw_name == user:
        return os.access(path, os.R_OK | os.W_OK)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["runuser", "-u", user, "--", "test", "-r", path, "-a", "-w", path]).returncode == 0
