"""Predict, then run: a question asked before the cell that shows the answer. Questions are
declared beside a lab's checks (`@exercise`'s neighbour `question(...)`), so the answer is not in
the learner's notebook; `lab.predict(id)` shows the choices (buttons in JupyterLab) and records the
learner's choice in the progress store, next to the exercises."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from .core.errors import CheckError
from .core.render import Renderable, callout
from .exercises import load_all, load_progress, save_progress, unknown

LETTERS = "abcdefgh"


@dataclass(frozen=True)
class Question:
    lab: str
    id: str
    prompt: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    why: str     # what the next cell shows, said in one or two sentences


QUESTIONS: dict[tuple[str, str], Question] = {}


def question(lab: str, id: str, prompt: str, choices: Sequence[str], answer: int, why: str) -> Question:
    """Declare a prediction question (in `labkit/checks/<lab>.py`)."""
    if not 0 <= answer < len(choices) or len(choices) < 2 or len(choices) > len(LETTERS):
        raise ValueError(f"question {lab}/{id}: needs 2-{len(LETTERS)} choices and an answer among them")
    q = Question(lab, id, prompt, tuple(choices), answer, why)
    QUESTIONS[(lab, id)] = q
    return q


def find(topic: str, question_id: str) -> Question:
    load_all()  # the checks modules declare the questions too
    q = QUESTIONS.get((topic, question_id))
    if q is None:
        raise unknown("question", topic, question_id, QUESTIONS)
    return q


def _choice_index(q: Question, choice: str | int) -> int:
    if isinstance(choice, int) and 0 <= choice < len(q.choices):
        return choice
    text = str(choice).strip().lower()
    for i, c in enumerate(q.choices):
        if text in (LETTERS[i], c.lower()):
            return i
    letters = ", ".join(LETTERS[:len(q.choices)])
    raise CheckError(f"{choice!r} is not one of the choices of {q.id!r}.", f"Answer with a letter: {letters}.")


def record(q: Question, index: int) -> dict[str, Any]:
    """Keep the first prediction (what the learner thought before seeing); count the tries."""
    data = load_progress()
    entry = data.setdefault("_predictions", {}).setdefault(q.lab, {}).setdefault(q.id, {"tries": 0})
    entry["tries"] += 1
    if "choice" not in entry:
        entry.update(choice=LETTERS[index], correct=index == q.answer,
                     at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    save_progress(data)
    return entry


def predictions(lab: str | None = None) -> list[dict[str, Any]]:
    """Every question with the learner's first prediction (for `labkit progress --json`)."""
    load_all()
    stored = load_progress().get("_predictions", {})
    rows = []
    for (topic, qid), q in sorted(QUESTIONS.items()):
        if lab and topic != lab:
            continue
        entry = stored.get(topic, {}).get(qid, {})
        rows.append({"lab": topic, "question": qid, "choice": entry.get("choice"),
                     "correct": entry.get("correct"), "tries": entry.get("tries", 0)})
    return rows


@dataclass
class Prediction(Renderable):
    """A question (no choice yet) or a verdict (the learner chose)."""
    question: Question
    chosen: int | None = None

    def _render(self):
        q = self.question
        choices = "\n".join(f"  {LETTERS[i]}) {c}" for i, c in enumerate(q.choices))
        if self.chosen is None:
            return callout("info", "Predict, then run", q.prompt,
                           details=f"{choices}\n\nChoose before you run the next cell: lab.predict({q.id!r}, \"a\") "
                                   "(or the buttons in JupyterLab). Your first answer is kept.")
        right = self.chosen == q.answer
        said = f"You predicted {LETTERS[self.chosen]}) {q.choices[self.chosen]}."
        if right:
            return callout("success", "Predicted right", said, details=f"Now run the next cell and see why: {q.why}")
        return callout("warning", "Not what happens", said,
                       details=f"The answer is {LETTERS[q.answer]}) {q.choices[q.answer]}. "
                               f"Run the next cell and see: {q.why}")


def predict(topic: str, question_id: str, choice: str | int | None = None) -> Prediction:
    q = find(topic, question_id)
    if choice is None:
        return Prediction(q)
    index = _choice_index(q, choice)
    record(q, index)
    return Prediction(q, index)


def widget(topic: str, question_id: str):
    """Buttons for a live JupyterLab: choose, lock in, see the verdict (recorded like predict())."""
    import ipywidgets as w
    from IPython.display import display
    q = find(topic, question_id)
    options = [(f"{LETTERS[i]}) {c}", i) for i, c in enumerate(q.choices)]
    pick = w.RadioButtons(options=options, value=None, layout=w.Layout(width="auto"))
    lock = w.Button(description="Lock in", button_style="primary", disabled=True)
    out = w.Output()
    pick.observe(lambda change: setattr(lock, "disabled", change["new"] is None), names="value")

    def on_lock(_):
        record(q, pick.value)
        pick.disabled = lock.disabled = True
        with out:
            display(Prediction(q, pick.value))
    lock.on_click(on_lock)
    return w.VBox([w.HTML(f"<b>Predict:</b> {q.prompt}"), pick, lock, out])
