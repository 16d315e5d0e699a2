"""Checks of notebook 00 (welcome)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..predictions import question


def _greeting_container(lab, name: str, greeting: str):
    full = lab.name(name)
    try:
        c = lab.client.containers.get(full)
    except docker.errors.NotFound:
        mine = [c.name for c in lab.client.containers.list(all=True, filters={"label": f"labkit.session={lab.session}"})]
        found = f" This session has: {', '.join(mine)}." if mine else " This session has no container yet."
        return False, f"No container named {full} exists.{found}"
    if c.labels.get("labkit.session") != lab.session:
        return False, f"{full} was not started in this lab session (it has no session label)."
    if c.status != "running":
        return False, f"{name!r} exists but is {c.status}: its command must keep it running."
    logs = c.logs().decode(errors="replace").strip()
    if greeting not in logs:
        return False, f"{name!r} runs, but its logs say {logs[-80:]!r}, not {greeting!r}."
    return True, f"{name!r} is running and said {greeting!r}."


@exercise("welcome", "first-container", "Start a container that greets and keeps running", (
    "A container lives as long as its command: the command must print, then keep going.",
    "lab.start(image, command, name=...) is `docker run -d`; the command can be a list such as "
    "['sh', '-c', '...; ...'].",
    "lab.start('labkit/busybox', ['sh', '-c', 'echo hello, labs; sleep 3600'], name='greeter')"))
def first_container(lab, name: str = "greeter"):
    return _greeting_container(lab, name, "hello, labs")


@exercise("welcome", "shell-container", "The same with the real docker command", (
    "It is the same container as before, typed as you would in a terminal: start the cell with `!`.",
    "`docker run -d --name NAME IMAGE sh -c '...'`; in a `!` cell, {lab.name('web')} puts the session's "
    "name in the command.",
    "!docker run -d --name {lab.name('web')} labkit/busybox sh -c 'echo hello, shell; sleep 3600'"))
def shell_container(lab, name: str = "web"):
    return _greeting_container(lab, name, "hello, shell")


question("welcome", "command-ends",
         "`brief` is started in the background (`docker run -d`) with the command `echo hello, briefly`. "
         "Once echo has printed, what becomes of the container?",
         ["It keeps running until someone stops it: that is what -d (detached) means",
          "It stops (exited, exit code 0) but still exists, logs and all",
          "It is gone: the engine deletes a container whose command has ended"],
         answer=1,
         why="A container lives as long as its main command: when echo ends, the container stops with echo's "
             "exit code. Stopped is not removed: it stays, with its logs, until `docker rm` (lab.run passes "
             "--rm, lab.start does not).")

question("welcome", "docker-ps",
         "The next cell starts a second container, `sleeper` (command `sleep 3600`), then runs `docker ps` and "
         "`docker ps -a`. Which of this session's containers does plain `docker ps` list?",
         ["brief and sleeper", "only sleeper", "only brief", "neither: `docker ps` lists images"],
         answer=1,
         why="`docker ps` lists running containers only; `docker ps -a` (all) adds the stopped ones, such as brief.")
