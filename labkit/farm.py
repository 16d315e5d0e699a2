"""A shared build farm in miniature (notebook 15): real BuildKit builds through a queue with a
concurrency limit, the farm's configuration as code (JCasC-style YAML), and a queueing model
for N teams sharing M agents."""
from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .core.render import Chart, Renderable, Stack, seconds, table, volatile
from .core.errors import LabkitError

if TYPE_CHECKING:
    from .lab import Lab


class FarmConfigInvalid(LabkitError):
    default_hint = "Fix the field named above; `farm.SCHEMA` lists every field and its type."


@dataclass
class Job:
    name: str
    submitted: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    ok: bool = True
    error: str = ""

    @property
    def wait(self) -> float:
        return self.started - self.submitted

    @property
    def duration(self) -> float:
        return self.finished - self.started


@dataclass
class FarmRun(Renderable):
    """One batch of jobs through a queue with `limit` parallel slots."""

    limit: int
    jobs: list[Job] = field(default_factory=list)

    @property
    def makespan(self) -> float:
        return max(j.finished for j in self.jobs) - min(j.submitted for j in self.jobs)

    @property
    def mean_wait(self) -> float:
        return statistics.mean(j.wait for j in self.jobs)

    @property
    def mean_duration(self) -> float:
        return statistics.mean(j.duration for j in self.jobs)

    def timeline(self) -> Chart:
        t0 = min(j.submitted for j in self.jobs)
        bars, colours = [], []
        for j in self.jobs:
            bars += [(f"{j.name} waits", j.submitted - t0, max(j.started - t0, j.submitted - t0 + 1e-3)),
                     (f"{j.name} builds", j.started - t0, j.finished - t0)]
            colours += ["#d0d7de", "#0969da" if j.ok else "#cf222e"]
        return Chart(f"{len(self.jobs)} builds, at most {self.limit} at a time", bars, "s", colours,
                     {"waiting in the queue": "#d0d7de", "building": "#0969da"})

    def _render(self):
        rows = [(j.name, volatile(seconds(j.wait)), volatile(seconds(j.duration)), "ok" if j.ok else j.error[:60])
                for j in self.jobs]
        summary = table(["job", "queue wait", "build time", "result"], rows,
                        title=f"limit {self.limit}: makespan {volatile(seconds(self.makespan))}, "
                              f"mean wait {volatile(seconds(self.mean_wait))}")
        return Stack([summary, self.timeline()])


def run_queue(work: Sequence[tuple[str, Callable[[], Any]]], limit: int,
              progress: Callable[[Job], None] | None = None) -> FarmRun:
    """Submit every (name, job) at once to `limit` workers; record when each waited and ran.
    A failing job is recorded (its error kept) and the others go on, as on a real farm."""
    if limit < 1:
        raise LabkitError(f"A queue needs at least one slot (limit={limit}).", "Use limit=1 or more.")
    run = FarmRun(limit, [Job(name) for name, _ in work])
    lock = threading.Lock()

    def one(job: Job, fn: Callable[[], Any]) -> None:
        job.started = time.monotonic()
        try:
            fn()
        except LabkitError as exc:
            job.ok, job.error = False, exc.message
        finally:
            job.finished = time.monotonic()
            if progress is not None:
                with lock:
                    progress(job)

    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="farm") as pool:
        now = time.monotonic()
        for job in run.jobs:
            job.submitted = now
        futures = [pool.submit(one, job, fn) for job, (_, fn) in zip(run.jobs, work)]
        for f in futures:
            f.result()
    return run


def build_jobs(lab: "Lab", count: int, spin: int = 120_000, round_name: str = "r") -> list[tuple[str, Callable]]:
    """`count` small CPU-bound BuildKit builds (no cache, so each really runs)."""
    dockerfile = ("FROM labkit/busybox:latest\nARG JOB\n"
                  f"RUN i=0; while [ $i -lt {spin} ]; do i=$((i+1)); done; echo \"$JOB\" > /built-by\n")
    return [(f"job{i + 1}", lambda i=i: lab.build(f"farm-{round_name}-{i + 1}", dockerfile, no_cache=True,
                                                   build_args={"JOB": f"job{i + 1}"}))
            for i in range(count)]


def compare(runs: Sequence[FarmRun]) -> Stack:
    rows = [(r.limit, volatile(seconds(r.makespan)), volatile(seconds(r.mean_wait)),
             volatile(seconds(r.mean_duration))) for r in runs]
    chart = Chart("Makespan by concurrency limit", [(f"limit {r.limit}", r.makespan) for r in runs], "s")
    return Stack([table(["limit", "makespan", "mean queue wait", "mean build time"], rows,
                        title="Same builds, different limits"), chart])


