"""Looking inside: an image's saved layout (manifest, config, layers, which layer holds a
file), and a container's process, namespaces and place in the engine's process tree."""
from __future__ import annotations

import contextlib
import copy
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

import docker

from . import engine
from .display import Chart, Renderable, Stack, callout, hide_ids, human_bytes, short_name, stable, table, volatile
from .errors import ImageMissing, LabkitError

if TYPE_CHECKING:
    from .lab import Lab


@dataclass
class Layer:
    index: int
    digest: str
    size: int
    created_by: str
    files: list[str] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)  # files whose content holds the searched bytes


@dataclass
class ImageLayout(Renderable):
    """What `docker save` writes: the archive's entries, the manifest, the config, the layers."""

    image: str
    format: str
    entries: list[tuple[str, int]]
    manifest: Any
    config: dict[str, Any]
    layers: list[Layer]

    def find(self, path: str) -> list[Layer]:
        """Layers that add or change `path` (a whiteout deleting it counts too)."""
        path = path.lstrip("/")
        wh = os.path.join(os.path.dirname(path), ".wh." + os.path.basename(path))
        return [ly for ly in self.layers if path in ly.files or wh in ly.whiteouts]

    def config_table(self):
        c = self.config.get("config") or {}
        rows = [("architecture / os", f"{self.config.get('architecture')} / {self.config.get('os')}"),
                ("command (Cmd)", json.dumps(c.get("Cmd"))), ("entrypoint", json.dumps(c.get("Entrypoint"))),
                ("environment", "\n".join(c.get("Env") or [])), ("working dir", c.get("WorkingDir") or "/"),
                ("user", c.get("User") or "root (default)"),
                ("labels", "\n".join(f"{k}={hide_ids(v) if k != 'labkit.session' else volatile(v)}"
                                     for k, v in sorted((c.get("Labels") or {}).items()) if k != "labkit.owner")),
                ("layers (rootfs.diff_ids)", str(len(self.config.get("rootfs", {}).get("diff_ids", [])))),
                ("history entries", str(len(self.config.get("history", []))))]
        return table(["config field", "value"], rows, title=f"Image config of {short_name(self.image)}")

    def layer_table(self):
        return table(["#", "digest", "size", "files", "created by"],
                     [(ly.index, volatile(ly.digest[7:19]), human_bytes(ly.size), len(ly.files),
                       ly.created_by[:70]) for ly in self.layers], title=f"Layers of {short_name(self.image)}")

    def chart(self) -> Chart:
        return Chart(f"Layer sizes of {short_name(self.image)}",
                     [(f"#{ly.index} {ly.created_by.replace('/bin/sh -c ', '')[:32]}", ly.size / 1000)
                      for ly in self.layers], unit="kB", log=True)

    def _render(self):
        # the metadata files list the image's tags: their size changes when someone adds a tag;
        # in stable mode the order follows the names with ids hidden (the tar sorts by id)
        entries = sorted(self.entries, key=lambda e: hide_ids(e[0])) if stable() else self.entries
        return Stack([table(["entry", "size"], [(hide_ids(n), human_bytes(s) if not n.endswith(("json", "repositories"))
                                                 else volatile(human_bytes(s))) for n, s in entries[:40]],
                            title=f"docker save {short_name(self.image)}: {self.format}"),
                      self.layer_table()])


# --- extracting archives safely ---------------------------------------------------------------

_TAR_FILTERS = hasattr(tarfile, "data_filter")  # Python 3.11.4+ (and 3.8.17+, 3.9.17+, 3.10.12+ backports)


class UnsafeArchive(LabkitError):
    default_hint = ("The archive tried to write outside the folder it was extracted into: do not use it. "
                    "Images and archives from someone else are data, never trusted code.")


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _checked(tar: tarfile.TarFile, root: str, rootfs: bool, skipped: list[str]) -> Iterator[tarfile.TarInfo]:
    """Each member once it is proven to stay inside `root`, checked against the files the members
    before it have already written (extractall asks for the next member after writing this one)."""
    is_root = os.geteuid() == 0
    for member in tar:
        name = member.name
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or os.path.isabs(name):
            raise UnsafeArchive(f"The archive member {name!r} has an absolute path.")
        if ".." in parts:
            raise UnsafeArchive(f"The archive member {name!r} climbs out with '..'.")
        dest = os.path.normpath(os.path.join(root, name))
        if not _inside(root, dest):
            raise UnsafeArchive(f"The archive member {name!r} points outside the target folder.")
        # never write through a link: every directory above the member must lead to a place inside
        if not _inside(root, os.path.realpath(os.path.dirname(dest))):
            raise UnsafeArchive(f"The archive member {name!r} would be written through a link that leads "
                                f"outside the target folder (to {os.path.realpath(os.path.dirname(dest))}).")
        if dest != root and os.path.islink(dest):  # open() and chmod() follow an earlier member's link: drop it
            os.unlink(dest)
        if member.issym():
            link = member.linkname
            if os.path.isabs(link) and not rootfs:
                raise UnsafeArchive(f"The archive member {name!r} links to the absolute path {link!r}.")
            # in a root filesystem /x means <root>/x (what chroot and the container see)
            resolved = os.path.normpath(os.path.join(root, link.lstrip("/")) if os.path.isabs(link)
                                        else os.path.join(os.path.dirname(dest), link))
            if not _inside(root, resolved) and not rootfs:
                raise UnsafeArchive(f"The archive member {name!r} links outside the target folder ({link!r}).")
        elif member.islnk():
            source = os.path.normpath(os.path.join(root, member.linkname))
            if os.path.isabs(member.linkname) or ".." in member.linkname.split("/") or \
                    not _inside(root, os.path.realpath(source)):  # os.link follows a link to its target
                raise UnsafeArchive(f"The archive member {name!r} is a hard link to {member.linkname!r}, "
                                    "outside the target folder.")
        elif member.ischr() or member.isblk() or member.isfifo():
            if not rootfs:
                raise UnsafeArchive(f"The archive member {name!r} is a device or a pipe, not data.")
            if not is_root and not member.isfifo():  # only root may make device nodes: leave them out
                skipped.append(name)
                continue
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchive(f"The archive member {name!r} has an unknown type {member.type!r}.")
        if not rootfs:  # data: no owners from the archive, no set-id bits, nobody else may write
            member = copy.copy(member)
            member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
            if not member.issym():
                member.mode = member.mode & 0o755 | (0o700 if member.isdir() else 0o600)
        yield member


def safe_extract(tar: tarfile.TarFile, target: str | os.PathLike, *, rootfs: bool = False) -> list[str]:
    """Extract every member of `tar` into the existing folder `target`, refusing (UnsafeArchive) any
    member that would land outside it: an absolute name, a '..', a hard link to a file outside, a
    write through a link that leads outside, and in data mode (the default) any link pointing
    outside, device nodes and set-id bits. `rootfs=True` is for an image's root filesystem (docker
    export): absolute links mean the root's own paths (as chroot resolves them) and are kept,
    owners, modes and device nodes too (device nodes only as root). Returns the members left out.

    Written by hand because tarfile's extraction filters (`filter="data"`) need Python 3.11.4 or
    later and labkit supports 3.10; they also refuse every absolute link, which a root filesystem
    is full of."""
    root = os.path.realpath(target)
    skipped: list[str] = []
    members = _checked(tar, root, rootfs, skipped)
    if _TAR_FILTERS:  # members are already checked above: no second filter
        tar.extractall(root, members=members, numeric_owner=rootfs, filter="fully_trusted")
    else:
        tar.extractall(root, members=members, numeric_owner=rootfs)
    return skipped


def _history_for_layers(config: dict[str, Any]) -> list[str]:
    return [h.get("created_by") or h.get("comment", "") for h in config.get("history", []) if not h.get("empty_layer")]


def _layer_files(tar: tarfile.TarFile, needle: bytes | None) -> tuple[list[str], list[str], list[str]]:
    files, whiteouts, matches = [], [], []
    for m in tar:
        name = m.name.lstrip("./")
        if not name or m.isdir():
            continue
        (whiteouts if os.path.basename(name).startswith(".wh.") else files).append(name)
        if needle and m.isfile() and m.size <= MAX_SEARCH_BYTES:
            f = tar.extractfile(m)
            if f is not None and needle in f.read():
                matches.append(name)
    return files, whiteouts, matches


MAX_SEARCH_BYTES = 64 * 1000**2  # files larger than this are not searched (said in the report)


def save_image(image: str, out: IO[bytes], client: docker.DockerClient | None = None):
    """`docker save` of a local image, streamed into `out`; returns the image."""
    cli = client or engine.client()
    try:
        img = cli.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageMissing(f"The image {image!r} is not in the local image store.") from None
    for chunk in img.save(named=True):
        out.write(chunk)
    return img


@contextlib.contextmanager
def saved(image: str) -> Iterator[IO[bytes]]:
    """`docker save` of a local image, as a temporary file."""
    with tempfile.TemporaryFile() as fh:
        save_image(image, fh)
        fh.seek(0)
        yield fh


def walk_archive(fh: IO[bytes], visit: Callable[[int, tarfile.TarFile], Any]) -> tuple[str, list, Any, dict, list]:
    """Walk an image archive: OCI layout (index.json, blobs/sha256) as Docker 25+ writes it, or the
    legacy docker-archive (manifest.json, <id>/layer.tar) of older engines. Calls visit(index, layer
    tar) for each layer, bottom first; returns (format, entries, manifest, config, layers) where
    each layer is (digest, size, created_by, what visit returned)."""
    try:
        outer = tarfile.open(fileobj=fh)
    except tarfile.TarError:
        raise LabkitError("This file is not an image archive (a tar written by `docker save`).",
                          "Save the image again: docker save IMAGE -o image.tar") from None
    with outer:
        entries = [(m.name, m.size) for m in outer.getmembers() if m.isfile()]
        names = {n for n, _ in entries}

        def read(name: str) -> bytes:
            f = outer.extractfile(name)
            if f is None:
                raise KeyError(name)
            return f.read()

        try:
            if "index.json" in names:
                fmt = "OCI image layout"
                manifest = json.loads(read("blobs/sha256/" + json.loads(read("index.json"))["manifests"][0]["digest"][7:]))
                if "manifests" in manifest:  # an index inside: take the first image manifest
                    manifest = json.loads(read("blobs/sha256/" + manifest["manifests"][0]["digest"][7:]))
                config = json.loads(read("blobs/sha256/" + manifest["config"]["digest"][7:]))
                paths = ["blobs/sha256/" + ly["digest"][7:] for ly in manifest["layers"]]
                digests = [ly["digest"] for ly in manifest["layers"]]
            else:
                fmt = "docker-archive (legacy layout; Docker 25+ writes an OCI layout)"
                manifest = json.loads(read("manifest.json"))
                config = json.loads(read(manifest[0]["Config"]))
                paths, digests = manifest[0]["Layers"], config["rootfs"]["diff_ids"]
        except (KeyError, ValueError, IndexError):
            raise LabkitError("This archive has no image manifest and config (is it a `docker save` tar?).",
                              "Save the image again: docker save IMAGE -o image.tar") from None
        history = _history_for_layers(config)
        layers = []
        for i, (path, digest) in enumerate(zip(paths, digests)):
            member = outer.getmember(path)
            f = outer.extractfile(member)
            assert f is not None
            with tarfile.open(fileobj=f, mode="r:*") as inner:
                result = visit(i, inner)
            layers.append((digest, member.size, history[i] if i < len(history) else "", result))
    return fmt, entries, manifest, config, layers


def save_layout(image: str, needle: bytes | None = None) -> ImageLayout:
    """`docker save` the image and walk the archive (see walk_archive). With `needle`, every file
    of every layer is searched for those bytes (Layer.matches)."""
    with saved(image) as fh:
        fmt, entries, manifest, config, walked = walk_archive(fh, lambda i, tar: _layer_files(tar, needle))
    layers = [Layer(i, digest, size, created_by, *files) for i, (digest, size, created_by, files) in enumerate(walked)]
    return ImageLayout(image, fmt, entries, manifest, config, layers)


