"""An engine that stops or restarts in the middle of a notebook, against a private dockerd.

The shared engine is never restarted (others use it): each test starts its own dockerd with its own
data root, exec root, pidfile, socket and bridge, and no iptables rules or IP forwarding changes,
loads labkit/busybox into it, and drives labkit in a subprocess (the "kernel") pointed at it with
DOCKER_HOST. The fixture kills that dockerd and deletes its directories and its bridge at the end,
also when the test fails.

Not `--bridge none`: a dockerd started with it deletes the host's `docker0` interface (moby's
removeDefaultBridgeInterface), which is the shared engine's default bridge."""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "labkit/busybox:latest"
TARGET = 10.0  # seconds from the engine answering again to the dead kernel's containers being gone

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="starts a private dockerd: needs root"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed"),
]


class PrivateEngine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        self.startups: list[float] = []
        (root / "daemon.json").write_text("{}")  # not the machine's /etc/docker/daemon.json
        self.bridge = root.name.replace("-", "")[:15]  # its own, never docker0

    def add_bridge(self) -> None:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
        subnet = next(f"10.214.{n}" for n in range(256) if f"10.214.{n}.0/24" not in routes)
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return s.makefile("rb").read().endswith(b"OK")
        except OSError:
            return False

    def start(self, timeout: float = 60) -> float:
        began = time.monotonic()
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "-H", self.url,
             "--config-file", str(self.root / "daemon.json"),
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false", "--ip6tables=false",
             "--ip-forward=false"],
            stdin=subprocess.DEVNULL, stdout=open(self.root / "dockerd.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        while not self.answers():
            assert self.proc.poll() is None, "private dockerd exited:\n" + self.log()
            assert time.monotonic() - began < timeout, "private dockerd did not answer:\n" + self.log()
            time.sleep(0.02)
        took = time.monotonic() - began
        self.startups.append(took)
        print(f"private dockerd answered {took:.2f} s after its start")
        return took

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # a clean stop, as `systemctl stop docker` does: it stops its containers
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=30)

    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")[-3000:]

    def teardown(self) -> None:
        self.stop()
        # its containerd and container shims, should any outlive dockerd: by pid, only ours (their
        # command line names this private root)
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(self.root).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root) + "/")]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _ifindex(name: str) -> str | None:
    try:
        return Path(f"/sys/class/net/{name}/ifindex").read_text().strip()
    except OSError:
        return None


@pytest.fixture
def private_engine(docker_client):
    docker0 = _ifindex("docker0")  # the shared engine's default bridge
    root = Path(tempfile.mkdtemp(prefix="lkd-", dir="/tmp"))  # short: containerd's sockets live below it
    eng = PrivateEngine(root)
    try:
        eng.add_bridge()
        eng.start()
        with contextlib.closing(eng.client()) as cli:
            cli.images.load(b"".join(docker_client.images.get(BUSYBOX).save(named=True)))
        yield eng
    finally:
        eng.teardown()
        assert not root.exists() and _ifindex(eng.bridge) is None
        assert _ifindex("docker0") == docker0, "the private dockerd touched the shared engine's docker0"


# The "kernel": runs the Python it is sent, one JSON line at a time, and answers with what happened.
DRIVER = textwrap.dedent("""
    import json, sys
    import labkit
    ns = {"labkit": labkit}
    for line in sys.stdin:
        ns["result"] = None
        try:
            exec(json.loads(line), ns)
            out = {"result": ns["result"]}
        except Exception as exc:
            out = {"error": type(exc).__name__, "classes": [c.__name__ for c in type(exc).__mro__],
                   "str": str(exc), "text": exc.text() if isinstance(exc, labkit.LabkitError) else ""}
        print(json.dumps(out, default=str), flush=True)
""")


