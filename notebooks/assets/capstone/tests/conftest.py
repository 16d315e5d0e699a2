import json
import os

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy


@pytest.fixture(scope="module")
def service():
    """The service under test, started fresh from SERVICE_IMAGE for this test module; its URL."""
    container = (DockerContainer(os.environ["SERVICE_IMAGE"])
                 .with_kwargs(labels=json.loads(os.environ.get("LAB_LABELS", "{}")))  # labkit's cleanup finds it
                 .waiting_for(LogMessageWaitStrategy("listening on")))
    container.ports["8080/tcp"] = ("127.0.0.1", None)  # published on loopback only
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8080)}"
