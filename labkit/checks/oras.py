"""Checks and questions of notebook 10 (ORAS: OCI registry as storage)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..core.errors import LabkitError
from ..core.render import volatile
from ..exercises import exercise
from ..oras import referrers
from ..predictions import question
from ..registry import MANIFEST_TYPES, split_ref

REPORT_TYPE = "application/vnd.labkit.test-report.v1"
SBOM_TYPE = "application/vnd.labkit.sbom.v1"
SBOM_TYPES = (SBOM_TYPE, "application/vnd.cyclonedx+json")  # what a consumer looking for an SBOM accepts
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG_TYPES = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")


question("oras", "file-name", "config:1 holds one file, config.tgz. Where does the name config.tgz appear in what the "
         "registry keeps?",
         ["it is the blob's name in the registry's storage",
          "in the manifest, as an annotation of the layer: the blob itself is named by its digest",
          "nowhere: the registry keeps bytes and types, and the client makes up a name when it pulls"], answer=1,
         why="The manifest lists the layer by digest, with org.opencontainers.image.title as an annotation: "
             "the name is metadata, the digest is the address.")
question("oras", "same-file-twice", "blob.bin (20 MB) is already in the registry as blob:1. Pushed again, the same "
         "file with the same types, as blob:2: what does the registry store?",
         ["a second 20 MB blob, since blob:2 is a new artifact",
          "nothing new: the same bytes have the same digest, and blob:2 names the manifest blob:1 names",
          "the new copy, replacing the first"], answer=1,
         why="Content addressing: the file, the config and the manifest have the same digests as before, so the "
             "registry has all of them already; blob:2 is one more name for the same manifest.")
question("oras", "tag-moves", "One character of app.yaml changes, and the bundle is pushed again as config:1. What "
         "happens to config:1?",
         ["the registry refuses: the tag config:1 exists",
          "config:1 now names a new manifest with a new digest; the first one is still there, by its digest",
          "config:1 keeps its digest; only the blob inside changes"], answer=1,
         why="A manifest's digest is the hash of its bytes, and they list the file's new digest: a new manifest, and "
             "the tag moves to it.")


@exercise("oras", "sbom-discoverable", "Make the SBOM findable from the image it describes", hints=(
    "The consumer goes tag -> the image's digest -> the tag named after that digest -> an index -> the SBOM "
    "artifact -> its file. Two things are missing in the registry: the SBOM as an artifact, and that index; both "
    "in the image's own repository.",
    "descriptor(registry, ref) gives a manifest's digest (and the descriptor an index lists: mediaType, digest, "
    "size); push_artifact(registry, 'debian:<any tag>', ...) puts the SBOM into the debian repository; "
    "registry.put_manifest('debian:sha256-<hex>', index) stores an index {'schemaVersion': 2, 'mediaType': "
    f"'{OCI_INDEX}', 'manifests': [descriptor + 'artifactType']}}.",
    "image = descriptor(registry, 'debian:bookworm'); push_artifact(registry, 'debian:sbom', {'sbom.cdx.json': "
    "'application/vnd.cyclonedx+json'}, SBOM_TYPE, workdir=work); registry.put_manifest('debian:' + "
    "image['digest'].replace(':', '-'), {'schemaVersion': 2, 'mediaType': "
    f"'{OCI_INDEX}', 'manifests': [{{**descriptor(registry, 'debian:sbom'), 'artifactType': SBOM_TYPE}}]}})",
))
def sbom_discoverable(lab, registry, sbom: str | Path, image: str = "debian:bookworm"):
    repo = split_ref(image)[0]
    try:
        subject = descriptor(registry, image)
    except LabkitError:
        return False, f"The registry has no {image} (it holds: {registry.holds()}): run the cell that pushes it."
    supported, listed = referrers(registry, image)  # as a consumer does: the API first, then the fallback tag
    where = "the referrers API"
    if not supported:
        tag = subject["digest"].replace(":", "-")
        where = f"the fallback tag {repo}:{volatile(tag[:19] + '…')}"
        tags = registry.tags(repo)
        if tag not in tags:
            shown = ", ".join(t if len(t) < 24 else t[:19] + "…" for t in tags)
            return False, (f"A consumer of {image} finds nothing: the registry has no referrers API, and {repo} has "
                           f"no tag named after the image's digest {subject['digest'][:19]}… (its tags: {shown}).")
        index, _ = registry.manifest(f"{repo}:{tag}")
        if index.get("mediaType") != OCI_INDEX:
            return False, f"{where} holds a {index.get('mediaType', 'manifest')}, not an OCI image index listing artifacts."
        listed = index.get("manifests", [])
    types = [d.get("artifactType") or "no artifactType" for d in listed]
    sboms = [d for d in listed if d.get("artifactType") in SBOM_TYPES]
    if not sboms:
        return False, (f"{where} lists {len(listed)} artifact(s) ({', '.join(types) or 'none'}): a consumer looking "
                       f"for an SBOM ({SBOM_TYPE}) finds none.")
    local = "sha256:" + hashlib.sha256(Path(sbom).read_bytes()).hexdigest()
    for d in sboms:
        try:
            found = descriptor(registry, f"{repo}@{d['digest']}")
        except LabkitError:
            return False, f"{where} lists {d['digest'][:19]}…, which is not in the repository {repo}."
        if found["size"] != d.get("size"):
            return False, (f"{where} says the SBOM manifest has {d.get('size')} bytes, but it has {found['size']}: "
                           "clients check the size and refuse it.")
        manifest, _ = registry.manifest(f"{repo}@{d['digest']}")
        if any(layer.get("digest") == local for layer in manifest.get("layers", [])):
            return True, (f"From {image} alone, a consumer finds your SBOM through {where}, as OCI 1.1 clients "
                          "(oras discover) do.")
    return False, f"{where} lists an SBOM artifact, but none of its files is your {Path(sbom).name} ({local[:19]}…)."


def descriptor(registry, ref: str) -> dict:
    """How an index (or an artifact's subject) points at the manifest `ref` (repo:tag or repo@digest):
    its media type, digest and size in bytes (`oras manifest fetch --descriptor`)."""
    repo, reference = split_ref(ref)
    raw, _ = registry.get(f"/v2/{repo}/manifests/{reference}", MANIFEST_TYPES)
    return {"mediaType": json.loads(raw).get("mediaType", ""), "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
            "size": len(raw)}


@exercise("oras", "pull-by-digest", "Restore the previous configuration by digest", hints=(
    "The tag config:1 moved on, but the registry still holds the old manifest: what name never moves?",
    "The first push's result (bundle_v1, section 2) knows its manifest digest, and pull_artifact accepts "
    "'repo@digest' wherever it accepts 'repo:tag'.",
    "old_digest = bundle_v1.digest; restored = work / 'restored'; pull_artifact(registry, f'config@{old_digest}', restored)",
))
def pull_by_digest(lab, registry, digest: str | None = None, directory: str | Path | None = None):
    if not digest or not directory:
        return False, f"Pass both digest=... and directory=... (got digest={digest!r}, directory={directory!r})."
    try:
        manifest, _ = registry.manifest(f"config@{digest}")
    except LabkitError:
        return False, f"The repository config has no manifest {digest[:19]}…"
    _, current = registry.manifest("config:1")
    if digest == current:
        return False, f"{digest[:19]}… is the digest config:1 points at now: restore the previous one."
    for layer in manifest.get("layers", []):
        name = (layer.get("annotations") or {}).get("org.opencontainers.image.title", "")
        path = Path(directory) / name
        if not path.is_file():
            where = Path(directory)
            found = ", ".join(sorted(p.name for p in where.iterdir())) if where.is_dir() else ""
            return False, f"{path} is missing ({'the directory holds ' + found if found else 'nothing is in ' + str(where)})."
        local = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        if local != layer["digest"]:
            return False, f"{path} is another version ({local[:19]}…), not the file of {digest[:19]}… ({layer['digest'][:19]}…)."
    return True, "The previous version is back, byte for byte, although the tag moved on."


@exercise("oras", "push-image", "Keep an image in the same registry, with docker push", hints=(
    "A registry only knows names that begin with its own address: give the local image such a name, then send it.",
    "`docker tag --help` and `docker push --help`; the full name is the registry's address (registry.host) "
    "followed by /tools/busybox:1, as registry.ref('tools/busybox:1') prints it.",
    "`!docker tag labkit/busybox:latest {registry.host}/tools/busybox:1` then "
    "`!docker push {registry.host}/tools/busybox:1`.",
))
def push_image(lab, registry, image: str = "labkit/busybox:latest"):
    if (why := registry.missing("tools/busybox", "1")) is not None:
        return False, why
    manifest, _ = registry.manifest("tools/busybox:1")
    found_type = manifest.get("config", {}).get("mediaType", manifest.get("mediaType"))
    if found_type not in IMAGE_CONFIG_TYPES:
        return False, f"tools/busybox:1 is not an image: its config has media type {found_type!r} (an artifact?)."
    local = lab.client.images.get(image).id
    if manifest["config"]["digest"] != local:
        return False, (f"tools/busybox:1 holds the image {manifest['config']['digest'][:19]}…, but {image} is "
                       f"{local[:19]}…: push that one.")
    return True, (f"tools/busybox:1 is your {image} (same config digest): images and artifacts sit side by side "
                  "in one registry.")
