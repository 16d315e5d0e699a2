"""Image archives: what `docker save` writes (config, manifest, layers), walked layer by layer
(layer sizes, which layer added a file, whiteouts), searched for a secret, and extracted without
letting a member escape the target directory on any Python labkit supports."""
from __future__ import annotations

import contextlib
import copy
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator

import docker

from .core import engine
from .core.errors import LabkitError, translated
from .core.render import Chart, Renderable, Stack, callout, command_line, hide_ids, human_bytes, masked, short_name, stable, table, volatile


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
        entries = sorted(self.entries, key=lambda e: masked(hide_ids(e[0]))) if stable() else self.entries
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


def save_command(image: str, path: str | os.PathLike | None = None) -> str:
    """The `docker save` command line of save_image (`-o FILE` when the archive has a path)."""
    return command_line(["docker", "save", *(["-o", str(path)] if path is not None else []), image])


def save_image(image: str, out: IO[bytes], client: docker.DockerClient | None = None):
    """`docker save` of a local image, streamed into `out`; returns the image (the SDK's Image, with
    an `equivalent` attribute: `docker save -o FILE IMAGE`)."""
    cli = client or engine.client()
    with translated(f"Cannot save {image!r}", image=image):
        img = cli.images.get(image)
    for chunk in img.save(named=True):
        out.write(chunk)
    name = getattr(out, "name", None)  # a file opened by path; TemporaryFile's is a number
    img.equivalent = save_command(image, name if isinstance(name, (str, os.PathLike)) else None)
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

