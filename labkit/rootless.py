"""A rootless Docker engine for one session (notebooks 06 and 09): dockerd inside RootlessKit's user
namespace, run by an unprivileged user, with its own socket, runtime and data directories.
As root, the engine runs as the dedicated user `scripts/setup-host.sh` creates; as an ordinary
user, it runs as you. Everything it started is killed and its data removed at cleanup."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import docker

from .core.render import Renderable, seconds, table, volatile
from .core.capabilities import as_root
from .core.errors import LabSkipped, LabkitError, ReadinessTimeout

if TYPE_CHECKING:
    from .lab import Lab
    from .privileged import HostMarker

LAB_USER = "labkit-rootless"
SCRIPT_PATHS = ("dockerd-rootless.sh", "/usr/share/docker.io/contrib/dockerd-rootless.sh")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


SUBID_COUNT = 65536


def _subid_ranges(path: str) -> list[tuple[str, int, int]]:
    """(user, first id, count) of each line of /etc/subuid or /etc/subgid."""
    out = []
    try:
        for line in Path(path).read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append((parts[0], int(parts[1]), int(parts[2])))
    except OSError:
        pass
    return out


def subuids(user: str) -> list[tuple[int, int]]:
    """(first, count) of each /etc/subuid range of `user` (the host uids its containers run as)."""
    return [(first, n) for u, first, n in _subid_ranges("/etc/subuid") if u == user]


def _subid_range(user: str, path: str) -> bool:
    return any(u == user for u, _, _ in _subid_ranges(path))


def free_subid_range(count: int = SUBID_COUNT) -> tuple[int, int]:
    """A range of subordinate ids after every range /etc/subuid and /etc/subgid give out (first, last)."""
    end = max([100000] + [first + n for path in ("/etc/subuid", "/etc/subgid") for _, first, n in _subid_ranges(path)])
    first = -(-end // count) * count  # rounded up to a multiple of count, like the ranges useradd gives
    return first, first + count - 1


def requirements(user: str) -> list[tuple[str, bool, str]]:
    """(what, ok, fix) for everything a rootless engine needs on this host, each fix the exact command
    (with sudo when you are not root: all of them need root, once)."""
    script = next((p for p in map(shutil.which, SCRIPT_PATHS) if p), None)
    try:
        pwd.getpwnam(user)
        user_ok = True
    except KeyError:
        user_ok = False
    userns = Path("/proc/sys/user/max_user_namespaces")
    first, last = free_subid_range()
    return [
        ("dockerd-rootless.sh", bool(script), f"`{as_root('apt-get install docker.io')}` (it ships contrib/dockerd-rootless.sh)"),
        ("rootlesskit", bool(shutil.which("rootlesskit")), f"`{as_root('apt-get install rootlesskit')}`"),
        ("slirp4netns", bool(shutil.which("slirp4netns")), f"`{as_root('apt-get install slirp4netns')}`"),
        ("newuidmap / newgidmap", bool(shutil.which("newuidmap") and shutil.which("newgidmap")),
         f"`{as_root('apt-get install uidmap')}`"),
        (f"user {user}", user_ok, f"`{as_root('scripts/setup-host.sh')}` (it creates the lab user)"),
        (f"/etc/subuid and /etc/subgid ranges for {user}",
         _subid_range(user, "/etc/subuid") and _subid_range(user, "/etc/subgid"),
         f"`{as_root(f'usermod --add-subuids {first}-{last} --add-subgids {first}-{last} {user}')}` "
         "(a range no other user has)"),
        ("user namespaces enabled", userns.exists() and userns.read_text().strip() != "0",
         f"`{as_root('sysctl -w user.max_user_namespaces=15000')}`"),
        ("/dev/net/tun usable", os.access("/dev/net/tun", os.R_OK | os.W_OK) or os.geteuid() == 0,
         f"`{as_root('chmod 666 /dev/net/tun')}` (as most distributions ship it)"),
    ]


def engine_user() -> str:
    """Who runs the rootless engine: the lab user when you are root, else you."""
    return LAB_USER if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


@dataclass
class RootlessEngine(Renderable):
    """`rl = rootless.start(lab)`; `rl.lab` is the same session driving the rootless engine."""

    lab: "Lab"
    user: str
    uid: int
    socket: str
    home: Path
    pid: int
    userns: str
    startup: float
    source: docker.DockerClient  # the rootful engine, where the lab images are
    engine_info: dict = field(default_factory=dict)  # `docker info` when it became ready (shown without asking again)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def load(self, image: str) -> None:
        """Copy an image from the rootful engine's store into this one (save | load)."""
        from .archive import save_image
        with tempfile.TemporaryFile() as fh:
            save_image(image, fh, self.source)
            fh.seek(0)
            self.lab.client.images.load(fh.read())

    def info(self):
        """What `docker info` said of this engine when it became ready."""
        info = self.engine_info
        # who runs it differs: the lab user when you are root, else you (and uids differ between machines)
        rows = [("runs as", f"{volatile(self.user, 'an unprivileged user')} (uid {volatile(self.uid)})"),
                ("socket", volatile(self.socket)),
                ("security options", ", ".join(o.split(",")[0].removeprefix("name=") for o in info.get("SecurityOptions", []))),
                ("storage driver", info.get("Driver", "?")), ("cgroup driver", info.get("CgroupDriver", "?")),
                ("start to ready", seconds(self.startup))]
        return table(["rootless engine", "value"], rows, title="A rootless Docker engine for this session")

    def _render(self):
        return self.info()

    def stop(self) -> None:
        """Kill the engine and every container it runs, and delete its data (cleanup does it too)."""
        from .core.reaper import kill_user_namespace, remove_path
        kill_user_namespace(self.userns)
        try:
            os.killpg(self.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        remove_path(self.home)  # holds directories of mode 000 that a user who is not root must open first


def start(lab: "Lab", timeout: float = 15) -> RootlessEngine:
    """Start a rootless engine for this session and wait for its socket to answer."""
    is_root = os.geteuid() == 0
    user = engine_user()
    missing = [(what, fix) for what, ok, fix in requirements(user) if not ok]
    if missing:
        raise LabSkipped("A rootless engine cannot start here: missing " + ", ".join(w for w, _ in missing) + ".",
                         "; ".join(fix for _, fix in missing))
    script = next(p for p in map(shutil.which, SCRIPT_PATHS) if p)
    entry = pwd.getpwnam(user)
    home = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-rootless-{lab.session}-")))
    run_dir, data = home / "run", home / "data"
    for d in (run_dir, data):
        d.mkdir(mode=0o700)
    if is_root:
        os.chown(home, entry.pw_uid, entry.pw_gid)
        for d in (run_dir, data):
            os.chown(d, entry.pw_uid, entry.pw_gid)
    env = {"HOME": entry.pw_dir if Path(entry.pw_dir).is_dir() else str(home), "XDG_RUNTIME_DIR": str(run_dir),
           "PATH": PATH, "USER": user, "TMPDIR": str(home)}  # rootlesskit's state dir goes with the rest
    cmd = ([shutil.which("runuser") or "runuser", "-u", user, "--"] if is_root else []) + \
        ["env", "-i", *[f"{k}={v}" for k, v in env.items()], script, "--data-root", str(data)]
    begin = time.monotonic()
    with open(home / "dockerd.log", "wb") as log:  # the engine keeps its own copy of the handle
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(home))
    lab.track_process(proc)
    sock = run_dir / "docker.sock"
    client = None
    while time.monotonic() - begin < timeout and proc.poll() is None:
        if sock.exists():
            try:
                client = docker.DockerClient(base_url=f"unix://{sock}", timeout=5)
                client.ping()
                client.api.timeout = 600  # answering now; loads and builds may take long
                break
            except Exception:
                client = None
        time.sleep(0.05)
    if client is None:
        text = (home / "dockerd.log").read_text(errors="replace")
        _kill(proc)
        raise ReadinessTimeout(f"The rootless engine did not answer within {timeout:.0f} s.", text)
    startup = time.monotonic() - begin
    child = _engine_pid(proc.pid)
    userns = lab.track_user_namespace(child)
    view = lab.on(client, f"unix://{sock}", rootless=True)
    return RootlessEngine(view, user, entry.pw_uid, str(sock), home, proc.pid, userns, startup, lab.client,
                          view.client.info())


