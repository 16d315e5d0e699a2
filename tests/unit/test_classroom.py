"""The classroom's pure parts without root, a hub or an engine: sizing, names, the limits note, login
cards, the hub configuration it writes, the refusals of `up` that need no root to reach, and a
learner's kernel sending its progress to the roster (tests/integration/test_classroom.py runs the
real thing)."""
from __future__ import annotations

import http.server
import json
import os
import pwd
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from labkit import classroom, exercises
from labkit.core.errors import LabkitError

# --- sizing and names -----------------------------------------------------------------------------

def test_max_learners_is_free_memory_less_the_hub_over_the_per_learner_peak():
    hub, each = classroom.HUB_MB, classroom.PER_LEARNER_MB
    assert classroom.max_learners(0) == 0
    assert classroom.max_learners(hub - 1) == 0  # never negative
    assert classroom.max_learners(hub + each - 1) == 0
    assert classroom.max_learners(hub + each) == 1
    assert classroom.max_learners(hub + 30 * each) == 30
    assert classroom.max_learners(hub + 30 * each + each - 1) == 30  # rounds down


def test_max_learners_reads_free_memory_when_not_told(monkeypatch):
    monkeypatch.setattr(classroom, "available_mb", lambda: classroom.HUB_MB + 4 * classroom.PER_LEARNER_MB)
    assert classroom.max_learners() == 4


def test_available_mb_reads_this_hosts_meminfo():
    assert classroom.available_mb() > 0


def test_learner_names_are_prefix_and_two_digits():
    assert classroom.learner_names(3, "learner") == ["learner01", "learner02", "learner03"]
    assert classroom.learner_names(12, "lc")[-1] == "lc12"
    assert classroom.learner_names(0, "lc") == []
    assert len(set(classroom.learner_names(100, "lc"))) == 100


# --- limits ---------------------------------------------------------------------------------------

def _host(monkeypatch, v2: bool, systemd: bool) -> None:
    class FakePath:
        def __init__(self, path: str) -> None:
            self.path = path

        def exists(self) -> bool:
            return v2 and self.path == "/sys/fs/cgroup/cgroup.controllers"

        def is_dir(self) -> bool:
            return systemd and self.path == "/run/systemd/system"
    monkeypatch.setattr(classroom, "Path", FakePath)


@pytest.mark.parametrize("v2, systemd, why", [(False, False, "cgroup v1, no systemd"), (False, True, "cgroup v1"),
                                              (True, False, "no systemd")])
def test_limits_note_says_plainly_when_limits_are_not_enforced(monkeypatch, v2, systemd, why):
    _host(monkeypatch, v2, systemd)
    note = classroom.limits_note()
    assert note.startswith("per-learner limits: NOT enforced on this host") and f"({why})" in note
    assert "all of the server's memory and CPU" in note and "README" in note


def test_limits_note_with_systemd_and_cgroup_v2_names_the_limits(monkeypatch):
    _host(monkeypatch, True, True)
    note = classroom.limits_note("3G", 1.5)
    assert "MemoryMax=3G" in note and "1.5 CPU" in note and "NOT" not in note
    assert classroom.limits_available()


def test_limits_note_on_this_host():
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    systemd = Path("/run/systemd/system").is_dir()
    note = classroom.limits_note()
    assert ("NOT enforced" in note) == (not (v2 and systemd))
    assert ("cgroup v1" in note) == (not v2) and ("no systemd" in note) == (not systemd)


# --- login cards ----------------------------------------------------------------------------------

STATE = {"learners": ["learner01", "learner02"], "trainer": "trainer", "ip": "127.0.0.1", "port": 8123,
         "passwords": {"learner01": "pw-one-xyz", "trainer": "a-much-longer-trainer-password"}}


def _cards(text: str) -> list[list[str]]:
    cards, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.startswith("+") and len(current) > 1:
            cards.append(current)
            current = []
    assert current == [], "text after the last card"
    return cards


