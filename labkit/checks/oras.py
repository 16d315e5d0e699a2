"""Checks of notebook 10 (ORAS: OCI registry as storage)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.errors import LabkitError
from ..exercises import exercise

REPORT_TYPE = "application/vnd.labkit.test-report.v1"


@exercise("oras", "publish-report", "Publish the test report as an artifact",
          "push_artifact(registry, 'reports:build-42', {'report.xml': 'application/xml'}, REPORT_TYPE, workdir=work)")
def publish_report(lab, registry, report: str | Path):
    try:
        manifest, _ = registry.manifest("reports:build-42")
    except LabkitError:
        return False, "The registry has no reports:build-42 yet."
    if manifest.get("config", {}).get("mediaType") != REPORT_TYPE:
        return False, f"reports:build-42 has artifact type {manifest.get('config', {}).get('mediaType')!r}, not {REPORT_TYPE}."
    layers = manifest.get("layers", [])
    if len(layers) != 1 or layers[0]["mediaType"] != "application/xml":
        return False, "The artifact should hold exactly one file, of media type application/xml."
    local = "sha256:" + hashlib.sha256(Path(report).read_bytes()).hexdigest()
    if layers[0]["digest"] != local:
        return False, "The file in the registry is not your report.xml (its digest differs)."
    return True, "reports:build-42 holds your report, typed so that tools can find test reports."


@exercise("oras", "pull-by-digest", "Restore the previous configuration by digest",
          "Each push gave a digest (bundle_v1.digest); a tag moves, a digest does not: "
          "pull_artifact(registry, f'config@{digest}', work / 'restored').")
def pull_by_digest(lab, registry, digest: str | None = None, directory: str | Path | None = None):
    if not digest or not directory:
        return False, "Pass both digest=... and directory=..."
    try:
        manifest, _ = registry.manifest(f"config@{digest}")
    except LabkitError:
        return False, f"config has no manifest {digest[:19]}…"
    _, current = registry.manifest("config:1")
    if digest == current:
        return False, "That is the digest config:1 points at now: restore the previous one."
    for layer in manifest.get("layers", []):
        name = (layer.get("annotations") or {}).get("org.opencontainers.image.title", "")
        path = Path(directory) / name
        if not path.is_file() or "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() != layer["digest"]:
            return False, f"{path} is missing or is not the file of that version."
    return True, "The previous version is back, byte for byte, although the tag moved on."
