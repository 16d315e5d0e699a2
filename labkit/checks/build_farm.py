"""Checks of notebook 15 (shared CI build farms)."""
from __future__ import annotations

import time

import docker

from ..core.errors import LabkitError
from ..core.render import volatile
from ..exercises import exercise
from ..farm import load_config, simulate, slots
from ..predictions import question

TEAMS, BUILDS_PER_HOUR, BUILD_MINUTES, TARGET_WAIT = 12, 2, 10, 5.0
GIB = 1024 ** 3

question("build-farm", "full-farm",
         "12 teams each send 2 builds an hour of about 10 minutes: exactly 4 executors' worth of work. With 4 "
         "executors, what is the model's mean queue wait?",
         ["about zero: the capacity matches the work", "a couple of minutes", "close to half an hour"], answer=2,
         why="At 100% utilisation every burst of builds adds to a queue that never drains: 4 executors wait "
             "close to half an hour on average, one more executor brings it down to minutes.")
question("build-farm", "one-more-build",
         "Each team adds one build an hour (3 instead of 2: 50% more work) on the 6 executors that kept the "
         "wait under a minute. What happens to the mean queue wait?",
         ["it grows by about half, like the work", "it grows more than tenfold",
          "it stays under a minute: 6 executors have room"], answer=1,
         why="Utilisation goes from 70% to 96%, and near full the wait grows much faster than the load: from "
             "under a minute to about 11 minutes.")
question("build-farm", "nproc-limited",
         "agent-6 runs under a ceiling of a quarter of a CPU. What does `nproc` print inside it?",
         ["1: a quarter of a CPU rounds up to one", "as many CPUs as the host has", "0: less than one CPU"],
         answer=1,
         why="--cpus is a quota of CPU time per period, taken on any of the host's CPUs; it changes no CPU set, "
             "so a tool that sizes itself by nproc (`make -j$(nproc)`) still starts one job per host CPU.")


@exercise("build-farm", "fix-config", "Make the farm configuration valid with at least 8 executors", hints=(
    "One agent cannot run 8 builds on 2 vCPU; the farm gets more executors from more agents, not from "
    "overloading one.",
    "Section 3's errors state the rule (one executor per vCPU and per 4 GB) and farm.load_config(farm_yaml) "
    "names the field that breaks it; the good example above it has the shape of a valid agent.",
    "Four agents agent-1 .. agent-4, each {vcpus: 2, memoryGB: 8, executors: 2}: 8 executors in all."))
def fix_config(lab, config_text: str | None = None):
    if not config_text:
        return False, "Pass config_text=... (the YAML text of your farm)."
    try:
        config = load_config(config_text)
    except LabkitError as error:
        return False, f"The configuration is refused: {error.message}"
    if slots(config) < 8:
        return False, (f"The configuration is valid but has {slots(config)} executors on "
                       f"{len(config['farm']['agents'])} agent(s); the teams need 8.")
    return True, f"Valid, with {slots(config)} executors on {len(config['farm']['agents'])} agents, none oversubscribed."


def _limits(container) -> tuple[float, float]:
    """(CPUs, GiB) the engine enforces on a container: --cpus, or --cpu-quota/--cpu-period; --memory."""
    host = container.attrs.get("HostConfig") or {}
    cpus = (host.get("NanoCpus") or 0) / 1e9
    if not cpus and host.get("CpuQuota") and host.get("CpuPeriod"):
        cpus = host["CpuQuota"] / host["CpuPeriod"]
    return cpus, (host.get("Memory") or 0) / GIB


# --- Exercise 2: a noisy neighbour on the farm ----------------------------------------------
AGENTS = ("agent-6", "agent-7", "agent-8")
NOISY = "agent-6"  # runs a team's side job: one busy loop per CPU of the host, no limits
SIDE_JOB = ["sh", "-c", "for c in $(seq $(nproc)); do while :; do :; done & done; wait"]
CPU_BUDGET, MEMORY_BUDGET_MB = 0.25, 64  # the farm's policy for a side job on a build agent


def start_agents(lab) -> list:
    """Three build agents of this session; one of them also runs a side job that takes every CPU."""
    from ..core.engine import enforces_limits
    if not enforces_limits(lab.client):
        from ..core.errors import LabSkipped
        raise LabSkipped(
            "This engine applies no CPU or memory limits (a rootless engine on cgroup v1 gets no cgroup of its "
            "own to divide; `docker update --cpus` is refused), and the rest of this lab holds a noisy build to "
            "a CPU limit. It changes meaning here, so it stops after Exercise 1 (skipped, not failed).",
            "Run it on a root engine, or on a host with cgroup v2 and systemd delegation, where a rootless "
            "engine enforces limits too (`labkit doctor` shows the cgroup version).")
    return [lab.start("labkit/busybox:latest", SIDE_JOB if name == NOISY else ["sleep", "3600"], name=name,
                      labels={"farm.executors": "2"}) for name in AGENTS]


