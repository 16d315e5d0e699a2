"""Checks of notebook 13 (K3s)."""
from __future__ import annotations

from typing import Any

from ..core.errors import LabkitError
from ..exercises import exercise
from ..k3s import validate


@exercise("k3s", "fix-manifest", "Fix the Deployment so the API server would accept it",
          "replicas must be an integer (3), container names are lower-case RFC 1123 labels (web), and the "
          "selector must match the pod template's labels (app: web).")
def fix_manifest(lab, manifest: dict[str, Any] | None = None):
    if not isinstance(manifest, dict):
        return False, "Pass manifest=... (the dictionary you fixed)."
    try:
        validate(manifest)
    except LabkitError as error:
        return False, error.message
    if manifest["spec"].get("replicas") != 3:
        return False, f"Valid, but it asks for {manifest['spec'].get('replicas')} replicas; the team wants 3."
    return True, "Valid: the same fields kubectl's server-side validation would check."


@exercise("k3s", "scale", "Scale web to 3 ready pods",
          "cluster.scale('web', 3), then wait with cluster.watch('app=web', until_ready=3).")
def scale(lab, cluster=None):
    if cluster is None:
        return False, "Pass cluster=... (the k3s.Cluster of this notebook)."
    pods = cluster.pods("app=web")
    ready = sum(r for _, _, r in pods)
    if ready != 3 or len(pods) != 3:
        return False, f"web has {len(pods)} pod(s), {ready} ready; it should have exactly 3 ready."
    return True, "3 pods of web are ready: the Deployment's controller created them, the scheduler placed them."
