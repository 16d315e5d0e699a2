"""A session's own engine endpoint: a small proxy on a unix socket in front of the real engine.

A learner's shell cell (`!docker run ...`) talks to it through DOCKER_HOST. It passes every
request through unchanged except the ones that create something, to which it adds the session's
labels (containers, networks, volumes, builds, commits, imports), and tags, which it notes in the
session's tracker. On a rootless engine, a container asked to run as you (`--user "$(id -u):$(id -g)"`)
runs as the engine's root, which is you on the host. So what a learner makes by hand is found by the lab's checks and removed by
its cleanup and watchdog, and nothing made outside the session is ever touched. The same design
as Docker's Labspaces, which proxies a session socket to label what its users create.

One request per upstream connection (`Connection: close`), so the proxy never has to find
request boundaries in a kept-alive stream; upgraded connections (attach, exec, BuildKit
sessions) are piped both ways as bytes."""
from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .core import engine
from .core.locks import runtime_dir
from .core.session import Session

_BODY_LABELS = re.compile(r"^(/v[\d.]+)?/(containers/create|networks/create|volumes/create|commit)$")
_BUILD = re.compile(r"^(/v[\d.]+)?/build$")
_IMPORT = re.compile(r"^(/v[\d.]+)?/images/create$")
_TAG = re.compile(r"^(/v[\d.]+)?/images/(.+)/tag$")
_MAX_HEAD = 64 * 1024
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        client: socket.socket = self.request
        try:
            head, rest = _read_head(client)
        except (OSError, ValueError):
            return
        if not head:
            return
        try:
            data = self.server.endpoint.rewrite(head, rest, client)
            upstream = self.server.endpoint.connect()
        except (OSError, ValueError) as exc:
            _reply_error(client, exc)
            return
        with upstream:
            upstream.sendall(data)
            _pipe(client, upstream)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    endpoint: "SessionEndpoint"


