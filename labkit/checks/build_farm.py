"""Checks of notebook 15 (shared CI build farms)."""
from __future__ import annotations

import docker

from ..core.errors import LabkitError
from ..exercises import exercise
from ..farm import GB_PER_EXECUTOR, load_config, simulate, slots

TEAMS, BUILDS_PER_HOUR, BUILD_MINUTES, TARGET_WAIT = 12, 2, 10, 5.0
AGENT, AGENT_VCPUS, AGENT_GB = "agent-5", 2, 8
GIB = 1024 ** 3


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


@exercise("build-farm", "agent-limits", "Start a farm agent whose size the engine enforces", hints=(
    "The YAML only declares an agent's size; the engine can enforce it, so that the agent's builds cannot take "
    "the host's other CPUs. Which options of `docker run` limit a container's CPUs and memory, and which one "
    "attaches metadata?",
    "`docker run --help`: the resource options (--cpus, --memory) and --label; in a shell cell the agent's name "
    "is $LAB_PREFIX-agent-5, and the farm's rule (one executor per vCPU and per 4 GB) gives the label's value.",
    "!docker run -d --name $LAB_PREFIX-agent-5 --cpus 2 --memory 8g --label farm.executors=2 "
    "labkit/busybox:latest sleep 3600"))
def agent_limits(lab, name: str = AGENT):
    full, session = lab.name(name), lab.labels["labkit.session"]
    try:
        agent = lab.client.containers.get(full)
    except docker.errors.NotFound:
        mine = sorted(c.name for c in lab.client.containers.list(
            all=True, filters={"label": f"labkit.session={session}"}))
        return False, f"No container {full} exists; this session's containers: {', '.join(mine) or 'none'}."
    if agent.labels.get("labkit.session") != session:
        return False, f"{full} exists but was not created in this session (it has no session label)."
    if agent.status != "running":
        return False, f"{full} exists but is {agent.status}: an agent must keep running (give it a long command)."
    cpus, gib = _limits(agent)
    if abs(cpus - AGENT_VCPUS) > 0.01:
        found = f"a limit of {cpus:g} CPUs" if cpus else "no CPU limit (HostConfig.NanoCpus is 0)"
        return False, f"{full} runs with {found}: its builds may use that many of the host's CPUs, not {AGENT_VCPUS}."
    if abs(gib - AGENT_GB) > 0.25:
        found = f"a memory limit of {gib:.1f} GiB" if gib else "no memory limit (HostConfig.Memory is 0)"
        return False, f"{full} runs with {AGENT_VCPUS} CPUs but {found}; the agent has {AGENT_GB} GB."
    label = agent.labels.get("farm.executors")
    if label is None:
        return False, f"{full} is limited to {AGENT_VCPUS} CPUs / {AGENT_GB} GB but has no label farm.executors."
    try:
        executors = int(label)
        load_config(f"farm:\n  agents:\n    - {{name: {name}, vcpus: {AGENT_VCPUS}, memoryGB: {AGENT_GB}, "
                    f"executors: {executors}}}\n")
    except (ValueError, LabkitError) as error:
        why = error.message if isinstance(error, LabkitError) else "not a whole number"
        return False, f"{full} has farm.executors={label!r}: {why}"
    most = min(AGENT_VCPUS, AGENT_GB // GB_PER_EXECUTOR)
    if executors != most:
        return False, f"{full} has farm.executors={executors}; the rule allows {most} on {AGENT_VCPUS} vCPU / {AGENT_GB} GB."
    return True, (f"{name} runs with {AGENT_VCPUS} CPUs and {AGENT_GB} GiB enforced by the engine, and says it runs "
                  f"{executors} builds at a time: the configuration and the machine agree.")


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
