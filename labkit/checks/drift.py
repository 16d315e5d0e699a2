"""Checks of notebook 14 (infrastructure drift)."""
from __future__ import annotations

from pathlib import Path

from ..drift import ansible, testinfra
from ..exercises import exercise

PORT_TEST = "test_port.py"


@exercise("drift", "converge", "Bring the server back to its desired state",
          "Apply the playbook again, without --check: drift.ansible(lab, work, playbook, hosts).")
def converge(lab, workdir: str | Path | None = None, playbook: str | Path | None = None, hosts=None):
    if not (workdir and playbook and hosts):
        return False, "Pass workdir=..., playbook=... and hosts=..."
    pending = ansible(lab, workdir, playbook, hosts, check=True)
    if pending.changed:
        return False, f"Still drifted: Ansible would change {', '.join(pending.changed)}."
    server = next(iter(hosts.values()))
    tests = testinfra(lab, workdir, server, ["test_server.py"])
    if not tests.passed:
        return False, "Ansible is satisfied but the testinfra suite fails: " + ", ".join(
            c.name for c in tests.cases if c.outcome != "passed")
    return True, "Ansible has nothing to change and every testinfra test passes: no drift left."


@exercise("drift", "port-test", "Write a testinfra test for the configured port",
          "In test_port.py: def test_port(host): assert host.file('/etc/shop/shop.ini').contains('^port = 8080$')")
def port_test(lab, workdir: str | Path | None = None, server=None):
    if not (workdir and server):
        return False, "Pass workdir=... and server=..."
    if not (Path(workdir) / PORT_TEST).is_file():
        return False, f"Write your test into {PORT_TEST} in the working directory first."
    good = testinfra(lab, workdir, server, [PORT_TEST])
    if not good.cases:
        return False, f"pytest found no test in {PORT_TEST} (name it test_..., with a `host` argument)."
    if not good.passed:
        return False, "Your test fails against the converged server, whose port is 8080."
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
