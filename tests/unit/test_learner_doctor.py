"""`labkit doctor` for a learner who is not root: which group to join (read from the socket), and
the exact command for everything that needs root. No engine needed: the socket is a file made here
and the user is faked (the real run as a user outside the group is in tests/integration/test_learner.py)."""
from __future__ import annotations

import grp
import json
import os
import socket

import pytest

from labkit.core import access, capabilities


@pytest.fixture
def sock(tmp_path):
    """A unix socket whose group is some group other than root, like the engine's `docker`."""
    path = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    group = next(g for g in grp.getgrall() if g.gr_gid != 0)
    if os.geteuid() == 0:
        os.chown(path, 0, group.gr_gid)
    else:
        group = grp.getgrgid(path.stat().st_gid)
    os.chmod(path, 0o660)
    yield path, group.gr_name, group.gr_gid
    s.close()


def as_learner(monkeypatch, groups: list[int], member_of: set[int] = frozenset(), allowed: bool = False):
    monkeypatch.setattr(access, "_current_user", lambda: ("alice", 1000, [1000, *groups]))
    monkeypatch.setattr(access, "_may_open", lambda path: allowed)
    monkeypatch.setattr(access, "_group_members", lambda gid: {"alice"} if gid in member_of else set())
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def doctor_without_engine(url: str) -> capabilities.Capabilities:
    return capabilities.Capabilities(daemon=url, daemon_found_by="DOCKER_HOST", socket=access.socket_access(url))


def test_not_in_the_socket_group_names_the_group_and_the_commands(sock, monkeypatch):
    path, group, _ = sock
    as_learner(monkeypatch, groups=[])
    caps = doctor_without_engine(f"unix://{path}")
    assert not caps.ok
    fix = dict(caps.missing())["Docker engine"]
    assert f"`sudo usermod -aG {group} alice`" in fix
    assert "log out and in again" in fix and f"`newgrp {group}`" in fix
    assert f"belongs to group {group}" in fix and "root on this machine" in fix
    row = next(r for r in caps.checks() if r[0] == "Docker engine")
    assert row[1] == f"unix://{path}: permission denied (socket group {group})"
    text = caps.text()
    assert f"sudo usermod -aG {group} alice" in text.split("Hint:")[1]  # the callout under the table says it too


def test_in_the_group_but_not_in_this_session_says_log_in_again(sock, monkeypatch):
    path, group, gid = sock
    as_learner(monkeypatch, groups=[], member_of={gid})
    fix = access.socket_access(f"unix://{path}").fix()
    assert "usermod" not in fix
    assert f"You (alice) are in group {group} now" in fix and f"`newgrp {group}`" in fix


def test_allowed_user_gets_no_socket_fix(sock, monkeypatch):
    path, _, gid = sock
    as_learner(monkeypatch, groups=[gid], member_of={gid}, allowed=True)
    found = access.socket_access(f"unix://{path}")
    assert found.allowed and found.fix() == ""


def test_no_engine_says_starting_one_needs_root_with_the_exact_command(tmp_path, monkeypatch):
    as_learner(monkeypatch, groups=[])
    caps = doctor_without_engine(f"unix://{tmp_path}/nothing.sock")
    fix = dict(caps.missing())["Docker engine"]
    assert "`sudo scripts/setup-host.sh`" in fix and "needs root" in fix


def test_root_socket_group_is_not_a_group_to_join(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("making a socket of group root needs root")
    path = tmp_path / "root.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    os.chown(path, 0, 0)
    as_learner(monkeypatch, groups=[])
    fix = access.socket_access(f"unix://{path}").fix()
    s.close()
    assert "usermod" not in fix and "--group docker" in fix


def test_root_fixes_say_sudo_only_for_a_normal_user(monkeypatch):
    caps = capabilities.Capabilities(daemon="tcp://127.0.0.1:2375", tools={})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "`apt-get install buildah`" in dict(r[::4] for r in caps.checks())["buildah"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    fixes = {r[0]: r[4] for r in caps.checks()}
    assert fixes["buildah"] == "`sudo apt-get install buildah`"
    assert "`sudo apt-get install uidmap`" in fixes["user namespaces"]
    assert "`sudo scripts/setup-host.sh`" in fixes["Docker engine"]  # tcp://: no socket to look at


def test_tcp_and_ssh_engines_have_no_socket_to_check():
    assert access.socket_access("tcp://127.0.0.1:2375") is None
    assert access.socket_access("ssh://user@host") is None


def test_doctor_lists_what_the_rootless_notebooks_need_as_this_user(monkeypatch, capsys):
    from labkit import cli, rootless
    monkeypatch.setattr(capabilities, "probe", lambda: capabilities.Capabilities(daemon="tcp://127.0.0.1:2375"))
    monkeypatch.setattr(rootless, "engine_user", lambda: "alice")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(rootless, "_subid_ranges", lambda path: [("labkit-rootless", 1000000, 65536)])
    assert cli.main(["doctor"]) == 1  # no engine: not ready, whatever the rootless part says
    out = capsys.readouterr().out
    assert "as alice (notebooks 06, 09, 11)" in out
    assert ("`sudo usermod --add-subuids 1114112-1179647 --add-subgids 1114112-1179647 alice` "
            "(a range no other user has)") in out  # after labkit-rootless's 1000000-1065535
    assert cli.main(["doctor", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["rootless"]["user"] == "alice"
    assert {c["item"]: c["status"] for c in data["rootless"]["checks"]}["/etc/subuid and /etc/subgid ranges for alice"] == "missing"


def test_a_closed_directory_on_the_way_is_named_with_the_command(tmp_path, monkeypatch):
    """CI's private engine lives in a `mktemp -d` directory (mode 700): its socket's group alone is not enough."""
    closed = tmp_path / "labkit-ci-engine.x"
    closed.mkdir()
    as_learner(monkeypatch, groups=[])
    monkeypatch.setattr(access, "_may_search", lambda d: d != str(closed))

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(closed) + "/"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", stat)
    found = access.socket_access(f"unix://{closed}/docker.sock")
    assert found.closed_dir == str(closed) and not found.allowed
    assert f"`sudo chmod o+x {closed}`" in found.fix()
