"""The session endpoint's request rewriting, without a daemon: a fake upstream (a unix socket
server in a thread) records what the proxy sends it."""
from __future__ import annotations

import json
import os
import socket
import threading
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from labkit.endpoint import SessionEndpoint

LABELS = {"labkit.session": "t-1", "labkit.lab": "t", "labkit.owner": "me"}


class FakeTracker:
    def __init__(self):
        self.tags, self.paths = [], []

    def tag(self, ref):
        self.tags.append(ref)

    def path(self, p):
        self.paths.append(p)
        return p


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    upstream = str(tmp_path / "engine.sock")
    seen: list[bytes] = []
    server = socket.socket(socket.AF_UNIX)
    server.bind(upstream)
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                seen.append(head + b"\r\n\r\n" + body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    threading.Thread(target=serve, daemon=True).start()
    session = SimpleNamespace(id="t-1", daemon_url=f"unix://{upstream}", labels=LABELS, tracker=FakeTracker(),
                              name=lambda suffix: f"lab-t-1-{suffix}", state=tmp_path / "state")
    ep = SessionEndpoint(session).start()
    yield ep, seen
    ep.stop()
    server.close()


def send(ep, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(ep.path))
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def post(path: str, body: dict | None = None, chunked: bool = False) -> bytes:
    data = json.dumps(body or {}).encode()
    if chunked:
        return (f"POST {path} HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                + f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")
    return f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


def body_of(raw: bytes) -> dict:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def test_container_create_gets_the_session_labels_and_keeps_its_own(endpoint):
    ep, seen = endpoint
    reply = send(ep, post("/v1.41/containers/create?name=x", {"Image": "busybox", "Labels": {"mine": "1"}}))
    assert reply.startswith(b"HTTP/1.1 200")
    assert body_of(seen[0])["Labels"] == {"mine": "1", **LABELS}
    assert b"Connection: close" in seen[0]


@pytest.mark.parametrize("path", ["/networks/create", "/v1.41/volumes/create"])
def test_networks_and_volumes_are_labelled_even_when_chunked(endpoint, path):
    ep, seen = endpoint
    send(ep, post(path, {"Name": "n"}, chunked=True))
    assert body_of(seen[0])["Labels"] == LABELS
    assert b"chunked" not in seen[0].lower()


def test_commit_labels_the_new_image(endpoint):
    ep, seen = endpoint
    send(ep, post("/v1.41/commit?container=abc", {"Cmd": ["sh"]}))
    assert body_of(seen[0])["Config"]["Labels"] == LABELS


def test_build_gets_labels_in_its_query(endpoint):
    ep, seen = endpoint
    labels = quote(json.dumps({"mine": "2"}))
    send(ep, f"POST /v1.41/build?t=app&labels={labels} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n".encode())
    from urllib.parse import parse_qs, urlsplit
    target = seen[0].split(b" ")[1].decode()
    query = parse_qs(urlsplit(target).query)
    assert json.loads(query["labels"][0]) == {"mine": "2", **LABELS}
    assert query["t"] == ["app"]


def test_tags_are_tracked_and_reads_pass_through(endpoint):
    ep, seen = endpoint
    send(ep, b"POST /v1.41/images/busybox/tag?repo=lab-t-1-x&tag=v1 HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
    send(ep, b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n")
    assert ep.session.tracker.tags == ["lab-t-1-x:v1"]
    assert seen[1].startswith(b"GET /v1.41/containers/json HTTP/1.1")


def test_upgrade_requests_keep_their_connection_header(endpoint):
    ep, seen = endpoint
    send(ep, b"POST /v1.41/containers/x/attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    assert b"Connection: Upgrade" in seen[0] and b"Connection: close" not in seen[0]


def test_the_socket_is_private_and_export_is_undone(endpoint, monkeypatch):
    ep, _ = endpoint
    assert os.stat(ep.path).st_mode & 0o077 == 0
    monkeypatch.setenv("DOCKER_HOST", "unix:///before.sock")
    ep.export()
    assert os.environ["DOCKER_HOST"] == ep.url and os.environ["LABKIT_DOCKER_HOST"] == ep.upstream
    assert os.environ["LAB_PREFIX"] == "lab-t-1"
    ep.unexport()
    assert os.environ["DOCKER_HOST"] == "unix:///before.sock" and "LAB_SESSION" not in os.environ


def test_an_unreachable_engine_is_a_502_that_names_the_endpoint(endpoint, tmp_path):
    ep, _ = endpoint
    ep.upstream = f"unix://{tmp_path}/nobody.sock"
    reply = send(ep, b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502") and b"labkit session endpoint" in reply


def test_a_deep_runtime_dir_still_gives_a_socket(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    session = SimpleNamespace(id="t-2", daemon_url="unix:///nowhere.sock", labels=LABELS, tracker=FakeTracker(),
                              name=lambda suffix: f"lab-t-2-{suffix}", state=tmp_path / "state")
    ep = SessionEndpoint(session).start()
    try:
        assert len(str(ep.path)) <= 100 and ep.path.exists()
    finally:
        ep.stop()
    assert not ep.path.exists()
