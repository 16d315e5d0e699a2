"""Checks and questions of notebook 09 (docker contexts and CLI plugins)."""
from __future__ import annotations

import json
import os

from ..contexts import DaemonNotAnswering, DockerConfig
from ..exercises import exercise
from ..predictions import question

question("contexts", "context-sees", "Through the context rootless, does `docker ps` list only-on-rootful, the "
         "container this lab started on its own engine?",
         ["yes: the CLI lists every container it started, whichever engine runs it",
          "no: it lists the rootless engine's containers only",
          "yes, both engines' containers, marked by engine"], answer=1,
         why="The CLI keeps no list of containers: `docker ps` asks the context's daemon, and each daemon knows only "
             "its own.")
question("contexts", "create-connects", "A context for ssh://deploy@build-server.invalid, a host that does not exist: "
         "what does `docker context create` do?",
         ["it fails: the host name cannot be resolved",
          "it creates the context: a context is stored settings, nothing is contacted",
          "it waits for the SSH connection to time out, then fails"], answer=1,
         why="The context is written to the context store (meta.json) and nothing more; the host is first contacted "
             "when a command uses the context.")
question("contexts", "stopped-daemon", "A context points at a socket nothing listens on. What does "
         "`docker --context stopped ps` do?",
         ["it falls back to the default context and lists that engine's containers",
          "it fails with an error: that context's daemon does not answer",
          "it waits until a daemon starts on that socket"], answer=1,
         why="A context names exactly one endpoint; the CLI never silently picks another one.")


def _contexts(config: DockerConfig) -> dict[str, str]:
    """{name: docker endpoint} of every context in this configuration ('{{json .}}': older clients
    print the word json for `--format json`)."""
    out = config.docker("context", "ls", "--format", "{{json .}}", check=False).stdout
    found = {}
    for line in out.strip().splitlines():
        try:
            c = json.loads(line)
        except ValueError:
            continue
        found[c.get("Name", "?")] = c.get("DockerEndpoint", "")
    return found


def _current(config: DockerConfig) -> str:
    """The current context as the configuration file says (`docker context show` is missing from
    some clients, e.g. Debian's 20.10)."""
    try:
        return json.loads((config.dir / "config.json").read_text()).get("currentContext") or "default"
    except (OSError, ValueError):
        return "default"


@exercise("contexts", "use-context", "Point the docker CLI at the second engine", hints=(
    "The CLI remembers a current context in its configuration directory: first give the rootless engine's "
    "socket a context of its own, then make that context the current one.",
    "`docker context --help` lists the subcommands (create with --docker host=..., then use); add "
    "`--config {cfg.dir}` to each `!docker` line so they write this session's configuration, not ~/.docker.",
    "`!docker --config {cfg.dir} context create second --docker host=unix://{rl.socket}` then "
    "`!docker --config {cfg.dir} context use second`.",
))
def use_context(lab, config: DockerConfig, marker: str):
    contexts = _contexts(config)
    current = _current(config)
    if "second" not in contexts:
        return False, f"There is no context 'second' yet (this configuration has: {', '.join(contexts) or 'none'})."
    if current != "second":
        return False, (f"The context 'second' exists (endpoint {contexts['second']}), but the current context "
                       f"is still {current!r}.")
    try:
        names = config.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    except DaemonNotAnswering:
        return False, f"The context 'second' points at {contexts['second']}, where no daemon answers."
    if marker not in names:
        return False, (f"docker ps through 'second' ({contexts['second']}) shows {len(names)} container(s), "
                       "but not the one only the rootless engine runs: is that the rootless engine's socket (rl.socket)?")
    return True, "Plain `docker ps` now goes to the second engine: same command, other daemon."


@exercise("contexts", "cli-plugin", "Write the `docker greet` CLI plugin", hints=(
    "A plugin is any executable with the right name in the right directory; the CLI asks it to describe itself "
    "before it lists it, and hands it its arguments when it runs it.",
    "Section 4's `where` plugin (cfg.install_plugin) shows both halves: what it prints for "
    "`docker-cli-plugin-metadata`, and that its first argument is its own name.",
    "cfg.install_plugin('greet', script) with a #!/bin/sh script that echoes the metadata JSON (with a "
    "ShortDescription) when $1 is docker-cli-plugin-metadata, and otherwise runs `shift; echo \"hello, $1\"`.",
))
def cli_plugin(lab, config: DockerConfig):
    plugins = config.dir / "cli-plugins"
    path = plugins / "docker-greet"
    if not path.is_file():
        found = sorted(p.name for p in plugins.glob("docker-*")) if plugins.is_dir() else []
        return False, f"There is no docker-greet in {plugins} (found: {', '.join(found) or 'nothing'})."
    if not os.access(path, os.X_OK):
        return False, f"{path.name} is there but not executable (chmod +x)."
    run = config.docker("greet", "lab", check=False)
    if run.exit_code != 0:
        last = ((run.stderr or run.stdout).strip().splitlines() or ["(no output)"])[-1][:120]
        return False, f"`docker greet lab` failed with exit code {run.exit_code}: {last}"
    if run.stdout.strip() != "hello, lab":
        return False, f"`docker greet lab` printed {run.stdout.strip()[:80]!r}, not 'hello, lab'."
    listed = [line for line in config.docker("--help").stdout.splitlines() if line.strip().startswith("greet")]
    if not listed or len(listed[0].split()) < 2:
        return False, ("`docker greet lab` works, but `docker --help` does not list greet with a description: "
                       "check the metadata JSON (ShortDescription).")
    return True, f"docker runs your plugin and lists it: {listed[0].strip()}"
