"""Checks of notebook 09 (docker contexts and CLI plugins)."""
from __future__ import annotations

from ..contexts import DaemonNotAnswering, DockerConfig
from ..exercises import exercise


@exercise("contexts", "use-context", "Point the docker CLI at the second engine",
          "cfg.create_context('second', f'unix://{rl.socket}', 'the rootless engine'), then cfg.use('second').")
def use_context(lab, config: DockerConfig, marker: str):
    current = config.current()
    if current != "second":
        return False, f"The current context is {current!r}, not 'second'."
    try:
        names = config.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    except DaemonNotAnswering:
        return False, "The context 'second' points at a daemon that does not answer."
    if marker not in names:
        return False, "docker ps through 'second' does not show the container that only the rootless engine runs."
    return True, "Plain `docker ps` now goes to the second engine: same command, other daemon."


@exercise("contexts", "cli-plugin", "Write the `docker greet` CLI plugin",
          "A plugin answers `docker-cli-plugin-metadata` with its JSON metadata; otherwise it gets its own name "
          "as the first argument, then the user's arguments.")
def cli_plugin(lab, config: DockerConfig):
    run = config.docker("greet", "lab", check=False)
    if run.exit_code != 0:
        return False, f"`docker greet lab` failed: {(run.stderr or run.stdout).strip().splitlines()[-1][:120]}"
    if run.stdout.strip() != "hello, lab":
        return False, f"`docker greet lab` printed {run.stdout.strip()!r}, not 'hello, lab'."
    listed = [line for line in config.docker("--help").stdout.splitlines() if line.strip().startswith("greet")]
    if not listed or len(listed[0].split()) < 2:
        return False, "`docker --help` does not list greet with a description: check the metadata JSON."
    return True, f"docker runs your plugin and lists it: {listed[0].strip()}"
