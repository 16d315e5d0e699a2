"""Time from a fresh clone to JupyterLab answering through the README's first command, `make lab`:
cold (a new virtual environment, every Python package downloaded: uv's and pip's caches point at new
empty folders) and warm (the same clone again). The cold run is timed in two parts, the Python
install (`make .venv/.installed`: the venv, the pinned uv, requirements.lock, labkit itself) and the
rest of `make lab` (host check, `labkit prepare`, JupyterLab starting). For comparison ("before"),
plain pip installs the same lock into another new venv of the clone with an empty cache
(`make INSTALLER=pip`). Targets: cold <= 180 s, warm <= 20 s."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], cwd: Path, env: dict, timeout: float, log: Path) -> float:
    """Seconds `cmd` took; its output goes to `log` (the tail is shown if it fails)."""
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    return time.monotonic() - start


def time_to_answer(clone: Path, timeout: float, env: dict) -> float:
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen(["make", "lab", f"LAB_ARGS=--no-browser --port {port}"], cwd=clone, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"make lab exited with {proc.returncode} before JupyterLab answered")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=1) as r:  # answers without a token
                    if r.status == 200:
                        return time.monotonic() - start
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"JupyterLab did not answer within {timeout} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def empty_caches(tmp: Path, name: str) -> dict:
    """The environment with uv's and pip's caches in new, empty folders."""
    env = dict(os.environ)
    env["UV_CACHE_DIR"] = str(tmp / name / "uv")
    env["PIP_CACHE_DIR"] = str(tmp / name / "pip")
    env.pop("PIP_NO_CACHE_DIR", None)
    return env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--no-pip", action="store_true", help="skip the plain-pip comparison")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-startup-") as name:
        tmp = Path(name)
        clone = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        cold_env = empty_caches(tmp, "cold")
        # uv first: were anything between here and the index to cache downloads, pip would profit, not uv.
        install = timed(["make", ".venv/.installed"], clone, cold_env, args.timeout, tmp / "install-uv.log")
        rest = time_to_answer(clone, args.timeout, cold_env)
        cold = install + rest
        warm = time_to_answer(clone, args.timeout, dict(os.environ))
        pip = None
        if not args.no_pip:
            pip = timed(["make", ".venv-pip/.installed", "VENV=.venv-pip", "INSTALLER=pip"], clone,
                        empty_caches(tmp, "pip-run"), args.timeout, tmp / "install-pip.log")
    print("Python install from requirements.lock into a new venv, empty package caches: "
          + (f"pip {pip:.1f} s (before) -> " if pip else "")
          + f"uv {install:.1f} s (after, bootstrapping uv included)"
          + (f", {pip / install:.1f} times faster" if pip else ""))
    print(f"fresh clone to JupyterLab answering through make lab, empty package caches: cold {cold:.1f} s "
          f"(install {install:.1f} s + host check, prepare and JupyterLab {rest:.1f} s; target <= 180)"
          + (f", {pip + rest:.1f} s with pip's install" if pip else "")
          + f"; warm {warm:.1f} s (target <= 20); cold/warm {cold / warm:.1f}")
    return 0 if cold <= 180 and warm <= 20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
