"""The learner edition of notebook 00 (the start page every learner runs first), executed straight
through as a learner gets it: nothing before the first exercise fails and no check passes without a
solution. `labkit verify --edition learner` does the same for any notebook."""
from __future__ import annotations

from pathlib import Path

from labkit import verify

REPO = Path(__file__).resolve().parents[2]


def test_notebook_00_learner_edition(tmp_path, docker_client):
    result = verify.run_notebook(REPO / "notebooks" / "00-welcome.ipynb", tmp_path / "out", edition="learner")
    assert result.status == "passed", f"{result.reason}\n(executed copy: {result.executed})"
    assert result.checks >= 1
