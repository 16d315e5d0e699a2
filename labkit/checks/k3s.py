"""Checks of notebook 13 (K3s)."""
from __future__ import annotations

from typing import Any

from ..core.errors import LabkitError
from ..exercises import exercise
from ..k3s import validate
from ..predictions import question

question("k3s", "never-ready", "Release 2's pods get a readiness probe that never succeeds. web has one replica and "
         "the default rolling update. Shortly after the release, what do web's pods look like?",
         ["the new pod restarts again and again, and the old one is gone",
          "the new pod runs but is never ready and never restarted; the old pod still runs, ready",
          "no pod is ready: the old one was stopped to make room for the new one"], answer=1,
         why="A failing readiness probe only keeps a pod out of service (a liveness probe would restart it), and a "
             "rolling update removes an old pod only once a new one is ready: with one replica, maxUnavailable 25 % "
             "rounds down to 0.")
question("k3s", "debug-pid1", "The debug container runs `ps` in the distroless pod, with targetContainerName "
         "shop. Which process does ps show as PID 1?",
         ["ps itself: the debug container has a PID namespace of its own", "the application, /server",
          "the pod's sandbox process, /pause"], answer=1,
         why="targetContainerName puts the debug container in the target container's PID namespace, where the "
             "application is PID 1 (notebook 04 did the same with --pid container:...).")


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


RELEASE = "2"  # the teammate's release of web (notebook 13, exercise 2): a readiness probe on the wrong port


def _ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") for s in statuses)


def rollout_problem(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> str | None:
    """Why release 2 of web is not out (None when it is), from the Deployment and its pods as the API
    returns them (JSON, camelCase): no cluster needed to test it."""
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    template = spec.get("template", {})
    release = (template.get("metadata", {}).get("annotations") or {}).get("release", "1")
    containers = template.get("spec", {}).get("containers") or [{}]
    if release != RELEASE:
        return (f"web's pod template is at release {release}, not {RELEASE}: a rollback hides the problem, and the "
                f"team wants release {RELEASE} out. Apply it again (the cell before the question) and fix it.")
    if not containers[0].get("readinessProbe"):
        return ("Release 2 has lost its readiness probe: then a pod counts as ready as soon as it starts, even if it "
                "cannot serve. Keep the probe, and make it check what the container really does.")
    want = spec.get("replicas", 1)
    live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]  # terminating pods are leaving
    current = [p for p in live if (p["metadata"].get("annotations") or {}).get("release") == RELEASE and _ready(p)]
    done = (status.get("observedGeneration", 0) >= deployment.get("metadata", {}).get("generation", 0)
            and status.get("updatedReplicas") == want and status.get("readyReplicas") == want
            and status.get("replicas") == want)
    if done and len(live) == want and len(current) == want:
        return None
    states = ", ".join(f"{p['metadata']['name']} (release {(p['metadata'].get('annotations') or {}).get('release', '1')}, "
                       f"{p.get('status', {}).get('phase', '?')}, {'ready' if _ready(p) else 'not ready'})"
                       for p in live) or "no pod"
    return f"The rollout is not finished: {len(current)} of {want} pod(s) of release {RELEASE} ready; pods: {states}."


@exercise("k3s", "rollout", "Get release 2 of web rolled out", hints=(
    "The new pod runs and never restarts, yet it never becomes ready: something keeps checking it and keeps "
    "saying no. What does it check, and does that match what the container does?",
    "kubectl describe pod (the Events at its end) says why the readiness probe fails; kubectl get deployment web "
    "-o yaml shows the probe next to the container's command. Change the Deployment (kubectl patch), not the pod: "
    "pods are replaced, the Deployment stays.",
    "In a %%bash cell: docker exec \"$K3S_SERVER\" kubectl patch deployment web --type=json -p '[{\"op\": \"replace\", "
    "\"path\": \"/spec/template/spec/containers/0/readinessProbe/tcpSocket/port\", \"value\": 8080}]', then docker "
    "exec \"$K3S_SERVER\" kubectl rollout status deployment/web --timeout=120s"))
def rollout(lab, cluster=None):
    if cluster is None:
        return False, "Pass cluster=... (the k3s.Cluster of this notebook)."
    from kubernetes import client
    api = cluster.api()
    deployment = api.sanitize_for_serialization(client.AppsV1Api(api).read_namespaced_deployment("web", "default"))
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web").items
    problem = rollout_problem(deployment, [api.sanitize_for_serialization(p) for p in pods])
    if problem:
        return False, problem
    return True, (f"Release {RELEASE} is out: every pod of web runs it and is ready, its readiness probe checks the "
                  "port the container listens on, and the old pods are gone.")
