"""ORAS: any file as an OCI artifact in a registry (the `oras` library pushes and pulls; labkit
checks media types, reads the manifest back and asks for referrers)."""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.errors import LabkitError
from .core.render import Renderable, command_line, human_bytes, table, volatile
from .registry import RegistryClient, RegistryUnavailable, split_ref


_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*$")  # RFC 6838 type/subtype
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


@dataclass
class Artifact(Renderable):
    ref: str
    digest: str
    artifact_type: str
    layers: list[tuple[str, str, int, str]]  # (title, media type, size, digest)
    seconds: float
    equivalent: str = ""  # the oras CLI command line of the same push

    def _render(self):
        return table(["file", "media type", "size", "blob digest"],
                     [(t, m, human_bytes(n), volatile(d[:19] + "…")) for t, m, n, d in self.layers],
                     title=f"{self.ref.split('/', 1)[1]}: artifact of type {self.artifact_type} "
                           f"(manifest {volatile(self.digest[:19] + '…')})")


def _check_media_type(media_type: str) -> None:
    if not _MEDIA_TYPE.match(media_type or ""):
        raise LabkitError(f"{media_type!r} is not a media type (type/subtype, as in application/json).",
                          "Use a registered type or your own: application/vnd.<org>.<what>.v1+json")


def push_artifact(registry: RegistryClient, name: str, files: dict[str, str], artifact_type: str,
                  annotations: dict[str, str] | None = None, workdir: str | os.PathLike | None = None,
                  subject: str | None = None) -> Artifact:
    """Push files (path -> media type) as one OCI artifact with the `oras` library. Paths must lie
    inside `workdir` (default: the current directory), so a notebook cannot publish /etc/shadow."""
    import oras.client
    _check_media_type(artifact_type)
    root = Path(workdir or os.getcwd()).resolve()
    entries = []
    for path, media_type in files.items():
        _check_media_type(media_type)
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise LabkitError(f"{path} is outside the working directory.",
                              "Copy the file into the working directory first; labkit pushes nothing from elsewhere.")
        if not resolved.is_file():
            raise LabkitError(f"{path} does not exist.", "Write the file first.")
        entries.append(f"{resolved}:{media_type}")
    if not registry.answers():  # the library retries for a long time against a dead registry
        raise RegistryUnavailable(f"The registry at {registry.host} does not answer; nothing was pushed.")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text("{}")
        client = oras.client.OrasClient(hostname=registry.host, insecure=True)
        start = time.monotonic()
        client.push(target=f"{registry.host}/{name}", files=entries, disable_path_validation=True,
                    manifest_config=f"{config}:{artifact_type}", manifest_annotations=annotations or None,
                    subject=_subject(registry, name, subject) if subject else None, quiet=True)
        took = time.monotonic() - start
    manifest, digest = registry.manifest(name)
    layers = [((ly.get("annotations") or {}).get("org.opencontainers.image.title", "?"), ly["mediaType"], ly["size"],
               ly["digest"]) for ly in manifest.get("layers", [])]
    return Artifact(f"{registry.host}/{name}", digest, manifest.get("config", {}).get("mediaType", ""), layers, took,
                    push_command(f"{registry.host}/{name}", files, artifact_type, annotations, subject))


def _subject(registry: RegistryClient, name: str, subject: str):
    """The library wants a descriptor (media type, digest, size), not a string: read it from the
    registry. `subject` is a digest in `name`'s repository, or "repo@sha256:..." / "repo:tag"."""
    import oras.oci
    ref = subject.removeprefix(f"{registry.host}/")
    if ref.startswith("sha256:"):
        ref = f"{name.split(':')[0].split('@')[0]}@{ref}"
    repo, _, _ = ref.partition("@") if "@" in ref else ref.rpartition(":")
    manifest, digest = registry.manifest(ref)
    raw = registry.get(f"/v2/{repo}/manifests/{digest}", manifest.get("mediaType", "*/*"))[0]
    return oras.oci.Subject(mediaType=manifest.get("mediaType", ""), digest=digest, size=len(raw))


def push_command(ref: str, files: dict[str, str], artifact_type: str, annotations: dict[str, str] | None = None,
                 subject: str | None = None) -> str:
    """The `oras push` command line of push_artifact (`oras attach` when the artifact refers to a subject)."""
    args = ["oras", "attach" if subject else "push", "--plain-http", "--artifact-type", artifact_type]
    args += [a for k, v in (annotations or {}).items() for a in ("--annotation", f"{k}={v}")]
    head, _, last = ref.rpartition("/")
    repo = f"{head}/{last.split(':')[0].split('@')[0]}"
    target = ref if not subject else subject if "/" in subject else f"{repo}@{subject}"  # attach names its subject
    return command_line(args + [target] + [f"{path}:{media}" for path, media in files.items()])


def pull_artifact(registry: RegistryClient, ref: str, outdir: str | os.PathLike) -> list[Path]:
    """Pull an artifact's files (by tag or by digest) into `outdir`."""
    import oras.client
    if not registry.answers():
        raise RegistryUnavailable(f"The registry at {registry.host} does not answer; nothing was pulled.")
    Path(outdir).mkdir(parents=True, exist_ok=True)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    return [Path(p) for p in client.pull(target=f"{registry.host}/{ref}", outdir=str(outdir))]


def referrers(registry: RegistryClient, name: str) -> tuple[bool, list[dict[str, Any]]]:
    """(supported, descriptors): the OCI 1.1 referrers API for the manifest `name` points at."""
    repo, _ = split_ref(name)
    _, digest = registry.manifest(name)
    try:
        body, _ = registry.get(f"/v2/{repo}/referrers/{digest}", "application/vnd.oci.image.index.v1+json")
    except LabkitError:
        return False, []
    return True, json.loads(body).get("manifests", [])
