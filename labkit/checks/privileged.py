"""Checks of notebook 05 (privileged containers and breakouts)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..privileged import DOCKER_SOCKET

RISKY_CAPS = {"ALL", "SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_RAWIO"}


def _caps(values) -> set[str]:
    return {c.upper().removeprefix("CAP_") for c in values or []}


@exercise("privileged", "fewest-caps", "Run netadmin with only the capability it needs",
          "cap_drop=['ALL'] removes every capability; cap_add=[...] gives back the one `ip addr add` needs.")
def fewest_caps(lab):
    try:
        c = lab.client.containers.get(lab.name("netadmin"))
    except docker.errors.NotFound:
        return False, "No container named 'netadmin' in this session."
    c.reload()
    host = c.attrs["HostConfig"]
    if c.attrs["State"]["Status"] == "running":
        c.wait(timeout=30)
        c.reload()
    if c.attrs["State"]["ExitCode"] != 0 or "10.9.9.9" not in c.logs().decode(errors="replace"):
        return False, "netadmin did not manage to add 10.9.9.9 to its loopback interface (read its logs)."
    if host.get("Privileged"):
        return False, "netadmin works, but as a privileged container: drop the privileges."
    if "ALL" not in _caps(host.get("CapDrop")):
        return False, "netadmin still has docker's default capabilities: drop them all first."
    if _caps(host.get("CapAdd")) != {"NET_ADMIN"}:
        return False, f"netadmin adds {sorted(_caps(host.get('CapAdd')))}: one capability is enough."
    return True, "netadmin changed its network with CAP_NET_ADMIN and nothing else."


def _risky(attrs) -> bool:
    host = attrs["HostConfig"]
    mounts = [m.get("Source", "") for m in attrs.get("Mounts", [])]
    return bool(host.get("Privileged") or _caps(host.get("CapAdd")) & RISKY_CAPS or host.get("PidMode") == "host"
                or any(m.endswith("docker.sock") or m == DOCKER_SOCKET for m in mounts))


@exercise("privileged", "find-risky", "Find the containers that can take over the host",
          "Look at HostConfig (Privileged, CapAdd, PidMode) and Mounts of each container: lab.client.containers"
          ".get(name).attrs. A socket mounted read-only is still the whole engine.")
def find_risky(lab, answer: set | list | None = None):
    suspects = {}
    for name in ("metrics", "web", "debug-shell"):
        try:
            suspects[name] = lab.client.containers.get(lab.name(name)).attrs  # a full inspect
        except docker.errors.NotFound:
            pass
    if len(suspects) < 3:
        return False, "Start the three suspects first (the cell above the exercise)."
    truth = {n for n, a in suspects.items() if _risky(a)}
    given = set(answer or [])
    if given == truth:
        return True, f"Right: {', '.join(sorted(truth))} can take over this machine; the other one cannot."
    wrong = sorted(given - truth)
    missed = sorted(truth - given)
    return False, " ".join(filter(None, [f"Not risky: {', '.join(wrong)}." if wrong else "",
                                         f"{len(missed)} risky container(s) missing from your answer." if missed else ""]))