class SessionEndpoint:
    """`SessionEndpoint(session).start()`; `url` is what DOCKER_HOST should say."""

    def __init__(self, session: Session, upstream: str | None = None) -> None:
        self.session = session
        self.upstream = upstream or session.daemon_url
        self.path = runtime_dir() / f"{session.id}.sock"
        if len(str(self.path)) > _MAX_SOCKET_PATH:  # a deep XDG_RUNTIME_DIR: unix socket paths are short
            short = Path(tempfile.gettempdir()) / f"labkit-{os.getuid()}"
            short.mkdir(mode=0o700, exist_ok=True)
            self.path = short / f"{session.id}.sock"
        self._server: _Server | None = None
        self._saved_env: dict[str, str | None] | None = None
        self._is_rootless: bool | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _rootless(self) -> bool:
        if self._is_rootless is None:
            try:
                self._is_rootless = engine.is_rootless(engine.client_for(self.upstream))
            except Exception:  # not an engine that answers /info: it runs containers as it is asked
                self._is_rootless = False
        return self._is_rootless

    def start(self) -> "SessionEndpoint":
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # the socket is root on the engine: this user only
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old)
        self._server.endpoint = self
        self.session.tracker.path(self.path)  # the watchdog removes it if the kernel dies
        threading.Thread(target=self._server.serve_forever, args=(0.1,), name=f"labkit-endpoint-{self.session.id}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self.unexport()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)

    # --- the environment shell cells see -------------------------------------------------------
    def env(self) -> dict[str, str]:
        """What a shell needs to use this endpoint: DOCKER_HOST, the session's id, name prefix and
        state directory (files a cell prepared for a `%%bash` cell), the real engine for labkit itself, and a BuildKit-capable docker first on PATH."""
        env = {"DOCKER_HOST": self.url, "LABKIT_DOCKER_HOST": self.upstream, "LAB_SESSION": self.session.id,
               "LAB_PREFIX": self.session.name("").rstrip("-"), "LAB_STATE": str(self.session.state)}
        cli = engine.find_buildkit_cli()
        if cli is not None and cli.mode != "buildx":
            # this machine's first docker may refuse BuildKit (no buildx plugin): put the one labkit
            # found first, with DOCKER_BUILDKIT=1, so `docker build --secret ...` works as on a laptop
            bin_dir = self.path.with_suffix(".bin")
            bin_dir.mkdir(exist_ok=True)
            link = bin_dir / "docker"
            if not link.exists():
                link.symlink_to(cli.path)
            self.session.tracker.path(bin_dir)
            env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
            env["DOCKER_BUILDKIT"] = "1"
        return env

    def export(self) -> None:
        """Set this process's environment (a kernel's `!` and `%%bash` cells inherit it)."""
        new = self.env()
        self._saved_env = {k: os.environ.get(k) for k in new}
        os.environ.update(new)

    def unexport(self) -> None:
        """Put the environment back, unless something else has changed DOCKER_HOST since."""
        if self._saved_env is None or os.environ.get("DOCKER_HOST") != self.url:
            self._saved_env = None
            return
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None

    # --- the proxy -------------------------------------------------------------------------------
    def connect(self) -> socket.socket:
        url = urlsplit(self.upstream)
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(url.path)
        else:
            sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 2375))
        return sock

    def rewrite(self, head: bytes, rest: bytes, client: socket.socket) -> bytes:
        """The request as sent upstream: labels added where something is created."""
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        names = {k.strip().lower(): v.strip() for k, v in headers}
        url = urlsplit(target)
        body = rest
        if method == "POST" and _BODY_LABELS.match(url.path):
            body = _read_body(client, names, rest)
            doc = json.loads(body or b"{}")
            holder = doc.setdefault("Config", {}) if url.path.endswith("/commit") and "Labels" not in doc else doc
            holder["Labels"] = {**(holder.get("Labels") or {}), **self.session.labels}
            if url.path.endswith("/containers/create"):
                _as_engine_root(doc, self._rootless)
            body = json.dumps(doc).encode()
            headers = [h for h in headers if h[0].strip().lower() not in ("content-length", "transfer-encoding")]
            headers.append(["Content-Length", f" {len(body)}"])
        elif method == "POST" and _BUILD.match(url.path):
            query = parse_qsl(url.query, keep_blank_values=True)
            labels = {**json.loads(dict(query).get("labels") or "{}"), **self.session.labels}
            query = [(k, v) for k, v in query if k != "labels"] + [("labels", json.dumps(labels))]
            target = f"{url.path}?{urlencode(query, quote_via=quote)}"
        elif method == "POST" and _IMPORT.match(url.path) and "fromSrc=" in url.query:
            changes = [("changes", f"LABEL {k}={v}") for k, v in self.session.labels.items()]
            target = f"{url.path}?{urlencode(parse_qsl(url.query, keep_blank_values=True) + changes, quote_via=quote)}"
        elif method == "POST" and _TAG.match(url.path):
            query = dict(parse_qsl(url.query))
            if query.get("repo"):
                self.session.tracker.tag(f"{query['repo']}:{query.get('tag') or 'latest'}")
        if "upgrade" not in names:
            headers = [h for h in headers if h[0].strip().lower() not in ("connection", "keep-alive")]
            headers.append(["Connection", " close"])
        out = "\r\n".join([f"{method} {target} {version}", *(f"{k}:{v}" for k, v in headers), "", ""])
        return out.encode("latin-1") + body


def _as_engine_root(doc: dict, rootless) -> None:
    """`--user "$(id -u):$(id -g)"` means "as me, so the files stay mine". On a rootless engine, you
    are uid 0 inside (RootlessKit maps the engine's root to its user); your own uid inside would be a
    stranger's subordinate id on the host, shut out of your files. So it becomes 0:0 there."""
    me = {str(os.getuid()), f"{os.getuid()}:{os.getgid()}"}
    if doc.get("User") in me and os.getuid() != 0 and rootless():
        doc["User"] = "0:0" if ":" in doc["User"] else "0"


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        buf += chunk
        if len(buf) > _MAX_HEAD:
            raise ValueError("request head too large")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        buf, body = rest, b""
        while True:
            while b"\r\n" not in buf:
                buf += _recv(sock)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += _recv(sock)
            if size == 0:
                return body
            body, buf = body + buf[:size], buf[size + 2:]
    length = int(headers.get("content-length", "0"))
    body = rest
    while len(body) < length:
        body += _recv(sock)
    return body


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ValueError("the client closed the connection mid-request")
    return chunk


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both directions are done."""
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    back = threading.Thread(target=copy, args=(b, a), daemon=True)
    back.start()
    copy(a, b)
    back.join()


def _reply_error(client: socket.socket, exc: Exception) -> None:
    body = json.dumps({"message": f"labkit session endpoint: {exc}"}).encode()
    try:
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nConnection: close\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    except OSError:
        pass
