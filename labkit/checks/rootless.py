"""Checks of notebook 06 (rootless Docker)."""
from __future__ import annotations

import urllib.request

import docker

from ..containers import Container
from ..core.render import volatile
from ..exercises import exercise
from ..procfs import container_processes


def _host_uid(container: Container) -> int | None:
    rows = container_processes(container).rows
    return int(rows[0][2].rsplit("uid ", 1)[1].rstrip(")")) if rows else None


@exercise("rootless", "rootless-web", "Serve a page from the rootless engine on 127.0.0.1",
          "Ports below 1024 need privileges the rootless engine does not have: publish the container's port "
          "on a high host port, e.g. ports={8080: None}, and run it with rl.lab.start(..., name='web').")
def rootless_web(lab, engine):
    try:
        web = Container(engine.lab.session, engine.lab.client.containers.get(lab.name("web")))
    except docker.errors.NotFound:
        return False, "No container named 'web' on the rootless engine."
    ports = [p for p in (web.attrs()["NetworkSettings"].get("Ports") or {}) if web.attrs()["NetworkSettings"]["Ports"][p]]
    if not ports:
        return False, "web publishes no port."
    url = f"http://127.0.0.1:{web.host_port(ports[0])}/"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode(errors="replace")
    except OSError as exc:
        return False, f"Nothing answered on the published port ({exc})."
    if "hello from rootless" not in body:
        return False, "The page does not say 'hello from rootless'."
    uid = _host_uid(web)
    if not uid:
        return False, "The web server runs as root on the host: is this really the rootless engine?"
    return True, f"The page answers on 127.0.0.1, served by a process that is uid {volatile(uid)} on the host, not root."


@exercise("rootless", "host-uid", "Map container users to host users",
          "The rootless engine's /proc/PID/uid_map has two lines: container uid 0 maps to the engine's user, "
          "and 1 upwards to the user's subordinate range from /etc/subuid.")
def host_uid(lab, engine, root: int | None = None, uid_1000: int | None = None):
    if root is None or uid_1000 is None:
        return False, "Set both answers: root=... and uid_1000=..."
    truth = {}
    for name, user in (("root", "0"), ("uid_1000", "1000")):
        with engine.lab.start("labkit/busybox", ["sleep", "60"], user=user) as c:
            truth[name] = _host_uid(c)
    wrong = [n for n, v in (("root", root), ("uid_1000", uid_1000)) if truth[n] != v]
    if wrong:
        return False, f"Not quite: {', '.join(wrong)} is wrong."
    return True, (f"Right: root in the container is uid {volatile(truth['root'])} on the host, "
                  f"uid 1000 is {volatile(truth['uid_1000'])}.")
