"""Every benchmark in one run, and a summary table: labkit vs the raw CLI (run, build), the
remote build cache, registry throughput, fresh clone to JupyterLab (cold, warm), and from the last
verify report (build/notebooks/report.json, written by the notebook tests or `labkit verify`)
the whole-suite notebook time and the kernel memory per attendee (peak RSS after a lab)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPORT = BENCH.parent / "build" / "notebooks" / "report.json"
SCRIPTS = [("labkit run vs raw docker run", "overhead.py", ["-n", "10"]),
           ("builds (overhead, remote cache)", "build.py", ["-n", "10"]),
           ("registry throughput", "registry.py", []),
           ("fresh clone to JupyterLab", "startup.py", [])]


def main() -> int:
    rows, failed = [], 0
    for title, script, args in SCRIPTS:
        proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if any(w in ln for w in ("ratio", "times faster", "MB/s", "cold", "ORAS", "docker push"))]
        failed += proc.returncode != 0
        rows.append((title, "ok" if proc.returncode == 0 else "MISSED", " | ".join(ln.strip() for ln in lines) or proc.stderr[-200:]))
    if REPORT.exists():
        results = json.loads(REPORT.read_text())
        total = sum(r["seconds"] for r in results)
        peak = max((r["peak_rss_mb"] for r in results), default=0)
        heaviest = max(results, key=lambda r: r["peak_rss_mb"])["notebook"] if results else "-"
        rows.append(("all notebooks verified", "ok" if total <= 1800 else "MISSED", f"{total:.0f} s for {len(results)} notebooks (target <= 1800 s)"))
        rows.append(("kernel memory per attendee", "ok" if peak <= 300 else "MISSED", f"peak RSS {peak:.0f} MB ({heaviest}; target <= 300 MB)"))
        failed += total > 1800 or peak > 300
    else:
        rows.append(("notebooks", "-", f"no verify report at {REPORT}: run `make test` or `labkit verify --out build/notebooks`"))
    width = max(len(r[0]) for r in rows)
    for title, status, detail in rows:
        print(f"{title:<{width}}  {status:6}  {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
