"""The prose checks against the engine in front of us (the unit tests cover an old and a new one)."""
from __future__ import annotations

import json
from pathlib import Path

from labkit import enginefacts

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_prose_holds_on_this_engine(docker_client):
    facts = enginefacts.facts()
    assert facts.major >= 20 and facts.rows()
    problems = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        md = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        problems += [f"{path.name}: {p}" for p in enginefacts.prose_problems(md, facts)]
    assert problems == []
