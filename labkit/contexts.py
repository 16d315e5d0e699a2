"""Notebook 09: docker contexts and CLI plugins, in a DOCKER_CONFIG directory the session owns
(never the learner's ~/.docker), driving the docker CLI itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .containers import RunResult
from .core.render import Renderable, command_line, table
from .core.errors import CommandFailed, LabkitError

if TYPE_CHECKING:
    from .lab import Lab

METADATA_ARG = "docker-cli-plugin-metadata"


class DaemonNotAnswering(LabkitError):
    default_hint = "That context points at a daemon that does not answer: `docker context use default`, or start it."


class DockerConfig(Renderable):
    """`cfg = DockerConfig(lab)`; `cfg.docker("context", "ls")` runs the docker CLI with DOCKER_CONFIG
    set to a directory that is removed at cleanup."""

    def __init__(self, lab: "Lab") -> None:
        self.cli = shutil.which("docker")
        if self.cli is None:
            raise LabkitError("No docker CLI on PATH.", "Install the docker CLI (Debian: docker.io).")
        self.dir = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-docker-config-{lab.session}-")))
        (self.dir / "cli-plugins").mkdir()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG")}
        env["DOCKER_CONFIG"] = str(self.dir)  # contexts decide where commands go, not the environment
        return env

    def docker(self, *args: str, timeout: float = 20, check: bool = True) -> RunResult:
        """Run `docker ARGS` with this config; a daemon that does not answer is a clear error."""
        assert self.cli is not None
        start = time.monotonic()
        try:
            proc = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=timeout, env=self.env())
        except subprocess.TimeoutExpired:
            raise DaemonNotAnswering(f"`docker {' '.join(args)}` got no answer within {timeout:.0f} s.") from None
        result = RunResult("docker " + " ".join(args), proc.returncode, proc.stdout, proc.stderr,
                           time.monotonic() - start, command_line([f"DOCKER_CONFIG={self.dir}", "docker", *args]))
        if proc.returncode != 0 and "Cannot connect to the Docker daemon" in proc.stderr:
            raise DaemonNotAnswering(f"`docker {' '.join(args)}`: the daemon of this context does not answer "
                                     "(nothing listens on its socket or port).")
        if check and proc.returncode != 0:
            raise CommandFailed(result.command, proc.returncode, proc.stdout, proc.stderr)
        return result

    # contexts
    def create_context(self, name: str, host: str, description: str = "", **tls: str) -> RunResult:
        """`docker context create NAME --docker host=HOST[,ca=...,cert=...,key=...]` (connects to nothing)."""
        if name == "rootful" and host.startswith("unix://"):  # notebook 09: the engine it runs on
            from .core.engine import client_for, is_rootless
            if is_rootless(client_for(host)):
                from .core.errors import LabSkipped
                raise LabSkipped(
                    "This lesson sets the engine it runs on, which it calls 'rootful', beside a rootless engine it "
                    "starts. Your engine is rootless itself (yours, as in a classroom), so the 'rootful' context "
                    "would name a rootless engine and the comparison that follows would contradict its own names. "
                    "Contexts work the same on your engine, but the lesson changes meaning here, so it stops "
                    "(skipped, not failed).",
                    "Run it on a root engine (the trainer's machine), where the committed outputs come from.")
        endpoint = ",".join([f"host={host}", *(f"{k}={v}" for k, v in tls.items())])
        return self.docker("context", "create", name, "--description", description, "--docker", endpoint)

    def use(self, name: str) -> RunResult:
        return self.docker("context", "use", name)

    def current(self) -> str:
        """What `docker context show` prints (a 20.10 client has no `context show`): config.json's
        currentContext, else "default"."""
        try:
            return json.loads((self.dir / "config.json").read_text()).get("currentContext") or "default"
        except (OSError, ValueError):
            return "default"

    def contexts(self):
        # '{{json .}}': every client since 19.03 knows it; a bare `json` is 23.0 and later
        lines = self.docker("context", "ls", "--format", "{{json .}}").stdout.strip().splitlines()
        rows = []
        for line in lines:
            c = json.loads(line)
            rows.append((c["Name"] + (" *" if c.get("Current") else ""), c.get("DockerEndpoint", ""),
                         c.get("Description", "")))
        return table(["context", "docker endpoint", "description"], rows, title="docker context ls (* = current)")

    # plugins
    def install_plugin(self, name: str, script: str) -> Path:
        """Install `script` as the CLI plugin `docker NAME` (cli-plugins/docker-NAME, executable)."""
        if not script.startswith("#!"):
            raise LabkitError("A plugin script must start with a #! line.", "Begin it with #!/bin/sh")
        path = self.dir / "cli-plugins" / f"docker-{name}"
        path.write_text(script)
        path.chmod(0o755)
        return path

    def plugins(self):
        rows = []
        for path in sorted((self.dir / "cli-plugins").glob("docker-*")):
            proc = subprocess.run([str(path), METADATA_ARG], capture_output=True, text=True, timeout=10)
            try:
                meta = json.loads(proc.stdout)
            except ValueError:
                meta = {"ShortDescription": "(no valid metadata: the CLI will not list it)"}
            rows.append((path.name.removeprefix("docker-"), meta.get("Version", "?"), meta.get("Vendor", "?"),
                         meta.get("ShortDescription", "")))
        return table(["plugin", "version", "vendor", "description"], rows, title="CLI plugins in this DOCKER_CONFIG")

    def _render(self):
        return self.contexts()
