"""Run, start, exec, logs and copy through the docker SDK; wait strategies; cleanup guaranteed."""
from __future__ import annotations

import io
import os
import re
import shlex
import socket
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import docker

from .core.render import Renderable, Stack, callout, command_line, seconds, short_name, table, volatile
from .core.session import Session
from .core.errors import CommandFailed, CommandTimeout, LabkitError, ReadinessTimeout, translated

LOOPBACK = "127.0.0.1"


@dataclass
class RunResult(Renderable):
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    equivalent: str = ""  # the docker command line this result stands for

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> "RunResult":
        """Raise CommandFailed unless the command succeeded; returns self for chaining."""
        if self.exit_code != 0:
            raise CommandFailed(self.command, self.exit_code, self.stdout, self.stderr)
        return self

    def _render(self):
        blocks = [table(["command", "exit code", "duration"], [(self.command, self.exit_code, seconds(self.duration))],
                        status_column=None)]
        if self.stdout:
            blocks.append(callout("info", "stdout", "", details=self.stdout.rstrip()))
        if self.stderr:
            blocks.append(callout("warning", "stderr", "", details=self.stderr.rstrip()))
        return Stack(blocks)


def _cmd_text(command: Sequence[str] | str | None) -> str:
    if command is None:
        return "(image default)"
    return command if isinstance(command, str) else " ".join(command)


def _loopback_ports(ports: dict[Any, Any] | None) -> dict[str, Any] | None:
    """Every published port binds to 127.0.0.1 (a random host port unless one is given)."""
    if not ports:
        return None
    out: dict[str, Any] = {}
    for cport, host in ports.items():
        key = str(cport) if "/" in str(cport) else f"{cport}/tcp"
        if isinstance(host, tuple):
            host = host[1]
        out[key] = (LOOPBACK, host)
    return out


# The docker CLI flag of each SDK `containers.create` option, by how its value becomes arguments
# (written by hand: the SDK has no CLI translation).
_VALUE = dict(name="--name", user="--user", working_dir="-w", network="--network", network_mode="--network",
              pid_mode="--pid", ipc_mode="--ipc", userns_mode="--userns", uts_mode="--uts", cgroupns="--cgroupns",
              platform="--platform", hostname="--hostname", mem_limit="--memory", pids_limit="--pids-limit",
              runtime="--runtime", shm_size="--shm-size", stop_signal="--stop-signal")
_EACH = dict(cap_add="--cap-add", cap_drop="--cap-drop", security_opt="--security-opt", devices="--device",
             dns="--dns", group_add="--group-add", device_cgroup_rules="--device-cgroup-rule")
_PAIRS = dict(environment="-e", sysctls="--sysctl", labels="--label", extra_hosts="--add-host")
_FLAG = dict(privileged="--privileged", read_only="--read-only", init="--init", stdin_open="-i", tty="-t")


def run_command(verb: str, image: str, command: Sequence[str] | str | None = None, **options: Any) -> str:
    """The `docker run`/`docker create` command line for SDK create options, e.g.
    run_command("run --rm", "labkit/busybox", "echo hi") == "docker run --rm labkit/busybox echo hi".
    The session's labels (labkit.session, ...) are left out for readability; options the CLI has no
    flag for are named in a trailing comment rather than dropped."""
    args, extra = ["docker", *verb.split()], []
    entry = options.pop("entrypoint", None)
    entry = shlex.split(entry) if isinstance(entry, str) else list(entry or [])
    for key, value in options.items():
        if value is None or value is False or value == {} or value == []:
            continue
        if key in _VALUE:
            args += [_VALUE[key], str(value)]
        elif key in _EACH:
            args += [a for v in ([value] if isinstance(value, str) else value) for a in (_EACH[key], str(v))]
        elif key in _PAIRS:
            sep = ":" if key == "extra_hosts" else "="
            items = [f"{k}{sep}{v}" for k, v in value.items()] if isinstance(value, dict) else list(value)
            args += [a for item in items for a in (_PAIRS[key], item)]
        elif key in _FLAG:
            args.append(_FLAG[key])
        elif key == "volumes":
            args += [a for v in _volume_specs(value) for a in ("-v", v)]
        elif key == "mounts":
            args += [a for m in value for a in ("--mount", f"type={m.get('Type')},source={m.get('Source')},"
                                                           f"target={m.get('Target')}" + (",readonly" if m.get("ReadOnly") else ""))]
        elif key == "ports":
            args += [a for cport, (ip, host) in (_loopback_ports(value) or {}).items()
                     for a in ("-p", f"{ip}:{host or ''}:{cport.removesuffix('/tcp')}")]
        elif key == "tmpfs":
            args += [a for k, v in value.items() for a in ("--tmpfs", f"{k}:{v}" if v else k)]
        else:
            extra.append(f"{key}={value!r}")
    if entry:
        args += ["--entrypoint", entry[0]]
    args.append(image)
    args += entry[1:] + (shlex.split(command) if isinstance(command, str) else list(command or []))
    return command_line(args) + (f"  # and SDK options {', '.join(extra)}" if extra else "")


