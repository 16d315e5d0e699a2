"""The trainer's roster without a hub: a lab's state from a learner's progress entries, and the rows,
summary and page read from a store file (the service itself runs in tests/integration/test_classroom.py)."""
from __future__ import annotations

import json

import pytest

from labkit import roster

IDS = ["build", "run", "push"]


def done(attempts: int = 1, **extra) -> dict:
    return {"status": "done", "attempts": attempts, **extra}


def failed(attempts: int = 1, **extra) -> dict:
    return {"status": "failed", "attempts": attempts, **extra}


# --- lab_status ----------------------------------------------------------------------------------

def test_every_exercise_done_is_done_even_after_failures_and_a_solution():
    assert roster.lab_status({i: done() for i in IDS}, IDS) == "done"
    # done wins over how it got there: 5 attempts and the solution shown, but done
    assert roster.lab_status({"build": done(5, solution=True), "run": done(), "push": done()}, IDS) == "done"


def test_some_done_none_failed_is_in_progress():
    assert roster.lab_status({"build": done()}, IDS) == "in progress"
    # an exercise done with help (many attempts, the solution) is not what makes a lab stuck
    assert roster.lab_status({"build": done(7, solution=True)}, IDS) == "in progress"


def test_a_failed_check_is_failed_until_it_is_stuck():
    assert roster.lab_status({"build": failed()}, IDS) == "failed"
    assert roster.lab_status({"build": failed(2)}, IDS) == "failed"  # 2 attempts: not yet stuck
    assert roster.lab_status({"build": done(), "run": failed(2)}, IDS) == "failed"  # failed beats in progress
    assert roster.lab_status({"build": failed(2, solution=False)}, IDS) == "failed"


def test_three_failed_attempts_or_a_shown_solution_not_done_is_stuck():
    assert roster.lab_status({"build": failed(3)}, IDS) == "stuck"
    assert roster.lab_status({"build": failed(9)}, IDS) == "stuck"
    assert roster.lab_status({"run": {"status": "not tried", "attempts": 0, "solution": True}}, IDS) == "stuck"
    assert roster.lab_status({"build": failed(1, solution=True)}, IDS) == "stuck"
    # stuck beats failed and in progress elsewhere in the lab
    assert roster.lab_status({"build": done(), "run": failed(1), "push": failed(3)}, IDS) == "stuck"


def test_nothing_recorded_is_not_tried():
    assert roster.lab_status({}, IDS) == "not tried"
    assert roster.lab_status({i: {"status": "not tried", "attempts": 0} for i in IDS}, IDS) == "not tried"
    assert roster.lab_status({}, []) == "not tried"  # a lab with no exercises is never 'done'


def test_entries_of_other_exercises_do_not_count():
    # a stale or foreign id (renamed exercise, another lab's) neither completes nor blocks the lab
    assert roster.lab_status({"old-id": failed(5, solution=True)}, IDS) == "not tried"
    assert roster.lab_status({"old-id": done(), "build": done()}, IDS) == "in progress"


def test_the_states_are_the_documented_five():
    assert set(roster.STATES) == {"done", "in progress", "failed", "stuck", "not tried"}


# --- rows, summary, page over a store file --------------------------------------------------------

CATALOG = {"00-welcome": ["hello", "ps"], "02-build": ["cache"]}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(roster, "catalog", lambda: {lab: list(ids) for lab, ids in CATALOG.items()})
    path = tmp_path / "roster.json"
    path.write_text(json.dumps({
        "learner01": {"received": 1_700_000_000.0, "progress": {
            "00-welcome": {"hello": done(1, hints=1), "ps": failed(3, hints=2)},
            "02-build": {"cache": done(2, solution=True)},
        }},
        "<img src=x onerror=alert(1)>": {"received": 1_700_000_100.0, "progress": {
            "00-welcome": {"hello": done()},
        }},
    }))
    return path


