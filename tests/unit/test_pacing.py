"""The README's agenda and paths promise the times the notebooks promise (header time boxes, and
reading time at labkit.notebook.WORDS_PER_MINUTE)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from labkit.notebook import pace

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
PACE = {p.stem[:2]: pace(json.loads(p.read_text())) for p in sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))}


def test_every_notebook_header_says_its_class_time():
    assert all(minutes > 0 for minutes, _ in PACE.values()), PACE


def test_the_agenda_rows_match_the_notebooks():
    rows = dict(re.findall(r"^\| (\d\d) \| [\w-]+ \|.*\| (\d+ min \| \d+ min) \| [^|]* \|$", README, re.M))
    assert rows == {n: f"{c} min | {r} min" for n, (c, r) in PACE.items()}


def test_the_paths_use_the_notebooks_times_and_add_up():
    steps = re.findall(r"^\| \d+ \| (\d\d) · [\w-]+ \| (\d+) min \|", README, re.M)
    assert steps and all(int(m) == PACE[n][0] for n, m in steps)
    full = [n for n, _ in steps[9:]]  # the second table: every notebook but the capstone
    assert sorted(full) == [f"{i:02d}" for i in range(17)]
    assert f"adds up to {sum(PACE[n][0] for n in full)} minutes" in README