def _volume_specs(volumes: Any) -> list[str]:
    if not isinstance(volumes, dict):
        return [str(v) for v in volumes]
    return [f"{src}:{b['bind']}" + (f":{b['mode']}" if b.get("mode") else "") if isinstance(b, dict) else f"{src}:{b}"
            for src, b in volumes.items()]


def exec_command(container: str, command: Sequence[str] | str, *, user: str = "", workdir: str | None = None,
                 environment: dict[str, str] | None = None) -> str:
    """The `docker exec` command line of Container.exec."""
    args = ["docker", "exec"] + (["-u", user] if user else []) + (["-w", workdir] if workdir else [])
    args += [a for k, v in (environment or {}).items() for a in ("-e", f"{k}={v}")]
    return command_line(args + [container] + (shlex.split(command) if isinstance(command, str) else list(command)))


def _create(session: Session, image: str, command: Sequence[str] | str | None, **kwargs: Any):
    labels = dict(kwargs.pop("labels", None) or {})
    labels.update(session.labels)
    kwargs["ports"] = _loopback_ports(kwargs.get("ports"))
    with translated(f"Docker refused to create a container from {image!r}", "Check the options passed to run()/start().",
                    image=image):
        return session.client.containers.create(image, command, labels=labels, **kwargs)


def run(session: Session, image: str, command: Sequence[str] | str | None = None, *, check: bool = False,
        timeout: float | None = 300, **kwargs: Any) -> RunResult:
    """`docker run --rm`: run to completion, capture stdout and stderr apart, always remove."""
    start = time.monotonic()
    container = _create(session, image, command, **kwargs)
    try:
        container.start()
        try:
            status = container.wait(timeout=timeout)
        except Exception:  # requests' ReadTimeout/ConnectionError: the command outlived its timeout
            logs = container.logs().decode(errors="replace")
            raise CommandTimeout(f"`{_cmd_text(command)}` did not finish within {timeout} s.", logs) from None
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    result = RunResult(_cmd_text(command), int(status.get("StatusCode", -1)), stdout, stderr,
                       time.monotonic() - start, run_command("run --rm", image, command, **kwargs))
    return result.check() if check else result


# --- wait strategies ---------------------------------------------------------------------

class WaitStrategy:
    def ready(self, container: "Container") -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


@dataclass
class LogLine(WaitStrategy):
    pattern: str
    times: int = 1

    def ready(self, container: "Container") -> bool:
        return len(re.findall(self.pattern, container.logs(), re.MULTILINE)) >= self.times

    def describe(self) -> str:
        return f"log line matching {self.pattern!r}"


def _listening(pid: int, port: int) -> bool | None:
    """Whether something listens on `port` inside the net namespace of `pid` (None: can't see)."""
    found = None
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        found = bool(found)
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return found


@dataclass
class TcpPort(WaitStrategy):
    """The port accepts connections on 127.0.0.1 *and* a process listens on it inside the
    container (docker's userland proxy accepts connections before the app does)."""

    port: int

    def ready(self, container: "Container") -> bool:
        pid = container.attrs()["State"].get("Pid") or 0
        listening = _listening(pid, self.port) if pid else None
        if listening is False:
            return False
        try:
            host_port = container.host_port(self.port)
        except LabkitError:  # not published: a listener inside the container is all there is to wait for
            return bool(listening)
        try:
            with socket.create_connection((LOOPBACK, host_port), timeout=1):
                return True
        except OSError:
            return False

    def describe(self) -> str:
        return f"TCP port {self.port}"


@dataclass
class Http(WaitStrategy):
    port: int
    path: str = "/"
    status: int = 200

    def ready(self, container: "Container") -> bool:
        url = f"http://{LOOPBACK}:{container.host_port(self.port)}{self.path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == self.status
        except urllib.error.HTTPError as exc:
            return exc.code == self.status
        except OSError:
            return False

    def describe(self) -> str:
        return f"HTTP {self.status} on port {self.port}{self.path}"


@dataclass
class Exec(WaitStrategy):
    command: Sequence[str] | str

    def ready(self, container: "Container") -> bool:
        return container.exec(self.command).exit_code == 0

    def describe(self) -> str:
        return f"`{_cmd_text(self.command)}` succeeding"


# --- long-running containers -------------------------------------------------------------

