"""Notebook 13's rollout check, on API objects as the cluster returns them (no cluster here)."""
from __future__ import annotations

from labkit.checks.k3s import rollout_problem


def deployment(release="2", probe=True, updated=1, ready=1, replicas=1, generation=3, observed=3):
    container = {"name": "web", **({"readinessProbe": {"tcpSocket": {"port": 8080}}} if probe else {})}
    return {"metadata": {"generation": generation},
            "spec": {"replicas": 1, "template": {"metadata": {"annotations": {"release": release}},
                                                 "spec": {"containers": [container]}}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready,
                       "replicas": replicas}}


def pod(name, release="2", ready=True, terminating=False):
    meta = {"name": name, "annotations": {"release": release}}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running", "containerStatuses": [{"ready": ready}]}}


def test_a_finished_rollout_passes_and_terminating_pods_do_not_count():
    assert rollout_problem(deployment(), [pod("web-2")]) is None
    assert rollout_problem(deployment(), [pod("web-2"), pod("web-1", "1", terminating=True)]) is None


def test_the_stuck_rollout_fails_and_names_the_pods():
    problem = rollout_problem(deployment(ready=1, replicas=2), [pod("web-1", "1"), pod("web-2", ready=False)])
    assert problem and "0 of 1" in problem and "web-2 (release 2, Running, not ready)" in problem


def test_a_rollback_or_a_removed_probe_is_not_a_fix():
    assert "rollback" in rollout_problem(deployment(release="1"), [pod("web-1", "1")])
    assert "readiness probe" in rollout_problem(deployment(probe=False), [pod("web-2")])


def test_an_unobserved_generation_is_not_done():
    assert rollout_problem(deployment(observed=2), [pod("web-2")])
