"""The session's local registry: start on 127.0.0.1, push/pull/catalog/manifests, gone after cleanup."""
from __future__ import annotations

import socket
import urllib.request

import pytest

import labkit
from labkit.registry import RegistryUnavailable


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_registry_push_pull_and_inspect(lab, docker_client):
    registry = lab.registry()
    assert registry.host.startswith("127.0.0.1:") and port_open(registry.port)
    lab.build("app", "FROM labkit/busybox\nRUN echo v1 > /v\n")
    pushed = registry.push(lab.name("app"), "app:1")
    assert pushed.digest.startswith("sha256:") and pushed.bytes > 0
    assert registry.catalog() == ["app"] and registry.tags("app") == ["1"]
    manifest, digest = registry.manifest("app:1")
    assert digest == pushed.digest and len(manifest["layers"]) == 2
    assert registry.config("app:1")["os"] == "linux"
    assert "linux/" in registry.platforms("app:1").text()
    docker_client.images.remove(registry.ref("app:1"))
    ref = registry.pull("app:1")
    assert docker_client.images.get(ref).id == docker_client.images.get(lab.name("app")).id
    with pytest.raises(labkit.LabkitError, match="has no"):
        registry.tags("nothing-here")


def test_cleanup_stops_the_registry_deletes_storage_and_untags_catalog_images(docker_client):
    lab = labkit.Lab("test")
    registry = lab.registry()
    registry.push("labkit/busybox:latest", "base:1")
    storage, port = registry.storage, registry.port
    assert storage.exists()
    report = lab.cleanup()
    assert report.removed["processes"] == 1 and report.removed["tags"] == 1
    assert not storage.exists() and not port_open(port)
    docker_client.images.get("labkit/busybox:latest")  # the catalog image itself is untouched
    assert not [t for i in docker_client.images.list() for t in i.tags if t.startswith(registry.host)]
    with pytest.raises(RegistryUnavailable) as info:
        registry.push("labkit/busybox:latest", "base:2")
    assert "Hint:" in str(info.value)
    with pytest.raises(OSError):
        urllib.request.urlopen(registry.url + "/v2/", timeout=1)
