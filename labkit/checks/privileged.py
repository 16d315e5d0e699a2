"""Checks of notebook 05 (privileged containers and breakouts)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..privileged import DOCKER_SOCKET

RISKY_CAPS = {"ALL", "SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_RAWIO"}


def _caps(values) -> set[str]:
    return {c.upper().removeprefix("CAP_") for c in values or []}


def _container(lab, suffix: str):
    try:
        c = lab.client.containers.get(lab.name(suffix))
    except docker.errors.NotFound:
        return None
    c.reload()
    return c


@exercise("privileged", "fewest-caps", "Run netadmin with only the capability it needs", (
    "Which single Linux capability allows changing a network interface? Start from nothing, then give back just that one.",
    "Docker's capability options: cap_drop/cap_add in lab.start (--cap-drop/--cap-add on the command line); "
    "`man 7 capabilities` lists them. Remove the old netadmin first (default.remove()).",
    "default.remove(); lab.start(\"labkit/busybox\", NETADMIN, name=\"netadmin\", cap_drop=[\"ALL\"], cap_add=[\"NET_ADMIN\"])",
))
def fewest_caps(lab):
    c = _container(lab, "netadmin")
    if c is None:
        return False, f"No container {lab.name('netadmin')} in this session."
    host = c.attrs["HostConfig"]
    if c.attrs["State"]["Status"] == "running":
        c.wait(timeout=30)
        c.reload()
    found = (f"(found netadmin with Privileged={bool(host.get('Privileged'))}, "
             f"CapDrop={sorted(_caps(host.get('CapDrop')))}, CapAdd={sorted(_caps(host.get('CapAdd')))})")
    if c.attrs["State"]["ExitCode"] != 0 or "10.9.9.9" not in c.logs().decode(errors="replace"):
        last = (c.logs().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return False, (f"netadmin exited with code {c.attrs['State']['ExitCode']} without adding 10.9.9.9 to its "
                       f"loopback interface; its last log line: {last!r} {found}.")
    if host.get("Privileged"):
        return False, f"netadmin works, but as a privileged container: drop the privileges {found}."
    if "ALL" not in _caps(host.get("CapDrop")):
        return False, f"netadmin works, but still has docker's default capabilities: drop them all first {found}."
    if _caps(host.get("CapAdd")) != {"NET_ADMIN"}:
        return False, f"netadmin works, but adds {sorted(_caps(host.get('CapAdd')))}: one capability is enough {found}."
    return True, "netadmin changed its network with CAP_NET_ADMIN and nothing else."


def _risky(attrs) -> bool:
    host = attrs["HostConfig"]
    mounts = [m.get("Source", "") for m in attrs.get("Mounts", [])]
    return bool(host.get("Privileged") or _caps(host.get("CapAdd")) & RISKY_CAPS or host.get("PidMode") == "host"
                or any(m.endswith("docker.sock") or m == DOCKER_SOCKET for m in mounts))


@exercise("privileged", "find-risky", "Find the containers that can take over the host", (
    "Think back to sections 2 and 3: which two things let a container reach the host? Look for them in each suspect's configuration.",
    "Inspect each container: lab.client.containers.get(lab.name('metrics')).attrs (or `docker inspect`); read "
    "HostConfig (Privileged, CapAdd, PidMode) and Mounts. A socket mounted read-only is still the whole engine.",
    "answer = {\"metrics\", \"debug-shell\"}: metrics mounts the docker socket, debug-shell shares the host's PID "
    "namespace with CAP_SYS_PTRACE; web drops every capability.",
))
def find_risky(lab, answer: set | list | None = None):
    suspects = {}
    for name in ("metrics", "web", "debug-shell"):
        try:
            suspects[name] = lab.client.containers.get(lab.name(name)).attrs  # a full inspect
        except docker.errors.NotFound:
            pass
    if len(suspects) < 3:
        found = f"only {', '.join(sorted(suspects))}" if suspects else "none"
        return False, f"Found {found} of the three suspects: start them first (the cell above the exercise)."
    truth = {n for n, a in suspects.items() if _risky(a)}
    given = set(answer or [])
    if given == truth:
        return True, f"Right: {', '.join(sorted(truth))} can take over this machine; the other one cannot."
    unknown = sorted(given - set(suspects))
    wrong = sorted(given - truth - set(unknown))
    missed = sorted(truth - given)
    return False, " ".join(filter(None, [
        f"Your answer is {sorted(given) or 'empty'}." if given else "Your answer is empty.",
        f"Not a suspect's name: {', '.join(unknown)}." if unknown else "",
        f"Not risky: {', '.join(wrong)}." if wrong else "",
        f"{len(missed)} risky container(s) missing from your answer." if missed else ""]))


@exercise("privileged", "pid-sidecar", "Debug a container's processes without --pid=host", (
    "A debugging container can join another container's PID namespace instead of the host's: which run option "
    "chooses the PID namespace, and what else can it name besides `host`?",
    "`docker run --help`, the --pid option (`--pid container:NAME`); in a shell cell the names are "
    "$LAB_PREFIX-app and $LAB_PREFIX-debugger. Then `docker exec ... ps` shows what it sees.",
    "!docker run -d --name {lab.name('debugger')} --pid container:{lab.name('app')} labkit/busybox sleep 3600 "
    "and then !docker exec {lab.name('debugger')} ps",
))
def pid_sidecar(lab):
    app = _container(lab, "app")
    if app is None or app.status != "running":
        return False, f"{lab.name('app')} is not running: run the cell that starts it (above the exercise)."
    debugger = _container(lab, "debugger")
    if debugger is None:
        return False, f"No container {lab.name('debugger')} in this session."
    host = debugger.attrs["HostConfig"]
    pid_mode = host.get("PidMode") or ""
    if debugger.status != "running":
        return False, f"Found {lab.name('debugger')}, but it is {debugger.status}: it must keep running (e.g. sleep 3600)."
    if host.get("Privileged") or host.get("PidMode") == "host" or _caps(host.get("CapAdd")):
        return False, (f"Found a debugger with Privileged={bool(host.get('Privileged'))}, PidMode={pid_mode or 'private'!r}, "
                       f"CapAdd={sorted(_caps(host.get('CapAdd')))}: it needs none of these.")
    joined = pid_mode.removeprefix("container:") if pid_mode.startswith("container:") else None
    try:
        target = lab.client.containers.get(joined).id if joined else None
    except docker.errors.NotFound:
        target = None
    if target != app.id:
        where = f"PidMode {pid_mode!r}" if pid_mode else "its own PID namespace (no PidMode)"
        return False, f"Found a debugger running with {where}: it does not share the PID namespace of app."
    seen = debugger.exec_run(["ps", "-o", "pid,args"]).output.decode(errors="replace")
    if "httpd -f" not in seen:
        return False, f"The debugger runs, but `ps` in it does not show app's httpd; it sees:\n{seen.strip()}"
    return True, ("The debugger sees app's processes (its PID 1 is app's httpd) with no privilege and without "
                  "the host's PID namespace.")
