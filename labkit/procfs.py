"""Processes, namespaces and cgroups as the host sees them: which namespaces two processes share,
the chain of parents of a container's process (shim, containerd, dockerd), a container's cgroup
limits and usage, and its processes. A process of another user (a container's, when you are not
root) is read through the engine."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import LabkitError
from .core.render import Renderable, short_name, table, volatile

if TYPE_CHECKING:
    from .lab import Lab

# --- processes and namespaces ------------------------------------------------------------

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def namespaces(pid: int, lab: "Lab | None" = None) -> dict[str, str]:
    """The namespaces of a host process, e.g. {"net": "net:[4026531992]"} ("?" when it is gone)."""
    return _namespaces([pid], lab)[pid]


def _namespaces(pids: list[int], lab: "Lab | None") -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    denied: list[int] = []
    for pid in pids:
        out[pid] = {}
        for ns in NAMESPACES:
            try:
                out[pid][ns] = os.readlink(f"/proc/{pid}/ns/{ns}")
            except PermissionError:  # another user's process (the engine's containers, when you are not root)
                if os.geteuid() != 0:
                    denied.append(pid)
                    break
                out[pid][ns] = "?"  # even root may not look (e.g. a sandbox's PID 1)
            except OSError:
                out[pid][ns] = "?"
    if denied:
        out.update(_namespaces_via_engine(denied, lab))
    return out


def _namespaces_via_engine(pids: list[int], lab: "Lab | None") -> dict[int, dict[str, str]]:
    """/proc/PID/ns of other users' processes, read by a helper container in the host's PID
    namespace: the engine is root on this machine (notebook 05), so a member of its group may ask."""
    if lab is None:
        raise LabkitError(f"Process {pids[0]} belongs to another user (the engine's containers run as root): its "
                          "namespaces are not readable by you.",
                          "Pass lab=lab: labkit then asks the engine, which may read them (it is root here).")
    script = " ; ".join(f"for n in {' '.join(NAMESPACES)}; do echo {pid} $n $(readlink /proc/{pid}/ns/$n || echo '?'); done"
                        for pid in pids)
    result = lab.run("labkit/busybox", ["sh", "-c", script], pid_mode="host", cap_add=["SYS_PTRACE"])
    out: dict[int, dict[str, str]] = {pid: {ns: "?" for ns in NAMESPACES} for pid in pids}
    for line in result.stdout.splitlines():
        pid, ns, link = (line.split(" ", 2) + ["?", "?"])[:3]
        if pid.isdigit() and int(pid) in out and ns in NAMESPACES:
            out[int(pid)][ns] = link.strip() or "?"
    return out


@dataclass
class NamespaceComparison(Renderable):
    a: str
    b: str
    rows: list[tuple[str, str, str, str]]

    def _render(self):
        return table(["namespace", self.a, self.b, "shared"], self.rows, status_column="shared",
                     title=f"Namespaces: {self.a} vs {self.b}")


def compare_namespaces(pid_a: int, pid_b: int, a: str = "A", b: str = "B", lab: "Lab | None" = None) -> NamespaceComparison:
    """Which namespaces two host processes share. A process of another user (a container's, when you
    are not root) is read through the engine: pass `lab`."""
    found = _namespaces([pid_a, pid_b], lab)
    na, nb = found[pid_a], found[pid_b]
    rows = [(ns, volatile(na[ns]), volatile(nb[ns]), "?" if "?" in (na[ns], nb[ns]) else "yes" if na[ns] == nb[ns] else "no")
            for ns in NAMESPACES]
    return NamespaceComparison(a, b, rows)


def _proc_stat(pid: int) -> tuple[str, int]:
    text = Path(f"/proc/{pid}/stat").read_text()
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, int(text.rsplit(")", 1)[1].split()[1])


@dataclass
class ProcessChain(Renderable):
    rows: list[tuple[str, str, str]]

    def _render(self):
        return table(["pid", "process", "role"], self.rows, title="Who runs the container (child at the top)")


ROLES = {
    "dockerd": "Docker engine: API, images, networks, volumes",
    "containerd": "containerd: container lifecycle, image content, snapshots",
    "containerd-shim": "shim: parent of the container, keeps it alive without dockerd",
    "containerd-shim-runc-v2": "shim: parent of the container, keeps it alive without dockerd",
    "runc": "runc: creates namespaces and cgroups, then exits",
}


def process_chain(pid: int, depth: int = 4) -> ProcessChain:
    """The container's main process and its ancestors, each with its role."""
    rows = []
    current = pid
    for i in range(depth):
        try:
            comm, ppid = _proc_stat(current)
        except OSError:
            break
        role = "the container's main process (PID 1 inside)" if i == 0 else ROLES.get(comm, "")
        rows.append((volatile(current), comm, role))
        if ppid <= 1:
            break
        current = ppid
    return ProcessChain(rows)


