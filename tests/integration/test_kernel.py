"""Notebooks 04-06 machinery against the real engine: cgroups, hand-made containers, privileged
helpers that never outlive their block, and the rootless engine."""
from __future__ import annotations

import os

import pytest

import labkit
from labkit import kernel, privileged, procfs, rootless

MIB = 1024 * 1024


def test_cgroup_limits_and_an_oom_kill_read_on_the_host(lab):
    c = lab.start("labkit/busybox", ["sleep", "60"], name="hog", mem_limit="32m", pids_limit=20)
    before = procfs.cgroup(c)
    assert before.memory_limit == 32 * MIB and before.pids_limit == 20 and before.oom_kills in (0, None)
    # oom_score_adj 1000: the pipeline is killed first, never the container's own process (it flaked once)
    eat = "echo 1000 > /proc/self/oom_score_adj; head -c 100000000 /dev/zero | tail >/dev/null"
    assert c.exec(["sh", "-c", eat]).exit_code == 137
    after = procfs.cgroup(c)
    assert after.oom_kills is None or after.oom_kills >= 1
    c.exec(["sh", "-c", "sleep 30 >/dev/null 2>&1 &"])
    rows = procfs.container_processes(c).rows
    assert [r[1] for r in rows][0] == 1 and any("sleep 30" in r[3] for r in rows)


def test_unlimited_container_reports_no_limit(lab):
    c = lab.start("labkit/busybox", ["sleep", "60"])
    usage = procfs.cgroup(c)
    assert usage.memory_limit is None and usage.pids_limit is None and "no limit" in usage.text()


def test_handmade_container_has_its_own_pid_and_uts_namespace(lab):
    rootfs = kernel.export_rootfs(lab, "labkit/busybox")
    assert (rootfs / "bin" / "busybox").exists()
    result = kernel.handmade(lab, rootfs, "hostname inside; hostname; echo $$")
    assert result.exit_code == 0 and result.stdout.split() == ["inside", "1"]
    assert os.uname().nodename != "inside"
    lab.cleanup()
    assert not rootfs.exists()


def test_privileged_block_removes_its_container_even_when_the_cell_fails(lab, docker_client):
    with pytest.raises(privileged.RiskNotAcknowledged):
        with privileged.privileged(lab):
            pass
    seen = []
    with pytest.raises(ZeroDivisionError):
        with privileged.privileged(lab, acknowledge_risk=True) as c:
            seen.append(c.id)
            1 / 0  # a cell failing half-way
    assert seen and docker_client.containers.list(all=True, filters={"id": seen[0]}) == []


def test_escapes_target_only_lab_owned_processes(lab):
    marker = privileged.host_marker(lab)
    with pytest.raises(labkit.LabkitError, match="PID 1"):
        privileged.nsenter_escape(lab, 1, marker, acknowledge_risk=True)
    with pytest.raises(labkit.LabkitError, match="not started by this lab"):
        privileged.nsenter_escape(lab, os.getpid(), marker, acknowledge_risk=True)
    assert privileged.socket_escape(lab, marker, acknowledge_risk=True).proved
    target = privileged.host_process(lab)
    assert privileged.nsenter_escape(lab, target, marker, acknowledge_risk=True).proved
    lab.cleanup()
    assert not marker.path.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(target, 0)


def test_rootless_engine_maps_root_and_leaves_nothing(lab):
    missing = [w for w, ok, _ in rootless.requirements(rootless.LAB_USER if os.geteuid() == 0 else "x") if not ok]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"no rootless engine here: {missing}")
    rl = rootless.start(lab)
    assert rl.startup <= 15
    rl.load("labkit/busybox:latest")
    c = rl.lab.start("labkit/busybox", ["sleep", "60"])
    host_user = procfs.container_processes(c).rows[0][2]
    assert "uid 0)" not in host_user
    marker = privileged.host_marker(lab)
    assert not privileged.socket_escape(rl.lab, marker, socket_path=rl.socket, acknowledge_risk=True).proved
    home = rl.home
    lab.cleanup()
    assert not home.exists()
    from tests.conftest import rootless_processes
    assert rootless_processes() == []


def test_rootless_without_requirements_is_a_skip_with_the_fix(lab, monkeypatch):
    monkeypatch.setattr(rootless, "requirements", lambda user: [("rootlesskit", False, "apt-get install rootlesskit")])
    with pytest.raises(labkit.LabSkipped) as info:
        rootless.start(lab)
    assert "apt-get install rootlesskit" in str(info.value)
