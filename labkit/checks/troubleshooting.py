"""Checks of notebook 04 (troubleshooting from scratch)."""
from __future__ import annotations

import docker

from ..containers import Container
from ..core.session import SESSION_LABEL
from ..exercises import exercise
from ..procfs import cgroup

MIB = 1024 * 1024


def _container(lab, name: str) -> Container | None:
    try:
        return Container(lab.session, lab.client.containers.get(lab.name(name)))
    except docker.errors.NotFound:
        return None


def _joins(mode: str, target: Container) -> bool:
    return mode in (f"container:{target.id}", f"container:{target.name}")


def _not_running(lab, name: str, found: Container | None) -> str:
    """What a check found instead of a running container `name`: its state, or the session's containers."""
    full = lab.name(name)
    if found is not None:
        return f"Found the container {full}, but it is {found.status()} (not running): remove it and start it again."
    mine = lab.client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={lab.session.id}"})
    prefix = lab.name("")
    names = ", ".join(sorted(c.name.removeprefix(prefix) for c in mine)) or "none"
    return (f"No container named {full} (in a shell: $LAB_PREFIX-{name}); this session's containers: {names}.")


@exercise("troubleshooting", "debug-sidecar", "Debug the scratch container from a sidecar", (
    "Leave shop alone: start a second container that brings its own tools and lives in some of shop's namespaces.",
    "Section 3 joined shop's PID namespace from Python (pid_mode='container:...'); `docker run --help` has a "
    "flag for the PID namespace and one for the network namespace, both taking container:NAME "
    "($LAB_PREFIX-shop is shop's name).",
    "In a %%bash cell: docker run -d --name $LAB_PREFIX-debugger --pid container:$LAB_PREFIX-shop "
    "--network container:$LAB_PREFIX-shop labkit/busybox sleep 3600",
))
def debug_sidecar(lab):
    shop, debugger = _container(lab, "shop"), _container(lab, "debugger")
    if shop is None or shop.status() != "running":
        return False, "The shop container is not running: run the cell that starts it (start_shop())."
    if debugger is None or debugger.status() != "running":
        return False, _not_running(lab, "debugger", debugger)
    host = debugger.attrs()["HostConfig"]
    modes = {"PID": host.get("PidMode", ""), "network": host.get("NetworkMode", "")}
    missing = [ns for ns, mode in modes.items() if not _joins(mode, shop)]
    if missing:
        found = ", ".join(f"{ns} mode {mode or 'its own'!r}" for ns, mode in modes.items())
        return False, f"debugger does not share the {' and '.join(missing)} namespace(s) of shop (found: {found})."
    seen = debugger.exec(["sh", "-c", "ps -o comm && netstat -tln"]).stdout
    if "httpd" not in seen or ":8080" not in seen:
        return False, f"From debugger, ps does not show shop's httpd or netstat its port 8080; they said: {seen.strip()[:200]}"
    return True, "debugger sees shop's httpd process and its listening port 8080, without touching shop's image."


@exercise("troubleshooting", "limits", "Cap a container at 64 MiB of memory and 50 processes", (
    "Limits are given when a container starts; the kernel then enforces them through the container's cgroup.",
    "Section 5 started hog with mem_limit and pids_limit from Python; `docker run --help` lists the same limits "
    "as flags. The container's name: $LAB_PREFIX-worker.",
    "In a %%bash cell: docker run -d --name $LAB_PREFIX-worker --memory 64m --pids-limit 50 labkit/busybox sleep 3600",
))
def limits(lab):
    worker = _container(lab, "worker")
    if worker is None or worker.status() != "running":
        return False, _not_running(lab, "worker", worker)
    usage = cgroup(worker)  # what the kernel enforces, not just what docker was asked
    problems = []
    if usage.memory_limit != 64 * MIB:
        problems.append("memory limit is " + ("unset" if usage.memory_limit is None else f"{usage.memory_limit / MIB:g} MiB"))
    if usage.pids_limit != 50:
        problems.append(f"pids limit is {usage.pids_limit or 'unset'}")
    if problems:
        return False, f"Found {lab.name('worker')} running, but the kernel's cgroup says: " + ", ".join(problems) + "."
    return True, "The kernel's cgroup for worker enforces 64 MiB of memory and at most 50 processes."
