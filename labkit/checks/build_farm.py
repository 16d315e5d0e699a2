"""Checks of notebook 15 (shared CI build farms)."""
from __future__ import annotations

from ..core.errors import LabkitError
from ..exercises import exercise
from ..farm import load_config, simulate, slots

TEAMS, BUILDS_PER_HOUR, BUILD_MINUTES, TARGET_WAIT = 12, 2, 10, 5.0


@exercise("build-farm", "fix-config", "Make the farm configuration valid with at least 8 executors",
          "Each agent may run one build per vCPU and per 4 GB: 2 vCPU / 8 GB agents get executors: 2. "
          "Add agents (each with a unique name) until the executors add up to 8.")
def fix_config(lab, config_text: str | None = None):
    if not config_text:
        return False, "Pass config_text=... (the YAML text of your farm)."
    try:
        config = load_config(config_text)
    except LabkitError as error:
        return False, error.message
    if slots(config) < 8:
        return False, f"The configuration is valid but has {slots(config)} executors; the teams need 8."
    return True, f"Valid, with {slots(config)} executors on {len(config['farm']['agents'])} agents, none oversubscribed."


def smallest_farm() -> int:
    m = 1
    while simulate(TEAMS, m, BUILDS_PER_HOUR, BUILD_MINUTES).mean_wait >= TARGET_WAIT:
        m += 1
    return m


@exercise("build-farm", "size-farm", "Size the farm with the model",
          f"Call farm.simulate({TEAMS}, m, {BUILDS_PER_HOUR}, {BUILD_MINUTES}) for m = 1, 2, 3, ... and keep the "
          f"first m whose mean_wait is under {TARGET_WAIT:g} minutes.")
def size_farm(lab, executors: int | None = None):
    if executors is None:
        return False, "Pass executors=... (the number you found)."
    best = smallest_farm()
    if executors == best:
        return True, (f"{best} executors keep the mean wait under {TARGET_WAIT:g} min; one fewer and the queue "
                      "grows all day.")
    if executors > best:
        return False, f"{executors} executors work, but fewer would do: find the smallest."
    wait = simulate(TEAMS, executors, BUILDS_PER_HOUR, BUILD_MINUTES).mean_wait
    return False, f"With {executors} executors the mean wait is {wait:.0f} min, over {TARGET_WAIT:g}."
