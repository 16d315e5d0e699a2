"""A learner who is not root: scripts/as-learner.sh (run as root, as CI does) makes a normal user in the
engine socket's group with its own subordinate ids, a copy of the repository and a venv made with
the distribution's Python, then runs `labkit doctor` and `labkit verify` as that user. Notebook 00
only, to stay quick; `scripts/as-learner.sh` with no argument runs them all."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "as-learner.sh"
LEARNER = "labkit-learner"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates a user: needs root"),
    pytest.mark.skipif(not Path("/usr/bin/python3").exists() or shutil.which("runuser") is None,
                       reason="needs the distribution's Python and runuser"),
]


def subid_ranges(path: str) -> dict[str, tuple[int, int]]:
    out = {}
    for line in Path(path).read_text().splitlines():
        user, first, count = line.split(":")
        out[user] = (int(first), int(first) + int(count))
    return out


def test_notebook_00_as_a_learner_who_is_not_root(docker_client):
    proc = subprocess.run([str(SCRIPT), "00-welcome"], capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]

    # the user: a normal user in the socket's group, with a range of its own
    assert "Ready: Everything the labs require is here." in proc.stdout  # doctor, as the learner
    groups = subprocess.run(["id", "-nG", LEARNER], capture_output=True, text=True, check=True).stdout.split()
    socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    if os.path.exists(socket):
        import grp
        assert grp.getgrgid(os.stat(socket).st_gid).gr_name in groups
    for path in ("/etc/subuid", "/etc/subgid"):
        ranges = subid_ranges(path)
        mine = ranges[LEARNER]
        assert all(end <= mine[0] or mine[1] <= start for user, (start, end) in ranges.items() if user != LEARNER)

    # the venv: the distribution's Python, owned by the learner
    report = Path(re.search(r"as-learner: verify report: (\S+)", proc.stdout).group(1))
    home = report.parents[2]
    python = home / ".venv" / "bin" / "python"
    version = subprocess.run(["runuser", "-u", LEARNER, "--", str(python), "-c",
                              "import sys; print(sys.base_prefix, sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert version[0] == "/usr"
    assert home.stat().st_uid == python.lstat().st_uid != 0  # the venv's python is a link to /usr/bin/python3

    # the report, written by the learner
    results = json.loads(report.with_suffix(".json").read_text())
    assert [(r["notebook"], r["status"]) for r in results] == [("00-welcome", "passed")], results
    assert report.stat().st_uid != 0

    # the same user in a login session that predates joining the group: doctor says what to do
    doctor = subprocess.run(["setpriv", f"--reuid={LEARNER}", f"--regid={LEARNER}", "--clear-groups",
                             "env", "-i", f"HOME={home.parent}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                             *[f"{k}={v}" for k, v in os.environ.items() if k == "DOCKER_HOST"],
                             str(home / ".venv" / "bin" / "labkit"), "doctor"],
                            capture_output=True, text=True, timeout=120)
    if os.path.exists(socket):
        assert doctor.returncode == 1, doctor.stdout
        assert "permission denied" in doctor.stdout
        assert "log out and in again" in doctor.stdout and "newgrp" in doctor.stdout
