"""Checks of notebook 14 (infrastructure drift)."""
from __future__ import annotations

from pathlib import Path

from ..drift import ansible, testinfra
from ..exercises import exercise

PORT_TEST = "test_port.py"


@exercise("drift", "converge", "Bring the server back to its desired state", hints=(
    "The playbook still describes what the server should be, and applying it is idempotent: what happens if "
    "you apply it once more, for real this time?",
    "Section 3 found the drift with `ansible-playbook --check --diff` and the inventory printed in section 1; "
    "the same command without --check changes the server (the path of the tool: the ansible_playbook variable).",
    "!{ansible_playbook} -i {work}/inventory.ini {playbook}"))
def converge(lab, workdir: str | Path | None = None, playbook: str | Path | None = None, hosts=None):
    if not (workdir and playbook and hosts):
        return False, "Pass workdir=..., playbook=... and hosts=..."
    pending = ansible(lab, workdir, playbook, hosts, check=True)
    server = next(iter(hosts.values()))
    tests = testinfra(lab, workdir, server, ["test_server.py"])
    failing = [c.name for c in tests.cases if c.outcome != "passed"]
    if pending.changed:
        found = f"; testinfra fails {', '.join(failing)}" if failing else ""
        return False, f"Still drifted: Ansible in check mode would change {', '.join(pending.changed)}{found}."
    if not tests.passed:
        return False, "Ansible has nothing left to change, but the testinfra suite fails: " + ", ".join(failing)
    return True, "Ansible has nothing to change and every testinfra test passes: no drift left."


@exercise("drift", "port-test", "Write a testinfra test for the configured port", hints=(
    "A testinfra test is a pytest function that takes the `host` fixture and asserts one fact about the live "
    "server: here, the port line of its configuration file.",
    "Look at test_server.py printed in section 2: test_log_level checks a line of /etc/shop/shop.ini with "
    "host.file(...).contains(regex). Write yours into work / 'test_port.py'.",
    "(work / 'test_port.py').write_text('def test_port(host):\\n    assert host.file(\"/etc/shop/shop.ini\")"
    ".contains(\"^port = 8080$\")\\n')"))
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
        return False, f"Your test fails against the converged server, whose port is 8080 ({failed})."
    wrong = lab.start("labkit/python:bookworm", ["sleep", "infinity"])
    try:
        wrong.exec(["sh", "-c", "mkdir -p /etc/shop && printf '[server]\\nport = 9090\\nlog_level = info\\n' "
                                "> /etc/shop/shop.ini"], check=True)
        bad = testinfra(lab, workdir, wrong, [PORT_TEST], where="against a server on port 9090")
    finally:
        wrong.remove()
    if bad.passed:
        return False, "Your test also passes against a server configured for port 9090: it cannot catch drift."
    return True, "It passes on the right port and fails on a drifted one."
