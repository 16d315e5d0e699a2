"""Host programs a build uses: a throwaway ssh-agent for `--ssh`, and a host binary with its
libraries as build-context files (the same trick makes a debugging tool usable inside a
distroless image, notebook 04)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .core.errors import LabkitError
from .core.render import Renderable, table, volatile
from .core.session import Session

@dataclass
class SSHAgent(Renderable):
    """A throwaway ssh-agent the lab started, holding one fresh key."""

    socket: str
    pid: int
    public_key: str
    fingerprint: str

    def _render(self):
        return table(["ssh-agent", "value"], [("socket", volatile(self.socket)), ("pid", volatile(self.pid)),
                                             ("key", volatile(self.fingerprint, "ED25519 (fresh for this session)"))],
                     title="A lab-owned ssh-agent")


def ssh_agent(session: Session) -> SSHAgent:
    for tool in ("ssh-agent", "ssh-keygen", "ssh-add"):
        if not shutil.which(tool):
            raise LabkitError(f"{tool} is not installed.", "apt-get install openssh-client")
    home = session.tracker.path(Path(tempfile.mkdtemp(prefix=f"labkit-ssh-{session.id}-")))
    sock = home / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    session.tracker.process(proc)
    key = home / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"labkit {session.id}", "-f", str(key)],
                   check=True, capture_output=True)
    deadline = time.monotonic() + 5
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
    subprocess.run(["ssh-add", "-q", str(key)], check=True, capture_output=True, env=env)
    fp = subprocess.run(["ssh-keygen", "-lf", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    return SSHAgent(str(sock), proc.pid, (home / "id_ed25519.pub").read_text().strip(), fp)



def host_binary_files(program: str, prefix: str = "tools") -> dict[str, bytes]:
    """A host program with the shared libraries `ldd` lists and the dynamic loader, as
    build-context files: run it in any image as `/<prefix>/ld.so --library-path /<prefix> /<prefix>/<program>`.
    (The same trick makes a debugging tool usable inside a distroless image.)"""
    path = shutil.which(program)
    if not path:
        raise LabkitError(f"{program} is not installed on this machine.", f"Install the package that ships {program}.")
    out = _ldd(path)
    files = {f"{prefix}/{program}": Path(path).read_bytes()}
    for line in out.splitlines():
        lib = line.split("=>")[-1].split("(")[0].strip()
        if lib.startswith("/"):
            name = "ld.so" if "ld-linux" in lib else Path(lib).name
            files[f"{prefix}/{name}"] = Path(lib).read_bytes()
    return files


def host_binary_command(program: str, prefix: str = "/tools") -> list[str]:
    """How to start the copy host_binary_files() made: through the copied loader, unless static."""
    path = shutil.which(program) or program
    if "ld-linux" not in _ldd(path):
        return [f"{prefix}/{program}"]
    return [f"{prefix}/ld.so", "--library-path", prefix, f"{prefix}/{program}"]


def _ldd(path: str) -> str:
    return subprocess.run(["ldd", path], capture_output=True, text=True).stdout

