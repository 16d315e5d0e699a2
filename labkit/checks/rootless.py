"""Checks of notebook 06 (rootless Docker)."""
from __future__ import annotations

import time
import urllib.request

import docker

from ..containers import Container
from ..core.render import volatile
from ..exercises import exercise
from ..predictions import question
from ..procfs import container_processes


def _host_uid(container: Container) -> int | None:
    rows = container_processes(container).rows
    return int(rows[0][2].rsplit("uid ", 1)[1].rstrip(")")) if rows else None


@exercise("rootless", "rootless-web", "Serve a page from the rootless engine on 127.0.0.1", (
    "Two things matter: which engine your docker command talks to, and which host port the page can use "
    "when the engine is not root (section 4).",
    "The docker CLI's -H option (or DOCKER_HOST) picks the engine: rl.url is the rootless one. Publish a high "
    "port on 127.0.0.1 with -p 127.0.0.1::8080; busybox serves a directory with `httpd -f -p PORT -h DIR`.",
    "!docker -H {rl.url} run -d --name {lab.name('web')} -p 127.0.0.1::8080 labkit/busybox sh -c "
    "\"mkdir /www && echo hello from rootless > /www/index.html && httpd -f -p 8080 -h /www\"",
))
def rootless_web(lab, engine):
    try:
        web = Container(engine.lab.session, engine.lab.client.containers.get(lab.name("web")))
    except docker.errors.NotFound:
        rootful = [c.name for c in lab.client.containers.list(all=True, filters={"name": lab.name("web")})]
        where = f" (there is one on the rootful engine: {rootful[0]}; use the rootless engine's socket)" if rootful else ""
        return False, f"No container {lab.name('web')} on the rootless engine{where}."
    attrs = web.attrs()
    if attrs["State"]["Status"] != "running":
        logs = web.model.logs(tail=3).decode(errors="replace").strip() or "no output"
        return False, f"Found web on the rootless engine, but it is {attrs['State']['Status']}; its last log lines: {logs}"
    published = attrs["NetworkSettings"].get("Ports") or {}
    ports = [p for p in published if published[p]]
    if not ports:
        return False, f"Found web running on the rootless engine, but it publishes no port (exposed: {sorted(published) or 'none'})."
    url = f"http://127.0.0.1:{web.host_port(ports[0])}/"
    body, error = None, None
    deadline = time.monotonic() + 10  # `docker run -d` returns before httpd listens: poll, do not sleep blindly
    while body is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode(errors="replace")
        except OSError as exc:
            error = exc
            time.sleep(0.2)
    if body is None:
        return False, f"web publishes {ports[0]}, but nothing answered on 127.0.0.1 at that port ({error})."
    if "hello from rootless" not in body:
        return False, f"The page answers, but says {body.strip()[:80]!r}, not 'hello from rootless'."
    uid = _host_uid(web)
    if not uid:
        return False, "The web server runs as root on the host: is this really the rootless engine?"
    return True, f"The page answers on 127.0.0.1, served by a process that is uid {volatile(uid)} on the host, not root."


@exercise("rootless", "host-uid", "Map container users to host users", (
    "The kernel translates ids at the user namespace's border with a table: find that table for a container "
    "of the rootless engine.",
    "Section 2: /proc/PID/uid_map of the sleeper's host pid (pid), one line per range: uid inside, uid on "
    "the host, how many. /etc/subuid gives the same range.",
    "uid_map = [list(map(int, l.split())) for l in open(f'/proc/{pid}/uid_map')]; root_on_host = uid_map[0][1]; "
    "uid_1000_on_host = uid_map[1][1] + 1000 - uid_map[1][0]",
))
def host_uid(lab, engine, root: int | None = None, uid_1000: int | None = None):
    if root is None or uid_1000 is None:
        return False, "Set both answers: root=... and uid_1000=..."
    truth = {}
    for name, user in (("root", "0"), ("uid_1000", "1000")):
        with engine.lab.start("labkit/busybox", ["sleep", "60"], user=user) as c:
            truth[name] = _host_uid(c)
    wrong = [f"{n}={v} is not it" for n, v in (("root", root), ("uid_1000", uid_1000)) if truth[n] != v]
    if wrong:
        return False, f"Not quite: {'; '.join(wrong)} (the check looked both up on the host)."
    return True, (f"Right: root in the container is uid {volatile(truth['root'])} on the host, "
                  f"uid 1000 is {volatile(truth['uid_1000'])}.")


# --- Predict, then run ---------------------------------------------------------------------------
question("rootless", "root-on-host", "Inside a container of the rootless engine, `id` says uid=0 (root). Who is that "
         "process on the host?", [
             "root (uid 0): root is root",
             "the unprivileged user who runs the rootless engine",
             "nobody (uid 65534), the kernel's overflow user"],
         answer=1, why="The 'host user' column: the kernel maps uid 0 of the container's user namespace to the "
         "user the engine runs as, outside.")
question("rootless", "wormhole-rootless", "Notebook 05's wormhole, now against the rootless engine: a container with "
         "that engine's socket asks it for a sibling that mounts the host's / and reads a file only root may read. "
         "What happens?", [
             "it reads the file, as in notebook 05: the socket is the whole engine",
             "the sibling mounts / but cannot read the file: the engine and its containers are an unprivileged user on the host",
             "the engine refuses to start the sibling: a rootless engine cannot bind-mount /"],
         answer=1, why="The output column: the sibling's `cat` gets 'Permission denied'. The socket still controls "
         "the engine, but the engine is not root of this machine.")
