from __future__ import annotations

import pytest

import labkit


@pytest.fixture
def lab(docker_client):
    """A fresh lab session per test, cleaned up whatever the test did."""
    session = labkit.Lab("test", images=["labkit/busybox"])
    yield session
    session.cleanup()
