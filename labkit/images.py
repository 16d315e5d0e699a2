"""The lab image catalog: each image has an online recipe (pull a pinned upstream image) and an
offline one (bootstrap from the host's OS packages). `prepare()` builds what is missing."""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import docker

from .core import engine
from .core.render import Renderable, human_bytes, seconds, stable, table
from .core.errors import ImageMissing, InsufficientDisk, RecipeFailed, UnknownImage, translated
from .core.locks import host_lock

RECIPE_LABEL = "labkit.recipe"
CATALOG_LABEL = "labkit.catalog"
OFFLINE_ENV = "LABKIT_OFFLINE"


@dataclass(frozen=True)
class ImageSpec:
    """One catalog entry. `build_offline(spec, progress)` must `docker import` the image under `name`."""

    name: str
    description: str
    upstream: str  # pinned image pulled in online mode
    build_offline: Callable[["ImageSpec", Callable[[str], None]], None]
    offline_recipe: str  # what the offline recipe does, hashed into the recipe label
    disk_bytes: int  # free disk the offline recipe needs (temporary files + image)
    host_packages: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("sh",)
    optional: bool = False  # `prepare` of the whole catalog reports a failure and goes on

    def recipe(self, mode: str) -> str:
        if mode == "online":
            text = f"online:{self.upstream}"
        else:
            text = f"offline:{self.offline_recipe}:{';'.join(_package_version(p) for p in self.host_packages)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


CATALOG: dict[str, ImageSpec] = {}


def register(spec: ImageSpec) -> ImageSpec:
    """Later labs add their images here (at import time of their module)."""
    CATALOG[spec.name] = spec
    return spec


def _package_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                             capture_output=True, text=True, timeout=10)
        return f"{package}={out.stdout.strip()}" if out.returncode == 0 else f"{package}=?"
    except (OSError, subprocess.TimeoutExpired):
        return f"{package}=?"


