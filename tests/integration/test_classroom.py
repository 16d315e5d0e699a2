"""A classroom with two learners, end to end (issue 18): `up`, each learner runs notebook 00's
exercises in their own kernel through the hub, the proxy and the websocket against their own
rootless engine, the roster shows both, the isolation checks, then `down` leaves nothing.
Needs root (it makes accounts) and what a rootless engine needs; a skip says which is missing."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from labkit import bundle, classroom, hubkernel, rootless, roster
from labkit.core.errors import LabkitError

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the classroom makes accounts: run as root")


def _learner_rest(state, token, user, path):
    req = urllib.request.Request(f"http://127.0.0.1:{state['port']}/user/{user}/{path}",
                                 headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def room(tmp_path_factory, docker_client):
    missing = [w for w, ok, _ in rootless.requirements("root") if not ok and not w.startswith(("user ", "/etc/sub"))]
    if missing:
        pytest.skip("no rootless engines here: missing " + ", ".join(missing))
    # learners run the class venv under the state directory: every directory on its path must let
    # them through (pytest's own temporary directory is root's alone)
    base = Path(tempfile.mkdtemp(prefix="labkit-classroom-test-"))
    base.chmod(0o755)
    bundle_dir = base / "bundle"
    bundle.export(bundle_dir, ["labkit/busybox:latest"])
    state_dir = base / "state"
    old = classroom.STATE
    classroom.STATE = state_dir
    prefix = "lc" + secrets.token_hex(2)
    try:
        state = classroom.up(2, prefix=prefix, trainer=prefix + "tr", port=classroom._free_port(), bundle=bundle_dir)
        yield state
    finally:
        log = state_dir / "hub.log"
        if log.exists():  # kept for a failure's story (down removes the state directory)
            print(log.read_text(errors="replace")[-3000:])
        left = classroom.down()
        classroom.STATE = old
        shutil.rmtree(base, ignore_errors=True)
        assert left == [], f"classroom down left {left}"


def _spawn(state, name) -> float:
    begin = time.monotonic()
    classroom.hub_api(state, f"users/{name}/server", "POST", {})
    while not (classroom.hub_api(state, f"users/{name}")["servers"].get("", {}) or {}).get("ready"):
        assert time.monotonic() - begin < 120, f"{name}'s server was not ready in 120 s"
        time.sleep(0.3)
    return time.monotonic() - begin


def test_two_learners_end_to_end_and_isolated(room):
    a, b = room["learners"]
    spawn = {name: _spawn(room, name) for name in (a, b)}
    tokens = {name: classroom.hub_api(room, f"users/{name}/tokens", "POST", {"note": "test", "expires_in": 900})["token"]
              for name in (a, b)}
    learners = classroom.status()["learners"]
    assert all(u["server"] and u["engine"] for u in learners), learners

    async def scenario():
        kernels = {n: await hubkernel.LearnerKernel(f"http://127.0.0.1:{room['port']}/user/{n}/", tokens[n]).open()
                   for n in (a, b)}
        try:
            # notebook 00 with its solutions, in each learner's kernel
            for n, k in kernels.items():
                for code in hubkernel.notebook_cells(REPO / "notebooks" / "00-welcome.ipynb"):
                    reply = await k.run(code)
                    assert reply.status == "ok", f"{n}: {code[:80]!r} -> {reply.error}\n{reply.output[-800:]}"
                    if code.startswith("lab.check"):
                        assert "Passed" in reply.output, f"{n}: {reply.output}"
            # B leaves a container and an image of their own on their engine
            await kernels[b].run("import subprocess as sp\n"
                                 "sp.run('docker run -d --name secret-of-b labkit/busybox sleep 600 && "
                                 "docker tag labkit/busybox:latest only-b:1', shell=True, check=True)")
            probe = await kernels[a].run(
                "import subprocess as sp, os, socket\n"
                f"print('ps', sp.run('docker ps -a --format {{{{.Names}}}}', shell=True, capture_output=True, text=True).stdout.split())\n"
                "print('images', sp.run('docker images --format {{.Repository}}', shell=True, capture_output=True, text=True).stdout.split())\n"
                f"s = socket.socket(socket.AF_UNIX)\n"
                f"try:\n    s.connect('/home/{b}/.labkit/engine/run/docker.sock'); print('socket open')\n"
                f"except OSError as e:\n    print('socket refused', e.errno)\n"
                f"r = sp.run('docker run --rm -v /home/{b}:/b labkit/busybox ls /b', shell=True, capture_output=True, text=True)\n"
                "print('bind', r.returncode, r.stdout.strip()[:60])\n")
            out = probe.output
            assert "secret-of-b" not in out and "only-b" not in out, out
            assert "socket refused" in out, out
            assert "labkit-workspace" not in out, out  # B's home (mode 700) stays closed to A's containers
            # B's kernel process: A may not signal it
            b_pid = (await kernels[b].run("import os; print(os.getpid())")).output.strip()
            kill = await kernels[a].run(f"import os\ntry:\n    os.kill({b_pid}, 0); print('signal sent')\n"
                                        "except PermissionError:\n    print('signal refused')")
            assert "signal refused" in kill.output, kill.output
            # the same published container port works on both engines at once
            for n, k in kernels.items():
                r = await k.run("import subprocess as sp\nprint(sp.run('docker run -d --name web -p 127.0.0.1::8080 "
                                "labkit/busybox httpd -f -p 8080', shell=True, capture_output=True, text=True).returncode)")
                assert r.output.strip() == "0", f"{n}: {r.output} {r.error}"
        finally:
            for k in kernels.values():
                await k.close()

    asyncio.run(scenario())
    # A's token does not open B's server
    assert _learner_rest(room, tokens[a], b, "api/kernels") in (403, 404, 302), "A reached B's server"
    assert _learner_rest(room, tokens[b], b, "api/kernels") == 200
    # the roster has both within 5 s of their checks
    begin = time.monotonic()
    while time.monotonic() - begin < 5:
        summary = roster.summary(classroom.STATE / "roster.json", [a, b])
        if all(summary[n]["welcome"] == "done" for n in (a, b)):
            break
        time.sleep(0.2)
    assert all(summary[n]["welcome"] == "done" for n in (a, b)), summary
    print(f"spawn to ready: {spawn}")


def test_bad_input_is_refused_with_a_hint(room):
    with pytest.raises(LabkitError, match="runs already"):
        classroom.up(1, bundle="/nonexistent")
    st = classroom.STATE
    classroom.STATE = st.parent / "other"
    try:
        with pytest.raises(LabkitError, match="already an account"):
            classroom.up(1, prefix="n" + secrets.token_hex(3), trainer="nobody", bundle=room["bundle"])
        with pytest.raises(LabkitError, match="No class bundle"):
            classroom.up(1, prefix="n" + secrets.token_hex(3), bundle=st.parent / "missing")
        with pytest.raises(LabkitError, match="in use"):
            classroom.up(1, prefix="n" + secrets.token_hex(3), port=room["port"], bundle=room["bundle"])
        with pytest.raises(LabkitError, match="do not fit"):
            classroom.up(100000, prefix="n" + secrets.token_hex(3), bundle=room["bundle"])
    finally:
        classroom.STATE = st


def _browser(state, user, password):
    """A browser's cookie jar after the login form (PAM checks the password): (status, opener)."""
    import http.cookiejar
    import re
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    base = f"http://127.0.0.1:{state['port']}/hub/"
    page = opener.open(base + "login", timeout=30).read().decode()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
    try:
        with opener.open(base + "login?next=%2Fhub%2Fhome", data=form, timeout=60) as r:
            return (r.status if "/hub/home" in r.url or "/user/" in r.url else 0), opener
    except urllib.error.HTTPError as e:
        return e.code, opener


