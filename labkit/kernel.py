"""The three kernel features under every container, rebuilt by hand: a root filesystem
(chroot), namespaces (unshare) and cgroups (read in inspect.py). Used by notebook 04."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .containers import RunResult
from .core.render import Stack, callout, command_line, volatile
from .core.errors import LabkitError
from .archive import safe_extract

if TYPE_CHECKING:
    from .lab import Lab

UNSHARE = ["unshare", "--pid", "--fork", "--uts", "--net", "--ipc", "--mount"]


def export_rootfs(lab: "Lab", image: str) -> Path:
    """An image's filesystem as a plain directory on the host (`docker export`), removed at cleanup."""
    target = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-rootfs-{lab.session}-")))
    container = lab.client.containers.create(image, "true", labels=dict(lab.labels))
    try:
        with tempfile.TemporaryFile() as fh:
            for chunk in container.export():
                fh.write(chunk)
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tar:
                safe_extract(tar, target, rootfs=True)  # owners, modes and links as in the image, nothing outside
    finally:
        container.remove(force=True)
    return target


@dataclass
class Handmade(RunResult):
    """The result of a command run in a hand-made container, and where it ran."""

    where: str = ""

    def _render(self):
        # where differs by user (root: on this machine; otherwise in a helper container): same words in stable mode
        return Stack([callout("info", "Hand-made container", f"chroot + unshare ran {volatile(self.where, 'here')}."),
                      super()._render()])


def handmade(lab: "Lab", rootfs: Path, script: str, timeout: float = 30) -> Handmade:
    """Run `script` with /bin/sh in new PID, UTS, network, IPC and mount namespaces, chrooted into
    `rootfs`: on the host when we are root and have unshare, else inside a helper container that
    has only CAP_SYS_ADMIN added (the notebook says which)."""
    start = time.monotonic()
    cmd = UNSHARE + [f"--mount-proc={rootfs}/proc", "chroot", str(rootfs), "/bin/sh", "-c", script]
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("chroot"):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabkitError(f"The hand-made container did not finish within {timeout} s.",
                              "Make the script end (no servers, no endless loops).") from None
        return Handmade("unshare ... chroot ROOTFS /bin/sh -c ...", proc.returncode,
                        proc.stdout, proc.stderr, time.monotonic() - start, command_line(cmd),
                        where="on this machine, as root")
    # Not root here: the same commands inside a container that may create namespaces.
    result = lab.run("labkit/busybox", ["sh", "-c", f"unshare --pid --fork --uts --net --ipc --mount "
                                        f"--mount-proc=/rootfs/proc chroot /rootfs /bin/sh -c '{_quote(script)}'"],
                     # /rootfs/proc a mount point of its own: busybox's --mount-proc makes it private first
                     volumes={str(rootfs): {"bind": "/rootfs", "mode": "rw"},
                              str(rootfs / "proc"): {"bind": "/rootfs/proc", "mode": "rw"}}, cap_add=["SYS_ADMIN"],
                     security_opt=["seccomp=unconfined", "apparmor=unconfined"], timeout=timeout)
    # the equivalent is what to type as root on a Linux host, as for root above; the helper
    # container that stood in for it is named where the callout says where it ran
    return Handmade("unshare ... chroot ROOTFS /bin/sh -c ...", result.exit_code, result.stdout, result.stderr, result.duration,
                    command_line(cmd), where="inside a helper container with CAP_SYS_ADMIN (you are not root here): "
                    + result.equivalent)


def _quote(script: str) -> str:
    return script.replace("'", "'\\''")
