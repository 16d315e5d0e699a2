"""Integration tests with containers (notebook 12): run a pytest suite that uses testcontainers,
on the host or through the "wormhole" (inside a container given the docker socket and the working
directory at the same path), and read its JUnit report back."""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from .core import engine
from .core.session import SESSION_LABEL
from .core.render import Renderable, Stack, callout, seconds, table, volatile
from .core.errors import LabkitError

if TYPE_CHECKING:
    from .lab import Lab

RUNNER_BASE = "labkit/python:bookworm"


@dataclass
class Case:
    name: str
    outcome: str  # passed, failed, error, skipped
    seconds: float
    message: str = ""


@dataclass
class TestRun(Renderable):
    where: str  # "host", "container" or a phrase ("against the server")
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""

    __test__ = False  # not a pytest test class

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.outcome in ("passed", "skipped") for c in self.cases)

    def outcome(self, name: str) -> str | None:
        return next((c.outcome for c in self.cases if c.name == name or c.name.endswith("::" + name)), None)

    def _render(self):
        rows = [(c.name, c.outcome, volatile(seconds(c.seconds)), c.message.splitlines()[0][:80] if c.message else "")
                for c in self.cases]
        counts = {o: sum(c.outcome == o for c in self.cases) for o in ("passed", "failed", "error", "skipped")}
        where = {"host": "on the host", "container": "in a container"}.get(self.where, self.where)
        title = (f"pytest {where}: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)
                 + f" in {volatile(seconds(self.seconds))}")
        blocks = [table(["test", "result", "time", "message"], rows, title=title, status_column="result")]
        if not self.cases:
            blocks.append(callout("error", "No test ran", "pytest reported no test.", details=self.output[-1500:]))
        return Stack(blocks)


def read_junit(path: Path, where: str, elapsed: float, output: str) -> TestRun:
    run = TestRun(where, seconds=elapsed, output=output)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return run
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = node.get("message") or (node.text or "")
                break
        module = (case.get("classname") or "").rpartition(".")[2]
        run.cases.append(Case(f"{module}::{case.get('name')}", outcome, float(case.get("time") or 0), message))
    return run


def _env(lab: "Lab", image: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {"SERVICE_IMAGE": image, "LAB_LABELS": json.dumps(lab.labels),
            # Ryuk (testcontainers' reaper) would be pulled from a registry; labkit's labels and
            # cleanup do its job here (notebook 12 shows both).
            "TESTCONTAINERS_RYUK_DISABLED": "true", **(extra or {})}


PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]


def pytest_subprocess(workdir: str | os.PathLike, args: Sequence[str], env: Mapping[str, str], where: str,
                      timeout: float = 300) -> TestRun:
    """pytest in `workdir` in a subprocess of this kernel's Python; its JUnit report read back."""
    workdir = Path(workdir)
    report = workdir / ".report.xml"
    report.unlink(missing_ok=True)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, *PYTEST, f"--junitxml={report}", *args], cwd=workdir,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabkitError(f"The test run took longer than {timeout:.0f} s and was stopped.",
                          "A service that never gets ready makes its wait strategy time out: look at its logs.") from None
    return read_junit(report, where, time.monotonic() - start, proc.stdout + proc.stderr)


def _host_env(lab: "Lab", image: str, env: Mapping[str, str] | None) -> dict[str, str]:
    # The published ports are on this machine's loopback. Said explicitly: testcontainers guesses
    # from /.dockerenv, and a notebook server that itself runs in a container would guess wrong.
    return {"DOCKER_HOST": lab.daemon_url, "TC_HOST": "127.0.0.1", "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
            **_env(lab, image, env)}


def run_pytest(lab: "Lab", workdir: str | os.PathLike, image: str, tests: Sequence[str] = (),
               env: Mapping[str, str] | None = None, timeout: float = 300) -> TestRun:
    """pytest in `workdir` on the host, the service image passed as SERVICE_IMAGE."""
    return pytest_subprocess(workdir, tests, _host_env(lab, image, env), "host", timeout)