def test_cards_are_boxes_of_equal_width_one_per_account():
    cards = _cards(classroom.cards(STATE))
    assert len(cards) == 3
    for card in cards:
        assert len({len(line) for line in card}) == 1, card  # every line of a card the same width
        assert card[0] == card[-1] and set(card[0][1:-1]) == {"-"}
        assert all(line.startswith("| ") and line.endswith(" |") for line in card[1:-1])
        assert any("http://127.0.0.1:8123/" in line for line in card)


def test_the_trainer_card_has_the_roster_and_learners_cards_do_not():
    learner01, learner02, trainer = _cards(classroom.cards(STATE))
    assert any("user:     learner01" in line for line in learner01) and any("pw-one-xyz" in line for line in learner01)
    assert any("(unchanged)" in line for line in learner02)  # an account an earlier `up` made: no new password
    assert "learner" in learner01[1] and "trainer" in trainer[1]
    assert any("roster:   http://127.0.0.1:8123/services/roster/" in line for line in trainer)
    assert not any("roster" in line for card in (learner01, learner02) for line in card)


# --- the hub configuration ------------------------------------------------------------------------

def _config_text(state: dict, venv: Path, state_dir: Path) -> tuple[str, Path]:
    """The config text `up` writes, and the reference notebooks it names."""
    pytest.importorskip("jupyterhub")
    from labkit import hub
    return hub.config(state, venv, state_dir), hub.REPO / "notebooks"


def _rendered(monkeypatch, tmp_path, **over) -> tuple[dict, object]:
    from traitlets.config import Config
    monkeypatch.setattr(classroom, "STATE", tmp_path / "state")
    state = {"learners": ["lc01", "lc02"], "trainer": "boss", "ip": "192.0.2.10", "port": 8123, "hub_port": 18081,
             "proxy_api_port": 18082, "roster_port": 18083, "proxy": "/opt/node/bin/configurable-http-proxy",
             "bundle": "/srv/bundle", "admin_token": secrets.token_hex(32), **over}
    text, reference = _config_text(state, Path("/opt/class-venv"), tmp_path / "state")
    c = Config()
    exec(compile(text, "jupyterhub_config.py", "exec"), {"get_config": lambda: c})
    state["reference"] = str(reference)
    return state, c


def test_config_runs_the_hub_on_the_given_address_and_everything_else_on_loopback(monkeypatch, tmp_path):
    state, c = _rendered(monkeypatch, tmp_path)
    assert c.JupyterHub.ip == "192.0.2.10" and c.JupyterHub.port == 8123
    assert c.JupyterHub.hub_ip == "127.0.0.1" and c.JupyterHub.hub_port == 18081
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18082"
    assert c.ConfigurableHTTPProxy.command == ["/opt/node/bin/configurable-http-proxy"]
    # learners send through the proxy, at the hub's own address: the roster's port is never handed out
    assert c.LearnerSpawner.roster_url == "http://192.0.2.10:8123/services/roster/api/progress"
    roster = next(s for s in c.JupyterHub.services if s["name"] == "roster")
    assert roster["url"] == "http://127.0.0.1:18083"


def test_config_keeps_the_hubs_files_in_the_state_directory(monkeypatch, tmp_path):
    _, c = _rendered(monkeypatch, tmp_path)
    state_dir = tmp_path / "state"
    assert c.JupyterHub.db_url == f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
    for value in (c.JupyterHub.cookie_secret_file, c.JupyterHub.pid_file, c.ConfigurableHTTPProxy.pid_file):
        assert Path(value).parent == state_dir
    assert c.JupyterHub.cleanup_servers is True