def _import_changes(spec: ImageSpec, recipe: str) -> list[str]:
    cmd = ", ".join(f'"{c}"' for c in spec.cmd)
    return [f"LABEL {RECIPE_LABEL}={recipe} {CATALOG_LABEL}={spec.name}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"CMD [{cmd}]"]


def _import(spec: ImageSpec, data, stream: bool = False) -> None:
    repo, _, tag = spec.name.rpartition(":")
    engine.client().api.import_image(src=data, repository=repo, tag=tag,
                                     changes=_import_changes(spec, spec.recipe("offline")), stream_src=stream)


def _busybox_offline(spec: ImageSpec, progress: Callable[[str], None]) -> None:
    """A busybox rootfs from Debian's busybox-static: the binary plus one link per applet."""
    binary = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(binary):
        raise RecipeFailed("busybox-static is not installed, so the offline busybox image cannot be made.",
                           "apt-get install busybox-static (or run `make setup`).")
    applets = subprocess.run([binary, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    with open(binary, "rb") as fh:
        _import(spec, _busybox_rootfs(fh.read(), applets, progress))


def _busybox_rootfs(busybox: bytes, applets: list[str], progress: Callable[[str], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add_dir(path: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(path: str, content: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))

        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "var", "home"):
            add_dir(d, 0o700 if d == "root" else 0o755)
        add_dir("tmp", 0o1777)
        add_dir("var/tmp", 0o1777)
        add_file("bin/busybox", busybox, 0o755)
        for applet in applets:
            if applet == "bin/busybox":
                continue
            info = tarfile.TarInfo(applet)
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        progress(f"{len(applets)} applets")
    return buf.getvalue()


def _busybox_foreign(spec: ImageSpec, progress: Callable[[str], None]) -> None:
    """busybox for another architecture: Debian's busybox-static .deb for it, fetched with apt's
    own configuration (private package lists: the host's apt setup is not changed), unpacked into
    the same rootfs, and loaded with the architecture set in the image config (`docker import`
    of Docker 20.10 cannot record it)."""
    arch = spec.name.rpartition(":")[2]
    work = Path(tempfile.mkdtemp(prefix="labkit-foreign-"))
    try:
        opts = [f"-oAPT::Architecture={arch}", f"-oAPT::Architectures::={arch}", f"-oDir::State::Lists={work}/lists",
                "-oDir::State::status=/dev/null", f"-oDir::Cache={work}/cache", "-oDebug::NoLocking=1", "-qq"]
        for sub in ("lists/partial", "cache/archives/partial"):
            (work / sub).mkdir(parents=True)
        progress("package lists")
        for args in (["update"], ["download", f"busybox-static:{arch}"]):
            proc = subprocess.run(["apt-get", *opts, *args], capture_output=True, text=True, cwd=work, timeout=300)
            if proc.returncode != 0 or (args[0] == "download" and not list(work.glob("*.deb"))):
                raise RecipeFailed(f"apt-get {args[0]} for {arch} failed.", "The Debian package mirror must answer "
                                   "(or load the image from a bundle: labkit bundle import).", details=proc.stderr[-500:])
        progress("unpacking")
        deb = next(work.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        busybox = (work / "root" / "bin" / "busybox").read_bytes()
        native = shutil.which("busybox") or "/bin/busybox"  # the applet list is the same package's
        applets = subprocess.run([native, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
        layer = _busybox_rootfs(busybox, applets, progress)
        load_single_layer(spec.name, layer, arch, list(spec.cmd),
                          {RECIPE_LABEL: spec.recipe("offline"), CATALOG_LABEL: spec.name})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_single_layer(name: str, layer: bytes, arch: str, cmd: list[str], labels: dict[str, str]) -> None:
    """`docker load` a one-layer image written here: a docker-archive whose config says `arch`."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {"Cmd": cmd, "Labels": labels,
                                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "history": [{"created_by": f"labkit: busybox-static for {arch}"}]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in ((config_name, config), ("layer/layer.tar", layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine.client().images.load(buf.getvalue())


def _debian_offline(spec: ImageSpec, progress: Callable[[str], None], include: Sequence[str] = ()) -> None:
    """A Debian rootfs made by debootstrap (its default mirror, i.e. the host's configuration)."""
    if not shutil.which("debootstrap"):
        raise RecipeFailed("debootstrap is not installed, so the offline Debian image cannot be made.",
                           "apt-get install debootstrap (or run `make setup`).")
    suite = spec.name.rpartition(":")[2]
    workdir = tempfile.mkdtemp(prefix="labkit-debootstrap-")
    try:
        rootfs = os.path.join(workdir, "rootfs")
        extra = [f"--include={','.join(include)}"] if include else []
        proc = subprocess.Popen(["debootstrap", "--variant=minbase", *extra, suite, rootfs],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("I: "):
                progress(line[3:].strip()[:40])
        if proc.wait() != 0:
            raise RecipeFailed(f"debootstrap {suite} failed with code {proc.returncode}.",
                               "Check that the host's Debian package mirror is reachable (apt-get update).",
                               details="\n".join(lines[-10:]))
        # Trim what a container never needs, as the official slim images do.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(os.path.join(rootfs, sub), ignore_errors=True)
            os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
        progress("importing")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            _import(spec, tar.stdout, stream=True)
        finally:
            tar.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


register(ImageSpec("labkit/busybox:latest", "BusyBox: a shell and core tools in 2 MB", "busybox:1.36.1",
                   _busybox_offline, "busybox-static rootfs v1", 50 * 1000**2, ("busybox-static",)))
register(ImageSpec("labkit/busybox:arm64", "BusyBox for arm64 (runs here through QEMU, notebook 08)", "",
                   _busybox_foreign, "busybox-static arm64 deb v1", 60 * 1000**2, ("busybox-static",), optional=True))
register(ImageSpec("labkit/debian:bookworm", "Debian 12 minbase with apt and dpkg", "debian:12.8-slim",
                   _debian_offline, "debootstrap minbase v1", 800 * 1000**2, ("debootstrap",), ("bash",)))
# Debian's own Python and the libraries tests, Ansible and CNAB runners need inside a container
# (notebooks 12, 14, 16): no PyPI inside the image, so it builds offline like the Debian one.
PYTHON_PACKAGES = ("python3", "python3-pytest", "python3-docker", "python3-requests", "python3-dotenv",
                   "python3-typing-extensions", "python3-urllib3", "python3-wrapt")
register(ImageSpec("labkit/python:bookworm", "Debian 12 with Python 3, pytest and the Docker SDK", "",
                   functools.partial(_debian_offline, include=PYTHON_PACKAGES),
                   "debootstrap minbase python v1 " + ",".join(PYTHON_PACKAGES), 1000 * 1000**2,
                   ("debootstrap",), ("python3",)))


def spec(name: str) -> ImageSpec:
    full = name if ":" in name.rpartition("/")[2] else f"{name}:latest"
    for candidate in (name, full):
        if candidate in CATALOG:
            return CATALOG[candidate]
    raise UnknownImage(f"{name!r} is not in the lab image catalog (known: {', '.join(sorted(CATALOG))}).")


def present(name: str, client: docker.DockerClient | None = None) -> docker.models.images.Image | None:
    """The image if the engine has it, else None."""
    try:
        return (client or engine.client()).images.get(name)
    except docker.errors.ImageNotFound:
        return None


def ensure(name: str) -> docker.models.images.Image:
    """The image, or ImageMissing with the command that makes it."""
    image = present(name)
    if image is None:
        known = name in CATALOG or any(s.name == name for s in CATALOG.values())
        raise ImageMissing(f"The image {name!r} is not in the local image store.",
                           "Run `labkit prepare` to build the lab images." if known else
                           f"Build or load {name!r} first (`docker images` shows what is there).")
    return image


def registry_answers(upstream: str, timeout: float = 10) -> bool:
    """Ask the daemon whether its configured registry serves `upstream` (no download)."""
    if os.environ.get(OFFLINE_ENV):
        return False
    cli = docker.DockerClient(base_url=engine.find_daemon()[0], timeout=timeout)
    try:
        cli.api.inspect_distribution(upstream)
        return True
    except Exception:  # any error (DNS, TLS, timeout, 4xx) means: not usable now
        return False
    finally:
        cli.close()


def check_disk(needed: int, paths: Iterable[str]) -> None:
    for path in paths:
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < needed:
            raise InsufficientDisk(f"Preparing needs {human_bytes(needed)} free under {path}, "
                                   f"but only {human_bytes(free)} is free.")


@dataclass
class PrepareResult(Renderable):
    rows: list[tuple[str, str, str, float]] = field(default_factory=list)  # name, mode, action, seconds

    def _render(self):
        return table(["image", "recipe", "action", "time"],
                     [(n, m, a, seconds(s)) for n, m, a, s in self.rows], title="labkit prepare",
                     status_column="action")


def _progress_bar(total: int):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="image", disable=stable() or None, leave=True)


def prepare(names: Iterable[str] | None = None, mode: str = "auto") -> PrepareResult:
    """Make every named catalog image (all by default). Skips images built from the same recipe."""
    specs = [spec(n) for n in names] if names else list(CATALOG.values())
    cli = engine.client()
    result = PrepareResult()
    todo: list[tuple[ImageSpec, str]] = []
    online: bool | None = None  # asked once per run: a dead network costs one timeout, not one per image
    for s in specs:
        image = present(s.name)
        if image is not None and (image.labels or {}).get(RECIPE_LABEL) in (s.recipe("online"), s.recipe("offline")):
            result.rows.append((s.name, "-", "present", 0.0))
            continue
        chosen = mode
        if not s.upstream:  # nothing to pull: always built here
            chosen = "offline"
        elif mode == "auto":
            if online is None:
                online = registry_answers(s.upstream)
            chosen = "online" if online else "offline"
        todo.append((s, chosen))
    needed = sum(s.disk_bytes for s, m in todo if m == "offline")
    if needed:
        check_disk(needed, [engine.docker_root(cli), tempfile.gettempdir()])
    bar = _progress_bar(len(todo)) if todo else None
    try:
        for s, chosen in todo:
            start = time.monotonic()
            if bar is not None:
                bar.set_description(s.name)

            def progress(msg: str, _name: str = s.name) -> None:
                if bar is not None:
                    bar.set_postfix_str(msg, refresh=True)

            try:
                # another session may be making the same image right now: wait for it, then look again
                with host_lock(f"prepare {engine.find_daemon()[0]} {s.name}"):
                    image = present(s.name)
                    if image is not None and (image.labels or {}).get(RECIPE_LABEL) in (s.recipe("online"),
                                                                                         s.recipe("offline")):
                        result.rows.append((s.name, "-", "made by another session meanwhile", time.monotonic() - start))
                        continue
                    if chosen == "online":
                        _pull(s)
                    else:
                        s.build_offline(s, progress)
            except RecipeFailed as exc:
                if not (s.optional and not names):
                    raise
                result.rows.append((s.name, chosen, f"failed: {exc.message[:40]}", time.monotonic() - start))
            else:
                result.rows.append((s.name, chosen, "built", time.monotonic() - start))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return result


def _pull(s: ImageSpec) -> None:
    """Pull the pinned upstream image and commit it with the catalog labels under our name."""
    cli = engine.client()
    with translated(f"Pulling {s.upstream} failed", "Use `labkit prepare --offline` to build from OS packages instead.",
                    error=RecipeFailed):
        cli.images.pull(s.upstream)
    container = cli.containers.create(s.upstream, command=list(s.cmd))
    try:
        repo, _, tag = s.name.rpartition(":")
        container.commit(repository=repo, tag=tag,
                         changes=[f"LABEL {RECIPE_LABEL}={s.recipe('online')} {CATALOG_LABEL}={s.name}"])
    finally:
        container.remove(force=True)


@dataclass
class ImageList(Renderable):
    rows: list[tuple[str, str, str, str]]

    def _render(self):
        return table(["image", "description", "status", "size"], self.rows, title="Lab image catalog",
                     status_column="status")


def catalog() -> ImageList:
    rows = []
    for s in CATALOG.values():
        image = present(s.name)
        if image is None:
            status, size = "missing", ""
        else:
            label = (image.labels or {}).get(RECIPE_LABEL)
            status = "present" if label in (s.recipe("online"), s.recipe("offline")) else "stale"
            size = human_bytes(image.attrs.get("Size"))
        rows.append((s.name, s.description, status, size))
    return ImageList(rows)


