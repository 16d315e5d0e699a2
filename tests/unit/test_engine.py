from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from labkit.core import capabilities, engine
from labkit.core.errors import BuildKitUnavailable, DaemonUnavailable


def fake_docker(path, version, buildx=False):
    """A stand-in docker *client* executable: only the version/buildx answers PATH logic reads."""
    path.mkdir(parents=True, exist_ok=True)
    script = path / "docker"
    script.write_text(f"""#!/bin/sh
if [ "$1" = buildx ]; then {'echo buildx v0.12; exit 0' if buildx else 'echo "unknown command" >&2; exit 1'}; fi
if [ "$1" = version ]; then echo {version}; exit 0; fi
exit 1
""")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def only_path(monkeypatch, tmp_path):
    def set_path(*dirs):
        monkeypatch.setenv("PATH", os.pathsep.join(str(d) for d in dirs))
        monkeypatch.setattr(engine, "docker_clis", lambda: [
            os.path.join(str(d), "docker") for d in dirs if os.path.exists(os.path.join(str(d), "docker"))])
        engine.find_buildkit_cli.cache_clear()
    yield set_path
    engine.find_buildkit_cli.cache_clear()


def test_new_client_first_on_path_is_skipped_for_classic_one(tmp_path, only_path):
    new = fake_docker(tmp_path / "new", "28.2.2")
    old = fake_docker(tmp_path / "old", "20.10.24+dfsg1")
    only_path(tmp_path / "new", tmp_path / "old")
    cli = engine.find_buildkit_cli()
    assert cli is not None and cli.path == old and cli.mode.startswith("classic")
    assert new != old


def test_buildx_plugin_wins(tmp_path, only_path):
    fake_docker(tmp_path / "old", "20.10.24")
    bx = fake_docker(tmp_path / "bx", "28.0.0", buildx=True)
    only_path(tmp_path / "old", tmp_path / "bx")
    assert engine.find_buildkit_cli().path == bx


def test_no_buildkit_client_is_a_clear_error(tmp_path, only_path):
    fake_docker(tmp_path / "new", "27.1.0")
    only_path(tmp_path / "new")
    with pytest.raises(BuildKitUnavailable) as err:
        engine.require_buildkit()
    assert "Hint: " in str(err.value) and "buildx" in str(err.value)


def test_docker_host_wins(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert engine.find_daemon() == ("tcp://127.0.0.1:2375", "DOCKER_HOST")


def test_docker_context_is_read(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "second"}))
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"second").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "second", "Endpoints": {"docker": {"Host": "unix:///tmp/second.sock"}}}))
    assert engine.find_daemon() == ("unix:///tmp/second.sock", "docker context 'second'")


def test_missing_socket_fails_fast_with_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    start = time.monotonic()
    with pytest.raises(DaemonUnavailable) as err:
        engine.client()
    assert time.monotonic() - start < 5
    assert str(err.value).splitlines()[-1].startswith("Hint: ")


def test_silent_daemon_times_out_within_5s(monkeypatch, tmp_path):
    """A socket that accepts but never answers (a hung daemon) must not hang labkit."""
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(5)
    conns = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    start = time.monotonic()
    try:
        with pytest.raises(DaemonUnavailable):
            engine.client()
        assert time.monotonic() - start < engine.PING_TIMEOUT + 1.5
    finally:
        stop.set()
        t.join()
        server.close()


def test_doctor_json_with_stopped_daemon_is_valid_and_fails(tmp_path):
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/absent.sock")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "labkit.cli", "doctor", "--json"], capture_output=True,
                         text=True, env=env, timeout=30)
    assert time.monotonic() - start < 10
    data = json.loads(out.stdout)
    assert out.returncode == 1 and data["ok"] is False and data["reachable"] is False
    engine_row = next(c for c in data["checks"] if c["item"] == "Docker engine")
    assert engine_row["status"] == "missing" and engine_row["fix"]


def test_missing_capabilities_reads_bounding_set():
    caps = capabilities.missing_capabilities()
    assert isinstance(caps, list) and all(isinstance(c, str) for c in caps)
    assert len(capabilities.CAP_NAMES) == 41 and capabilities.CAP_NAMES[24] == "SYS_RESOURCE"