def root_marker(lab: "Lab") -> "HostMarker":
    """notebook 05's owner-only marker file, owned by root: a file the rootless engine's user may not
    read, whoever runs the notebook. As a normal user you cannot make a file you cannot read
    yourself: the rootful engine makes it root's (its containers are root on this machine,
    notebook 05), so the attack of section 3 fails for the engine's sake, not for a missing file."""
    from .core.engine import is_rootless
    from .privileged import host_marker
    if is_rootless(lab.client):
        lesson = ("The attacks from here on read a file only root may read, through what a ROOT engine gives "
                  "away (its socket, --pid=host); on your engine they reach only what you own anyway"
                  if lab.topic == "privileged" else
                  "From here on, this lesson sets a rootless engine against a ROOT one (the same attacks succeed "
                  "on one and fail on the other); with no root engine in reach there is nothing to set it against")
        raise LabSkipped(
            "This notebook drives a rootless engine (yours, as in a classroom): its containers are you on this "
            f"machine, never root. {lesson}, so the lesson changes meaning and stops here (skipped, not failed).",
            "Read the committed outputs (they come from a root engine), or run it on a root engine.")
    marker = host_marker(lab)
    if os.stat(marker.path).st_uid != 0:
        lab.run("labkit/busybox", ["chown", "0:0", f"/marker/{marker.path.name}"],
                volumes={str(marker.path.parent): {"bind": "/marker", "mode": "rw"}}).check()
        if os.stat(marker.path).st_uid != 0:
            raise LabSkipped("The marker file could not be given to root: this engine's containers are not root "
                             "on this machine (is the engine itself rootless?).",
                             "Run this notebook against a rootful engine (`labkit doctor` shows which one you use).")
    return marker