def read_files(archive: IO[bytes], wanted: Callable[[str], bool]) -> tuple[dict[str, bytes], dict]:
    """The files `wanted(path)` selects as they are in the image's final filesystem (later layers
    win, whiteouts delete), plus the image config."""
    files: dict[str, bytes] = {}

    def visit(_: int, tar: tarfile.TarFile) -> None:
        for m in tar:
            name = m.name.lstrip("./")
            base, parent = os.path.basename(name), os.path.dirname(name)
            if base == ".wh..wh..opq":  # an opaque directory hides everything below it in lower layers
                for path in [p for p in files if p.startswith(parent + "/")]:
                    del files[path]
            elif base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for path in [p for p in files if p == gone or p.startswith(gone + "/")]:
                    del files[path]
            elif m.isfile() and wanted(name):
                f = tar.extractfile(m)
                if f is not None:
                    files[name] = f.read()

    _, _, _, config, _ = walk_archive(archive, visit)
    return files, config


@dataclass
class SecretSearch(Renderable):
    """Where a secret shows up in an image: files in any layer (even ones a later layer deleted),
    the build history (build args end up there) and the config (Env, Labels, Cmd)."""

    image: str
    hits: list[tuple[str, str]]  # (where, what)
    layers_searched: int

    @property
    def leaked(self) -> bool:
        return bool(self.hits)

    def _render(self):
        name = short_name(self.image)
        if not self.hits:
            return callout("success", "No leak", f"The secret is in none of the {self.layers_searched} layers of "
                           f"{name}, nor in its history or config.")
        return Stack([callout("error", "Leaked", f"The secret is in {name} in {len(self.hits)} place(s): anyone "
                              "who can pull the image can read it."),
                      table(["where", "what"], self.hits, title=f"The secret in {name}")])


def search_layers(image: str, secret: str | bytes) -> SecretSearch:
    """Search every layer, the history and the config of `image` for `secret`."""
    needle = secret.encode() if isinstance(secret, str) else secret
    layout = save_layout(image, needle)
    hits = [(f"layer #{ly.index}", f"file /{path} (layer made by: {ly.created_by.replace('/bin/sh -c ', '')[:50]})")
            for ly in layout.layers for path in ly.matches]
    text = needle.decode(errors="replace")
    for i, h in enumerate(layout.config.get("history", [])):
        if text in (h.get("created_by") or ""):
            hits.append((f"history #{i}", "the build command line (docker history shows it)"))
    cfg = layout.config.get("config") or {}
    for key in ("Env", "Cmd", "Entrypoint", "Labels"):
        if text in json.dumps(cfg.get(key)):
            hits.append(("config", f"{key} (docker inspect shows it)"))
    return SecretSearch(image, hits, len(layout.layers))


# --- processes and namespaces ------------------------------------------------------------

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def namespaces(pid: int, lab: "Lab | None" = None) -> dict[str, str]:
    """The namespaces of a host process, e.g. {"net": "net:[4026531992]"} ("?" when it is gone)."""
    return _namespaces([pid], lab)[pid]


def _namespaces(pids: list[int], lab: "Lab | None") -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    denied: list[int] = []
    for pid in pids:
        out[pid] = {}
        for ns in NAMESPACES:
            try:
                out[pid][ns] = os.readlink(f"/proc/{pid}/ns/{ns}")
            except PermissionError:  # another user's process (the engine's containers, when you are not root)
                if os.geteuid() != 0:
                    denied.append(pid)
                    break
                out[pid][ns] = "?"  # even root may not look (e.g. a sandbox's PID 1)
            except OSError:
                out[pid][ns] = "?"
    if denied:
        out.update(_namespaces_via_engine(denied, lab))
    return out


def _namespaces_via_engine(pids: list[int], lab: "Lab | None") -> dict[int, dict[str, str]]:
    """/proc/PID/ns of other users' processes, read by a helper container in the host's PID
    namespace: the engine is root on this machine (notebook 05), so a member of its group may ask."""
    if lab is None:
        raise LabkitError(f"Process {pids[0]} belongs to another user (the engine's containers run as root): its "
                          "namespaces are not readable by you.",
                          "Pass lab=lab: labkit then asks the engine, which may read them (it is root here).")
    script = " ; ".join(f"for n in {' '.join(NAMESPACES)}; do echo {pid} $n $(readlink /proc/{pid}/ns/$n || echo '?'); done"
                        for pid in pids)
    result = lab.run("labkit/busybox", ["sh", "-c", script], pid_mode="host", cap_add=["SYS_PTRACE"])
    out: dict[int, dict[str, str]] = {pid: {ns: "?" for ns in NAMESPACES} for pid in pids}
    for line in result.stdout.splitlines():
        pid, ns, link = (line.split(" ", 2) + ["?", "?"])[:3]
        if pid.isdigit() and int(pid) in out and ns in NAMESPACES:
            out[int(pid)][ns] = link.strip() or "?"
    return out


