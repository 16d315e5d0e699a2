"""Executes every notebook once (papermill, stable-output mode) and proves every check:

* each check cell is also run once *before* its solution cell (an injected copy): it must fail;
* after the solution it must pass;
* cells tagged nbval-check-output must print what the committed notebook shows (after the
  regexes of sanitize.cfg, nbval's format);
* a notebook that stops with LabSkipped is reported as skipped, never as passed.

Executed copies are written to build/notebooks/ so a failing run can be read.
"""
from __future__ import annotations

import configparser
import copy
import functools
import json
import re
import time
from pathlib import Path

import nbformat
import papermill
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
BUILD = REPO / "build" / "notebooks"
LOG_MARK = "LABKIT-CHECK-LOG "
CELL_TIMEOUT = 600


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def instrument(nb):
    """Insert a copy of each check cell before its solution, plus a final cell dumping the check log."""
    nb = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(nb.cells):
        if "solution" in tags(cell):
            check = next((c for c in nb.cells[i + 1:] if "check" in tags(c)), None)
            assert check is not None, f"solution cell {i} has no check cell after it"
            pre = nbformat.v4.new_code_cell(
                "import labkit.exercises as _lx\n_lx.PHASE = 'before-solution'\n" + check.source
                + "\n_lx.PHASE = 'after-solution'")
            pre.metadata["tags"] = ["precheck"]
            cells.append(pre)
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell(
        "import json as _json, labkit.exercises as _lx\nprint(" + repr(LOG_MARK) + " + _json.dumps(_lx.LOG))"))
    nb.cells = cells
    return nb


@functools.lru_cache(maxsize=1)
def sanitizers() -> list[tuple[re.Pattern, str]]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(Path(__file__).with_name("sanitize.cfg"))
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    text = "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)
    for rx, repl in sanitizers():
        text = rx.sub(repl, text)
    return text.strip()


class Skipped(Exception):
    pass


def execute(original, name: str, workdir: Path, cwd: Path) -> tuple[object, list[dict], float]:
    """Run the instrumented notebook once; returns (executed notebook, check log, seconds).
    Raises Skipped for LabSkipped and AssertionError for any other failure."""
    BUILD.mkdir(parents=True, exist_ok=True)
    src, out = workdir / name, BUILD / name
    nbformat.write(instrument(original), src)
    start = time.monotonic()
    try:
        papermill.execute_notebook(str(src), str(out), cwd=str(cwd), kernel_name="python3",
                                   execution_timeout=CELL_TIMEOUT, progress_bar=False, parameters={"quick": True})
    except papermill.PapermillExecutionError as exc:
        if exc.ename == "LabSkipped":
            raise Skipped(exc.evalue) from None
        raise AssertionError(f"{name} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}\n"
                             f"(executed copy: {out})") from None
    seconds = time.monotonic() - start
    executed = nbformat.read(out, as_version=4)
    log_text = text_of(executed.cells[-1])
    log = json.loads(log_text[log_text.index(LOG_MARK) + len(LOG_MARK):].splitlines()[0])
    return executed, log, seconds


def verify_checks(original, log: list[dict], name: str) -> int:
    """Every check fails before its solution and passes after it."""
    checks = [c for c in original.cells if "check" in tags(c)]
    assert checks, f"{name} has no exercise check"
    pre = [e for e in log if e["phase"] == "before-solution"]
    post = [e for e in log if e["phase"] == "after-solution"]
    assert len(pre) == len([c for c in original.cells if "solution" in tags(c)]), log
    for e in pre:
        assert not e["passed"], f"check {e['exercise']} passed before its solution ran: it cannot fail"
    assert post, f"{name}: no check ran after its solution"
    for e in post:
        assert e["passed"], f"check {e['exercise']} failed with the reference solution"
    return len(checks)


def verify_outputs(original, executed, name: str) -> None:
    fresh = [c for c in executed.cells if not {"precheck", "injected-parameters"} & set(tags(c))][:-1]
    assert len(fresh) == len(original.cells)
    for i, (want, got) in enumerate(zip(original.cells, fresh)):
        if "nbval-check-output" in tags(want) and want.get("outputs"):
            assert text_of(got) == text_of(want), f"{name} cell {i} output changed:\n{got.source}"


@pytest.fixture(scope="module")
def report():
    data: dict[str, dict] = {}
    yield data
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "report.json").write_text(json.dumps(data, indent=2))


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_STABLE", "1")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the learner's real progress stays untouched
    return tmp_path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(path: Path, notebook_env, report, docker_client):
    original = nbformat.read(path, as_version=4)
    try:
        executed, log, seconds = execute(original, path.name, notebook_env, path.parent)
    except Skipped as exc:
        report[path.stem] = {"status": "skipped", "reason": str(exc)}
        pytest.skip(f"{path.name}: {exc}")
    except AssertionError as exc:
        report[path.stem] = {"status": "failed", "reason": str(exc)}
        raise
    n = verify_checks(original, log, path.name)
    verify_outputs(original, executed, path.name)
    report[path.stem] = {"status": "passed", "seconds": round(seconds, 1), "checks": n}
    print(f"{path.name}: {seconds:.1f} s, {n} check(s) proven")
