"""Checks of notebook 10 (ORAS: OCI registry as storage)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.errors import LabkitError
from ..exercises import exercise

REPORT_TYPE = "application/vnd.labkit.test-report.v1"
IMAGE_CONFIG_TYPES = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")


@exercise("oras", "publish-report", "Publish the test report as an artifact", hints=(
    "An artifact is a set of files, each with a media type, plus one artifact type for the whole: you pushed "
    "two already.",
    "Section 2's cell calls push_artifact(registry, tag, {file: media type}, artifact type, workdir=work): "
    "reuse it with this exercise's tag, file, media type and REPORT_TYPE.",
    "push_artifact(registry, 'reports:build-42', {'report.xml': 'application/xml'}, REPORT_TYPE, workdir=work)",
))
def publish_report(lab, registry, report: str | Path):
    try:
        manifest, _ = registry.manifest("reports:build-42")
    except LabkitError:
        return False, f"The registry has no reports:build-42 yet (it holds: {registry.holds()})."
    found_type = manifest.get("config", {}).get("mediaType")
    if found_type != REPORT_TYPE:
        return False, f"reports:build-42 has artifact type {found_type!r}, not {REPORT_TYPE}."
    layers = manifest.get("layers", [])
    if len(layers) != 1 or layers[0]["mediaType"] != "application/xml":
        types = ", ".join(ly.get("mediaType", "?") for ly in layers) or "none"
        return False, (f"reports:build-42 holds {len(layers)} file(s) of media type(s) {types}: "
                       "it should hold exactly one, of media type application/xml.")
    local = "sha256:" + hashlib.sha256(Path(report).read_bytes()).hexdigest()
    if layers[0]["digest"] != local:
        return False, (f"The file in reports:build-42 ({layers[0]['digest'][:19]}…) is not your report.xml "
                       f"({local[:19]}…).")
    return True, "reports:build-42 holds your report, typed so that tools can find test reports."


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