@dataclass
class NamespaceComparison(Renderable):
    a: str
    b: str
    rows: list[tuple[str, str, str, str]]

    def _render(self):
        return table(["namespace", self.a, self.b, "shared"], self.rows, status_column="shared",
                     title=f"Namespaces: {self.a} vs {self.b}")


def compare_namespaces(pid_a: int, pid_b: int, a: str = "A", b: str = "B", lab: "Lab | None" = None) -> NamespaceComparison:
    """Which namespaces two host processes share. A process of another user (a container's, when you
    are not root) is read through the engine: pass `lab`."""
    found = _namespaces([pid_a, pid_b], lab)
    na, nb = found[pid_a], found[pid_b]
    rows = [(ns, volatile(na[ns]), volatile(nb[ns]), "?" if "?" in (na[ns], nb[ns]) else "yes" if na[ns] == nb[ns] else "no")
            for ns in NAMESPACES]
    return NamespaceComparison(a, b, rows)


def _proc_stat(pid: int) -> tuple[str, int]:
    text = Path(f"/proc/{pid}/stat").read_text()
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, int(text.rsplit(")", 1)[1].split()[1])


@dataclass
class ProcessChain(Renderable):
    rows: list[tuple[str, str, str]]

    def _render(self):
        return table(["pid", "process", "role"], self.rows, title="Who runs the container (child at the top)")


ROLES = {
    "dockerd": "Docker engine: API, images, networks, volumes",
    "containerd": "containerd: container lifecycle, image content, snapshots",
    "containerd-shim": "shim: parent of the container, keeps it alive without dockerd",
    "containerd-shim-runc-v2": "shim: parent of the container, keeps it alive without dockerd",
    "runc": "runc: creates namespaces and cgroups, then exits",
}


def process_chain(pid: int, depth: int = 4) -> ProcessChain:
    """The container's main process and its ancestors, each with its role."""
    rows = []
    current = pid
    for i in range(depth):
        try:
            comm, ppid = _proc_stat(current)
        except OSError:
            break
        role = "the container's main process (PID 1 inside)" if i == 0 else ROLES.get(comm, "")
        rows.append((volatile(current), comm, role))
        if ppid <= 1:
            break
        current = ppid
    return ProcessChain(rows)


# --- cgroups ---------------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 2**62  # v1 writes "no limit" as a huge page-aligned number


def _cgroup_paths(pid: int) -> dict[str, Path]:
    """controller -> the host directory of this process's cgroup ("" is the v2 unified tree)."""
    out: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            base = CGROUP_ROOT / c if c else (CGROUP_ROOT / "unified" if (CGROUP_ROOT / "unified").is_dir() else CGROUP_ROOT)
            out[c] = base / path.lstrip("/")
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _limit(value: str | None) -> int | None:
    if value is None or value == "max":
        return None
    n = int(value.split()[0])
    return None if n >= UNLIMITED else n


@dataclass
class CgroupUsage(Renderable):
    """A container's cgroup limits and usage, read on the host (cgroup v1 or v2)."""

    name: str
    version: int
    memory_limit: int | None
    memory_usage: int | None
    oom_kills: int | None
    pids_limit: int | None
    pids_current: int | None
    cpu_quota: float | None  # CPUs, e.g. 0.5

    def _render(self):
        def lim(v, fmt=str):
            return "no limit" if v is None else fmt(v)
        def mib(n):  # docker's "32m" means MiB: show limits in the same unit
            return f"{n / 2**20:.1f} MiB"
        rows = [("memory limit", lim(self.memory_limit, mib)),
                ("memory in use", volatile("?" if self.memory_usage is None else mib(self.memory_usage))),
                ("OOM kills", "?" if self.oom_kills is None else str(self.oom_kills)),
                ("pids limit", lim(self.pids_limit)),
                ("pids now", "?" if self.pids_current is None else str(self.pids_current)),
                ("CPU limit", lim(self.cpu_quota, lambda c: f"{c:g} CPUs"))]
        return table(["cgroup", "value"], rows, title=f"cgroup v{self.version} of {short_name(self.name)} (read on the host)")


def cgroup(container) -> CgroupUsage:
    """Limits and usage of a running container, from the host's /sys/fs/cgroup."""
    attrs = container.attrs()
    pid = attrs["State"].get("Pid") or 0
    if not pid or not Path(f"/proc/{pid}").exists():
        raise LabkitError(f"{container.name} is not running on this machine (no process {pid} here).",
                          "Start it first; cgroups of a remote or VM-based engine are not visible from here.")
    paths = _cgroup_paths(pid)
    if "memory" in paths:  # v1: one tree per controller
        mem, pids, cpu = paths["memory"], paths.get("pids"), paths.get("cpu")
        oom = _read(mem / "memory.oom_control")
        quota, period = (_read(cpu / "cpu.cfs_quota_us"), _read(cpu / "cpu.cfs_period_us")) if cpu else (None, None)
        return CgroupUsage(container.name, 1, _limit(_read(mem / "memory.limit_in_bytes")),
                           _limit(_read(mem / "memory.usage_in_bytes")),
                           int(oom.split("oom_kill ")[1].split()[0]) if oom and "oom_kill " in oom else None,
                           _limit(_read(pids / "pids.max")) if pids else None,
                           _limit(_read(pids / "pids.current")) if pids else None,
                           int(quota) / int(period) if quota and period and int(quota) > 0 else None)
    unified = paths[""]
    events = _read(unified / "memory.events") or ""
    cpu_max = (_read(unified / "cpu.max") or "max").split()
    return CgroupUsage(container.name, 2, _limit(_read(unified / "memory.max")), _limit(_read(unified / "memory.current")),
                       int(events.split("oom_kill ")[1].split()[0]) if "oom_kill " in events else None,
                       _limit(_read(unified / "pids.max")), _limit(_read(unified / "pids.current")),
                       int(cpu_max[0]) / int(cpu_max[1]) if cpu_max[0] != "max" else None)


@dataclass
class HostProcesses(Renderable):
    name: str
    rows: list[tuple[Any, ...]]  # (host pid, pid inside, user on the host, command)

    def _render(self):
        return table(["host pid", "pid inside", "host user", "command"],
                     [(volatile(h), i, u, c) for h, i, u, c in self.rows],
                     title=f"Processes of {short_name(self.name)}, seen from the host")


def container_processes(container) -> HostProcesses:
    """Every process in the container's cgroup: its pid on the host and inside, and its host user."""
    import pwd
    pid = container.attrs()["State"].get("Pid") or 0
    if not pid or not Path(f"/proc/{pid}").exists():
        raise LabkitError(f"{container.name} has no process on this machine.", "Start the container first.")
    paths = _cgroup_paths(pid)
    group = paths.get("pids") or paths.get("memory") or paths[""]
    if container.id in str(group):  # the container has a cgroup of its own: it lists every process, exec'd ones too
        pids = sorted(int(p) for p in (_read(group / "cgroup.procs") or str(pid)).split())
    else:  # e.g. rootless on cgroup v1: no cgroup per container; its main process and descendants
        pids = _descendants(pid)
    rows = []
    for host_pid in pids:
        status = _read(Path(f"/proc/{host_pid}/status")) or ""
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        uid = int(fields.get("Uid", "0").split()[0])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        cmd = (_read(Path(f"/proc/{host_pid}/cmdline")) or "").replace("\0", " ").strip()
        rows.append((host_pid, int(fields.get("NSpid", str(host_pid)).split()[-1]), f"{user} (uid {uid})", cmd[:60]))
    return HostProcesses(container.name, rows)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                children.setdefault(_proc_stat(int(p.name))[1], []).append(int(p.name))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return sorted(out)