def test_config_spawns_learners_with_labkits_spawner_and_the_class_venv(monkeypatch, tmp_path):
    state, c = _rendered(monkeypatch, tmp_path)
    assert c.JupyterHub.spawner_class == "labkit.hub.LearnerSpawner"
    assert c.Spawner.cmd == ["/opt/class-venv/bin/jupyterhub-singleuser"]
    assert c.LearnerSpawner.learner_bin == "/opt/class-venv/bin" and c.LearnerSpawner.bundle == "/srv/bundle"
    assert c.LearnerSpawner.reference == state["reference"] and state["reference"].endswith("/notebooks")
    assert c.JupyterHub.authenticator_class == "pam"
    from jupyterhub.spawner import LocalProcessSpawner

    from labkit.hub import LearnerSpawner
    assert issubclass(LearnerSpawner, LocalProcessSpawner)
    assert {"bundle", "learner_bin", "roster_url", "reference"} <= set(LearnerSpawner.class_own_traits(config=True))


def test_config_allows_exactly_the_learners_and_the_trainer(monkeypatch, tmp_path):
    _, c = _rendered(monkeypatch, tmp_path)
    assert c.Authenticator.allowed_users == {"lc01", "lc02", "boss"}


def test_config_gives_the_roster_to_the_trainers_group_only(monkeypatch, tmp_path):
    state, c = _rendered(monkeypatch, tmp_path)
    assert c.JupyterHub.load_groups == {"trainers": {"users": ["boss"]}}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    trainers = roles["trainers"]
    assert trainers["groups"] == ["trainers"] and "access:services!service=roster" in trainers["scopes"]
    assert not trainers.get("users")  # through the group, not learner by learner
    # no other role grants the roster to anyone, and none reaches learners
    for name, role in roles.items():
        assert not set(role.get("users", [])) & {"lc01", "lc02"}
        if name != "trainers":
            assert not any("service=roster" in s for s in role["scopes"])
    roster = next(s for s in c.JupyterHub.services if s["name"] == "roster")
    assert roster["command"][1:] == ["-m", "labkit.roster"]
    env = roster["environment"]
    assert env["LABKIT_LEARNERS"] == "lc01,lc02" and env["LABKIT_TRAINERS"] == "boss"
    assert env["LABKIT_ROSTER_STORE"] == str(tmp_path / "state" / "roster.json")
    assert "JUPYTERHUB_API_TOKEN" not in env  # the hub gives the service its own token
    admin = next(s for s in c.JupyterHub.services if s["name"] == "classroom-admin")
    assert admin["api_token"] == state["admin_token"]
    assert roles["classroom-admin"]["services"] == ["classroom-admin"]


def test_config_quotes_names_it_does_not_trust(monkeypatch, tmp_path):
    odd = 'x"; import os; os.system("false") #'
    _, c = _rendered(monkeypatch, tmp_path, trainer=odd, learners=["lc01'", "lc02"])
    assert c.Authenticator.allowed_users == {"lc01'", "lc02", odd}
    assert c.JupyterHub.load_groups == {"trainers": {"users": [odd]}}


# --- refusals of `up` ------------------------------------------------------------------------------

@pytest.fixture
def as_root(monkeypatch, tmp_path):
    """_preflight as root would see it, with a state directory of its own and plenty of memory."""
    monkeypatch.setattr(classroom.os, "geteuid", lambda: 0)
    monkeypatch.setattr(classroom, "STATE", tmp_path / "state")
    monkeypatch.setattr(classroom, "available_mb", lambda: 1_000_000)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    prefix = "lku" + secrets.token_hex(3)
    names = classroom.learner_names(2, prefix)
    for name in [*names, prefix + "tr"]:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    return {"names": names, "trainer": prefix + "tr", "bundle": bundle, "port": classroom._free_port()}


def _refusal(as_root, **over) -> LabkitError:
    args = {"names": as_root["names"], "trainer": as_root["trainer"], "ip": "127.0.0.1", "port": as_root["port"],
            "bundle": as_root["bundle"], **over}
    with pytest.raises(LabkitError) as caught:
        classroom._preflight(**args)
    assert "Hint:" in str(caught.value)
    return caught.value


def test_preflight_passes_when_all_is_well(as_root, monkeypatch):
    import labkit.rootless
    monkeypatch.setattr(labkit.rootless, "requirements", lambda user: [("rootlesskit", True, "apt-get install x")])
    classroom._preflight(as_root["names"], as_root["trainer"], "127.0.0.1", as_root["port"], as_root["bundle"])


