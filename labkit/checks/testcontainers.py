"""Checks of notebook 12 (integration tests with containers)."""
from __future__ import annotations

from pathlib import Path

from ..exercises import exercise
from ..testrun import TestRun, run_pytest

MISSING_TEST = "test_negative.py"


@exercise("testcontainers", "missing-test", "Write the test that catches negative stock",
          "In test_negative.py: take 2 apples out of 5, then 10 more; the second call must answer 409 and "
          "the count must stay 3 (use the `service` fixture and `call` from helpers).")
def missing_test(lab, workdir: str | Path | None = None, broken: str | None = None, fixed: str | None = None):
    if not (workdir and broken and fixed):
        return False, "Pass workdir=..., broken=... and fixed=... (the two image names)."
    if not (Path(workdir) / MISSING_TEST).is_file():
        return False, f"Write your test into {MISSING_TEST} in the working directory first."
    against_broken = run_pytest(lab, workdir, broken, [MISSING_TEST])
    against_fixed = run_pytest(lab, workdir, fixed, [MISSING_TEST])
    if not against_fixed.cases:
        return False, f"pytest found no test in {MISSING_TEST} (name it test_...)."
    if against_broken.passed:
        return False, "Your test passes against the broken service: it does not catch the bug yet."
    if not against_fixed.passed:
        failing = [c for c in against_fixed.cases if c.outcome != "passed"]
        return False, f"Your test fails against the fixed service too: {failing[0].message.splitlines()[0][:120]}"
    return True, "It fails against the broken release and passes against the fixed one: a regression test."


@exercise("testcontainers", "wormhole", "Run the whole suite through the wormhole",
          "testrun.wormhole(lab, work, fixed_image, runner) runs pytest in a container with the socket and "
          "the working directory mounted at the same path.")
def wormhole(lab, run: TestRun | None = None):
    if not isinstance(run, TestRun):
        return False, "Pass run=... (what testrun.wormhole(...) returned)."
    if run.where != "container":
        return False, "That run happened on the host; run it through testrun.wormhole."
    names = {c.name.partition("::")[0] for c in run.cases}
    if "test_negative" not in names or "test_inventory" not in names:
        return False, "Run the whole suite (test_inventory.py and your test_negative.py), not one file."
    if not run.passed:
        return False, "Some tests failed in the container; did you test the fixed image?"
    return True, f"{len(run.cases)} tests passed inside a container that started its own service containers."
