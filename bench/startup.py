"""Time from a fresh clone to JupyterLab answering, cold (a new virtual environment: every Python
package installed) and warm (the same clone again), through the README's first command,
`make lab`. Prints both and their ratio. Targets: cold <= 180 s, warm <= 20 s."""
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


def time_to_answer(clone: Path, timeout: float) -> float:
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen(["make", "lab", f"LAB_ARGS=--no-browser --port {port}"], cwd=clone,
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-startup-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        cold = time_to_answer(clone, args.timeout)
        warm = time_to_answer(clone, args.timeout)
    print(f"fresh clone to JupyterLab answering: cold {cold:.1f} s (target <= 180), warm {warm:.1f} s (target <= 20); "
          f"cold/warm {cold / warm:.1f}")
    return 0 if cold <= 180 and warm <= 20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
