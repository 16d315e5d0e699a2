"""The LabkitError tree. Every message ends with a ``Hint:`` line that says what to do."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import docker

from .render import Renderable, callout


class LabkitError(Exception, Renderable):
    """Base of every error labkit raises on purpose."""

    default_hint = "Run `labkit doctor` to check the set-up."

    def __init__(self, message: str, hint: str | None = None, details: str = "") -> None:
        self.message = message.rstrip()
        self.hint = hint or self.default_hint
        self.details = details.rstrip()
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.message]
        if self.details:
            parts.append(self.details)
        parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)

    def _render(self):
        return callout("error", type(self).__name__, self.message, details=self.details, hint=self.hint)

    # IPython's pretty printer has its own rule for exceptions, found (via BaseException in the MRO)
    # before the mixin's; defined here, display(error) shows the callout text, not a repr.
    _repr_pretty_ = Renderable._repr_pretty_


class DaemonUnavailable(LabkitError):
    default_hint = "Start the Docker engine (`make setup` or `sudo scripts/setup-host.sh`), then retry."

    def __init__(self, message: str, hint: str | None = None, details: str = "") -> None:
        import os
        if os.environ.get("LABKIT_CLASSROOM") and not hint:  # a classroom server: the engine is the learner's own
            hint = ("Your own engine stopped. Start it again: `labkit engine start` in a terminal, or File > Hub "
                    "Control Panel > Stop My Server, then Start My Server (your files and images stay). Then re-run "
                    "this notebook from the top. Your trainer's roster shows your engine as down until then.")
        super().__init__(message, hint, details)


class EngineStopped(DaemonUnavailable):
    """The engine answered earlier in this session and does not any more (stopped, crashed, restarting)."""

    default_hint = ("Start the engine again if it does not come back by itself (`labkit doctor` says whether it "
                    "answers and how to start it), then re-run this notebook from the top (Kernel > Restart Kernel "
                    "and Run All Cells). `lab.cleanup()` removes this session's leftovers once the engine is back.")


class EngineRestarted(EngineStopped):
    """Another engine process answers than the one this session talked to: it restarted in between."""

    default_hint = ("Re-run this notebook from the top (Kernel > Restart Kernel and Run All Cells): what it "
                    "started before the restart is stopped or gone. `lab.cleanup()` removes this session's "
                    "leftovers; `labkit doctor` checks the engine.")


class BuildKitUnavailable(LabkitError):
    default_hint = ("Install the buildx plugin, or a docker CLI older than 23 "
                    "(e.g. Debian's docker.io 20.10) that honours DOCKER_BUILDKIT=1.")


class ImageMissing(LabkitError):
    default_hint = "Run `labkit prepare` to build the lab images."


class UnknownImage(LabkitError):
    default_hint = "Run `labkit images` to list the catalog."


class InsufficientDisk(LabkitError):
    default_hint = "Free some disk space (e.g. `labkit clean --all`), then retry."


class RecipeFailed(LabkitError):
    default_hint = "Read the output above; `labkit doctor` lists the host tools each recipe needs."


class CommandFailed(LabkitError):
    """A command (in a container or on the host) exited non-zero."""

    def __init__(self, command: Sequence[str] | str, exit_code: int, stdout: str = "",
                 stderr: str = "", hint: str | None = None) -> None:
        self.command = command if isinstance(command, str) else " ".join(map(str, command))
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        tail = "\n".join((stderr or stdout).strip().splitlines()[-10:])
        super().__init__(f"`{self.command}` exited with code {exit_code}.",
                         hint or "Read the command's output above and fix the command or its input.",
                         details=tail)


class ReadinessTimeout(LabkitError):
    """A container did not become ready in time; carries its last log lines."""

    default_hint = "Read the container's last log lines above; raise `timeout=` if it is just slow."

    def __init__(self, message: str, logs: str = "", hint: str | None = None) -> None:
        self.logs = logs
        last = "\n".join(logs.strip().splitlines()[-15:])
        super().__init__(message, hint, details=f"Last log lines:\n{last}" if last else "(no log output)")


class CheckError(LabkitError):
    """An exercise check was called wrongly (unknown id, bad argument)."""

    default_hint = "Read the exercise text again; `lab.exercises()` lists the ids."


class LabSkipped(LabkitError):
    """A lab needs something this machine lacks; the notebook shows a banner and stops."""

    default_hint = "Run `labkit doctor` to see what is missing and how to add it."

    def _render(self):
        return callout("warning", "Skipped", self.message, details=self.details, hint=self.hint)


class CommandTimeout(ReadinessTimeout):
    default_hint = "The command ran longer than its timeout; raise `timeout=` or make it finish."


def _explanation(exc: docker.errors.DockerException) -> str:
    return (getattr(exc, "explanation", None) or str(exc)).strip()


@contextlib.contextmanager
def translated(action: str, hint: str | None = None, *, image: str | None = None, missing_hint: str | None = None,
               error: type[LabkitError] = LabkitError) -> Iterator[None]:
    """The one place where docker SDK errors become LabkitErrors: wrap an engine call in it. A
    missing `image` becomes ImageMissing (with `missing_hint`, else how to make the lab images);
    anything else the engine refused becomes `error` with
    "<action>: <the engine's reason>" and the hint. LabkitErrors (a stopped engine) pass as they are."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        if image is None:
            raise error(f"{action}: {_explanation(exc)}", hint) from None
        raise ImageMissing(f"The image {image!r} is not in the local image store.", missing_hint) from None
    except docker.errors.APIError as exc:
        raise error(f"{action}: {_explanation(exc)}", hint) from None