def cpu_use(model, seconds: float = 2.0) -> float | None:
    """CPUs a container used over `seconds` (its cgroup's CPU time, as `docker stats` reads it), or
    None when the engine gives no CPU statistics. The kernel enforces a limit, so a loaded machine
    can only make this smaller: a ceiling is safe to check where a timing is not."""
    def sample() -> tuple[int | None, float]:
        stats = model.stats(stream=False, one_shot=True)
        return (stats.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage"), time.monotonic()
    u0, t0 = sample()
    time.sleep(seconds)
    u1, t1 = sample()
    return None if u0 is None or u1 is None else (u1 - u0) / 1e9 / (t1 - t0)


@exercise("build-farm", "noisy-neighbour", "Keep the side job to its budget without stopping it", hints=(
    "First find the agent that eats the CPU (`docker stats --no-stream` on this session's containers). It runs "
    "a job its team needs, so it must keep running with the same command; the engine can change a running "
    "container's limits.",
    "`docker update --help`: --cpus is a ceiling (--cpu-shares is only a weight, and --cpuset-cpus still gives "
    "a whole CPU); a memory limit on a container that had none also needs --memory-swap. In a %%bash cell the "
    "names are $LAB_PREFIX-agent-6 ... and `docker ps -q --filter label=labkit.session=$LAB_SESSION` lists them.",
    f"%%bash\ndocker stats --no-stream $(docker ps -q --filter label=labkit.session=$LAB_SESSION)\n"
    f"docker update --cpus {CPU_BUDGET} --memory {MEMORY_BUDGET_MB}m --memory-swap {MEMORY_BUDGET_MB}m "
    f"$LAB_PREFIX-{NOISY}"))
def noisy_neighbour(lab):
    full = lab.name(NOISY)
    try:
        agent = lab.client.containers.get(full)
    except docker.errors.NotFound:
        return False, (f"No container {full}: the side job is gone, and its team needs its report. Run the cell "
                       "that starts the agents again, then limit the job instead of removing it.")
    if agent.labels.get("labkit.session") != lab.labels["labkit.session"]:
        return False, f"{full} exists but was not created in this session (it has no session label)."
    if agent.status != "running" or agent.attrs["Config"].get("Cmd") != SIDE_JOB:
        return False, (f"{full} is {agent.status} with the command {agent.attrs['Config'].get('Cmd')}: the side "
                       "job must keep running, as it was (limit it, do not stop or replace it).")
    cpus, gib = _limits(agent)
    host = agent.attrs.get("HostConfig") or {}
    if not cpus:
        extra = (f" (--cpuset-cpus {host['CpusetCpus']} pins it, yet it may still fill those CPUs)"
                 if host.get("CpusetCpus") else " (--cpu-shares is only a weight)" if host.get("CpuShares") else "")
        used = cpu_use(agent)
        now = f"; right now the side job uses {used:.1f} CPUs" if used is not None else ""
        return False, f"An agent of this session has no CPU ceiling{extra}{now}. Find it and give it one."
    if cpus > CPU_BUDGET + 1e-6:
        return False, f"{full} may use {cpus:g} CPUs; the side job's budget is {CPU_BUDGET:g}."
    if not gib or gib * 1024 > MEMORY_BUDGET_MB + 0.5:
        found = f"{gib * 1024:.0f} MB" if gib else "no memory limit (HostConfig.Memory is 0)"
        return False, f"{full} has a CPU ceiling of {cpus:g} but {found}; the budget is {MEMORY_BUDGET_MB} MB."
    used = cpu_use(agent)
    if used is not None and used > CPU_BUDGET + 0.1:
        return False, f"{full} has a ceiling of {cpus:g} CPUs yet used {used:.2f} CPUs over 2 s: is the limit applied?"
    measured = f", measured {volatile(f'{used:.2f}')} CPUs over 2 s" if used is not None else ""  # varies
    return True, (f"{NOISY} still runs its job, within {cpus:g} CPUs{measured} and {gib * 1024:.0f} MB: the kernel "
                  "enforces the ceiling, and the builds keep the rest of the machine.")


def smallest_farm() -> int:
    m = 1
    while simulate(TEAMS, m, BUILDS_PER_HOUR, BUILD_MINUTES).mean_wait >= TARGET_WAIT:
        m += 1
    return m


@exercise("build-farm", "size-farm", "Size the farm with the model", hints=(
    "Try growing farms, smallest first: the first one fast enough is the answer.",
    f"farm.simulate(teams, executors, builds_per_team_per_hour, build_minutes) returns a result with .mean_wait "
    f"(minutes), as the tragedy-of-the-commons cell above used it; loop over executors = 1, 2, 3, ...",
    f"executors = 1; while farm.simulate({TEAMS}, executors, {BUILDS_PER_HOUR}, {BUILD_MINUTES}).mean_wait >= "
    f"{TARGET_WAIT:g}: executors += 1"))
def size_farm(lab, executors: int | None = None):
    if executors is None:
        return False, "Pass executors=... (the number you found)."
    best = smallest_farm()
    if executors == best:
        return True, (f"{best} executors keep the mean wait under {TARGET_WAIT:g} min; one fewer and the queue "
                      "grows all day.")
    wait = simulate(TEAMS, executors, BUILDS_PER_HOUR, BUILD_MINUTES).mean_wait if executors > 0 else float("inf")
    if executors > best:
        return False, (f"With {executors} executors the mean wait is {wait:.1f} min, under {TARGET_WAIT:g}, but "
                       "fewer would do: find the smallest.")
    return False, f"With {executors} executors the mean wait is {wait:.0f} min, over {TARGET_WAIT:g}."
