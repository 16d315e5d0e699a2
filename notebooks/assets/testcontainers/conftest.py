import json
import os
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def service():
    """The service under test, started fresh from its image for this test module."""
    container = (DockerContainer(os.environ["SERVICE_IMAGE"])
                 .with_volume_mapping(str(HERE / "seed.json"), "/data/seed.json")  # a host path: see the wormhole
                 .with_kwargs(labels=json.loads(os.environ.get("LAB_LABELS", "{}")))  # labkit's cleanup finds it
                 .waiting_for(LogMessageWaitStrategy("listening on")))
    container.ports["8000/tcp"] = ("127.0.0.1", None)  # published on loopback only
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8000)}"
