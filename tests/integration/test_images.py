from __future__ import annotations

import dataclasses
import time

import pytest

from labkit import images
from labkit.core.errors import ImageMissing, InsufficientDisk


def test_prepare_warm_skips_present_images(docker_client):
    images.prepare(mode="offline")  # make sure they exist
    start = time.monotonic()
    result = images.prepare(mode="offline")
    took = time.monotonic() - start
    assert {action for _, _, action, _ in result.rows} == {"present"}
    assert took < 2, f"warm prepare took {took:.2f} s"


def test_catalog_lists_presence(docker_client):
    rows = {name: status for name, _, status, _ in images.catalog().rows}
    assert rows["labkit/busybox:latest"] == "present"


def test_prepare_refuses_when_disk_is_too_small(docker_client, monkeypatch):
    huge = dataclasses.replace(images.spec("labkit/busybox"), name="labkit/test-huge:latest", disk_bytes=10**18)
    monkeypatch.setitem(images.CATALOG, huge.name, huge)
    with pytest.raises(InsufficientDisk):
        images.prepare([huge.name], mode="offline")
    with pytest.raises(ImageMissing):
        images.ensure(huge.name)  # nothing was half-built


def test_offline_busybox_recipe_builds_a_working_image(docker_client, monkeypatch, lab):
    test_spec = dataclasses.replace(images.spec("labkit/busybox"), name="labkit/test-busybox:recipe")
    monkeypatch.setitem(images.CATALOG, test_spec.name, test_spec)
    try:
        result = images.prepare([test_spec.name], mode="offline")
        assert result.rows[0][2] == "built"
        image = images.ensure(test_spec.name)
        assert image.labels[images.RECIPE_LABEL] == test_spec.recipe("offline")
        out = lab.run(test_spec.name, ["sh", "-c", "wget --help >/dev/null 2>&1; echo $?; cat /etc/passwd | head -1"])
        assert out.stdout.splitlines()[-1].startswith("root:x:0:0")
    finally:
        docker_client.images.remove(test_spec.name, force=True)
