"""What a build reports: its steps (stage, cache hit, timing, output) parsed from BuildKit's plain
progress or the classic builder's stream, as a table and a timeline; and the error of a failed build."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from .core.errors import CommandFailed, LabkitError
from .core.render import Chart, Renderable, Stack, human_bytes, seconds, short_name, stable, table, volatile

TAIL = 12  # output lines of a failing step shown in the error
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_HEADER = re.compile(r"^\[(?:(?P<stage>[^\]\s]+) )?(?P<index>\d+/\d+)\] (?P<instr>.*)$|^\[internal\] (?P<internal>.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
_OUTPUT = re.compile(r"^\d+\.\d+ (.*)$")
# "transferring context: 26B done", "... 25.17MB 0.3s", and on a brand-new engine "... done" or nothing at all
_CONTEXT = re.compile(r"^transferring context:\s*(?P<size>\d+(?:\.\d+)?[kMG]?B)?")


class BuildFailed(CommandFailed):
    """A build step failed: the message names the step, the details hold its last output lines."""

    def __init__(self, command: Sequence[str], exit_code: int, log: str, step: "Step | None" = None) -> None:
        super().__init__(command, exit_code, "", log, hint="Fix the failing step shown above, then build again.")
        self.step = step
        error = [ln for ln in log.splitlines() if re.match(r"(error|failed to solve|ERROR)", ln.strip("# 0123456789"))]
        if step is not None:
            self.message = f"The build failed at [{step.stage} {step.index}] {step.instruction}"
            self.details = "\n".join(step.output[-TAIL:] + ([step.error] if step.error else []))
        else:  # a Dockerfile the frontend could not even parse
            self.message = "The build failed before any step ran (is the Dockerfile valid?)"
            self.details = "\n".join(error[-3:]) or "\n".join(log.strip().splitlines()[-TAIL:])


@dataclass
class Step:
    """One vertex of the build graph as the build reported it."""

    id: int
    stage: str  # the stage name (e.g. "deps", "stage-1"); "internal" for context/metadata loads
    index: str  # "2/4" within the stage
    instruction: str
    cached: bool = False
    start: float = 0.0  # seconds since the build started
    end: float = 0.0
    output: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.instruction.upper().startswith("FROM"):
            return "base"  # resolving the base image: neither a cache hit nor work
        return "cached" if self.cached else "ran"


@dataclass
class BuildReport(Renderable):
    tag: str
    builder: str  # "BuildKit" or "classic"
    image_id: str
    size: int
    layers: int
    duration: float
    steps: list[Step]
    log: str
    context_size: str = ""
    equivalent: str = ""  # the docker build command line (labkit.builds.build_command)

    @property
    def ran(self) -> list[Step]:
        """Steps of the Dockerfile that really executed (not cached, not internal)."""
        return [s for s in self.steps if s.stage != "internal" and s.status in ("ran", "error")]

    @property
    def cached(self) -> list[Step]:
        return [s for s in self.steps if s.stage != "internal" and s.status == "cached"]

    def step(self, text: str) -> Step:
        """The (last) step whose instruction contains `text`."""
        found = [s for s in self.steps if text in s.instruction]
        if not found:
            raise LabkitError(f"No step of {short_name(self.tag)} matches {text!r}.",
                              "report.steps lists every step with its instruction.")
        return found[-1]

    def overlap(self, a: str, b: str) -> float:
        """Seconds during which the steps matching `a` and `b` ran at the same time."""
        sa, sb = self.step(a), self.step(b)
        return max(0.0, min(sa.end, sb.end) - max(sa.start, sb.start))

    def table(self):
        steps = sorted((s for s in self.steps if s.stage != "internal"),
                       key=lambda s: (s.stage, int(s.index.split("/")[0] or 0)))
        rows = [(s.stage, s.index, s.instruction[:70], s.status, seconds(s.duration) if s.status == "ran" else "")
                for s in steps]
        return table(["stage", "step", "instruction", "result", "time"], rows, status_column="result",
                     title=f"{self.builder} build of {short_name(self.tag)}: {len(self.ran)} ran, "
                           f"{len(self.cached)} cached")

    def summary(self):
        return table(["image", "builder", "id", "layers", "size", "build time", "context sent"],
                     [(short_name(self.tag), self.builder, volatile(self.image_id[7:19]), self.layers,
                       human_bytes(self.size), seconds(self.duration), self.context_size or "?")],
                     title="Build result")

    def timeline(self) -> Chart:
        """One bar per step from its start to its end: parallel stages overlap, cache hits are grey."""
        steps = sorted((s for s in self.steps if s.stage != "internal"), key=lambda s: (s.start, s.id))
        width = max(self.duration, 0.1) / 150  # a cache hit takes no time: draw it as a thin mark
        colours = {"ran": "#0969da", "cached": "#8c959f", "base": "#d0d7de", "error": "#cf222e"}
        return Chart(f"{self.builder} build of {short_name(self.tag)}: each step from start to end (s)",
                     [(f"[{s.stage} {s.index}] {s.instruction[:34]}", s.start, max(s.end, s.start + width))
                      for s in steps], unit="s",
                     colours=[colours[s.status] for s in steps],
                     legend={"ran": colours["ran"], "cached": colours["cached"]})

    def _render(self):
        blocks = [self.summary(), self.table()]
        if not stable():  # timings differ on every run: no picture in CI's compared output
            blocks.append(self.timeline())
        return Stack(blocks)


# --- parsing the builders' progress -------------------------------------------------------------

def parse_plain(lines: Iterable[tuple[float, str]]) -> tuple[list[Step], str]:
    """Steps from BuildKit's `--progress=plain` output, each line with the time it arrived.
    The plain printer shows a vertex only when it is its turn, so a step's end is when its DONE
    line arrived and its start is that minus the duration BuildKit measured."""
    steps: dict[int, Step] = {}
    context = ""
    for t, line in lines:
        m = _VERTEX.match(line.rstrip())
        if not m:
            continue
        vid, rest = int(m.group(1)), m.group(2)
        step = steps.get(vid)
        if step is None:
            h = _HEADER.match(rest)
            if h and h.group("internal") is not None:
                step = Step(vid, "internal", "", h.group("internal"))
            elif h:
                step = Step(vid, h.group("stage") or "stage-0", h.group("index"), h.group("instr"))
            else:  # "exporting to image" and similar
                step = Step(vid, "internal", "", rest)
            step.start = step.end = t
            steps[vid] = step
            continue
        done = _DONE.match(rest)
        if done:
            step.end = t
            step.start = max(0.0, t - float(done.group(1)))
        elif rest == "CACHED":
            step.cached, step.start, step.end = True, t, t
        elif rest.startswith("ERROR"):
            step.error, step.end = rest, t
        elif (o := _OUTPUT.match(rest)) is not None:
            step.output.append(o.group(1))
        elif (c := _CONTEXT.match(rest)) is not None and step.instruction == "load build context":
            context = c.group("size") or context
    return sorted(steps.values(), key=lambda s: s.id), context


def parse_classic(lines: Iterable[tuple[float, str]]) -> list[Step]:
    """Steps from the classic builder's stream ("Step 2/5 : RUN ...", " ---> Using cache")."""
    steps: list[Step] = []
    stage = -1
    for t, line in lines:
        m = re.match(r"^Step (\d+/\d+) : (.*)$", line)
        if m:
            if steps:
                steps[-1].end = t
            if m.group(2).upper().startswith("FROM"):
                stage += 1
            steps.append(Step(len(steps) + 1, f"stage-{stage}", m.group(1), m.group(2), start=t, end=t))
        elif steps and line.strip() == "---> Using cache":
            steps[-1].cached = True
        elif steps and line.strip() and not line.startswith((" ---> ", "Removing intermediate", "Successfully ")):
            steps[-1].output.append(line)
    return steps



def timed(stream: Iterable[str], start: float) -> Iterator[tuple[float, str]]:
    """Each line with the seconds since `start` at which it arrived."""
    for line in stream:
        yield time.monotonic() - start, line.rstrip("\n")
