from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from labkit import exercises
from labkit.core.errors import CheckError, ImageMissing


@pytest.fixture
def fake_lab(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    exercises.load_all()

    @exercises.exercise("unit", "even", "Give an even number", "Any multiple of two will do.")
    def even(lab, number: int):
        return number % 2 == 0, f"{number} is {'even' if number % 2 == 0 else 'odd'}"

    @exercises.exercise("unit", "needs-image", "Needs an image", "Build it first.")
    def needs_image(lab):
        raise ImageMissing("The image 'x' is not in the local image store.")

    yield SimpleNamespace(topic="unit")
    for key in [k for k in exercises.EXERCISES if k[0] == "unit"]:
        del exercises.EXERCISES[key]


def test_pass_and_fail_render_and_are_recorded(fake_lab, tmp_path):
    failed = exercises.run_check(fake_lab, "even", number=3)
    assert not failed and "Hint: Any multiple" in failed.text() and "labkit-error" in failed.html()
    passed = exercises.run_check(fake_lab, "even", number=4)
    assert passed and "labkit-success" in passed.html()
    stored = json.loads((tmp_path / "labkit" / "progress.json").read_text())
    assert stored["unit"]["even"]["status"] == "done" and stored["unit"]["even"]["attempts"] == 2
    exercises.run_check(fake_lab, "even", number=5)  # a later failure keeps the achievement
    assert exercises.load_progress()["unit"]["even"]["status"] == "done"


def test_wrong_arguments_say_how_to_call(fake_lab):
    with pytest.raises(CheckError) as err:
        exercises.run_check(fake_lab, "even", nuber=4)
    assert "nuber" in str(err.value) and "lab.check('even', number=...)" in str(err.value)
    with pytest.raises(CheckError, match="missing argument"):
        exercises.run_check(fake_lab, "even")


def test_unknown_exercise_lists_the_known_ones(fake_lab):
    with pytest.raises(CheckError) as err:
        exercises.run_check(fake_lab, "odd", number=1)
    assert "even" in str(err.value)


def test_missing_state_is_a_failed_check_that_says_what_is_missing(fake_lab):
    result = exercises.run_check(fake_lab, "needs-image")
    assert not result and "not in the local image store" in result.message


def test_progress_lists_every_exercise(fake_lab):
    exercises.run_check(fake_lab, "even", number=2)
    rows = {(r[0], r[1]): r[3] for r in exercises.progress().rows}
    assert rows[("unit", "even")] == "done" and rows[("unit", "needs-image")] == "not tried"
    assert ("welcome", "first-container") in rows
    assert exercises.progress("unit").to_json()[0]["lab"] == "unit"


def test_every_exercise_has_two_or_three_hint_levels():
    thin = [f"{t}/{i} ({len(ex.hints)})" for (t, i), ex in exercises.load_all().items()
            if t != "unit" and not 2 <= len(ex.hints) <= 3]
    assert not thin, f"exercises without 2-3 hint levels (a nudge, where to look, the answer): {thin}"


def test_hints_come_one_level_at_a_time_and_are_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    ex = exercises.find("welcome", "shell-container")
    shown = [exercises.hint("welcome", "shell-container") for _ in range(len(ex.hints) + 1)]
    assert [h.level for h in shown] == [*range(1, len(ex.hints) + 1), len(ex.hints)]  # the last one stays
    assert shown[0].message == ex.hints[0] and "Hint 1/" in shown[0].text()
    assert "lab.solution" in shown[-1].text()
    entry = exercises.load_progress()["welcome"]["shell-container"]
    assert entry["hints"] == len(ex.hints) and entry["status"] == "not tried"


def test_a_solution_comes_from_the_reference_edition_and_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    shown = exercises.solution("welcome", "shell-container")
    assert "docker run -d --name" in shown.text()
    row = next(r for r in exercises.progress("welcome").to_json() if r["exercise"] == "shell-container")
    assert row["solution"] is True and row["hints"] == 0


def test_a_hint_or_solution_for_an_unknown_id_lists_the_ids(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    for ask in (exercises.hint, exercises.solution):
        with pytest.raises(CheckError, match="first-container, shell-container"):
            ask("welcome", "frist-container")


def test_no_reference_edition_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_REFERENCE", str(tmp_path / "nowhere"))
    with pytest.raises(CheckError, match="LABKIT_REFERENCE"):
        exercises.solution("welcome", "first-container")
