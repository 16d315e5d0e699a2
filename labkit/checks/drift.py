"""Checks of notebook 14 (infrastructure drift)."""
from __future__ import annotations

import re
from pathlib import Path

from ..drift import ansible, testinfra
from ..exercises import exercise
from ..predictions import question

PORT_TEST = "test_port.py"
APPROVED_PORT = 8081  # the night shift's change that the ticket approved (notebook 14, exercise 1)
HOTFIX = "/usr/local/bin/shop-hotfix"  # the night shift's change that nobody approved and no task describes

question("drift", "second-run", "The next cell applies the playbook to a fresh server, then applies it again "
         "right away, unchanged. How many tasks report 'changed' in the second run?",
         ["none", "the same ones as in the first run: every task runs again",
          "one: the configuration file is written every time"], answer=0,
         why="Each task compares the state it describes with the server and acts only where they differ: "
             "applying a desired state twice is a no-op (idempotence).")
question("drift", "after-check", "Ansible in check mode has just listed three tasks it would change. Now the "
         "testinfra suite (four tests) runs against the server. How many tests fail?",
         ["none: check mode put the server right", "three: check mode changed nothing", "all four"], answer=1,
         why="--check only reports: the three hand changes are still on the server, so three promises are broken "
             "(the user, untouched, still passes).")


def _config(server) -> str:
    return server.exec(["cat", "/etc/shop/shop.ini"]).stdout


def _changes(play) -> str:
    """What a check run's diffs change, on one line (a unified diff's headers and context left out)."""
    lines = [line for t in play.tasks for line in t.diff.splitlines()
             if line.strip() and not line.startswith(("---", "+++", "@@", " "))]
    return "; ".join(lines)[:200]


@exercise("drift", "night-shift", "Reconcile server and playbook after the night shift", hints=(
    "For each difference, ask two things: was it approved, and does the playbook describe it at all? Approved "
    "changes belong in the code; everything else goes, and the code should keep it gone next time.",
    "In $LAB_WORK: \"$ANSIBLE_PLAYBOOK\" -i inventory.ini site.yml --check --diff shows what the playbook would "
    "undo (run it again after each edit: one difference can hide another); docker diff \"$SERVER\" lists every "
    "path that differs from the image, also what no task mentions. Edit site.yml, then apply it without --check.",
    "In a %%bash cell, in $LAB_WORK: sed -i 's/app_port: 8080/app_port: 8081/' site.yml; append a task "
    "'- name: No hand-made hotfix scripts' with ansible.builtin.file: path: /usr/local/bin/shop-hotfix, "
    "state: absent (indented like the others); then \"$ANSIBLE_PLAYBOOK\" -i inventory.ini site.yml"))
def night_shift(lab, workdir: str | Path | None = None, playbook: str | Path | None = None, hosts=None):
    if not (workdir and playbook and hosts):
        return False, "Pass workdir=..., playbook=... and hosts=..."
    server = next(iter(hosts.values()))
    if not re.search(rf"^port = {APPROVED_PORT}$", _config(server), re.M):
        return False, (f"The server's configuration no longer says port = {APPROVED_PORT}, and that change was "
                       "approved (the load balancer forwards to it): it belongs in the playbook, not undone.")
    pending = ansible(lab, workdir, playbook, hosts, check=True)
    if pending.changed:
        return False, (f"Server and playbook still disagree: --check would change {', '.join(pending.changed)}"
                       f" ({_changes(pending) or 'see its diff'}).")
    if server.exec(["test", "-e", HOTFIX]).ok:
        return False, ("Ansible finds nothing left to change, yet the night shift changed more than the playbook "
                       "describes: look at every path that differs from the image.")
    # Would the playbook notice the same hand change next time? Put the script back for a moment.
    server.exec(["sh", "-c", f"printf '#!/bin/sh\\n' > {HOTFIX}"], check=True)
    try:
        again = ansible(lab, workdir, playbook, hosts, check=True)
    finally:
        server.exec(["rm", "-f", HOTFIX])
    if not again.changed:
        return False, (f"{HOTFIX} is gone, but no task describes it: put it back by hand and --check would not "
                       "notice. Add a task that keeps it absent.")
    return True, (f"The approved port {APPROVED_PORT} is in the playbook, the rest is undone, and --check now "
                  f"notices a hand-made {Path(HOTFIX).name} ({again.changed[0]}).")


@exercise("drift", "port-test", "Write a testinfra test for the approved port", hints=(
    "A testinfra test is a pytest function that takes the `host` fixture and asserts one fact about the live "
    "server: here, the port line of its configuration file.",
    "Look at test_server.py printed in section 2: test_log_level checks a line of /etc/shop/shop.ini with "
    "host.file(...).contains(regex). Write yours into work / 'test_port.py'.",
    "(work / 'test_port.py').write_text('def test_port(host):\\n    assert host.file(\"/etc/shop/shop.ini\")"
    f".contains(\"^port = {APPROVED_PORT}$\")\\n')"))
def port_test(lab, workdir: str | Path | None = None, server=None):
    if not (workdir and server):
        return False, "Pass workdir=... and server=..."
    path = Path(workdir) / PORT_TEST
    if not path.is_file():
        present = sorted(p.name for p in Path(workdir).glob("test_*.py"))
        return False, f"No {PORT_TEST} in {workdir} yet (test files there: {', '.join(present) or 'none'})."
    good = testinfra(lab, workdir, server, [PORT_TEST])
    if not good.cases:
        return False, f"pytest found no test in {PORT_TEST} (name it test_..., with a `host` argument)."
    if not good.passed:
        failed = "; ".join(f"{c.name}: {(c.message.splitlines() or [''])[0][:120]}" for c in good.cases if c.outcome != "passed")
        port = re.search(r"^port = .*$", _config(server), re.M)
        return False, f"Your test fails against the server, whose configuration says {port.group(0) if port else 'no port'!r} ({failed})."
    wrong = lab.start("labkit/python:bookworm", ["sleep", "infinity"])
    try:
        wrong.exec(["sh", "-c", "mkdir -p /etc/shop && printf '[server]\\nport = 8080\\nlog_level = info\\n' "
                                "> /etc/shop/shop.ini"], check=True)
        bad = testinfra(lab, workdir, wrong, [PORT_TEST], where="against a server still on port 8080")
    finally:
        wrong.remove()
    if bad.passed:
        return False, "Your test also passes against a server still configured for port 8080: it cannot catch drift."
    return True, f"It passes on the approved port {APPROVED_PORT} and fails on the old one."
