"""The cheat sheet collects the notebooks' `equivalent:` lines per topic, and the committed one is current."""
from __future__ import annotations

import json
from pathlib import Path

from labkit import cheatsheet

REPO = Path(__file__).resolve().parents[2]


def _nb(title: str, *outputs: str) -> dict:
    cells = [{"cell_type": "markdown", "source": ["Intro\n", f"# {title}\n", "text"]},
             {"cell_type": "code", "source": "lab.run(...)", "outputs": [
                 {"output_type": "execute_result", "data": {"text/plain": text, "text/html": "<b>equivalent: no</b>"}}
                 for text in outputs]},
             {"cell_type": "markdown", "source": "equivalent: not an output"}]
    return {"cells": cells}


def test_generate_collects_each_topics_commands_once(tmp_path):
    (tmp_path / "01-run.ipynb").write_text(json.dumps(_nb("01 · Running things",
        "command  exit code\nequivalent: docker run --rm labkit/busybox echo hi",
        "equivalent: docker run --rm labkit/busybox echo hi\nequivalent: `docker exec c1 sh -c 'a | b'`")))
    (tmp_path / "02-quiet.ipynb").write_text(json.dumps(_nb("02 · Nothing to show", "just text")))
    (tmp_path / "notes.ipynb").write_text(json.dumps(_nb("Not a lab", "equivalent: docker ps")))
    text = cheatsheet.generate(tmp_path)
    assert text.startswith("# Cheat sheet")
    assert "## 01 · Running things\n\n| command |\n|---|\n" \
           "| `docker run --rm labkit/busybox echo hi` |\n" \
           "| `docker exec c1 sh -c 'a \\| b'` |\n" in text
    assert text.count("echo hi") == 1
    assert "Nothing to show" not in text and "docker ps" not in text and "not an output" not in text


def test_the_committed_cheat_sheet_is_current():
    committed = (REPO / "docs" / "cheatsheet.md").read_text()
    assert cheatsheet.generate(REPO / "notebooks") == committed, \
        "docs/cheatsheet.md is out of date: run `python -m labkit.cheatsheet` and commit it."
