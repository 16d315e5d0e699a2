"""BuildKit builds through the BuildKit-capable CLI the engine module found.
(A first cut: image builds for the early notebooks; per-step reports come with the BuildKit lab.)"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from . import engine
from .display import Renderable, human_bytes, seconds, short_name, table, volatile
from .errors import CommandFailed, ImageMissing

if TYPE_CHECKING:
    from .lab import Lab


class BuildFailed(CommandFailed):
    """A build step failed: the message names the step, the details hold its last output lines."""

    def __init__(self, command: list[str], exit_code: int, log: str) -> None:
        super().__init__(command, exit_code, "", log, hint="Fix the failing step shown above, then build again.")
        self.step = _failing_step(log)
        self.message = f"The build failed at: {self.step.splitlines()[0] if self.step else 'an early step'}"


@dataclass
class BuildResult(Renderable):
    tag: str
    image_id: str
    size: int
    layers: int
    duration: float
    log: str

    def _render(self):
        return table(["image", "id", "layers", "size", "build time"],
                     [(short_name(self.tag),
                       volatile(self.image_id[7:19]), self.layers, human_bytes(self.size), seconds(self.duration))],
                     title="Build result")


def _failing_step(log: str) -> str:
    steps = re.findall(r"^#\d+ \[[^\]]*\] .*$", log, re.MULTILINE)
    errors = re.findall(r"^(?:error|ERROR|failed to solve).*$", log, re.MULTILINE)
    return (steps[-1] if steps else "") + (("\n" + errors[-1]) if errors else "")


def build(lab: "Lab", tag: str, dockerfile: str | None = None, context: str | os.PathLike | None = None,
          build_args: Mapping[str, str] | None = None, no_cache: bool = False, target: str | None = None) -> BuildResult:
    """Build `dockerfile` (a string) or `context`/Dockerfile with BuildKit; tag it as lab.name(tag)
    and label it with the session, so cleanup removes it."""
    cli = engine.require_buildkit()
    name = lab.name(tag)
    with tempfile.TemporaryDirectory(prefix="labkit-build-") as tmp:
        ctx = Path(context) if context else Path(tmp)
        cmd = [cli.path, "build", "--progress=plain", "-t", name]
        if dockerfile is not None:
            (Path(tmp) / "Dockerfile").write_text(dockerfile)
            cmd += ["-f", str(Path(tmp) / "Dockerfile")]
        for k, v in {**lab.labels}.items():
            cmd += ["--label", f"{k}={v}"]
        for k, v in (build_args or {}).items():
            cmd += ["--build-arg", f"{k}={v}"]
        if no_cache:
            cmd.append("--no-cache")
        if target:
            cmd += ["--target", target]
        cmd.append(str(ctx))
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cli.env())
        duration = time.monotonic() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        if re.search(r"pull access denied|not found: manifest unknown|failed to resolve source metadata|"
                     r"failed to do request|no such host", log):
            raise ImageMissing("A base image of this Dockerfile is not in the local image store (and no "
                               "registry can be reached).", details=_failing_step(log))
        raise BuildFailed(cmd, proc.returncode, log)
    image = lab.client.images.get(name)
    return BuildResult(name, image.id, image.attrs.get("Size", 0), len(image.attrs["RootFS"].get("Layers", [])),
                       duration, log)
