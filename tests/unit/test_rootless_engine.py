"""What changes when the engine is a learner's rootless one (issue 18, item 4): no daemon needed."""
import os

import pytest

from labkit import procfs
from labkit.core.errors import LabSkipped
from labkit.endpoint import _as_engine_root


def usage(memory=None, pids=None):
    return procfs.CgroupUsage("lab-x-hog", 1, memory, 0, 0, pids, 1, None)


def test_limits_asked_for_and_dropped_stop_the_lesson_with_a_skip():
    with pytest.raises(LabSkipped, match="--memory and --pids-limit .* does not enforce them"):
        procfs._require_enforced({"Memory": 32 << 20, "PidsLimit": 20}, usage())


def test_limits_enforced_or_never_asked_for_pass():
    procfs._require_enforced({"Memory": 32 << 20, "PidsLimit": 20}, usage(32 << 20, 20))
    procfs._require_enforced({"Memory": 0, "PidsLimit": None}, usage())


def test_run_as_me_becomes_the_rootless_engines_root(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 1001)
    monkeypatch.setattr(os, "getgid", lambda: 1001)
    me = "1001:1001"
    doc = {"User": me}
    _as_engine_root(doc, lambda: True)
    assert doc["User"] == "0:0"
    doc = {"User": me}
    _as_engine_root(doc, lambda: False)  # a root engine: unchanged
    assert doc["User"] == me
    doc = {"User": "1234:1234"}
    _as_engine_root(doc, lambda: True)  # somebody else's ids: unchanged
    assert doc["User"] == "1234:1234"
