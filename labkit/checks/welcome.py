"""Checks of notebook 00 (welcome)."""
from __future__ import annotations

import docker

from ..exercises import exercise


@exercise("welcome", "first-container", "Start a container that greets and keeps running",
          "Use lab.start(image, command, name='greeter') with a shell command that echoes, then sleeps "
          "so the container keeps running.")
def first_container(lab, name: str = "greeter"):
    full = lab.name(name)
    try:
        c = lab.client.containers.get(full)
    except docker.errors.NotFound:
        return False, f"No container named {name!r} exists in this lab session yet."
    if c.labels.get("labkit.session") != lab.session:
        return False, f"{full} was not started through this lab (it has no session label)."
    if c.status != "running":
        return False, f"{name!r} exists but is {c.status}: its command must keep it running."
    if "hello, labs" not in c.logs().decode(errors="replace"):
        return False, f"{name!r} runs, but its logs do not contain 'hello, labs'."
    return True, f"{name!r} is running and said hello."