# --- cgroups ---------------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 2**62  # v1 writes "no limit" as a huge page-aligned number


def _cgroup_paths(pid: int) -> dict[str, Path]:
    """controller -> the host directory of this process's cgroup ("" is the v2 unified tree)."""
    out: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            base = CGROUP_ROOT / c if c else (CGROUP_ROOT / "unified" if (CGROUP_ROOT / "unified").is_dir() else CGROUP_ROOT)
            out[c] = base / path.lstrip("/")
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _limit(value: str | None) -> int | None:
    if value is None or value == "max":
        return None
    n = int(value.split()[0])
    return None if n >= UNLIMITED else n


@dataclass
class CgroupUsage(Renderable):
    """A container's cgroup limits and usage, read on the host (cgroup v1 or v2)."""

    name: str
    version: int
    memory_limit: int | None
    memory_usage: int | None
    oom_kills: int | None
    pids_limit: int | None
    pids_current: int | None
    cpu_quota: float | None  # CPUs, e.g. 0.5

    def _render(self):
        def lim(v, fmt=str):
            return "no limit" if v is None else fmt(v)
        def mib(n):  # docker's "32m" means MiB: show limits in the same unit
            return f"{n / 2**20:.1f} MiB"
        rows = [("memory limit", lim(self.memory_limit, mib)),
                ("memory in use", volatile("?" if self.memory_usage is None else mib(self.memory_usage))),
                ("OOM kills", "?" if self.oom_kills is None else str(self.oom_kills)),
                ("pids limit", lim(self.pids_limit)),
                ("pids now", "?" if self.pids_current is None else str(self.pids_current)),
                ("CPU limit", lim(self.cpu_quota, lambda c: f"{c:g} CPUs"))]
        return table(["cgroup", "value"], rows, title=f"cgroup v{self.version} of {short_name(self.name)} (read on the host)")


def cgroup(container) -> CgroupUsage:
    """Limits and usage of a running container, from the host's /sys/fs/cgroup."""
    attrs = container.attrs()
    pid = attrs["State"].get("Pid") or 0
    if not pid or not Path(f"/proc/{pid}").exists():
        raise LabkitError(f"{container.name} is not running on this machine (no process {pid} here).",
                          "Start it first; cgroups of a remote or VM-based engine are not visible from here.")
    usage = _read_cgroup(container.name, _cgroup_paths(pid))
    _require_enforced(attrs.get("HostConfig") or {}, usage)
    return usage


