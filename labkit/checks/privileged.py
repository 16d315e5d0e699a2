"""Checks of notebook 05 (privileged containers and breakouts), its questions, and the services
of its break-it-fix-it mission."""
from __future__ import annotations

import re
import time
from pathlib import PurePosixPath

import docker

from ..core.engine import unix_socket
from ..core.render import table
from ..core.session import SESSION_LABEL
from ..exercises import exercise
from ..predictions import question
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


# --- Predict, then run ---------------------------------------------------------------------------
question("privileged", "who-may-mount", "Processes in a default container run as root (uid 0). Which of the next "
         "cell's two containers may mount a filesystem (a tmpfs) inside itself?", [
             "both: root may mount",
             "only the privileged one: mounting needs CAP_SYS_ADMIN, which a default container does not get",
             "neither: a container can never mount anything"],
         answer=1, why="The row 'may mount a filesystem': no in the default container (a short list of "
         "capabilities without CAP_SYS_ADMIN, and a seccomp filter), yes in the privileged one.")
question("privileged", "netadmin-default", "The next cell runs `ip addr add 10.9.9.9/32 dev lo` as root twice: "
         "in a privileged container, then in a default one. What does the default one print?", [
             "the new address, like the privileged one: it is root in its own network namespace",
             "'Operation not permitted': changing an interface needs a capability Docker does not give by default",
             "nothing: busybox has no `ip` command"],
         answer=1, why="The default container's line: RTNETLINK answers 'Operation not permitted'. Root without "
         "that capability may not change even its own network namespace (which one: Exercise 1).")


# --- Break it, fix it: a socket in the fleet ------------------------------------------------------
LOGS = "/logs"
FLEET = {  # service: (its job, {volume: mount point}); they look alike on purpose
    "ci-agent": ("while true; do echo build ok >> /workspace/builds.log; sleep 5; done",
                 {"ci-workspace": "/workspace", "ci-cache": "/var/cache/ci"}),
    "frontend": ("while true; do echo 'GET / 200' >> /logs/access.log; sleep 5; done",
                 {"logs": LOGS, "www": "/www"}),
    "log-shipper": ('while true; do echo "shipped $(cat /logs/*.log | wc -l) lines"; sleep 5; done',
                    {"logs": f"{LOGS}:ro"}),
}
SOCKET_HOLDER = "log-shipper"  # mounts the session's engine socket too: what the job never needed
_SHIPPED = re.compile(r"shipped (\d+) lines")


def engine_sockets(lab) -> set[str]:
    """The paths through which this session reaches the engine: its endpoint and the engine itself."""
    paths = {DOCKER_SOCKET}
    if lab.daemon_url.startswith("unix://"):
        paths.add(lab.daemon_url[len("unix://"):])
    if lab.endpoint is not None:
        paths.add(str(lab.endpoint.path))
    return paths


def start_fleet(lab):
    """The mission's three services. The socket holder gets the session's endpoint socket (the
    proxy in front of the engine): the same power, but whatever is made through it carries the
    session's labels, so cleanup and the watchdog find it. A `bind` mount, never a `-v` bind: a
    missing source is an error instead of a new directory on the host."""
    endpoint = str(lab.endpoint.path) if lab.endpoint is not None else unix_socket(lab.daemon_url, "The mission")
    for suffix in sorted({v for _, vols in FLEET.values() for v in vols}):
        lab.volume(suffix)
    for name, (job, vols) in FLEET.items():
        volumes = {lab.name(v): {"bind": where.split(":")[0], "mode": "ro" if where.endswith(":ro") else "rw"}
                   for v, where in vols.items()}
        mounts = [docker.types.Mount("/var/run/docker.sock", endpoint, type="bind")] if name == SOCKET_HOLDER else []
        lab.start("labkit/busybox", ["sh", "-c", job], name=name, volumes=volumes, mounts=mounts)
    return table(["service", "image", "status"], [(n, "labkit/busybox", _container(lab, n).status) for n in FLEET],
                 title="This session's services")


def _reaches_engine(attrs, sockets: set[str]) -> bool:
    """Whether a mount hands the container the engine: a docker.sock anywhere, or a folder that
    holds one of the engine's sockets (/var/run, /run, /)."""
    for m in attrs.get("Mounts", []):
        source, target = m.get("Source", ""), m.get("Destination", "")
        if source.endswith("docker.sock") or target.endswith("docker.sock") or (
                source.startswith("/") and any(PurePosixPath(s).is_relative_to(source) for s in sockets)):
            return True
    return False


@exercise("privileged", "socket-fleet", "Spot and stop a breakout through a mounted socket", (
    "Don't go by the names: what gives a container the engine is something mounted into it (section 2). "
    "Look at what each service has mounted, then at what its job really needs.",
    "`docker inspect -f '{{json .Mounts}}' $LAB_PREFIX-NAME` (in Python: "
    "lab.client.containers.get(lab.name(NAME)).attrs['Mounts']) lists each mount's Source and Destination; "
    "`.Config.Cmd` is the job. A mount cannot be taken out of a container: replace the container (same name, "
    "same job, the volumes the job uses) without the socket.",
    "log-shipper has the socket at /var/run/docker.sock and only reads the logs volume: in a shell cell, "
    "docker rm -f $LAB_PREFIX-log-shipper, then docker run -d --name $LAB_PREFIX-log-shipper "
    "-v $LAB_PREFIX-logs:/logs:ro labkit/busybox sh -c 'while true; do echo \"shipped $(cat /logs/*.log | "
    "wc -l) lines\"; sleep 5; done'",
))
def socket_fleet(lab):
    services = {n: _container(lab, n) for n in FLEET}
    if all(c is None for c in services.values()):
        return False, "None of the services exists: run the cell that starts them (above the exercise)."
    stopped = [n for n, c in services.items() if n != SOCKET_HOLDER and (c is None or c.status != "running")]
    if stopped:
        return False, (f"{' and '.join(stopped)} {'is' if len(stopped) == 1 else 'are'} not running: only the "
                       "service that can reach the engine should change; start what you stopped again, same job.")
    sockets = engine_sockets(lab)
    running = lab.client.containers.list(filters={"label": f"{SESSION_LABEL}={lab.session.id}"})
    holders = [c for c in running if _reaches_engine(c.attrs, sockets)]
    if holders:
        return False, (f"{len(holders)} running container(s) of this session can still reach the engine through "
                       "a mounted socket: whoever gets a shell there owns this machine.")
    shipper = services[SOCKET_HOLDER]
    if shipper is None or shipper.status != "running":
        state = "does not exist" if shipper is None else f"is {shipper.status}"
        return False, f"No socket is mounted any more, but {SOCKET_HOLDER} {state}: its job (shipping the logs) stopped."
    shipped, deadline = [], time.monotonic() + 10  # a new container prints its first line at once
    while not shipped and time.monotonic() < deadline:
        shipped = [int(n) for n in _SHIPPED.findall(shipper.logs(tail=5).decode(errors="replace"))]
        time.sleep(0 if shipped else 0.3)
    if not shipped:
        return False, f"{SOCKET_HOLDER} runs without the socket, but does not ship: its command is not the job any more."
    if shipped[-1] == 0:
        return False, (f"{SOCKET_HOLDER} runs without the socket, but ships 0 lines: it does not see the logs "
                       "frontend writes (which volume did its job read?).")
    return True, (f"No running container of this session has the engine's socket; {SOCKET_HOLDER} ships the logs "
                  "without it, and ci-agent and frontend still run.")
