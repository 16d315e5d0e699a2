"""A user's own long-lived rootless Docker engine (`labkit engine start|stop|status`; the classroom
starts one per learner before the learner's server and stops it after).

Unlike notebook 06's engine, which lives and dies with one lab session, this one is the learner's
engine: dockerd inside RootlessKit as that user, its socket and data under the user's own home
(`~/.labkit/engine`, mode 700), so no other learner can open it, and images survive a restart
of the learner's server. Root may start or stop it for a user (as that user, never as root)."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .core.errors import LabkitError
from .core.reaper import kill_user_namespace, remove_path
from .rootless import PATH, SCRIPT_PATHS, requirements

ENGINE_DIR = ".labkit/engine"


@dataclass
class UserEngine:
    user: str
    uid: int
    gid: int
    dir: Path  # ~/.labkit/engine of that user

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.dir / "dockerd.log"

    def _state(self) -> dict:
        try:
            return json.loads((self.dir / "engine.json").read_text())
        except (OSError, ValueError):
            return {}

    def pids(self) -> list[int]:
        """The engine's processes still alive: its process group and everything in its user namespace."""
        state = self._state()
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.getpgid(int(proc.name)) == state.get("pgid") or \
                        os.readlink(proc / "ns" / "user") == state.get("userns"):
                    out.append(int(proc.name))
            except OSError:
                pass
        return out

    def answers(self, timeout: float = 3) -> bool:
        """Does the engine's socket answer `/_ping`?"""
        import socket
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b" 200 " in s.recv(64)
        except OSError:
            return False

    def status(self) -> dict:
        state = self._state()
        return {"user": self.user, "socket": str(self.socket), "running": self.answers(),
                "pid": state.get("pgid"), "processes": len(self.pids()), "started": state.get("started")}


def for_user(user: str | None = None) -> UserEngine:
    """The engine of `user` (default: you)."""
    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())
    except KeyError:
        raise LabkitError(f"There is no user {user!r} on this machine.",
                          "Name an existing account (`getent passwd NAME`).") from None
    return UserEngine(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir) / ENGINE_DIR)


def _as_user(engine: UserEngine) -> list[str]:
    """The command prefix that runs as the engine's user: nothing when that is you; runuser as root."""
    if os.getuid() == engine.uid:
        return []
    if os.geteuid() != 0:
        raise LabkitError(f"Only root or {engine.user} may start or stop {engine.user}'s engine.",
                          f"Run it as {engine.user} (`labkit engine start`), or with sudo.")
    return [shutil.which("runuser") or "runuser", "-u", engine.user, "--"]


def start(user: str | None = None, timeout: float = 30) -> UserEngine:
    """Start the user's engine unless it already answers; wait until it does."""
    engine = for_user(user)
    if engine.answers():
        return engine
    prefix = _as_user(engine)
    missing = [(what, fix) for what, ok, fix in requirements(engine.user) if not ok]
    if missing:
        raise LabkitError(f"{engine.user}'s rootless engine cannot start here: missing "
                          + ", ".join(w for w, _ in missing) + ".", "; ".join(fix for _, fix in missing))
    stop(engine)  # a dead engine's leftovers (socket, pid file, stray processes) go first
    run = engine.dir / "run"
    home = Path(pwd.getpwnam(engine.user).pw_dir)
    for d in (home / ".labkit", engine.dir, run, engine.dir / "data"):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        if os.geteuid() == 0:
            os.chown(d, engine.uid, engine.gid)
    script = next(p for p in map(shutil.which, SCRIPT_PATHS) if p)
    env = {"HOME": str(home), "USER": engine.user, "PATH": PATH, "XDG_RUNTIME_DIR": str(run),
           "TMPDIR": str(run)}  # RootlessKit's state dir goes with the socket
    cmd = prefix + ["env", "-i", *[f"{k}={v}" for k, v in env.items()], script,
                    "--data-root", str(engine.dir / "data")]
    begin = time.monotonic()
    with open(engine.log, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(engine.dir))
    if os.geteuid() == 0:
        os.chown(engine.log, engine.uid, engine.gid)
    while time.monotonic() - begin < timeout and proc.poll() is None and not engine.answers(1):
        time.sleep(0.1)
    userns = _userns_of(proc.pid)
    _write_state(engine, {"pgid": proc.pid, "userns": userns, "started": time.time(),
                          "startup": round(time.monotonic() - begin, 2)})
    if not engine.answers():
        tail = engine.log.read_text(errors="replace")[-1500:]
        stop(engine)
        raise LabkitError(f"{engine.user}'s rootless engine did not answer within {timeout:.0f} s:\n{tail}",
                          f"Read {engine.log}; `labkit doctor` as {engine.user} lists what a rootless engine needs.")
    return engine


def _userns_of(root: int) -> str | None:
    """The user namespace RootlessKit made (a descendant of `root` whose namespace differs)."""
    from .procfs import descendants
    try:
        host = os.readlink(f"/proc/{root}/ns/user")
    except OSError:
        return None
    for pid in descendants(root):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/user")
            if ns != host:
                return ns
        except OSError:
            pass
    return None


def _write_state(engine: UserEngine, state: dict) -> None:
    path = engine.dir / "engine.json"
    path.write_text(json.dumps(state))
    if os.geteuid() == 0:
        os.chown(path, engine.uid, engine.gid)


def stop(engine: UserEngine | str | None = None, purge: bool = False) -> int:
    """Stop the engine and every container in it (its whole user namespace); with purge, delete its
    images and data too. How many processes were killed."""
    engine = engine if isinstance(engine, UserEngine) else for_user(engine)
    state = engine._state()
    killed = 0
    if state:
        _as_user(engine)  # only its user or root
        if state.get("userns"):
            killed += kill_user_namespace(state["userns"])
        pgid = state.get("pgid")
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while engine.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
    for leftover in (engine.dir / "run", engine.dir / "engine.json"):
        if leftover.exists():
            remove_path(leftover)
    if purge and engine.dir.exists():
        remove_path(engine.dir)
    return killed
