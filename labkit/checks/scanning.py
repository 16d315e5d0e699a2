"""Checks of notebook 07 (image scanning)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..scan import ScanReport, scan

_cache: dict[str, ScanReport] = {}


def _scan(lab, tag: str) -> ScanReport | None:
    try:
        image_id = lab.client.images.get(lab.name(tag)).id
    except docker.errors.ImageNotFound:
        return None
    if image_id not in _cache:  # an image id is its content: the same id scans the same
        _cache[image_id] = scan(lab.name(tag))
    return _cache[image_id]


@exercise("scanning", "pass-the-gate", "Make the shop image pass the gate",
          "Start from shop-v1.Dockerfile: use the newer wheels (requests 2.32.4, urllib3 2.5.0), drop the .env "
          "(configuration comes at run time), and add a USER that is not root.")
def pass_the_gate(lab):
    report = _scan(lab, "shop")
    if report is None:
        return False, "No image 'shop' built in this session yet."
    user = lab.client.images.get(lab.name("shop")).attrs["Config"].get("User") or "root"
    problems = []
    if not any(p.name == "requests" for p in report.packages):
        problems.append("the shop still needs requests: keep it (in a fixed version)")
    gate = report.gate()
    if not gate.passed:
        problems.append("the gate finds " + ", ".join(sorted({getattr(b, 'id', None) or b.rule for b in gate.blocking})))
    if user in ("root", "0", "0:0"):
        problems.append("it runs as root")
    if problems:
        return False, "Not yet: " + "; ".join(problems) + "."
    return True, f"The gate passes ({len(report.findings)} finding(s) below HIGH remain) and the shop runs as {user!r}."


@exercise("scanning", "gate-policy", "Write a gate that blocks what can be fixed",
          "report.findings holds each vulnerability with .severity and .fixed ('no fix' when there is none); "
          "report.issues holds secrets (kind 'secret'). report.gate(...) has options for this.")
def gate_policy(lab, gate=None):
    if gate is None or not callable(gate):
        return False, "Pass your gate function: lab.check('gate-policy', gate=my_gate)."
    bad, fixed = _scan(lab, "shop-v1"), _scan(lab, "shop")
    if bad is None or fixed is None:
        return False, "Build both shop-v1 (section 1) and the fixed shop (exercise 1) first."
    verdicts = {"shop-v1": bool(gate(bad)), "shop": bool(gate(fixed))}
    if verdicts["shop-v1"]:
        return False, "Your gate lets shop-v1 through: it has fixable HIGH findings and a secret."
    if not verdicts["shop"]:
        return False, "Your gate stops the fixed shop: only a LOW finding with no fix is left there."
    return True, "Your gate stops shop-v1 and lets the fixed shop through."
