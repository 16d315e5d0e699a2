"""Checks of notebook 07 (image scanning)."""
from __future__ import annotations

import dataclasses

import docker

from ..exercises import exercise
from ..predictions import question
from ..scan import Finding, ScanReport, scan

_cache: dict[str, ScanReport] = {}


def _scan(lab, tag: str) -> ScanReport | None:
    try:
        image_id = lab.client.images.get(lab.name(tag)).id
    except docker.errors.ImageNotFound:
        return None
    if image_id not in _cache:  # an image id is its content: the same id scans the same
        _cache[image_id] = scan(lab.name(tag))
    return _cache[image_id]


@exercise("scanning", "pass-the-gate", "Make the shop image pass the gate", (
    "Read the gate's table in section 3: each blocking finding says what causes it. Fix the causes in the "
    "Dockerfile, then build the image again under the name the check looks for.",
    "Edit shop_dir/Dockerfile (the wheels/ folder there has requests-2.32.4 and urllib3-2.5.0; the .env must "
    "not go into any layer; USER sets who runs), then `docker build -t NAME DIR` with NAME = {lab.image('shop')}.",
    "In the Dockerfile: unzip requests-2.32.4-py3-none-any.whl and urllib3-2.5.0-py3-none-any.whl, delete MAINTAINER, "
    "ADD .env and the RUN that removes it, add USER 10001:10001; then !docker build --progress=plain -t {lab.image('shop')} {shop_dir}",
))
def pass_the_gate(lab):
    report = _scan(lab, "shop")
    if report is None:
        return False, f"No image {lab.image('shop')} in this session yet (build it with that name)."
    return gate_verdict(lab, lab.image("shop"), report, "requests",
                        "the shop still needs requests: keep it (in a fixed version)", "the shop")


def gate_verdict(lab, name: str, report, package: str, keep: str, who: str) -> tuple[bool, str]:
    """The gate's verdict on an image (07 and the capstone): it still holds `package`, nothing blocks,
    and it does not run as root."""
    problems = [] if any(p.name == package for p in report.packages) else [keep]
    gate = report.gate()
    if not gate.passed:
        problems.append("the gate blocks on " + ", ".join(sorted({f"{getattr(b, 'id', None) or b.rule} ({b.severity})"
                                                                  for b in gate.blocking})))
    user = lab.client.images.get(name).attrs["Config"].get("User") or "root"
    if user in ("root", "0", "0:0"):
        problems.append(f"it runs as {user!r} (its config's User)")
    if problems:
        return False, f"Scanned {name}, not yet: " + "; ".join(problems) + "."
    return True, (f"The gate passes ({len(report.findings) + len(report.issues)} finding(s) below HIGH remain) "
                  f"and {who} runs as {user!r}.")


@exercise("scanning", "gate-policy", "Write a gate that blocks what can be fixed", (
    "Which findings can a team act on today? Block those when they are serious, and let the rest through.",
    "report.findings holds each vulnerability with .severity and .fixed ('no fix' when there is none); "
    "report.issues holds secrets (kind 'secret'); report.gate(...) has options for all of it: help(report.gate).",
    "def my_gate(report): return report.gate(fail_on=['HIGH', 'CRITICAL'], kinds=['vulnerability', 'secret'], "
    "ignore_unfixed=True).passed",
))
def gate_policy(lab, gate=None):
    if gate is None or not callable(gate):
        return False, "Pass your gate function: lab.check('gate-policy', gate=my_gate)."
    bad, fixed = _scan(lab, "shop-v1"), _scan(lab, "shop")
    if bad is None or fixed is None:
        missing = [n for n, r in (("shop-v1", bad), ("shop", fixed)) if r is None]
        return False, f"No image {' or '.join(lab.image(n) for n in missing)}: build shop-v1 (section 1) and the fixed shop (exercise 1) first."
    verdicts = {"shop-v1": bool(gate(bad)), "shop": bool(gate(fixed))}
    if verdicts["shop-v1"]:
        return False, (f"Your gate lets shop-v1 through, yet its scan has {len(bad.gate().blocking)} HIGH/CRITICAL "
                       "finding(s) with a fix, the secret included.")
    if not verdicts["shop"]:
        left = ", ".join(f"{f.id} ({f.severity}, {f.fixed})" for f in fixed.findings) or "no vulnerability"
        return False, f"Your gate stops the fixed shop, whose scan has only: {left}."
    # the fixed shop's scan as it may read tomorrow: one new advisory with no fix yet, one with a fix
    def tomorrow(fix: str, severity: str) -> ScanReport:
        news = Finding(f"LAB-TOMORROW-{severity}", (), "openssl", "3.0.15-1~deb12u1", fix, severity,
                       "an advisory published after this scan")
        return dataclasses.replace(fixed, findings=[*fixed.findings, news])
    if not gate(tomorrow("no fix", "HIGH")):
        return False, ("Tomorrow a HIGH advisory with no fixed version appears for a package of the fixed shop: your "
                       "gate stops every build, though nobody can act on it today.")
    if gate(tomorrow("3.0.16-1~deb12u1", "CRITICAL")):
        return False, ("Tomorrow a CRITICAL advisory with a fixed version appears for a package of the fixed shop: "
                       "your gate lets it through, though the fix is one rebuild away.")
    return True, ("Your gate stops shop-v1, lets the fixed shop through, and judges tomorrow's advisories by "
                  "whether they can be fixed.")


# --- Predict, then run ---------------------------------------------------------------------------
question("scanning", "deleted-secret", "shop-v1's Dockerfile ADDs the .env file with the key, and the very next RUN "
         "deletes it. Does the scan find the key?", [
             "no: the file is not in the final image",
             "yes: the ADD's layer still ships the file, and the secret scanner reads every layer",
             "only while a container of the image runs"],
         answer=1, why="The secrets column says 1, and the secret's row names the layer it sits in: the one "
         "`ADD .env /app/.env` made. A later layer only hides a file; the image still carries its bytes.")
question("scanning", "gate-v1", "The gate stops the build on HIGH or CRITICAL findings of two kinds, vulnerabilities "
         "and secrets. How many of shop-v1's findings stop it?", [
             "none: its HIGH findings are lint and misconfigurations",
             "2: the two HIGH advisories of the old libraries",
             "3: the two HIGH advisories and the CRITICAL key; lint and misconfigurations do not count"],
         answer=2, why="The gate's table lists exactly three: urllib3's and requests' HIGH advisories and the "
         "CRITICAL AWS key. The Dockerfile findings are HIGH too, but of a kind this gate does not stop on.")
question("scanning", "smaller-base", "labkit/busybox is far smaller than the Debian base: one static binary and its "
         "links. What does its scan report?", [
             "fewer vulnerabilities than Debian, each of them real",
             "none, and why: it has no package database, so there was nothing to inventory and match",
             "about the same as Debian: busybox provides the same tools"],
         answer=1, why="The busybox row: 0 packages inventoried, 0 advisories, and the report's blind spot 'no OS "
         "package database'. Fewer findings here means less seen, not less risk.")
