"""Checks of notebook 12 (integration tests with containers)."""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from ..exercises import exercise
from ..testrun import read_junit, run_pytest

MISSING_TEST = "test_negative.py"


@exercise("testcontainers", "missing-test", "Write the test that catches negative stock", hints=(
    "A regression test does exactly what the bug got wrong: take out more than there is, then look at both "
    "the answer and the stock that is left.",
    "Copy the shape of test_inventory.py (printed in section 2): the `service` fixture gives the URL, and "
    "`call(url, 'POST', {'delta': n})` from helpers.py returns (status, body).",
    "In work / 'test_negative.py': a test_...(service) that posts delta -2 (expects (200, count 3)), then "
    "delta -10 (expects status 409), then asserts call(f'{service}/stock/apples')[1]['count'] == 3.",
))
def missing_test(lab, workdir: str | Path | None = None, broken: str | None = None, fixed: str | None = None):
    if not (workdir and broken and fixed):
        return False, f"Pass workdir=..., broken=... and fixed=... (got workdir={workdir!r}, broken={broken!r}, fixed={fixed!r})."
    if not (Path(workdir) / MISSING_TEST).is_file():
        found = ", ".join(sorted(p.name for p in Path(workdir).glob("test_*.py"))) or "none"
        return False, f"There is no {MISSING_TEST} in {workdir} yet (test files there: {found})."
    against_broken = run_pytest(lab, workdir, broken, [MISSING_TEST])
    against_fixed = run_pytest(lab, workdir, fixed, [MISSING_TEST])
    if not against_fixed.cases:
        return False, f"pytest found no test in {MISSING_TEST}: name the function test_... (output: {against_fixed.output.strip()[-120:]})"
    if against_broken.passed:
        return False, (f"Your {len(against_broken.cases)} test(s) pass against the broken service too: they do not "
                       "catch the bug yet (take out more than there is).")
    if not against_fixed.passed:
        failing = [c for c in against_fixed.cases if c.outcome != "passed"]
        return False, f"{failing[0].name} fails against the fixed service too: {failing[0].message.splitlines()[0][:120] if failing[0].message else failing[0].outcome}"
    return True, "It fails against the broken release and passes against the fixed one: a regression test."


@exercise("testcontainers", "wormhole", "Run the whole suite through the wormhole, with docker run", hints=(
    "The job container needs two things from the host: a way to the engine, and the working directory at the "
    "very same path; inside, pytest runs as it did on the host.",
    "`docker run --help`: -v for both mounts (this kernel's engine socket is the path in $DOCKER_HOST), -w for the "
    "directory, -e for SERVICE_IMAGE and TESTCONTAINERS_RYUK_DISABLED, --user to keep the files yours; pytest's "
    "--junitxml=wormhole.xml writes the report.",
    "In a %%bash cell: cd \"$LAB_WORK\" && docker run --rm --user \"$(id -u):$(id -g)\" -v \"${DOCKER_HOST#unix://}:/var/run/docker.sock\" "
    "-v \"$PWD:$PWD\" -w \"$PWD\" -e SERVICE_IMAGE=$LAB_PREFIX-inventory:fixed -e TESTCONTAINERS_RYUK_DISABLED=true "
    "$LAB_PREFIX-test-runner python3 -m pytest -p no:cacheprovider --junitxml=wormhole.xml",
))
def wormhole(lab, report: str | Path | None = None):
    if report is None:
        return False, "Pass report=... (the JUnit XML file your run wrote, e.g. work / 'wormhole.xml')."
    path = Path(report)
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in path.parent.glob("*.xml"))) if path.parent.is_dir() else ""
        return False, f"There is no report {path.name} in {path.parent} yet (XML files there: {found or 'none'})."
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return False, f"{path.name} is not a JUnit XML report ({exc})."
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    host = suite.get("hostname", "") if suite is not None else ""
    if host == socket.gethostname():
        return False, (f"{path.name} was written on this machine (hostname {host}): run pytest inside a container "
                       "that gets the engine's socket and the working directory.")
    run = read_junit(path, "container", 0.0, "")
    names = {c.name.partition("::")[0] for c in run.cases}
    if not run.cases:
        return False, f"{path.name} lists no test: did pytest run in the working directory?"
    if "test_negative" not in names or "test_inventory" not in names:
        return False, (f"{path.name} has tests of {', '.join(sorted(names))} only: run the whole suite "
                       "(test_inventory.py and your test_negative.py).")
    if not run.passed:
        failing = [c for c in run.cases if c.outcome not in ("passed", "skipped")]
        first = (failing[0].message.splitlines() or [failing[0].outcome])[0][:100]
        return False, (f"{len(failing)} of {len(run.cases)} tests did not pass in the container ({failing[0].name}: "
                       f"{first}): did you test the fixed image, and can the container reach the engine?")
    return True, (f"{len(run.cases)} tests passed inside a container that started its own service containers "
                  "through the socket.")