def test_preflight_refuses_without_root(as_root, monkeypatch):
    monkeypatch.setattr(classroom.os, "geteuid", lambda: 1000)
    error = _refusal(as_root)
    assert "needs root" in error.message and "sudo" in error.hint


def test_preflight_refuses_more_learners_than_memory_holds(as_root, monkeypatch):
    monkeypatch.setattr(classroom, "available_mb", lambda: classroom.HUB_MB + 3 * classroom.PER_LEARNER_MB + 10)
    error = _refusal(as_root, names=classroom.learner_names(4, "lkx"))
    assert "4 learners do not fit" in error.message and "holds 3" in error.message
    assert "--learners 3" in error.hint


def test_preflight_refuses_an_existing_account_and_leaves_it_alone(as_root):
    error = _refusal(as_root, trainer="root")
    assert "root is already an account" in error.message and "--trainer" in error.hint
    existing = pwd.getpwuid(0).pw_name
    error = _refusal(as_root, names=[existing, *as_root["names"]])
    assert f"{existing} is already an account" in error.message and "--prefix" in error.hint


def test_preflight_accepts_an_account_an_earlier_up_made(as_root):
    # re-running `up` after a half-finished one: its own accounts are not "someone else's"
    state_dir = classroom.STATE
    state_dir.mkdir()
    (state_dir / "classroom.json").write_text(json.dumps({"accounts": [{"name": "root", "created": True}]}))
    error = _refusal(as_root, trainer="root", bundle=as_root["bundle"].parent / "no-bundle")
    assert "already an account" not in error.message and "No class bundle" in error.message


def test_preflight_refuses_a_port_in_use(as_root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        error = _refusal(as_root, port=port)
    assert f"Port {port} on 127.0.0.1 is in use" in error.message and "--port" in error.hint


def test_preflight_refuses_a_missing_bundle(as_root, tmp_path):
    missing = tmp_path / "no-bundle"
    error = _refusal(as_root, bundle=missing)
    assert f"No class bundle at {missing}" in error.message
    assert f"labkit bundle export {missing}" in error.hint and f"--bundle {missing}" in error.hint
    (missing).mkdir()  # a folder without bundle.json is not a bundle either
    assert "No class bundle" in _refusal(as_root, bundle=missing).message


def test_preflight_names_what_rootless_engines_miss(as_root, monkeypatch):
    import labkit.rootless
    monkeypatch.setattr(labkit.rootless, "requirements", lambda user: [
        ("rootlesskit", False, "`apt-get install rootlesskit`"), ("slirp4netns", True, "-"),
        ("user root", False, "not about the host"), ("/etc/subuid and /etc/subgid ranges for root", False, "-")])
    error = _refusal(as_root)
    assert "missing rootlesskit." in error.message and "apt-get install rootlesskit" in error.hint
    assert "user root" not in error.message and "subuid" not in error.message  # per-learner, made by up


# --- a learner's kernel sends its progress to the roster ------------------------------------------

class _Roster(http.server.ThreadingHTTPServer):
    def __init__(self, code: int = 204) -> None:
        self.code = code
        self.got: list[dict] = []
        self.arrived = threading.Condition()
        roster = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with roster.arrived:
                    roster.got.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                    roster.arrived.notify_all()
                self.send_response(roster.code)
                self.end_headers()

            def log_message(self, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)

    def wait(self, n: int, timeout: float = 5) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.got) >= n, timeout)
        return self.got


@pytest.fixture
def roster_server(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    server = _Roster()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("LABKIT_ROSTER_URL", f"http://127.0.0.1:{server.server_address[1]}/services/roster/api/progress")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "tok-" + secrets.token_hex(8))
    yield server
    server.shutdown()
    server.server_close()


RECORD = {"00-welcome": {"hello": {"status": "done", "attempts": 2, "hints": 1},
                         "ps": {"status": "failed", "attempts": 1, "solution": True}}}