def start_pytest(lab: "Lab", workdir: str | os.PathLike, image: str, tests: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """The same run in the background (the lab stops it at cleanup): to kill it half-way."""
    proc = subprocess.Popen([sys.executable, *PYTEST, *tests], cwd=workdir,
                            env={**os.environ, **_host_env(lab, image, env)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.track_process(proc)
    return proc


def runner_image(lab: "Lab") -> str:
    """An image with Debian's python3, pytest and Docker SDK plus the testcontainers package this
    kernel uses (pure Python, copied from this environment: no package index needed)."""
    dist = importlib.metadata.distribution("testcontainers")
    package = Path(str(dist.locate_file("testcontainers")))
    info = Path(str(dist._path))  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="labkit-runner-") as tmp:
        shutil.copytree(package, Path(tmp, "site", "testcontainers"), ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(info, Path(tmp, "site", info.name))
        lab.build("test-runner", f"FROM {RUNNER_BASE}\nCOPY site/ /usr/lib/python3/dist-packages/\n", context=tmp)
    return lab.name("test-runner")


# In a container, testcontainers reaches the service on the bridge network only when it finds its own
# container in /proc/self/cgroup: under cgroup v2, or on a rootless engine, no container is named there,
# and it guesses the gateway and the published port instead, which is bound to a loopback (the host's,
# or RootlessKit's) the job cannot reach. Said outright, as CI configurations do.
BRIDGE = {"TESTCONTAINERS_CONNECTION_MODE": "bridge_ip"}


def wormhole(lab: "Lab", workdir: str | os.PathLike, image: str, runner: str, tests: Sequence[str] = (),
             env: Mapping[str, str] | None = None, timeout: float = 300) -> TestRun:
    """The same pytest run inside a container that gets the docker socket and `workdir` mounted at
    the same path: paths the tests hand to the engine mean the same on both sides."""
    workdir = Path(workdir).resolve()
    socket = engine.unix_socket(lab.daemon_url, "The wormhole")
    report = workdir / ".report-container.xml"
    report.unlink(missing_ok=True)
    # run as the notebook's user (files it writes stay yours), in the socket's group (to reach it);
    # on a rootless engine that user is the engine's root (uid 0 inside is you outside), who owns
    # the socket already: your own uid inside would be a stranger's subordinate id outside
    if engine.is_rootless(lab.client):
        ids = {"user": "0:0"}
    else:
        ids = {"user": f"{os.getuid()}:{os.getgid()}", "group_add": [str(os.stat(socket).st_gid)]}
    start = time.monotonic()
    container = lab.create(runner, ["python3", *PYTEST, f"--junitxml={report}", *tests],
                           volumes={socket: {"bind": "/var/run/docker.sock", "mode": "rw"},
                                    str(workdir): {"bind": str(workdir), "mode": "rw"}},
                           working_dir=str(workdir), environment={**BRIDGE, **_env(lab, image, env)}, **ids)
    try:
        container.model.start()
        result = container.model.wait(timeout=timeout)
        output = container.logs()
    finally:
        container.remove()
    run = read_junit(report, "container", time.monotonic() - start, output)
    if not run.cases and result.get("StatusCode"):
        raise LabkitError(f"pytest in the runner container exited with {result['StatusCode']} before any test ran.",
                          "Read the output below; a missing module means the runner image is incomplete.",
                          details=output[-1500:])
    return run


def leftovers(lab: "Lab", image: str) -> list[str]:
    """Containers of this session made from `image` that are still there (a test run that died)."""
    found = lab.client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={lab.session}",
                                                          "ancestor": image})
    return sorted(c.name for c in found)


def reap(lab: "Lab", image: str) -> list[str]:
    """What Ryuk does when a test run's connection drops: remove its containers, found by label."""
    names = leftovers(lab, image)
    for name in names:
        lab.client.containers.get(name).remove(force=True, v=True)
    return names