def test_rows_cover_every_learner_and_exercise(store):
    rows = roster.rows(store, ["learner01", "learner02"])
    learners = [r["learner"] for r in rows]
    assert learners == sorted(learners)  # stable order for --csv
    assert set(learners) == {"learner01", "learner02", "<img src=x onerror=alert(1)>"}  # listed or seen
    assert len(rows) == 3 * 3  # 3 learners x 3 exercises of the catalog
    by = {(r["learner"], r["lab"], r["exercise"]): r for r in rows}
    assert by["learner01", "00-welcome", "ps"] == {
        "learner": "learner01", "lab": "00-welcome", "exercise": "ps", "status": "failed", "attempts": 3, "hints": 2,
        "solution": False, "lab_status": "stuck", "received": 1_700_000_000.0}
    cache = by["learner01", "02-build", "cache"]
    assert cache["solution"] is True and cache["lab_status"] == "done"
    never = by["learner02", "00-welcome", "hello"]  # listed, never sent anything
    assert never == {"learner": "learner02", "lab": "00-welcome", "exercise": "hello", "status": "not tried",
                     "attempts": 0, "hints": 0, "solution": False, "lab_status": "not tried", "received": None}
    assert set(rows[0]) == {"learner", "lab", "exercise", "status", "attempts", "hints", "solution", "lab_status",
                            "received"}


def test_summary_is_learner_then_lab(store):
    assert roster.summary(store, ["learner02", "learner01"]) == {
        "<img src=x onerror=alert(1)>": {"00-welcome": "in progress", "02-build": "not tried"},
        "learner01": {"00-welcome": "stuck", "02-build": "done"},
        "learner02": {"00-welcome": "not tried", "02-build": "not tried"},
    }


def test_a_missing_or_damaged_store_means_nobody_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(roster, "catalog", lambda: dict(CATALOG))
    missing = tmp_path / "none.json"
    assert roster.summary(missing, ["a"]) == {"a": {"00-welcome": "not tried", "02-build": "not tried"}}
    damaged = tmp_path / "roster.json"
    damaged.write_text('{"a": {"progress": ')  # a torn write
    assert roster.load(damaged) == {}
    assert all(r["status"] == "not tried" for r in roster.rows(damaged, ["a"]))
    assert roster.rows(missing, []) == [] and roster.summary(missing, []) == {}


def test_page_escapes_names_and_shows_engines_and_last_sync(store):
    page = roster.page(store, ["learner01", "learner02"], {"learner01": True, "learner02": False})
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.startswith("<!doctype html>") and "refresh content=5" in page
    assert "3 learners" in page
    row = page[page.index("<th>learner01</th>"):]
    row = row[:row.index("</tr>")]
    assert "<td>up</td>" in row and "stuck</td>" in row and "done</td>" in row and "never" not in row
    row2 = page[page.index("<th>learner02</th>"):]
    row2 = row2[:row2.index("</tr>")]
    assert "<td>DOWN</td>" in row2 and "<td>never</td>" in row2 and row2.count("not tried</td>") == 2
    # a learner the roster has data from but no engine state for: unknown, not 'up'
    other = page[page.index("<th>&lt;img"):]
    assert "<td>?</td>" in other[:other.index("</tr>")]
    for lab in CATALOG:
        assert f"<th>{lab}</th>" in page


def test_page_escapes_lab_names_too(tmp_path, monkeypatch):
    monkeypatch.setattr(roster, "catalog", lambda: {"<b>lab</b>": ["x"]})
    page = roster.page(tmp_path / "none.json", ["a"], {})
    assert "<b>lab</b>" not in page and "&lt;b&gt;lab&lt;/b&gt;" in page


def test_one_learners_malformed_record_does_not_break_the_roster(tmp_path, monkeypatch):
    monkeypatch.setattr(roster, "catalog", lambda: dict(CATALOG))
    store = tmp_path / "roster.json"
    store.write_text(json.dumps({
        "learner01": {"progress": {"00-welcome": {"hello": done()}}},
        "mallory": {"progress": {"00-welcome": {"hello": {"status": "failed", "attempts": "many"}}, "02-build": []}},
    }))
    summary = roster.summary(store, ["learner01", "mallory"])
    assert summary["learner01"]["00-welcome"] == "in progress"
    roster.rows(store, ["learner01", "mallory"])
    roster.page(store, ["learner01", "mallory"], {})
