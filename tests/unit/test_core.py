"""The core without a daemon: a session's identity, the tracker, the reaper's decisions and the
translation of docker SDK errors, through an injected fake client (the seam the components use)."""
from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field

import docker
import pytest

from labkit.core import engine, reaper, session as sessions, tracker
from labkit.core.errors import ImageMissing, LabkitError, translated


# --- a fake engine: just what the reaper asks of one --------------------------------------------

@dataclass
class Thing:
    name: str
    labels: dict
    kind: str
    removed: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.name

    @property
    def attrs(self) -> dict:
        return {"Labels": self.labels, "Config": {"Labels": self.labels}}

    def remove(self, **_):
        self.removed.append(self.name)


class Collection:
    def __init__(self, things, removed):
        self.things, self.removed = things, removed

    def list(self, all=False, filters=None):  # noqa: A002  (the SDK's name)
        label = (filters or {}).get("label", "")
        key, _, value = label.partition("=")
        return [t for t in self.things if key in t.labels and (not value or t.labels[key] == value)]

    def get(self, ref):
        for t in self.things:
            if t.name == ref:
                return t
        raise docker.errors.ImageNotFound(ref)

    def remove(self, ref, force=False):
        self.removed.append(ref)


class FakeClient:
    def __init__(self, things):
        self.removed: list[str] = []
        by_kind = lambda k: [Thing(n, labels, k, self.removed) for n, labels, kind in things if kind == k]  # noqa: E731
        self.containers, self.networks = Collection(by_kind("container"), self.removed), Collection(by_kind("network"), self.removed)
        self.volumes, self.images = Collection(by_kind("volume"), self.removed), Collection(by_kind("image"), self.removed)


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def labels(session_id: str, owner: str = "") -> dict:
    return {sessions.SESSION_LABEL: session_id, sessions.LAB_LABEL: session_id.rsplit("-", 1)[0],
            sessions.OWNER_LABEL: owner or sessions.owner_id()}


# --- identity --------------------------------------------------------------------------------

def test_a_session_names_labels_and_ports_derive_from_its_id(runtime):
    s = sessions.Session("buildkit", FakeClient([]), "unix:///x.sock")
    assert s.id.startswith("buildkit-") and len(s.id) == len("buildkit-") + 6
    assert s.name("app") == f"lab-{s.id}-app" and s == s.id and f"{s}" == s.id and str(s) == s.id
    assert s.labels == {"labkit.session": s.id, "labkit.lab": "buildkit", "labkit.owner": sessions.owner_id()}
    assert s.port(0) == s.port(0) and s.port(1) != s.port(0)
    assert (s.state / "owner").read_text() == sessions.owner_id() and not s.is_view


def test_a_view_on_another_engine_has_a_tracker_of_its_own(runtime):
    s = sessions.Session("rootless", FakeClient([]), "unix:///a.sock")
    view = s.on(FakeClient([]), "unix:///b.sock", rootless=True)
    assert view.id == s.id and view.labels == s.labels and view.is_view and view.rootless
    assert view.state.parent == s.state and (view.state / "engine").read_text() == "unix:///b.sock"
    view.tracker.path("/tmp/nothing-here")
    assert list(s.state.glob("path-*")) == [] and len(list(view.state.glob("path-*"))) == 1


def test_liveness_reads_the_process_state(runtime):
    me, start = os.getpid(), sessions.start_time(os.getpid())
    assert sessions.owner_alive(sessions.owner_id()) is True
    assert sessions.owner_alive(f"{socket.gethostname()}:{me}:{int(start) + 1}") is False  # a reused pid
    assert sessions.owner_alive(f"elsewhere:{me}:{start}") is None  # another host: can't tell


# --- the tracker ------------------------------------------------------------------------------

def test_kinds_are_removed_in_order_images_first_paths_last():
    import labkit.buildcache  # noqa: F401  (registers its kind, as labkit does on import)
    order = [k.name for k in sorted(tracker.KINDS.values(), key=lambda k: k.order)]
    assert order == ["image", "tag", "build-cache", "pid", "userns", "path"]


