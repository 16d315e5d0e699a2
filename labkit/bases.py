"""A session's own copies of small base images. BuildKit's cache keys come from contents (a base's
layer digests, instructions, file checksums), never from who built what: on a shared or warm engine,
a step another session (or yesterday's run) built is a cache hit for you. A session's builds start
from its own copy of each small base: the same files, one layer as before, but a layer digest of its
own (the tar carries the session in a pax header), so its cache is its own and a lab prints the
same on a new engine and a warm one."""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
from typing import Mapping

import docker
from docker.auth import INDEX_NAME  # how BuildKit qualifies a short name in its output

from .core.session import Session

_NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
SALT_MAX_BYTES = 20_000_000  # copying a base costs about 0.1 s per MB: bigger bases are shared
_FROM = re.compile(r"^(\s*FROM\s+(?:--platform=\S+\s+)?)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)


def salt_dockerfile(session: Session, dockerfile: str) -> tuple[str, dict[str, str]]:
    """The Dockerfile with each small local base replaced by the session's copy, and {copy: base}."""
    aliases: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        ref = m.group(2)
        if "$" in ref or ref.lower() == "scratch" or ref.startswith(f"lab-{session.id}-"):
            return m.group(0)
        copy = salted_base(session, ref)
        if copy is None:
            return m.group(0)
        aliases[copy] = ref
        return m.group(1) + copy + m.group(3)

    return _FROM.sub(swap, dockerfile), aliases


def session_base(session: Session, ref: str) -> str:
    """The name of the session's own copy of the base `ref` (whether made yet or not)."""
    repo, tag = _repo(ref), ref[len(_repo(ref)) + 1:]
    return session.name("base-" + re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-")) + (f":{tag}" if tag else "")


def salted_base(session: Session, ref: str) -> str | None:
    """The session's copy of a local single-layer image `ref` (made on first use), or None when the
    image is missing (the build then reports it), large, or has more than one layer."""
    copy, tag = session_base(session, ref), ref[len(_repo(ref)) + 1:]
    try:
        session.client.images.get(copy)
        return copy
    except docker.errors.ImageNotFound:
        pass
    try:
        image = session.client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    if len(image.attrs["RootFS"].get("Layers", [])) != 1 or image.attrs.get("Size", 0) > SALT_MAX_BYTES:
        return None
    if image.attrs.get("Architecture") != _NATIVE.get(os.uname().machine, os.uname().machine):
        return None  # `docker import` would record this machine's architecture instead of the image's
    saved = tarfile.open(fileobj=io.BytesIO(b"".join(image.save())))
    manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
    layer = tarfile.open(fileobj=saved.extractfile(manifest[0]["Layers"][0]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"LABKIT.session": session.id}) as salted:
        for member in layer.getmembers():
            salted.addfile(member, layer.extractfile(member) if member.isfile() else None)
    config = image.attrs.get("Config") or {}
    changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in {**session.labels, "labkit.copy-of": ref}.items()]
    changes += [f"ENV {e}" for e in config.get("Env") or []]
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    if config.get("WorkingDir"):
        changes.append(f"WORKDIR {config['WorkingDir']}")
    session.client.api.import_image_from_data(out.getvalue(), repository=_repo(copy), tag=tag or "latest",
                                          changes=changes)
    return copy


def unsalt(text: str, aliases: Mapping[str, str]) -> str:
    """Builder output as if the Dockerfile's own bases had been used."""
    for copy, ref in aliases.items():
        copy_repo, ref_repo = _repo(copy), _repo(ref)
        first = ref_repo.split("/")[0]
        qualified = ref_repo if "/" in ref_repo and ("." in first or ":" in first) else \
            f"{INDEX_NAME}/{ref_repo}" if "/" in ref_repo else f"{INDEX_NAME}/library/{ref_repo}"
        text = text.replace(f"{INDEX_NAME}/library/{copy_repo}", qualified).replace(copy_repo, ref_repo)
    return text


def _repo(ref: str) -> str:
    """The name without its tag (a registry's port is not a tag)."""
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref

