"""Checks of notebook 12 (integration tests with containers)."""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from ..exercises import exercise
from ..predictions import question
from ..testrun import read_junit, run_pytest
from ..testrun import wormhole as wormhole_run

MISSING_TEST = "test_negative.py"

question("testcontainers", "both-releases", "The three tests of test_inventory.py run against the fixed release, "
         "then against the broken one (it lost its stock check). What do the two runs show?",
         ["both pass", "the fixed release passes, the broken one fails", "both fail"], answer=0,
         why="No test takes out more than there is, so the lost lines never run: green only says that what is "
             "tested works.")
question("testcontainers", "killed-run", "The test run is killed (SIGKILL) while its test holds a service "
         "container. How many service containers are left afterwards?",
         ["none: testcontainers removes them as its process exits", "one: no cleanup code ran",
          "none: the engine removes the containers of a client that went away"], answer=1,
         why="SIGKILL runs no fixture teardown and no exit handler, and the engine does not track who started a "
             "container: only something outside the process (Ryuk, or labels and a cleanup) removes it.")


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


CI_TEST = "test_health.py"


def _first_problem(run) -> str:
    bad = next(c for c in run.cases if c.outcome not in ("passed", "skipped"))
    lines = [line for line in bad.message.splitlines() if line.strip()] or [bad.outcome]
    return f"{bad.name} {bad.outcome}: {lines[-1].strip()[:160]}"


@exercise("testcontainers", "ci-job", "Make the colleague's CI job pass through the wormhole", hints=(
    "Two things are wrong, and the second shows only once the first is fixed. Read each error to its last "
    "line and ask on which machine the path or the address it names is looked up.",
    "The engine resolves a bind mount's source on the host, not in the job container, and inside the job "
    "container 127.0.0.1 is the job's own loopback (section 4). Compare ci-job.sh's mounts with the working "
    "run of section 4 (lab.commands() lists its docker run), and test_health.py's address with conftest.py's "
    "`service` fixture.",
    "In a %%bash cell: cd \"$LAB_WORK\"; sed -i 's#-v \"$PWD:/src\" -w /src#-v \"$PWD:$PWD\" -w \"$PWD\"#' ci-job.sh; "
    "sed -i 's#http://127.0.0.1:{port}#http://{container.get_container_host_ip()}:{port}#' test_health.py; "
    "sh ci-job.sh",
))
def ci_job(lab, workdir: str | Path | None = None, fixed: str | None = None, runner: str | None = None):
    if not (workdir and fixed and runner):
        return False, f"Pass workdir=..., fixed=... and runner=... (got {workdir!r}, {fixed!r}, {runner!r})."
    path = Path(workdir) / "wormhole.xml"
    if not path.is_file():
        return False, f"There is no {path.name} in the working directory yet: run the job (sh ci-job.sh) there."
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return False, f"{path.name} is not a JUnit XML report ({exc})."
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    host = suite.get("hostname", "") if suite is not None else ""
    if host == socket.gethostname():
        return False, (f"{path.name} was written by pytest on this machine (hostname {host}): the job runs pytest "
                       "inside the test-runner container; run ci-job.sh.")
    run = read_junit(path, "container", 0.0, "")
    modules = {c.name.partition("::")[0] for c in run.cases}
    if not {"test_inventory", "test_health"} <= modules:
        return False, (f"{path.name} has tests of {', '.join(sorted(modules)) or 'nothing'} only: the job runs the "
                       "whole suite, test_health.py and test_inventory.py included.")
    if not run.passed:
        failing = sum(c.outcome not in ("passed", "skipped") for c in run.cases)
        return False, f"The job's last run: {failing} of {len(run.cases)} tests did not pass. First: {_first_problem(run)}"
    # the report says the job passed; run the colleague's test again, both ways, to see it for real
    for where, again in (("on the host", lambda: run_pytest(lab, workdir, fixed, [CI_TEST])),
                         ("in a container", lambda: wormhole_run(lab, workdir, fixed, runner, [CI_TEST]))):
        result = again()
        if not result.cases:
            return False, f"pytest found no test in {CI_TEST} {where}: keep the colleague's test, fixed."
        if not result.passed:
            return False, f"{CI_TEST} fails {where} now: {_first_problem(result)} (laptop and CI run the same tests)."
    return True, (f"The job passes all {len(run.cases)} tests inside its container, and {CI_TEST} passes on the host "
                  "and through the wormhole alike.")
