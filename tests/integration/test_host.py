from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_setup_host_second_run_only_checks(docker_client):
    script = REPO / "scripts" / "setup-host.sh"
    subprocess.run([str(script)], check=True, capture_output=True, timeout=600)
    start = time.monotonic()
    out = subprocess.run([str(script)], check=True, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    assert "a Docker engine answers" in out.stdout and "installing" not in out.stdout
    assert took < 2, f"second run took {took:.2f} s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_labkit_lab_serves_jupyterlab_on_loopback_with_a_token(tmp_path):
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               LABKIT_WORKSPACE=str(tmp_path / "workspace"))  # the learner's workspace: never the tester's home
    proc = subprocess.Popen([sys.executable, "-m", "labkit.cli", "lab", "--no-browser", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=2) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.5)
                continue
            break
        assert status == 403, f"JupyterLab answered {status} without a token (expected 403)"
        with socket.socket() as s:  # bound to loopback only
            s.settimeout(1)
            external = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
            if external:
                assert s.connect_ex((external[0], port)) != 0
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