class Kernel:
    def __init__(self, engine: PrivateEngine) -> None:
        env = dict(os.environ, DOCKER_HOST=engine.url, XDG_RUNTIME_DIR=str(engine.root / "run"),
                   XDG_STATE_HOME=str(engine.root / "state"), LABKIT_WATCHDOG_ENGINE_WAIT="120")
        (engine.root / "run").mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(engine.root / "kernel.log", "a"))

    def run(self, code: str, timeout: float = 60) -> dict:
        self.proc.stdin.write(json.dumps(textwrap.dedent(code)) + "\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout), f"no answer within {timeout} s to {code!r}"
        return json.loads(self.proc.stdout.readline())

    def ok(self, code: str, timeout: float = 60):
        out = self.run(code, timeout)
        assert "error" not in out, out
        return out["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def kernel(private_engine):
    k = Kernel(private_engine)
    yield k
    k.close()


START = """
    lab = labkit.Lab("welcome", watchdog={watchdog})
    c = lab.start("labkit/busybox:latest", ["sleep", "600"], name="x", stop_signal="SIGKILL")
    result = [lab.session, lab._watchdog.pid if lab._watchdog else None]
"""


def _session_containers(engine: PrivateEngine, session: str) -> list:
    with contextlib.closing(engine.client()) as cli:
        return cli.containers.list(all=True, filters={"label": f"labkit.session={session}"})


def _assert_clear(out: dict, kind: str, says: str) -> None:
    assert out.get("error") == kind, out
    assert {"DaemonUnavailable", "LabkitError"} <= set(out["classes"]), out
    first, last = out["str"].splitlines()[0], out["str"].splitlines()[-1]
    assert says in first, first
    assert last.startswith("Hint: ") and "re-run this notebook from the top" in last.lower(), last
    assert out["text"].startswith(f"[ERROR] {kind}: ") and "Hint: " in out["text"], out["text"]


def test_next_call_after_the_engine_stopped_says_so_and_cleanup_works_once_it_is_back(private_engine, kernel):
    session, _ = kernel.ok(START.format(watchdog=False))
    assert len(_session_containers(private_engine, session)) == 1
    private_engine.stop()
    _assert_clear(kernel.run('result = c.exec(["true"]).exit_code'), "EngineStopped", "stopped answering")
    _assert_clear(kernel.run('lab.start("labkit/busybox:latest", ["true"])'), "EngineStopped", "stopped answering")
    private_engine.start()  # the same data root: the container is still there, stopped
    removed = kernel.ok("result = lab.cleanup().removed")
    assert removed["containers"] == 1
    assert _session_containers(private_engine, session) == []


def test_a_restart_between_two_calls_is_named_once_and_cleanup_works(private_engine, kernel):
    session, _ = kernel.ok(START.format(watchdog=False))
    private_engine.stop()
    private_engine.start()  # no call while it was away: the next one finds another engine process
    _assert_clear(kernel.run('result = c.exec(["true"]).exit_code'), "EngineRestarted", "restarted")
    removed = kernel.ok("result = lab.cleanup().removed")
    assert removed["containers"] == 1
    assert _session_containers(private_engine, session) == []


def test_watchdog_waits_for_the_engine_when_the_kernel_dies_while_it_is_down(private_engine, kernel):
    session, watchdog = kernel.ok(START.format(watchdog=True))
    sdir = private_engine.root / "run" / "labkit" / "sessions" / session
    try:
        private_engine.stop()
        kernel.proc.send_signal(signal.SIGKILL)
        kernel.proc.wait()
        deadline = time.monotonic() + 10
        while "retrying" not in _read(sdir / "watchdog.log") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "retrying" in _read(sdir / "watchdog.log"), _read(sdir / "watchdog.log")
        time.sleep(2)  # a few failed tries: it must neither crash nor give up
        assert _alive(watchdog), "the watchdog died while the engine was down:\n" + _read(sdir / "watchdog.log")
        private_engine.start()
        back = time.monotonic()
        while _session_containers(private_engine, session) and time.monotonic() - back < TARGET + 5:
            time.sleep(0.1)
        took = time.monotonic() - back
        print(f"watchdog removed the dead kernel's containers {took:.2f} s after the engine answered again")
        assert _session_containers(private_engine, session) == [], _read(sdir / "watchdog.log")
        assert took <= TARGET
        deadline = time.monotonic() + 5
        while _alive(watchdog) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(watchdog) and not sdir.exists()
    finally:
        if _alive(watchdog):  # only our watchdog: its command line names the session
            os.kill(watchdog, signal.SIGKILL)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"labkit.watchdog" in cmdline and stat.rsplit(")", 1)[1].split()[0] not in "ZXx"
