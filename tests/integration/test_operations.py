"""Notebooks 12-16 against the real engine, beyond what executing the notebooks covers: the bad
input paths (a K3s server that never gets ready or dies, a failing CNAB action) leave nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import labkit
from labkit import cnab, k3s

ASSETS = Path(__file__).resolve().parents[2] / "notebooks" / "assets"


def _session_containers(lab):
    return lab.client.containers.list(all=True, filters={"label": f"labkit.session={lab.session}"})


def test_k3s_never_ready_times_out_with_its_log_and_leaves_nothing(lab):
    lab.build("fake-k3s:never", 'FROM labkit/busybox:latest\n'
                                'ENTRYPOINT ["sh", "-c", "echo level=info msg=Starting k3s; sleep 600", "--"]\n')
    with pytest.raises(labkit.ReadinessTimeout) as info:
        k3s.Cluster.start(lab, lab.image("fake-k3s:never"), timeout=2)
    assert "Starting k3s" in info.value.details and "Node controller sync successful" in info.value.message
    assert _session_containers(lab) == []


def test_k3s_fatal_line_fails_fast(lab):
    lab.build("fake-k3s:fatal", 'FROM labkit/busybox:latest\nENTRYPOINT ["sh", "-c", '
                                '"echo level=fatal msg=failed to find memory cgroup; sleep 600", "--"]\n')
    with pytest.raises(labkit.ReadinessTimeout) as info:
        k3s.Cluster.start(lab, lab.image("fake-k3s:fatal"), timeout=60)
    assert "stopped before it was ready" in info.value.message and "memory cgroup" in info.value.details
    assert _session_containers(lab) == []


def test_k3s_without_an_image_is_a_skip(lab, monkeypatch):
    monkeypatch.setenv(k3s.IMAGE_ENV, "labkit-test/no-such-k3s:1")
    with pytest.raises(labkit.LabSkipped) as info:
        k3s.require_image(lab)
    assert "docker load" in info.value.hint


@pytest.mark.lab_images("labkit/python:bookworm", "labkit/busybox:latest")
def test_cnab_failing_action_is_recorded_and_leaves_nothing(lab):
    lab.build("cnab-fail:1", 'FROM labkit/busybox:latest\nRUN mkdir -p /cnab/app && '
                             'printf "#!/bin/sh\\necho about to fail\\nexit 3\\n" > /cnab/app/run && chmod +x /cnab/app/run\n')
    bundle = json.loads((ASSETS / "cnab" / "bundle.json").read_text())
    bundle["invocationImages"][0]["image"] = lab.image("cnab-fail:1")
    with pytest.raises(cnab.BundleInvalid):
        cnab.Runner(lab, bundle).run("install", "x", {"port": lab.port()}, {"admin_token": "t"})
    runner = cnab.Runner(lab, bundle, allow_docker_host_access=True)
    with pytest.raises(cnab.ActionFailed) as info:
        runner.run("install", "x", {"port": lab.port()}, {"admin_token": "t"})
    assert "about to fail" in info.value.details
    [claim] = runner.claims("x")
    assert claim["result"] == {"status": "failed", "message": "exit code 3"} and "t" not in claim["parameters"].values()
    assert not runner.installed("x") and _session_containers(lab) == []
