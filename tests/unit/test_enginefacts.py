"""Prose that is true on every engine: each notebook's markdown is read against the facts of an
old engine (Docker 20.10, no buildx) and a current one (buildx, containerd image store)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.enginefacts import EngineFacts, prose_problems

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb"))
OLD = EngineFacts("20.10.24+dfsg1", buildx=False, containerd_store=False)
NEW = EngineFacts("29.1.0", buildx=True, containerd_store=True)


def markdown(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("engine", [OLD, NEW], ids=["docker-20.10", "docker-29"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_prose_holds_on_old_and_new_engines(path, engine):
    assert prose_problems(markdown(path), engine) == []


def test_the_rules_catch_what_the_issue_found():
    assert prose_problems("This engine has no buildx.", NEW)
    assert not prose_problems("This engine has no buildx.", OLD)  # true there, and only there
    assert prose_problems('The row is called "BuildKit (Docker 20.10)".', OLD)
    assert prose_problems("Here `docker build` uses the classic builder by default.", NEW)
    assert not prose_problems("Before 23.0, `docker build` uses the classic builder by default.", NEW)
    assert prose_problems("`docker save` writes this layout: manifest.json and layer.tar folders.", NEW)
    assert not prose_problems("`docker save` writes the OCI layout plus the legacy manifest.json since 25.0.", OLD)
    assert prose_problems("Every Dockerfile needs a `# syntax=` line.", NEW)


def test_which_applies_follows_the_version():
    assert dict((r[0], r[3]) for r in OLD.rows())["buildkit"].startswith("opt-in")
    assert dict((r[0], r[3]) for r in NEW.rows())["save"].startswith("OCI")
    assert [r[0] for r in EngineFacts("25.0.3", True, False, topics=("save",)).rows()] == ["save"]
