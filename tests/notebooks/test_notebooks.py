"""Executes every notebook once through labkit.verify (the engine of `labkit verify`): each check
must fail before its solution and pass after it, tagged outputs must match the committed ones,
and a LabSkipped notebook counts as skipped, never as passed. The verify report (HTML + JSON, the
executed notebooks linked) is written to build/notebooks/ at the end: CI keeps it as an artifact."""
from __future__ import annotations

from pathlib import Path

import pytest

from labkit import verify

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = verify.notebooks(REPO / "notebooks")
BUILD = REPO / "build" / "notebooks"


@pytest.fixture(scope="module")
def results():
    collected: list[verify.Result] = []
    yield collected
    if collected:
        print(f"\nverify report: {verify.write_reports(collected, BUILD)}")


@pytest.fixture
def notebook_env(tmp_path):
    with verify.fresh_session(tmp_path):  # stable output; the learner's real progress stays untouched
        yield tmp_path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(path: Path, results, docker_client):
    result = verify.run_notebook(path, BUILD)
    results.append(result)
    if result.status == "skipped":
        pytest.skip(f"{path.name}: {result.reason}")
    assert result.status == "passed", f"{result.reason}\n(executed copy: {result.executed})"
    print(f"{path.name}: {result.seconds:.1f} s, {result.checks} check(s) proven, kernel peak {result.peak_rss_mb:.0f} MB")
