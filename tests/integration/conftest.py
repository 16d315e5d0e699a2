from __future__ import annotations

import pytest

import labkit


@pytest.fixture
def lab(request, docker_client):
    """A fresh lab session per test, cleaned up whatever the test did. Its images can be chosen
    with @pytest.mark.lab_images("labkit/busybox", "labkit/debian:bookworm")."""
    marker = request.node.get_closest_marker("lab_images")
    session = labkit.Lab("test", images=list(marker.args) if marker else ["labkit/busybox"])
    yield session
    session.cleanup()