# --- configuration as code ----------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["farm"],
    "additionalProperties": False,
    "properties": {"farm": {
        "type": "object",
        "required": ["agents"],
        "additionalProperties": False,
        "properties": {
            "systemMessage": {"type": "string"},
            "agents": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["name", "vcpus", "memoryGB", "executors"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
                    "vcpus": {"type": "integer", "minimum": 1},
                    "memoryGB": {"type": "integer", "minimum": 1},
                    "executors": {"type": "integer", "minimum": 1},
                    "labels": {"type": "array", "items": {"type": "string"}},
                }}},
        }}},
}
GB_PER_EXECUTOR = 4  # the talk's rule: 2 parallel builds per 2 vCPU / 8 GB agent


def load_config(text: str) -> dict[str, Any]:
    """Parse and validate a farm configuration; FarmConfigInvalid names the offending field."""
    import yaml

    from .schema import problems

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FarmConfigInvalid(f"The farm configuration is not valid YAML: {exc}") from None
    found = problems(SCHEMA, data)
    if found:
        raise FarmConfigInvalid(f"Field {found[0][0]}: {found[0][1].message}",
                                details="\n".join(f"{path}: {e.message}" for path, e in found[1:6]))
    names = set()
    for i, agent in enumerate(data["farm"]["agents"]):
        where = f"farm.agents.{i}"
        if agent["name"] in names:
            raise FarmConfigInvalid(f"Field {where}.name: agent {agent['name']!r} is defined twice.")
        names.add(agent["name"])
        most = min(agent["vcpus"], agent["memoryGB"] // GB_PER_EXECUTOR)
        if agent["executors"] > most:
            raise FarmConfigInvalid(
                f"Field {where}.executors: {agent['executors']} parallel builds on {agent['vcpus']} vCPU / "
                f"{agent['memoryGB']} GB, more than the {most} this farm allows.",
                f"At most one executor per vCPU and per {GB_PER_EXECUTOR} GB: set executors to {most} or less.")
    return data


def slots(config: dict[str, Any]) -> int:
    return sum(a["executors"] for a in config["farm"]["agents"])


# --- a model of N teams sharing the farm -----------------------------------------------------

@dataclass
class Simulated:
    teams: int
    slots: int
    mean_wait: float
    p95_wait: float
    utilisation: float
    mean_turnaround: float  # wait + build: what a developer waits for their result


def simulate(teams: int, slots: int, builds_per_team_per_hour: float, build_minutes: float,
             hours: float = 8, seed: int = 1, slowdown: float = 1.0) -> Simulated:
    """A first-come first-served queue: each team submits builds at random (Poisson) times over a
    working day; `slots` executors run them. `slowdown` stretches every build (an oversubscribed
    agent: more executors than cores). Deterministic for a seed."""
    rng = random.Random(seed)
    arrivals = []
    for _ in range(teams):
        t = rng.expovariate(builds_per_team_per_hour / 60)
        while t < hours * 60:
            arrivals.append(t)
            t += rng.expovariate(builds_per_team_per_hour / 60)
    arrivals.sort()
    free = [0.0] * slots
    waits, busy, turnaround = [], 0.0, 0.0
    for t in arrivals:
        k = min(range(slots), key=free.__getitem__)
        start = max(t, free[k])
        length = build_minutes * slowdown * rng.uniform(0.7, 1.3)
        free[k] = start + length
        waits.append(start - t)
        busy += length
        turnaround += start - t + length
    span = max(max(free, default=0), hours * 60)
    waits.sort()
    if not waits:
        return Simulated(teams, slots, 0.0, 0.0, 0.0, 0.0)
    return Simulated(teams, slots, statistics.mean(waits), waits[int(0.95 * (len(waits) - 1))],
                     busy / (slots * span), turnaround / len(waits))


def sweep(teams: int, slot_counts: Sequence[int], **kwargs: Any) -> Stack:
    results = [simulate(teams, m, **kwargs) for m in slot_counts]
    rows = [(r.slots, f"{r.mean_wait:.1f} min", f"{r.p95_wait:.1f} min", f"{r.utilisation:.0%}") for r in results]
    chart = Chart(f"{teams} teams: mean queue wait by number of executors",
                  [(f"{r.slots} executors", r.mean_wait) for r in results], "minutes")
    return Stack([table(["executors", "mean wait", "95th percentile wait", "utilisation"], rows,
                        title=f"Model: {teams} teams"), chart])