def test_the_tracker_knows_what_it_tracks(runtime):
    t = tracker.Tracker(runtime / "t")
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        t.process(proc)
        assert t.has("pid", str(proc.pid)) and not t.has("pid", "1")
        t.add_many("build-cache", ["a", "b"])
        t.add_many("build-cache", ["c"])
        import labkit.buildcache  # noqa: F401  (registers the kind)
        assert tracker.entries(t.dir, tracker.KINDS["build-cache"])[0][1] == ["a", "b", "c", ""]
    finally:
        proc.kill()
        t.reap_children()


# --- the reaper's decisions ---------------------------------------------------------------------

def test_remove_session_takes_only_what_the_session_labelled_or_tracked(runtime, tmp_path):
    s = sessions.Session("welcome", FakeClient([]), "unix:///x.sock")
    other = "welcome-0ther0"
    cli = FakeClient([("mine", labels(s.id), "container"), ("theirs", labels(other), "container"),
                      ("attendee", {"owner": "attendee"}, "container"), ("net", labels(s.id), "network"),
                      ("img", labels(s.id), "image"), ("their-img", labels(other), "image")])
    data = tmp_path / "data"
    data.mkdir()
    s.tracker.path(data)
    s.tracker.tag("127.0.0.1:5000/app:1")
    report = reaper.remove_session(cli, s)
    assert sorted(cli.removed) == sorted(["mine", "net", "img", "127.0.0.1:5000/app:1"])
    assert report.removed["containers"] == 1 and report.removed["tags"] == 1 and report.removed["paths"] == 1
    assert not data.exists() and list(s.state.glob("path-*")) == []


def test_remove_session_removes_a_view_with_its_own_engine(runtime, monkeypatch):
    s = sessions.Session("rootless", FakeClient([]), "unix:///a.sock")
    view = s.on(FakeClient([]), "unix:///b.sock")
    second = FakeClient([("on-b", labels(s.id), "container")])
    monkeypatch.setattr(engine, "client_for", lambda url: second if url == "unix:///b.sock" else None)
    first = FakeClient([("on-a", labels(s.id), "container")])
    reaper.remove_session(first, s)
    assert first.removed == ["on-a"] and second.removed == ["on-b"] and not view.state.exists()


def test_a_views_cleanup_never_touches_the_parents_things(runtime, tmp_path):
    s = sessions.Session("rootless", FakeClient([]), "unix:///a.sock")
    view = s.on(FakeClient([]), "unix:///b.sock")
    parents = tmp_path / "parents"
    parents.mkdir()
    s.tracker.path(parents)
    view_cli = FakeClient([("on-b", labels(s.id), "container")])
    reaper.remove_session(view_cli, view)
    assert view_cli.removed == ["on-b"] and parents.exists() and s.tracker.has("path", str(parents))


def test_clean_spares_live_sessions_and_what_nobody_labelled(runtime):
    dead_owner = f"{socket.gethostname()}:999999999:1"
    cli = FakeClient([("dead", labels("welcome-dead00", dead_owner), "container"),
                      ("live", labels("welcome-11fe00"), "container"), ("attendee", {"owner": "me"}, "container")])
    report = reaper.clean(cli)
    assert cli.removed == ["dead"] and report.sessions == ["welcome-dead00"]


# --- the one translation of SDK errors ----------------------------------------------------------

def test_sdk_errors_become_labkit_errors_with_their_hint():
    with pytest.raises(ImageMissing, match="'app:1' is not in the local image store"):
        with translated("Cannot save 'app:1'", image="app:1"):
            raise docker.errors.ImageNotFound("No such image: app:1")
    with pytest.raises(LabkitError) as info:
        with translated("Docker could not start web", "Read the reason above."):
            raise docker.errors.APIError("500", explanation="port is already allocated")
    assert info.value.message == "Docker could not start web: port is already allocated"
    assert str(info.value).splitlines()[-1] == "Hint: Read the reason above."
    with pytest.raises(LabkitError, match="kept as it is"):  # an error labkit raised itself passes unchanged
        with translated("anything"):
            raise LabkitError("kept as it is")
