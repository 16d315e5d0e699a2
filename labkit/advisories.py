"""Vulnerability matching: OSV-format advisories (the offline snapshot shipped in
labkit/data/osv, or the public OSV API when asked to go online) against an inventory of
packages, with each ecosystem's own version ordering (univers; never string comparison)."""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from univers.versions import AlpineLinuxVersion, DebianVersion, InvalidVersion, PypiVersion, Version

from .core.errors import LabkitError

SNAPSHOT = Path(__file__).parent / "data" / "osv"
VERSIONS: dict[str, type[Version]] = {"PyPI": PypiVersion, "Debian": DebianVersion, "Alpine": AlpineLinuxVersion}
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
OSV_URL_ENV = "LABKIT_OSV_URL"  # the public OSV API's querybatch endpoint; only used with online=True


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    ecosystem: str  # as in the record: "PyPI", "Debian:12"
    package: str
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # ECOSYSTEM ranges: ((kind, version), ...)

    @property
    def fixed(self) -> str:
        fixes = [v for r in self.ranges for kind, v in r if kind == "fixed"]
        return ", ".join(fixes) or "no fix"


def normalise(ecosystem: str, name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem.split(":")[0] == "PyPI" else name


def _severity(record: dict[str, Any]) -> str:
    sev = str((record.get("database_specific") or {}).get("severity", "")).upper()
    return {"MODERATE": "MEDIUM"}.get(sev, sev) if sev in SEVERITIES + ("MODERATE",) else "UNKNOWN"


def parse(record: dict[str, Any]) -> list[Advisory]:
    """One Advisory per affected package of an OSV record (ECOSYSTEM ranges only)."""
    out = []
    for aff in record.get("affected", []):
        pkg = aff.get("package", {})
        ranges = tuple(tuple((k, v) for e in r.get("events", []) for k, v in e.items())
                       for r in aff.get("ranges", []) if r.get("type") == "ECOSYSTEM")
        out.append(Advisory(record["id"], tuple(record.get("aliases", [])), record.get("summary", ""),
                            _severity(record), pkg.get("ecosystem", ""), pkg.get("name", ""), ranges))
    return out


def load_snapshot(path: Path = SNAPSHOT) -> list[Advisory]:
    if not path.is_dir():
        raise LabkitError(f"The advisory snapshot {path} is missing.", "Reinstall labkit (pip install -e .).")
    return [a for f in sorted(path.glob("*.json")) for a in parse(json.loads(f.read_text()))]


def affected(version: str, ranges: Iterable[Iterable[tuple[str, str]]], ecosystem: str) -> bool:
    """The OSV evaluation of ECOSYSTEM ranges: walk each range's events in version order."""
    cls = VERSIONS[ecosystem.split(":")[0]]
    v = cls(version)
    for events in ranges:
        state = False
        ordered = sorted(events, key=lambda e: (e[1] != "0", cls(e[1]) if e[1] != "0" else v))
        for kind, at in ordered:
            if kind == "introduced" and (at == "0" or cls(at) <= v):
                state = True
            elif kind == "fixed" and cls(at) <= v:
                state = False
            elif kind == "last_affected" and cls(at) < v:
                state = False
        if state:
            return True
    return False


def match(packages: Iterable[Any], advisories: list[Advisory]) -> tuple[list[tuple[Any, Advisory]], list[str]]:
    """(package, advisory) pairs that apply, and what could not be judged (unknown ecosystems,
    unparsable versions): never silently dropped."""
    index: dict[tuple[str, str], list[Advisory]] = {}
    for a in advisories:
        index.setdefault((a.ecosystem.split(":")[0], normalise(a.ecosystem, a.package)), []).append(a)
    found, blind = [], []
    unknown = set()
    for p in packages:
        base = p.ecosystem.split(":")[0]
        if base not in VERSIONS:
            unknown.add(p.ecosystem)
            continue
        for a in index.get((base, normalise(base, p.name)), []):
            if ":" in a.ecosystem and a.ecosystem != p.ecosystem:
                continue  # an advisory for another release of the distribution
            try:
                if affected(p.version, a.ranges, base):
                    found.append((p, a))
            except InvalidVersion:
                blind.append(f"{p.name} {p.version}: not a valid {base} version, {a.id} not evaluated")
    blind += [f"packages of ecosystem {e!r}: labkit cannot compare their versions, not matched" for e in sorted(unknown)]
    return found, blind


def query_online(packages: Iterable[Any], timeout: float = 10) -> list[Advisory]:
    """Ask the public OSV API (querybatch, then each hit's full record). Off the machine: only on request."""
    url = os.environ.get(OSV_URL_ENV, "https://api.osv.dev/v1/querybatch")
    pkgs = [p for p in packages if p.ecosystem.split(":")[0] in VERSIONS]
    body = {"queries": [{"package": {"ecosystem": p.ecosystem, "name": p.name}, "version": p.version} for p in pkgs]}
    try:
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            results = json.loads(r.read()).get("results", [])
        ids = sorted({v["id"] for res in results for v in res.get("vulns", [])})
        base = url.rsplit("/", 1)[0]
        records = []
        for vid in ids:
            with urllib.request.urlopen(f"{base}/vulns/{vid}", timeout=timeout) as r:
                records.append(json.loads(r.read()))
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise LabkitError(f"The OSV API did not answer ({exc}).", "Scan offline (the default) with the shipped snapshot.") from None
    return [a for rec in records for a in parse(rec)]


def explain(packages: Iterable[Any], snapshot: list[Advisory]):
    """Every (package, advisory) pair with the same name: the ranges and the verdict, one row each."""
    from .core.render import table
    rows = []
    for a in snapshot:
        base = a.ecosystem.split(":")[0]
        for p in packages:
            if p.ecosystem.split(":")[0] == base and normalise(base, p.name) == normalise(base, a.package):
                ranges = "; ".join(", ".join(f"{k} {v}" for k, v in r) for r in a.ranges)
                verdict = "affected" if affected(p.version, a.ranges, base) else "not affected"
                rows.append((a.id, f"{p.name} {p.version}", ranges, verdict))
    return table(["advisory", "installed", "affected ranges (OSV events)", "verdict"], rows,
                 title="Step 3: match versions against advisory ranges")
