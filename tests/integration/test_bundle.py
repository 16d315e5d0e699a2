"""Bundle round trip: export from this engine, import into a second, empty engine the test starts."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from labkit import bundle, rootless

IMAGES = ["labkit/busybox:latest", "labkit/busybox:arm64", "labkit/debian:bookworm"]


@pytest.fixture
def second_engine(lab):
    missing = [w for w, ok, _ in rootless.requirements(rootless.LAB_USER if os.geteuid() == 0 else "x") if not ok]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"no second engine possible here: {missing}")
    engine = rootless.start(lab)
    assert engine.lab.client.images.list() == []  # empty: nothing to confuse the import with
    return engine


@pytest.mark.lab_images(*IMAGES)
def test_export_then_import_into_an_empty_engine(lab, second_engine, tmp_path):
    src = lab.client
    exported = bundle.export(tmp_path / "b", IMAGES)
    assert [r[3] for r in exported.rows if r[1].startswith("image")] == ["exported"] * 3

    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "b", broken)
    tar = broken / "images" / "labkit_debian_bookworm.tar"
    with open(tar, "r+b") as fh:
        fh.truncate(tar.stat().st_size // 2)
    with pytest.raises(bundle.BundleCorrupt, match="truncated"):
        bundle.import_(broken, second_engine.lab.client)
    assert second_engine.lab.client.images.list() == []  # nothing half-imported

    start = time.monotonic()
    first = bundle.import_(tmp_path / "b", second_engine.lab.client)
    assert time.monotonic() - start < 60
    assert [r[3] for r in first.rows if r[1].startswith("image")] == ["loaded"] * 3
    for name in IMAGES:
        there = second_engine.lab.client.images.get(name)
        assert there.id == src.images.get(name).id
    assert second_engine.lab.client.images.get("labkit/busybox:arm64").attrs["Architecture"] == "arm64"
    again = bundle.import_(tmp_path / "b", second_engine.lab.client)
    assert [r[3] for r in again.rows if r[1].startswith("image")] == ["already present"] * 3


def test_a_changed_byte_and_a_missing_manifest_are_refused(lab, tmp_path):
    bundle.export(tmp_path / "b", ["labkit/busybox:latest"])
    tar = tmp_path / "b" / "images" / "labkit_busybox_latest.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleCorrupt, match="checksum"):
        bundle.verify_bundle(tmp_path / "b")
    with pytest.raises(bundle.BundleCorrupt, match="not a labkit bundle"):
        bundle.import_(tmp_path / "nothing-here")



class EmptyEngine:
    """Just enough of a docker client for import_: an engine without the images, recording loads."""

    def __init__(self):
        import docker
        self.loads = []
        errors = docker.errors

        class Images:
            def get(inner, name):
                raise errors.ImageNotFound(name)

            def load(inner, data):
                self.loads.append(len(data))
                return []
        self.images = Images()

    def info(self):
        return {"DockerRootDir": "/"}


def test_not_enough_disk_loads_nothing(lab, tmp_path, monkeypatch):
    bundle.export(tmp_path / "b", ["labkit/busybox:latest"])
    almost_full = shutil.disk_usage("/")._replace(free=10)
    monkeypatch.setattr(bundle.shutil, "disk_usage", lambda path: almost_full)
    engine = EmptyEngine()
    with pytest.raises(bundle.InsufficientDisk, match="free"):
        bundle.import_(tmp_path / "b", engine)
    assert engine.loads == []