def _require_enforced(asked: dict[str, Any], usage: "CgroupUsage") -> None:
    """Stop the lesson with a skip banner when the engine dropped the limits it was asked for: a
    rootless engine on cgroup v1 (no cgroup of its own to divide) accepts --memory and
    --pids-limit and applies neither, so a table of limits would show nothing being limited."""
    dropped = [flag for flag, want, got in (("--memory", asked.get("Memory"), usage.memory_limit),
                                            ("--pids-limit", asked.get("PidsLimit"), usage.pids_limit))
               if want and want > 0 and got is None]
    if dropped:
        from .core.errors import LabSkipped
        raise LabSkipped(f"This engine accepted {' and '.join(dropped)} for {short_name(usage.name)} but does not "
                         f"enforce {'them' if len(dropped) > 1 else 'it'}: a rootless engine on cgroup v1 gets no cgroup of its own to divide. The rest of "
                         "this lesson shows limits at work, so it stops here (skipped, not failed).",
                         "Run it on a root engine, or on a host with cgroup v2 and systemd delegation, where a "
                         "rootless engine enforces limits too (`labkit doctor` shows the cgroup version).")


def _read_cgroup(name: str, paths: dict[str, Path]) -> "CgroupUsage":
    if "memory" in paths:  # v1: one tree per controller
        mem, pids, cpu = paths["memory"], paths.get("pids"), paths.get("cpu")
        oom = _read(mem / "memory.oom_control")
        quota, period = (_read(cpu / "cpu.cfs_quota_us"), _read(cpu / "cpu.cfs_period_us")) if cpu else (None, None)
        return CgroupUsage(name, 1, _limit(_read(mem / "memory.limit_in_bytes")),
                           _limit(_read(mem / "memory.usage_in_bytes")),
                           int(oom.split("oom_kill ")[1].split()[0]) if oom and "oom_kill " in oom else None,
                           _limit(_read(pids / "pids.max")) if pids else None,
                           _limit(_read(pids / "pids.current")) if pids else None,
                           int(quota) / int(period) if quota and period and int(quota) > 0 else None)
    unified = paths[""]
    events = _read(unified / "memory.events") or ""
    cpu_max = (_read(unified / "cpu.max") or "max").split()
    return CgroupUsage(name, 2, _limit(_read(unified / "memory.max")), _limit(_read(unified / "memory.current")),
                       int(events.split("oom_kill ")[1].split()[0]) if "oom_kill " in events else None,
                       _limit(_read(unified / "pids.max")), _limit(_read(unified / "pids.current")),
                       int(cpu_max[0]) / int(cpu_max[1]) if cpu_max[0] != "max" else None)


@dataclass
class HostProcesses(Renderable):
    name: str
    rows: list[tuple[Any, ...]]  # (host pid, pid inside, user on the host, command)

    def _render(self):
        return table(["host pid", "pid inside", "host user", "command"],
                     [(volatile(h), i, u, c) for h, i, u, c in self.rows],
                     title=f"Processes of {short_name(self.name)}, seen from the host")


def container_processes(container) -> HostProcesses:
    """Every process in the container's cgroup: its pid on the host and inside, and its host user."""
    import pwd
    pid = container.attrs()["State"].get("Pid") or 0
    if not pid or not Path(f"/proc/{pid}").exists():
        raise LabkitError(f"{container.name} has no process on this machine.", "Start the container first.")
    paths = _cgroup_paths(pid)
    group = paths.get("pids") or paths.get("memory") or paths[""]
    if container.id in str(group):  # the container has a cgroup of its own: it lists every process, exec'd ones too
        pids = sorted(int(p) for p in (_read(group / "cgroup.procs") or str(pid)).split())
    else:  # e.g. rootless on cgroup v1: no cgroup per container; its main process and descendants
        pids = descendants(pid)
    rows = []
    for host_pid in pids:
        status = _read(Path(f"/proc/{host_pid}/status")) or ""
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        uid = int(fields.get("Uid", "0").split()[0])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        cmd = (_read(Path(f"/proc/{host_pid}/cmdline")) or "").replace("\0", " ").strip()
        rows.append((host_pid, int(fields.get("NSpid", str(host_pid)).split()[-1]), f"{user} (uid {uid})", cmd[:60]))
    return HostProcesses(container.name, rows)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                children.setdefault(_proc_stat(int(p.name))[1], []).append(int(p.name))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return sorted(out)

