from __future__ import annotations

import pytest

from labkit import images
from labkit.core.errors import InsufficientDisk, UnknownImage


def test_catalog_has_the_base_images():
    assert {"labkit/busybox:latest", "labkit/debian:bookworm"} <= set(images.CATALOG)
    assert images.spec("labkit/busybox").name == "labkit/busybox:latest"


def test_unknown_catalog_name_lists_the_known_ones():
    with pytest.raises(UnknownImage) as err:
        images.spec("labkit/nope")
    assert "labkit/busybox:latest" in str(err.value) and "Hint: " in str(err.value)


def test_recipes_are_stable_and_differ_by_mode():
    s = images.spec("labkit/busybox")
    assert s.recipe("offline") == s.recipe("offline")
    assert s.recipe("online") != s.recipe("offline")
    assert len(s.recipe("online")) == 16


def test_disk_check_refuses_before_any_work(tmp_path):
    with pytest.raises(InsufficientDisk) as err:
        images.check_disk(10**18, [str(tmp_path)])
    assert "Hint: " in str(err.value)
    images.check_disk(1, [str(tmp_path)])


def test_offline_env_means_no_registry_probe(monkeypatch):
    monkeypatch.setenv(images.OFFLINE_ENV, "1")
    assert images.registry_answers("anything:1") is False
