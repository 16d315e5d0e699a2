import json
import os
from pathlib import Path

import pytest
from docker.types import Mount
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def container():
    """The service under test, started fresh from its image for this test module."""
    seed = Mount("/data/seed.json", str(HERE / "seed.json"), type="bind", read_only=True)  # a host path: see the wormhole
    container = (DockerContainer(os.environ["SERVICE_IMAGE"])
                 .with_kwargs(mounts=[seed],  # --mount: a missing host path is an error, not an empty directory
                              labels=json.loads(os.environ.get("LAB_LABELS", "{}")))  # labkit's cleanup finds it
                 .waiting_for(LogMessageWaitStrategy("listening on")))
    container.ports["8000/tcp"] = ("127.0.0.1", None)  # published on loopback only
    with container:
        yield container


@pytest.fixture(scope="module")
def service(container):
    """The service's URL, at the address testcontainers works out for where the tests run."""
    return f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8000)}"
