"""Checks of notebook 13 (K3s)."""
from __future__ import annotations

from typing import Any

from ..core.errors import LabkitError
from ..exercises import exercise
from ..k3s import validate


@exercise("k3s", "fix-manifest", "Fix the Deployment so the API server would accept it", hints=(
    "Three fields break the rules the API server applies: look at each field's type, the naming rules for "
    "containers, and whether the Deployment owns its own pods.",
    "Section 1 showed k3s.validate's answers for the same kinds of mistakes; call k3s.validate(broken) and fix "
    "the field it names, then the next one.",
    "broken['spec']['replicas'] = 3; the template's labels = {'app': 'web'} (to match the selector); the "
    "container's name = 'web' (lower-case RFC 1123)."))
def fix_manifest(lab, manifest: dict[str, Any] | None = None):
    if not isinstance(manifest, dict):
        return False, f"Pass manifest=... (the dictionary you fixed); got {type(manifest).__name__}."
    try:
        validate(manifest)
    except LabkitError as error:
        return False, f"The API server would refuse it: {error.message}"
    replicas = manifest["spec"].get("replicas")
    if replicas != 3:
        return False, f"Valid, but it asks for {replicas!r} replica(s); the team wants 3."
    return True, "Valid: the same fields kubectl's server-side validation would check."


@exercise("k3s", "scale", "Scale web to 3 ready pods", hints=(
    "A Deployment's size is its replicas field; after changing it, the pods need time to start: wait for them.",
    "cluster.scale(name, replicas) is `kubectl scale deployment`; cluster.watch(selector, until_ready=n) waits, "
    "as section 3 did for one pod.",
    "cluster.scale('web', 3), then: for snapshot in cluster.watch('app=web', until_ready=3): "
    "handle.update(snapshot)"))
def scale(lab, cluster=None):
    if cluster is None:
        return False, "Pass cluster=... (the k3s.Cluster of this notebook)."
    pods = cluster.pods("app=web")
    ready = sum(r for _, _, r in pods)
    if ready != 3 or len(pods) != 3:
        phases = ", ".join(f"{name} {phase}" for name, phase, _ in pods) or "none"
        return False, f"web has {len(pods)} pod(s), {ready} ready ({phases}); it should have exactly 3 ready."
    return True, "3 pods of web are ready: the Deployment's controller created them, the scheduler placed them."
