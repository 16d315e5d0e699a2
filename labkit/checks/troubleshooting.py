"""Checks of notebook 04 (troubleshooting from scratch)."""
from __future__ import annotations

import docker

from ..containers import Container
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


@exercise("troubleshooting", "debug-sidecar", "Debug the scratch container from a sidecar",
          "lab.start('labkit/busybox', ['sleep', '3600'], name='debugger', pid_mode=f'container:{shop.id}', "
          "network_mode=f'container:{shop.id}')")
def debug_sidecar(lab):
    shop, debugger = _container(lab, "shop"), _container(lab, "debugger")
    if shop is None or shop.status() != "running":
        return False, "The shop container is not running: run the cell that starts it."
    if debugger is None or debugger.status() != "running":
        return False, "No running container named 'debugger' in this session."
    host = debugger.attrs()["HostConfig"]
    missing = [ns for ns, mode in (("PID", host.get("PidMode", "")), ("network", host.get("NetworkMode", "")))
               if not _joins(mode, shop)]
    if missing:
        return False, f"debugger does not share the {' and '.join(missing)} namespace(s) of shop."
    seen = debugger.exec(["sh", "-c", "ps -o comm && netstat -tln"]).stdout
    if "httpd" not in seen or ":8080" not in seen:
        return False, "From debugger, ps does not show shop's httpd or netstat its port 8080."
    return True, "debugger sees shop's httpd process and its listening port 8080, without touching shop's image."


@exercise("troubleshooting", "limits", "Cap a container at 64 MiB of memory and 50 processes",
          "lab.start('labkit/busybox', ['sleep', '3600'], name='worker', mem_limit='64m', pids_limit=50)")
def limits(lab):
    worker = _container(lab, "worker")
    if worker is None or worker.status() != "running":
        return False, "No running container named 'worker' in this session."
    usage = cgroup(worker)  # what the kernel enforces, not just what docker was asked
    problems = []
    if usage.memory_limit != 64 * MIB:
        problems.append("memory limit is " + ("unset" if usage.memory_limit is None else f"{usage.memory_limit // MIB} MiB"))
    if usage.pids_limit != 50:
        problems.append(f"pids limit is {usage.pids_limit or 'unset'}")
    if problems:
        return False, "The kernel's cgroup says: " + ", ".join(problems) + "."
    return True, "The kernel's cgroup for worker enforces 64 MiB of memory and at most 50 processes."
