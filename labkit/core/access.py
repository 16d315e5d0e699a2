"""Who may use the engine's socket: the socket's group, whether this user is in it (or joined
after this login started), closed directories on the way, and the exact command that fixes each."""
from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

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
