"""Predict, then run: questions declared beside the checks, answered in the notebook, recorded."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit import exercises, predictions
from labkit.core.errors import CheckError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PREDICT = re.compile(r"""lab\.predict\(\s*["']([\w-]+)["']\s*\)""")


@pytest.fixture
def question(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    q = predictions.question("unit", "layers", "How many layers?", ["one", "two", "three"], 1, "Each RUN adds one.")
    yield q
    del predictions.QUESTIONS[("unit", "layers")]


def test_the_question_shows_choices_but_not_the_answer(question):
    shown = predictions.predict("unit", "layers")
    assert "a) one" in shown.text() and "c) three" in shown.text() and "Each RUN" not in shown.text()
    assert predictions.predictions("unit")[0]["choice"] is None


def test_the_first_choice_is_kept_and_counted(question, tmp_path):
    wrong = predictions.predict("unit", "layers", "a")
    assert "The answer is b) two" in wrong.text() and "Each RUN adds one." in wrong.text()
    right = predictions.predict("unit", "layers", "two")  # by its text too
    assert "Predicted right" in right.text()
    row = predictions.predictions("unit")[0]
    assert row == {"lab": "unit", "question": "layers", "choice": "a", "correct": False, "tries": 2}
    stored = json.loads((tmp_path / "labkit" / "progress.json").read_text())
    assert stored["_predictions"]["unit"]["layers"]["choice"] == "a"


def test_bad_input_names_what_is_allowed(question):
    with pytest.raises(CheckError) as err:
        predictions.predict("unit", "layers", "z")
    assert "a, b, c" in err.value.hint
    with pytest.raises(CheckError) as err:
        predictions.predict("unit", "nope")
    assert "layers" in err.value.message


def test_a_question_needs_its_answer_among_the_choices():
    with pytest.raises(ValueError):
        predictions.question("unit", "bad", "?", ["only one"], 0, "")
    with pytest.raises(ValueError):
        predictions.question("unit", "bad", "?", ["a", "b"], 2, "")



def test_every_notebook_asks_declared_questions_before_the_answer():
    """Two or more per notebook that runs (13 has no cluster here, so it asks what it can);
    every declared question is asked by its lab's notebook, and none is asked twice."""
    exercises.load_all()
    declared = {k for k in predictions.QUESTIONS if k[0] != "unit"}
    asked = set()
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        nb = json.loads(path.read_text())
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        topic = re.search(r"""Lab\(["']([\w-]+)["']""", code).group(1)
        ids = PREDICT.findall(code)
        assert len(ids) == len(set(ids)), f"{path.name} asks a question twice"
        assert len(ids) >= 2, f"{path.name}: predict-then-run needs two or more questions (has {len(ids)})"
        for qid in ids:
            assert (topic, qid) in declared, f"{path.name}: lab.predict({qid!r}) is not declared in labkit/checks"
            asked.add((topic, qid))
    assert declared == asked, f"declared but never asked: {sorted(declared - asked)}"


def test_the_cell_after_a_question_keeps_its_answer_from_the_learner():
    """The first code cell after lab.predict(...) shows the answer: it is tagged `reveals`, so the
    learner edition clears its committed output."""
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code" and PREDICT.search("".join(cell["source"])):
                after = next(c for c in cells[i + 1:] if c["cell_type"] == "code")
                assert "reveals" in after["metadata"].get("tags", []), \
                    f"{path.name}: the cell after {''.join(cell['source'])!r} is not tagged reveals"
