"""Offline parts of notebooks 12-16: farm config and model, CNAB validation, K3s manifests,
kubeconfig and readiness, Ansible diffs, JUnit reports. No daemon needed."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from labkit import cnab, drift, farm, k3s, testrun
from labkit.checks import build_farm as farm_checks
from labkit.checks import cnab as cnab_checks
from labkit.checks import k3s as k3s_checks
from labkit.core.errors import LabkitError

ASSETS = Path(__file__).resolve().parents[2] / "notebooks" / "assets"


# --- farm ---------------------------------------------------------------------------------

GOOD_FARM = "farm:\n  agents:\n" + "".join(f"    - {{name: a{i}, vcpus: 2, memoryGB: 8, executors: 2}}\n" for i in range(4))


def test_farm_config_valid_and_counted():
    assert farm.slots(farm.load_config(GOOD_FARM)) == 8


@pytest.mark.parametrize("text, field", [
    ("farm:\n  agents:\n    - {name: a, vcpus: two, memoryGB: 8, executors: 2}\n", "farm.agents.0.vcpus"),
    ("farm:\n  agents:\n    - {name: a, vcpus: 2, memoryGB: 8, executors: 8}\n", "farm.agents.0.executors"),
    ("farm:\n  agents:\n    - {name: a, vcpus: 2, memoryGB: 8, executors: 2}\n    - {name: a, vcpus: 2, memoryGB: 8, executors: 2}\n",
     "farm.agents.1.name"),
    ("farm:\n  agents: []\n", "farm.agents"),
    ("nodes: 3\n", "(top level)"),
])
def test_farm_config_errors_name_the_field(text, field):
    with pytest.raises(farm.FarmConfigInvalid) as info:
        farm.load_config(text)
    assert f"Field {field}" in info.value.message
    assert "Hint:" in str(info.value)


def test_farm_model_is_deterministic_and_monotonic():
    a = farm.simulate(12, 5, 2, 10)
    assert a == farm.simulate(12, 5, 2, 10)
    waits = [farm.simulate(12, m, 2, 10).mean_wait for m in (4, 5, 6, 8)]
    assert waits == sorted(waits, reverse=True) and waits[0] > 10 * waits[-1]
    slow = farm.simulate(12, 12, 2, 10, slowdown=2.0)
    assert slow.mean_turnaround > farm.simulate(12, 6, 2, 10).mean_turnaround


def test_run_queue_respects_the_limit_and_keeps_failures():
    import threading
    import time
    running, most = [0], [0]
    lock = threading.Lock()

    def job(fail=False):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        if fail:
            raise LabkitError("boom", "none")

    run = farm.run_queue([(f"j{i}", lambda i=i: job(i == 2)) for i in range(6)], 2)
    assert most[0] == 2
    assert [j.ok for j in run.jobs].count(False) == 1 and run.jobs[2].error == "boom"
    assert run.makespan >= 0.15 and run.mean_wait > 0
    with pytest.raises(LabkitError):
        farm.run_queue([], 0)


def test_farm_checks_pass_and_fail():
    assert farm_checks.fix_config(None, GOOD_FARM)[0]
    assert not farm_checks.fix_config(None, "farm:\n  agents:\n    - {name: a, vcpus: 2, memoryGB: 8, executors: 8}\n")[0]
    assert not farm_checks.fix_config(None, "farm:\n  agents:\n    - {name: a, vcpus: 2, memoryGB: 8, executors: 2}\n")[0]
    best = farm_checks.smallest_farm()
    assert farm_checks.size_farm(None, best)[0]
    assert not farm_checks.size_farm(None, best - 1)[0] and not farm_checks.size_farm(None, best + 1)[0]
    assert not farm_checks.size_farm(None, None)[0]


# --- CNAB ---------------------------------------------------------------------------------

def bundle():
    return json.loads((ASSETS / "cnab" / "bundle.json").read_text())


def test_notebook_bundle_is_valid():
    cnab.validate(bundle())


@pytest.mark.parametrize("change, field", [
    (lambda b: b.update(version="1.0"), "version"),
    (lambda b: b.pop("invocationImages"), "(top level)"),
    (lambda b: b["parameters"]["port"].update(definition="nope"), "parameters.port.definition"),
    (lambda b: b["outputs"]["url"].update(path="/tmp/url"), "outputs.url.path"),
    (lambda b: b["credentials"]["admin_token"].pop("path"), "credentials.admin_token"),
    (lambda b: b["invocationImages"][0].update(imageType="vm"), "invocationImages.0.imageType"),
])
def test_bundle_errors_name_the_field(change, field):
    b = bundle()
    change(b)
    with pytest.raises(cnab.BundleInvalid) as info:
        cnab.validate(b)
    assert f"field {field}" in info.value.message


def test_revisions_are_time_ordered():
    import time
    first = cnab._ulid()
    time.sleep(0.002)
    assert len(first) == 26 and cnab._ulid() > first


def test_fix_bundle_check_both_ways():
    broken = {"schemaVersion": "v1.0.0", "name": "report-job", "version": "1.1",
              "invocationImages": [{"imageType": "docker", "image": "x"}],
              "definitions": {"text": {"type": "string"}},
              "parameters": {"title": {"definition": "title", "destination": {"env": "TITLE"}}},
              "outputs": {"report": {"definition": "text", "path": "/tmp/report.html"}}}
    assert not cnab_checks.fix_bundle(None, broken)[0]
    fixed = copy.deepcopy(broken)
    fixed["version"] = "1.1.0"
    fixed["parameters"]["title"]["definition"] = "text"
    fixed["outputs"]["report"]["path"] = "/cnab/app/outputs/report.html"
    assert cnab_checks.fix_bundle(None, fixed)[0]
    emptied = {k: v for k, v in fixed.items() if k not in ("parameters", "outputs")}
    assert not cnab_checks.fix_bundle(None, emptied)[0]


# --- K3s ----------------------------------------------------------------------------------

RAW_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "default",
    "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}}],
    "users": [{"name": "default", "user": {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}}],
    "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
}


def test_kubeconfig_points_at_the_published_port_and_keeps_credentials():
    config = k3s.kubeconfig(RAW_KUBECONFIG, 41234, "k3s-abc123")
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:41234"
    assert config["current-context"] == "k3s-abc123"
    assert config["contexts"][0]["context"] == {"cluster": "k3s-abc123", "user": "k3s-abc123"}
    assert config["users"][0]["user"]["client-key-data"] == "a2V5"
    assert RAW_KUBECONFIG["clusters"][0]["cluster"]["server"].endswith(":6443")  # input untouched
    with pytest.raises(LabkitError):
        k3s.kubeconfig({"clusters": []}, 1, "x")


def test_kubeconfig_loads_in_the_kubernetes_client():
    from kubernetes import config as kconfig
    client = kconfig.new_client_from_config_dict(k3s.kubeconfig(RAW_KUBECONFIG, 41234, "lab"))
    assert client.configuration.host == "https://127.0.0.1:41234"


def test_readiness_and_fatal_lines():
    log = 'time="x" level=info msg="Starting k3s"\ntime="x" level=info msg="Node controller sync successful"\n'
    assert k3s.ready(log) and not k3s.fatal(log)
    assert not k3s.ready('level=info msg="Starting k3s"')
    bad = 'level=info msg="x"\ntime="y" level=fatal msg="failed to find memory cgroup"'
    assert "memory cgroup" in k3s.fatal(bad)


def test_generated_manifests_validate():
    k3s.validate(k3s.deployment("web", "labkit/busybox:latest", replicas=2, port=8080, command=["httpd"]))
    k3s.validate(k3s.service("web", 80, 8080))


@pytest.mark.parametrize("change, field", [
    (lambda m: m["spec"].update(replicas="two"), "spec.replicas"),
    (lambda m: m["spec"]["template"]["spec"]["containers"][0].update(name="Web"), "spec.template.spec.containers[0].name"),
    (lambda m: m["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort=70000),
     "spec.template.spec.containers[0].ports[0].containerPort"),
    (lambda m: m["spec"]["selector"].update(matchLabels={"app": "x"}), "spec.selector.matchLabels"),
    (lambda m: m.update(kind="Pod"), "kind"),
])
def test_manifest_errors_name_the_field(change, field):
    m = k3s.deployment("web", "img", port=8080)
    change(m)
    with pytest.raises(k3s.ManifestInvalid) as info:
        k3s.validate(m)
    assert f"field {field}" in info.value.message.replace("Field", "field")


def test_fix_manifest_check_both_ways():
    broken = k3s.deployment("web", "labkit/busybox:latest", replicas=1)
    broken["spec"]["replicas"] = "3"
    assert not k3s_checks.fix_manifest(None, broken)[0]
    fixed = k3s.deployment("web", "labkit/busybox:latest", replicas=3)
    assert k3s_checks.fix_manifest(None, fixed)[0]
    assert not k3s_checks.fix_manifest(None, k3s.deployment("web", "x", replicas=2))[0]


# --- Ansible diffs and JUnit reports --------------------------------------------------------

def test_ansible_diffs_read_as_changes():
    text = drift._diff_text("Configuration file", {"before": "a\nlog_level = debug\n", "after": "a\nlog_level = info\n",
                                                  "before_header": "/etc/shop/shop.ini", "after_header": "/etc/shop/shop.ini"})
    assert "-log_level = debug" in text and "+log_level = info" in text
    mode = drift._diff_text("dir", [{"before": {"path": "/srv", "mode": "0777"}, "after": {"path": "/srv", "mode": "0750"}}])
    assert mode == "dir: mode: 0777 -> 0750"


def test_junit_report_read_back(tmp_path):
    (tmp_path / "r.xml").write_text("""<testsuites><testsuite>
<testcase classname="test_inventory" name="test_a" time="0.5"/>
<testcase classname="test_inventory" name="test_b" time="0.1"><failure message="assert 409 == 200">x</failure></testcase>
<testcase classname="test_inventory" name="test_c" time="0"><skipped message="later"/></testcase>
</testsuite></testsuites>""")
    run = testrun.read_junit(tmp_path / "r.xml", "host", 1.0, "")
    assert [c.outcome for c in run.cases] == ["passed", "failed", "skipped"]
    assert run.outcome("test_b") == "failed" and not run.passed
    assert "1 passed, 1 failed, 1 skipped" in run.text()
    empty = testrun.read_junit(tmp_path / "missing.xml", "host", 1.0, "ImportError: no module")
    assert not empty.passed and "No test ran" in empty.text()