def _engine_pid(root: int) -> int:
    """A process of the engine inside RootlessKit's user namespace (a descendant of `root`)."""
    from .procfs import descendants
    host_ns = os.readlink(f"/proc/{root}/ns/user")
    for pid in descendants(root):
        try:
            if os.readlink(f"/proc/{pid}/ns/user") != host_ns:
                return pid
        except OSError:
            pass
    raise LabkitError("The rootless engine runs, but no process of it is in a user namespace.",
                      "Read dockerd.log in the engine's directory.")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)


@dataclass
class Throughput(Renderable):
    rows: list[tuple[str, float, float]]  # (engine, seconds per download, MB/s)
    size: int

    @property
    def ratio(self) -> float:
        """How many times longer the rootless engine takes for the same download."""
        return self.rows[1][1] / self.rows[0][1]

    def _render(self):
        return table(["engine", "time per download", "throughput"],
                     [(e, seconds(t), volatile(f"{mbs:.0f} MB/s")) for e, t, mbs in self.rows]
                     + [("rootless / rootful", volatile(f"{self.ratio:.2f}x"), "")],
                     title=f"Downloading {self.size // 1_000_000} MB from a container's published port on 127.0.0.1")


def throughput(rootful: "Lab", engine: RootlessEngine, size: int = 50_000_000, rounds: int = 3) -> Throughput:
    """The same HTTP download through each engine's published port (docker-proxy vs RootlessKit's
    port driver), best of `rounds`."""
    import urllib.request
    from .containers import TcpPort
    script = f"mkdir -p /srv && head -c {size} /dev/zero > /srv/blob && httpd -f -p 8080 -h /srv"
    rows = []
    for name, lab in (("rootful", rootful), ("rootless", engine.lab)):
        with lab.start("labkit/busybox", ["sh", "-c", script], ports={8080: None}, wait=TcpPort(8080)) as web:
            url = f"http://127.0.0.1:{web.host_port(8080)}/blob"
            best = float("inf")
            for _ in range(rounds):
                t = time.perf_counter()
                with urllib.request.urlopen(url, timeout=60) as r:
                    while r.read(1 << 20):
                        pass
                best = min(best, time.perf_counter() - t)
        rows.append((name, best, size / best / 1e6))
    return Throughput(rows, size)