def test_saving_progress_sends_the_whole_record_with_the_learners_token(roster_server):
    exercises.save_progress(RECORD)
    [got] = roster_server.wait(1)
    assert got["path"] == "/services/roster/api/progress"
    assert got["headers"]["Authorization"] == f"token {os.environ['JUPYTERHUB_API_TOKEN']}"
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["body"] == RECORD
    assert exercises.load_progress() == RECORD  # the local file stays the truth


def test_push_progress_resends_the_local_file(roster_server):
    exercises.save_progress(RECORD)
    roster_server.wait(1)
    thread = exercises.push_progress()  # what Lab() does at start: re-sync after a restart
    assert isinstance(thread, threading.Thread) and thread.daemon
    thread.join(5)
    assert not thread.is_alive()
    got = roster_server.wait(2)
    assert len(got) == 2 and got[1]["body"] == RECORD


def test_a_check_records_and_reaches_the_roster(roster_server):
    exercises.record("00-welcome", "hello", passed=False)
    exercises.record("00-welcome", "hello", passed=True)
    got = roster_server.wait(2)
    last = max(got, key=lambda g: g["body"]["00-welcome"]["hello"]["attempts"])["body"]
    assert last["00-welcome"]["hello"]["status"] == "done" and last["00-welcome"]["hello"]["attempts"] == 2


@pytest.mark.parametrize("unset", [("LABKIT_ROSTER_URL",), ("JUPYTERHUB_API_TOKEN",),
                                   ("LABKIT_ROSTER_URL", "JUPYTERHUB_API_TOKEN")])
def test_outside_a_classroom_nothing_is_sent(roster_server, monkeypatch, unset):
    for name in unset:
        monkeypatch.delenv(name)
    assert exercises.push_progress(RECORD) is None
    exercises.save_progress(RECORD)
    assert exercises.load_progress() == RECORD
    time.sleep(0.3)
    assert roster_server.got == []
    assert not [t for t in threading.enumerate() if t.name == "labkit-roster"]


@pytest.mark.parametrize("code", [403, 500])
def test_a_roster_that_refuses_costs_the_learner_nothing(roster_server, code, monkeypatch):
    roster_server.code = code
    crashed = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    thread = exercises.push_progress(RECORD)
    thread.join(5)
    assert not thread.is_alive() and crashed == [] and len(roster_server.got) == 1


def test_a_roster_that_is_gone_costs_the_learner_nothing(roster_server, monkeypatch):
    monkeypatch.setenv("LABKIT_ROSTER_URL", f"http://127.0.0.1:{classroom._free_port()}/services/roster/api/progress")
    crashed = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    begin = time.monotonic()
    exercises.save_progress(RECORD)  # returns at once: the sending is in the background
    assert time.monotonic() - begin < 1
    thread = exercises.push_progress()
    thread.join(6)
    assert not thread.is_alive() and crashed == []
    assert exercises.load_progress() == RECORD


def test_an_engine_is_held_to_its_limits_only_where_systemd_can(monkeypatch):
    from labkit import userengine
    cmd = ["runuser", "-u", "learner01", "--", "dockerd-rootless.sh"]
    monkeypatch.setattr(userengine.os, "geteuid", lambda: 0)
    monkeypatch.setattr(userengine.shutil, "which", lambda name: f"/usr/bin/{name}")
    wrapped = userengine.limited(cmd, "learner01", "2G", 1.5)
    assert wrapped[:2] == ["systemd-run", "--scope"] and wrapped[-len(cmd):] == cmd
    assert "MemoryMax=2G" in wrapped and "CPUQuota=150%" in wrapped and "--unit=labkit-engine-learner01" in wrapped
    assert userengine.limited(cmd, "learner01") == cmd  # no limits asked
    monkeypatch.setattr(userengine.shutil, "which", lambda name: None)
    assert userengine.limited(cmd, "learner01", "2G", 1.5) == cmd  # no systemd-run: as it is