class Container(Renderable):
    """A started container that belongs to a lab; a context manager that always removes it."""

    def __init__(self, session: Session, model: Any, equivalent: str = "") -> None:
        self.session = session
        self.model = model
        self.equivalent = equivalent  # the `docker run -d`/`docker create` command line that made it
        self._attrs: dict[str, Any] = dict(model.attrs)  # what it looked like when last asked

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def id(self) -> str:
        return self.model.id

    def attrs(self) -> dict[str, Any]:
        """The container as the engine sees it now (`docker inspect`)."""
        self.model.reload()
        self._attrs = dict(self.model.attrs)
        return self._attrs

    def status(self) -> str:
        return self.attrs()["State"]["Status"]

    def host_port(self, port: int | str) -> int:
        key = str(port) if "/" in str(port) else f"{port}/tcp"
        bindings = (self.attrs()["NetworkSettings"].get("Ports") or {}).get(key)
        if not bindings:
            raise LabkitError(f"Port {key} of {self.name} is not published.",
                              f"Start the container with ports={{{port!r}: None}}.")
        return int(bindings[0]["HostPort"])

    def exec(self, command: Sequence[str] | str, *, check: bool = False, user: str = "",
             workdir: str | None = None, environment: dict[str, str] | None = None) -> RunResult:
        start = time.monotonic()
        with translated(f"Cannot exec in {self.name}", "Is the container still running? `container.status()` tells."):
            code, (out, err) = self.model.exec_run(command, demux=True, user=user, workdir=workdir,
                                                   environment=environment)
        result = RunResult(_cmd_text(command), code if code is not None else -1,
                           (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"),
                           time.monotonic() - start,
                           exec_command(self.name, command, user=user, workdir=workdir, environment=environment))
        return result.check() if check else result

    def logs(self, tail: int | str = "all") -> str:
        return self.model.logs(tail=tail).decode(errors="replace")

    def copy_in(self, src: str | os.PathLike, dest_dir: str) -> None:
        """Copy a host file or directory into `dest_dir` of the container (`docker cp` in)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(src), arcname=os.path.basename(os.path.normpath(str(src))))
        if not self.model.put_archive(dest_dir, buf.getvalue()):
            raise LabkitError(f"Copying {src} into {self.name}:{dest_dir} failed.", "Does the directory exist?")

    def copy_out(self, src: str, dest_dir: str | os.PathLike) -> Path:
        """Copy a file or directory out of the container into `dest_dir`; returns the new path."""
        with translated(f"Cannot copy {src} out of {self.name}", "Check the path with container.exec('ls ...')."):
            stream, _ = self.model.get_archive(src)
        from .archive import safe_extract
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            safe_extract(tar, dest_dir)  # tarfile's filter="data" needs Python 3.11.4+
            first = tar.getnames()[0]
        return Path(dest_dir) / first

    def wait_for(self, strategy: WaitStrategy, timeout: float = 30) -> "Container":
        deadline = time.monotonic() + timeout
        while True:
            state = self.attrs()["State"]
            if state["Status"] in ("exited", "dead"):
                raise ReadinessTimeout(f"{self.name} exited with code {state.get('ExitCode')} before "
                                       f"{strategy.describe()}.", self.logs(),
                                       "Read its last log lines above: the command or its configuration is wrong.")
            try:
                if strategy.ready(self):
                    return self
            except LabkitError:  # e.g. exec racing the container's exit: the next round tells
                pass
            if time.monotonic() > deadline:
                raise ReadinessTimeout(f"{self.name} was not ready ({strategy.describe()}) within {timeout} s.",
                                       self.logs())
            time.sleep(0.1)

    def stop(self, timeout: int = 5) -> None:
        self.model.stop(timeout=timeout)

    def remove(self) -> None:
        try:
            self.model.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def _render(self):
        attrs = self._attrs  # no engine call when shown: call attrs() first to refresh
        ports = ", ".join(f"{k}->{volatile(v[0]['HostPort'])}" for k, v in
                          (attrs["NetworkSettings"].get("Ports") or {}).items() if v)
        return table(["name", "image", "status", "ports"],
                     [(short_name(self.name), attrs["Config"]["Image"],
                       attrs["State"]["Status"], ports)])


def create(session: Session, image: str, command: Sequence[str] | str | None = None, *, name: str | None = None,
           **kwargs: Any) -> Container:
    """`docker create`: a labelled container that exists but runs nothing (yet)."""
    kwargs["name"] = session.name(name) if name else None
    return Container(session, _create(session, image, command, **kwargs),
                     run_command("create", image, command, **kwargs))


def start(session: Session, image: str, command: Sequence[str] | str | None = None, *, name: str | None = None,
          wait: WaitStrategy | None = None, timeout: float = 30, **kwargs: Any) -> Container:
    """`docker run -d`: start a labelled container, wait until ready, remove it if that fails."""
    kwargs["name"] = session.name(name) if name else None
    container = Container(session, _create(session, image, command, **kwargs), run_command("run -d", image, command, **kwargs))
    try:
        with translated(f"Docker could not start {short_name(container.name)} from {image!r}",
                        "Read the reason above: an option the engine refuses, or a command the image lacks."):
            container.model.start()
        if wait is not None:
            container.wait_for(wait, timeout)
        container.attrs()  # its state and ports now, for showing it
    except BaseException:
        container.remove()
        raise
    return container
