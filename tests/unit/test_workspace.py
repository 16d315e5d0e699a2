"""The learner edition and the learner's workspace (no daemon): solutions left out, answers' outputs
cleared, and updates that never lose what the learner wrote."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import workspace
from labkit.exercises import load_all, solution_cells
from labkit.workspace import MANIFEST, learner_edition, update

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def cell(kind: str, source: str, tags: tuple[str, ...] = (), output: str = "") -> dict:
    c = {"cell_type": kind, "metadata": {"tags": list(tags)}, "source": source}
    if kind == "code":
        c["execution_count"] = 3 if output else None
        c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": output}] if output else []
    return c


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


DEMO = notebook(
    cell("markdown", "# 99 · Demo"),
    cell("code", 'lab.run("labkit/busybox", "id")', output="uid=0(root)"),
    cell("markdown", "## Exercise: greet"),
    cell("code", "# Your code here\n"),
    cell("code", 'lab.start("labkit/busybox", "sleep 1")', ("solution",), output="started"),
    cell("code", 'lab.check("greet")', ("check", "nbval-check-output"), output="[SUCCESS] Passed: greet"),
    cell("code", "lab.inspect()", ("reveals",), output="the answer"),
)


def test_learner_edition_strips_solutions_and_clears_answers():
    learner = learner_edition(DEMO)
    sources = [c["source"] for c in learner["cells"]]
    assert not any("solution" in c["metadata"]["tags"] for c in learner["cells"])
    assert 'lab.start("labkit/busybox", "sleep 1")' not in sources and len(sources) == len(DEMO["cells"]) - 1
    check, reveals = learner["cells"][4], learner["cells"][5]
    assert check["outputs"] == [] and check["execution_count"] is None
    assert reveals["outputs"] == [] and reveals["execution_count"] is None
    assert learner["cells"][1]["outputs"][0]["text"] == "uid=0(root)"  # a demo's output reads well: kept
    assert learner["metadata"]["labkit"] == {"edition": "learner"}
    assert DEMO["cells"][5]["outputs"], "the reference notebook itself is left alone"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    ref = tmp_path / "reference"
    (ref / "assets" / "demo").mkdir(parents=True)
    (ref / "99-demo.ipynb").write_text(json.dumps(DEMO))
    (ref / "98-other.ipynb").write_text(json.dumps(notebook(cell("code", "print(1)", output="1"))))
    (ref / "assets" / "demo" / "Dockerfile").write_text("FROM labkit/busybox\n")
    script = ref / "assets" / "demo" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    return ref


def change_reference(ref: Path, source: str) -> None:
    nb = json.loads((ref / "99-demo.ipynb").read_text())
    nb["cells"][0]["source"] = source
    (ref / "99-demo.ipynb").write_text(json.dumps(nb))


def test_a_new_workspace_gets_everything_and_a_second_update_changes_nothing(reference, tmp_path):
    ws = tmp_path / "ws"
    first = update(ws, reference)
    assert sorted(first.added) == ["98-other.ipynb", "99-demo.ipynb", "assets/demo/Dockerfile", "assets/demo/run.sh"]
    assert not any("solution" in c["metadata"].get("tags", []) for c in json.loads((ws / "99-demo.ipynb").read_text())["cells"])
    assert (ws / "assets/demo/run.sh").stat().st_mode & 0o111, "an executable asset stays executable"
    assert (ws / MANIFEST).exists()
    second = update(ws, reference)
    assert second.counts() == {"added": 0, "updated": 0, "kept": 0, "unchanged": 4}
    assert "unchanged" in second.text() and "<table" in second.html()


def test_untouched_files_are_updated_and_running_cells_is_no_change(reference, tmp_path):
    ws = tmp_path / "ws"
    update(ws, reference)
    saved = json.loads((ws / "99-demo.ipynb").read_text())  # the learner ran a cell and saved: outputs only
    saved["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "uid=1000"}]
    saved["cells"][1]["execution_count"] = 7
    (ws / "99-demo.ipynb").write_text(json.dumps(saved))
    change_reference(reference, "# 99 · Demo, second edition")
    (reference / "assets/demo/Dockerfile").write_text("FROM labkit/busybox:latest\n")
    report = update(ws, reference)
    assert sorted(report.updated) == ["99-demo.ipynb", "assets/demo/Dockerfile"] and not report.kept
    assert json.loads((ws / "99-demo.ipynb").read_text())["cells"][0]["source"] == "# 99 · Demo, second edition"
    assert not list(ws.glob("*.new.*"))


def test_a_notebook_the_learner_edited_is_kept_and_the_new_version_goes_beside_it(reference, tmp_path):
    ws = tmp_path / "ws"
    update(ws, reference)
    mine = json.loads((ws / "99-demo.ipynb").read_text())
    mine["cells"][3]["source"] = 'lab.start("labkit/busybox", "sleep 60", name="greeter")'
    (ws / "99-demo.ipynb").write_text(json.dumps(mine))
    (ws / "assets/demo/Dockerfile").write_text("FROM labkit/busybox\nRUN echo mine\n")
    assert update(ws, reference).counts()["kept"] == 0, "nothing new yet: nothing to put beside"
    assert not (ws / "99-demo.new.ipynb").exists()
    change_reference(reference, "# 99 · Demo, second edition")
    (reference / "assets/demo/Dockerfile").write_text("FROM labkit/busybox:latest\n")
    report = update(ws, reference)
    assert sorted(report.kept) == [("99-demo.ipynb", "99-demo.new.ipynb"), ("assets/demo/Dockerfile", "assets/demo/Dockerfile.new")]
    assert "99-demo.new.ipynb" in report.text()
    assert json.loads((ws / "99-demo.ipynb").read_text())["cells"][3]["source"] == mine["cells"][3]["source"]
    assert json.loads((ws / "99-demo.new.ipynb").read_text())["cells"][0]["source"] == "# 99 · Demo, second edition"
    assert "RUN echo mine" in (ws / "assets/demo/Dockerfile").read_text()
    assert update(ws, reference).counts() == {"added": 0, "updated": 0, "kept": 0, "unchanged": 4}


def test_a_deleted_notebook_comes_back_and_the_learners_own_files_stay(reference, tmp_path):
    ws = tmp_path / "ws"
    update(ws, reference)
    (ws / "99-demo.ipynb").unlink()
    (ws / "my-notes.ipynb").write_text("{}")
    report = update(ws, reference)
    assert report.added == ["99-demo.ipynb"] and (ws / "99-demo.ipynb").exists()
    assert (ws / "my-notes.ipynb").read_text() == "{}"


def test_a_file_already_there_before_the_manifest_is_kept(reference, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "99-demo.ipynb").write_text(json.dumps(DEMO))  # e.g. a copy of the reference edition
    report = update(ws, reference)
    assert report.kept == [("99-demo.ipynb", "99-demo.new.ipynb")]
    assert json.loads((ws / "99-demo.ipynb").read_text()) == DEMO


def test_the_default_workspace(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_WORKSPACE", str(tmp_path / "elsewhere"))
    assert workspace.default_workspace() == tmp_path / "elsewhere"
    monkeypatch.delenv("LABKIT_WORKSPACE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert workspace.default_workspace() == tmp_path / "labkit-workspace"


def test_jupyterlab_is_seeded_once_with_quiet_settings_and_the_start_page(tmp_path):
    (tmp_path / "00-welcome.ipynb").write_text("{}")
    workspace.seed_jupyterlab(tmp_path)
    settings, layouts = workspace.jupyter_dirs(tmp_path)
    notification = settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert json.loads(notification.read_text()) == {"fetchNews": "false", "checkForUpdates": False}
    layout = json.loads(next(layouts.glob("default-*.jupyterlab-workspace")).read_text())
    assert layout["data"]["layout-restorer:data"]["main"]["current"] == "notebook:00-welcome.ipynb"
    notification.write_text('{"fetchNews": "true"}')  # the learner's choice stays
    workspace.seed_jupyterlab(tmp_path)
    assert notification.read_text() == '{"fetchNews": "true"}'
    assert any(a == f"--LabApp.workspaces_dir={layouts}" for a in workspace.jupyter_args(tmp_path))


def test_the_cli_makes_a_workspace(tmp_path):
    out = subprocess.run([sys.executable, "-m", "labkit.cli", "workspace", str(tmp_path / "ws")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert re.search(r"added\s+\d+", out.stdout) and (tmp_path / "ws" / "00-welcome.ipynb").exists()
    again = subprocess.run([sys.executable, "-m", "labkit.cli", "workspace", str(tmp_path / "ws")],
                           capture_output=True, text=True)
    assert re.search(r"added\s+0\b", again.stdout) and re.search(r"updated\s+0\b", again.stdout)


def test_lab_help_mentions_trainer_and_verify_knows_the_learner_edition():
    lab = subprocess.run([sys.executable, "-m", "labkit.cli", "lab", "--help"], capture_output=True, text=True)
    assert lab.returncode == 0 and "--trainer" in lab.stdout
    verify = subprocess.run([sys.executable, "-m", "labkit.cli", "verify", "--help"], capture_output=True, text=True)
    assert "--edition" in verify.stdout and "learner" in verify.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebooks_learner_edition_has_no_solution(path):
    learner = learner_edition(json.loads(path.read_text()))
    assert not [c for c in learner["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    for c in learner["cells"]:
        if {"check", "reveals"} & set(c.get("metadata", {}).get("tags", [])):
            assert not c.get("outputs"), f"{path.name}: an answer's output left in the learner edition"


def test_every_check_has_a_reference_solution():
    """lab.solution() shows what is before a check: every check cell of the reference edition has
    at least one solution cell, and names a registered exercise."""
    exercises = {exercise_id for (_, exercise_id) in load_all()}
    missing, unknown, checks = [], [], 0
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for c in nb["cells"]:
            if "check" not in c.get("metadata", {}).get("tags", []):
                continue
            for exercise_id in re.findall(r"""lab\.check\(["']([\w-]+)["']""", "".join(c["source"])):
                checks += 1
                if not solution_cells(nb, exercise_id):
                    missing.append(f"{path.stem}: {exercise_id}")
                if exercise_id not in exercises:
                    unknown.append(f"{path.stem}: {exercise_id}")
    assert checks >= len(NOTEBOOKS)
    assert not missing, f"checks without a solution cell before them: {missing}"
    assert not unknown, f"checks of no registered exercise: {unknown}"


def test_the_start_page_links_every_lab_and_says_how_exercises_work():
    welcome = json.loads((REPO / "notebooks" / "00-welcome.ipynb").read_text())
    first = [c for c in welcome["cells"][:4] if c["cell_type"] == "markdown"]
    text = "\n".join("".join(c["source"]) for c in first)
    links = set(re.findall(r"\]\(([\w-]+\.ipynb)\)", text))
    assert links == {p.name for p in NOTEBOOKS}, "the start page links every notebook, and only those"
    assert "## How exercises work" in text
    for words in ('lab.hint("id")', 'lab.solution("id")', "labkit progress", "%%bash", '{lab.image("app")}'):
        assert words in text
    assert not any("".join(c["source"]).startswith("## Exercise") for c in first)