def _login(state, user, password) -> int:
    return _browser(state, user, password)[0]


def test_the_roster_page_is_the_trainers_alone(room):
    """The trainer logs in and opens the roster (the hub's OAuth in between); a learner gets 403."""
    a, trainer = room["learners"][0], room["trainer"]
    status, browser = _browser(room, trainer, room["passwords"][trainer])
    assert status == 200
    with browser.open(f"http://127.0.0.1:{room['port']}/services/roster/", timeout=60) as r:
        page = r.read().decode()
    assert "<h1>Roster</h1>" in page and a in page and "welcome" in page
    status, browser = _browser(room, a, room["passwords"][a])
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(f"http://127.0.0.1:{room['port']}/services/roster/", timeout=60)
    assert refused.value.code == 403


def test_learners_log_in_with_their_card(room):
    a, b = room["learners"]
    assert _login(room, a, room["passwords"][a]) == 200
    assert _login(room, a, room["passwords"][b]) == 403  # B's password does not open A's account


def test_a_dead_engine_is_said_in_the_notebook_and_on_the_roster(room):
    from labkit import userengine
    b = room["learners"][1]
    token = classroom.hub_api(room, f"users/{b}/tokens", "POST", {"note": "test", "expires_in": 900})["token"]
    userengine.stop(b)
    assert roster.engine_states([b]) == {b: False}

    async def notebook():
        k = await hubkernel.LearnerKernel(f"http://127.0.0.1:{room['port']}/user/{b}/", token).open()
        try:
            return await k.run("import labkit\nlabkit.Lab('welcome')")
        finally:
            await k.close()
    reply = asyncio.run(notebook())
    assert reply.status == "error" and "Your own engine stopped" in reply.output + reply.error, reply
    userengine.start(b)
    assert roster.engine_states([b]) == {b: True}


def test_root_follows_no_symlink_a_learner_plants(room):
    """Root starts a learner's engine: a symlink the learner plants in their home (here the engine's
    log, pointing at a root-only file) must not make root write, chown or show that file."""
    a = room["learners"][0]
    secret_dir = Path(tempfile.mkdtemp(prefix="labkit-sentinel-"))
    secret = secret_dir / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    try:
        classroom.hub_api(room, f"users/{a}/server", "DELETE")
        begin = time.monotonic()
        while classroom.hub_api(room, f"users/{a}")["servers"]:
            assert time.monotonic() - begin < 60
            time.sleep(0.3)
        subprocess.run(["runuser", "-u", a, "--", "sh", "-c", "mkdir -p ~/.labkit/engine && rm -f ~/.labkit/engine/dockerd.log "
                        f"&& ln -s {secret} ~/.labkit/engine/dockerd.log"], check=True)
        try:
            _spawn(room, a)  # may fail: the learner broke their own engine's log
        except Exception:
            pass
        assert os.stat(secret).st_uid == 0 and secret.read_text() == "root only\n"
        assert oct(os.stat(secret).st_mode & 0o777) == "0o600"
    finally:
        subprocess.run(["runuser", "-u", a, "--", "sh", "-c", "rm -f ~/.labkit/engine/dockerd.log"])
        shutil.rmtree(secret_dir, ignore_errors=True)
