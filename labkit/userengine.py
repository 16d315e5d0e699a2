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
from .core.reaper import remove_path
from .core.tracker import process_alive, start_time
from .rootless import PATH, SCRIPT_PATHS, requirements, subuids

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
        """Root's own record when root started it, else the user's (which only narrows what pids()
        looks at: every pid it finds must still be the user's own)."""
        for path in dict.fromkeys([_record(self), self.dir / "engine.json"]):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd) as fh:
                    state = json.load(fh)
                if isinstance(state, dict):
                    return state
            except (OSError, ValueError):
                pass
        return {}

    def owns(self, pid: int) -> bool:
        """Does `pid` run as this user or one of the user's subordinate ids (its containers)?"""
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return False
        return uid == self.uid or any(first <= uid < first + n for first, n in subuids(self.user))

    def pids(self) -> list[int]:
        """The engine's processes still alive: its process group (if its leader is still the process
        that was started) and everything in its user namespace, each one the user's own."""
        state = self._state()
        pgid = state.get("pgid") if state.get("pgid") and process_alive(state["pgid"], state.get("start")) else None
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                pid = int(proc.name)
                # its group, its namespace, or a process of the engine's own by its command line
                # (rootlesskit, dockerd and containerd name the engine's directory)
                mine = os.getpgid(pid) == pgid or os.readlink(proc / "ns" / "user") == state.get("userns") or \
                    str(self.dir) in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if mine and self.owns(pid):
                    out.append(pid)
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


def limited(command: list[str], user: str, memory: str = "", cpus: float = 0) -> list[str]:
    """`command` inside a systemd scope that holds it, and everything it starts (the engine's
    containers), to `memory` (e.g. "2G") and `cpus` (1.5 = 150% of one core). Only root on a host
    with systemd and cgroup v2 can; elsewhere the command as it is (the classroom says so)."""
    if not (memory or cpus) or os.geteuid() != 0 or not shutil.which("systemd-run"):
        return command
    props = [*(["-p", f"MemoryMax={memory}"] if memory else []),
             *(["-p", f"CPUQuota={round(cpus * 100)}%"] if cpus else [])]
    return ["systemd-run", "--scope", "--quiet", "--collect", f"--unit=labkit-engine-{user}", *props, "--", *command]


def start(user: str | None = None, timeout: float = 30, memory: str = "", cpus: float = 0) -> UserEngine:
    """Start the user's engine unless it already answers; wait until it does. As root for a learner,
    every file in the learner's home is made, written and read by the learner (runuser), never by
    root: the learner controls that home, and a symlink there must not lend them root's rights.
    memory/cpus: limits for the engine and its containers where the host can hold them (limited())."""
    engine = for_user(user)
    if engine.answers() and _genuine(engine):
        return engine
    prefix = _as_user(engine)
    missing = [(what, fix) for what, ok, fix in requirements(engine.user) if not ok]
    if missing:
        raise LabkitError(f"{engine.user}'s rootless engine cannot start here: missing "
                          + ", ".join(w for w, _ in missing) + ".", "; ".join(fix for _, fix in missing))
    stop(engine)  # a dead engine's leftovers (socket, pid file, stray processes) go first
    run = engine.dir / "run"
    home = Path(pwd.getpwnam(engine.user).pw_dir)
    script = next(p for p in map(shutil.which, SCRIPT_PATHS) if p)
    env = {"HOME": str(home), "USER": engine.user, "PATH": PATH, "XDG_RUNTIME_DIR": str(run),
           "TMPDIR": str(run)}  # RootlessKit's state dir goes with the socket
    # as the user: the directories (700), the log (opened by the user's shell), then the engine
    shell = ('umask 077; mkdir -p "$1/run" "$1/data" && chmod 700 "$1" "$1/run" "$1/data" || exit 1; '
             'exec >>"$1/dockerd.log" 2>&1 </dev/null; shift; exec "$@"')
    cmd = prefix + ["env", "-i", *[f"{k}={v}" for k, v in env.items()], "sh", "-c", shell, "sh", str(engine.dir),
                    script, "--data-root", str(engine.dir / "data")]
    begin = time.monotonic()
    cmd = limited(cmd, engine.user, memory, cpus)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd="/")
    while time.monotonic() - begin < timeout and proc.poll() is None and not engine.answers(1):
        time.sleep(0.1)
    _write_state(engine, {"pgid": proc.pid, "start": start_time(proc.pid), "userns": _userns_of(proc.pid),
                          "started": time.time(), "startup": round(time.monotonic() - begin, 2)})
    if not (engine.answers() and _genuine(engine)):
        tail = subprocess.run(prefix + ["tail", "-c", "1500", str(engine.log)], capture_output=True, text=True).stdout
        stop(engine)
        raise LabkitError(f"{engine.user}'s rootless engine did not answer within {timeout:.0f} s:\n{tail}",
                          f"Read {engine.log}; `labkit doctor` as {engine.user} lists what a rootless engine needs.")
    return engine


def _genuine(engine: UserEngine) -> bool:
    """The socket is a socket of the engine's user, not a symlink to someone else's engine."""
    import stat
    try:
        st = os.lstat(engine.socket)
    except OSError:
        return False
    return stat.S_ISSOCK(st.st_mode) and st.st_uid == engine.uid


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


ROOT_RECORDS = Path("/run/labkit-engines")  # root's own records of the engines it started for users


def _record(engine: UserEngine) -> Path:
    """Where the engine's pids are noted: root's own directory when root acts for a user (a file the
    user could write must never tell root what to kill), else the user's engine directory."""
    if os.geteuid() == 0 and os.getuid() != engine.uid:
        ROOT_RECORDS.mkdir(mode=0o700, exist_ok=True)
        return ROOT_RECORDS / f"{engine.user}.json"
    return engine.dir / "engine.json"


def _write_state(engine: UserEngine, state: dict) -> None:
    path = _record(engine)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def stop(engine: UserEngine | str | None = None, purge: bool = False) -> int:
    """Stop the engine and every container in it (its whole user namespace); with purge, delete its
    images and data too. How many processes were killed. Only the user's own processes are killed."""
    engine = engine if isinstance(engine, UserEngine) else for_user(engine)
    prefix = _as_user(engine)  # only its user or root
    killed = 0
    for _ in range(3):  # the engine restarts nothing, but a kill may race a fork
        pids = engine.pids()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while engine.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
    if engine.answers(1) and _genuine(engine):
        raise LabkitError(f"{engine.user}'s engine still answers after its processes were killed; nothing was deleted.",
                          f"Find it with `ps -u {engine.user} -o pid,cmd` and stop it, then run this again.")
    _record(engine).unlink(missing_ok=True)
    # the user's files go as the user (a symlink there lends no rights); a purge also takes what the
    # engine's containers made under subordinate ids, which only root (or the engine) may delete
    targets = [engine.dir] if purge else [engine.dir / "run", engine.dir / "engine.json"]
    if prefix:
        subprocess.run(prefix + ["rm", "-rf", *map(str, targets)], capture_output=True)
        if purge and engine.dir.exists() and not engine.dir.is_symlink():
            shutil.rmtree(engine.dir, ignore_errors=True)  # rmtree never follows symlinks
    else:
        for target in targets:
            if target.exists() or target.is_symlink():
                remove_path(target)
    return killed
