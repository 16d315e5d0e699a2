"""`labkit verify`: the trainer's rehearsal, and the engine of CI's notebook tests (one execution
of each notebook serves both). Each notebook runs once with papermill, in a fresh session, with
its reference solutions; before each solution a copy of the check that follows is injected and
must fail, after it the check must pass; outputs tagged nbval-check-output must match the
committed ones. A LabSkipped notebook is reported as skipped, never as passed.

`--edition learner` runs what a learner gets instead (no solutions, check outputs cleared)
straight through with errors allowed: it passes when nothing before the first exercise raised
and no check passed (a check that passes untouched gives the exercise away)."""
from __future__ import annotations

import configparser
import contextlib
import copy
import functools
import html
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

LOG_MARK = "LABKIT-VERIFY "
CELL_TIMEOUT = 600
SANITIZE = Path(__file__).parent / "data" / "sanitize.cfg"  # nbval's format: `pytest --nbval-lax --sanitize-with`
# Applied after SANITIZE's rules, and only when verify runs against a rootless engine (nbval never
# sees them; a root engine's outputs are compared without them): each allows one row that is true on
# a rootless engine and not on the root engine the committed outputs come from, and nothing else.
ROOTLESS_SANITIZE = [
    # notebook 01's namespace table: a rootless engine's container lives in RootlessKit's user
    # namespace (its root is the learner outside), not in the host's, where the kernel is
    (re.compile(r"(?m)^user\|…\|…\|no$"), "user|…|…|yes"),
]
PAPERMILL_MARK = "papermill-error-cell-tag"  # papermill.execute.ERROR_MARKER_TAG
PASSED_MARK = "[SUCCESS] Passed:"  # how a passed CheckResult starts in text/plain (a success callout)
INSTRUMENT_TAGS = {"precheck", "injected-parameters", "verify-listen"}


class Skipped(Exception):
    pass


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def instrument(nb):
    """A first cell that listens to check results and new labs, a copy of each check cell before
    its solution, and a last cell that reports the checks, the images the labs used and the
    kernel's peak memory."""
    import nbformat
    nb = copy.deepcopy(nb)
    listen = nbformat.v4.new_code_cell(
        "import labkit.exercises as _lx, labkit.lab as _ll\n"
        "_verify = {'phase': 'after-solution', 'checks': [], 'images': set()}\n"
        "_lx.subscribe(lambda r: _verify['checks'].append({'lab': r.lab, 'exercise': r.exercise, "
        "'passed': r.passed, 'phase': _verify['phase']}))\n"
        "_ll.subscribe(lambda lab: _verify['images'].update(lab.needed_images))")
    listen.metadata["tags"] = ["verify-listen"]
    cells = [listen]
    for i, cell in enumerate(nb.cells):
        if "solution" in tags(cell):
            check = next((c for c in nb.cells[i + 1:] if "check" in tags(c)), None)
            assert check is not None, f"solution cell {i} has no check cell after it"
            pre = nbformat.v4.new_code_cell("_verify['phase'] = 'before-solution'\n"
                                            + check.source + "\n_verify['phase'] = 'after-solution'")
            pre.metadata["tags"] = ["precheck"]
            cells.append(pre)
        cells.append(cell)
    # VmHWM, not getrusage's ru_maxrss: that one carries the parent's peak across fork and exec
    cells.append(nbformat.v4.new_code_cell(
        "import json as _json\n"
        "_hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        f"print({LOG_MARK!r} + _json.dumps({{'checks': _verify['checks'], 'images': sorted(_verify['images']),"
        " 'peak_rss_kb': _hwm}))"))
    nb.cells = cells
    return nb


@functools.lru_cache(maxsize=2)
def sanitizers(rootless: bool = False) -> list[tuple[re.Pattern, str]]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(SANITIZE)
    rules = [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]
    return rules + ROOTLESS_SANITIZE if rootless else rules


def text_of(cell, rootless: bool = False) -> str:
    parts: list = []
    stream = None  # consecutive chunks of one stream are one text (the kernel may flush a print in two)
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            text = text if isinstance(text, str) else "".join(text)
            if stream == out.get("name") and parts:
                parts[-1] += text
            else:
                parts.append(text)
            stream = out.get("name")
            continue
        stream = None
        if "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    text = "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)
    for rx, repl in sanitizers(rootless):
        text = rx.sub(repl, text)
    return text.strip()


@contextlib.contextmanager
def fresh_session(workdir: Path) -> Iterator[None]:
    """Stable output, and a progress store of its own (the learner's real progress stays untouched)."""
    saved = {k: os.environ.get(k) for k in ("LABKIT_STABLE", "XDG_STATE_HOME")}
    os.environ["LABKIT_STABLE"] = "1"
    os.environ["XDG_STATE_HOME"] = str(workdir / "state")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(original, name: str, workdir: Path, cwd: Path, outdir: Path, timeout: float = CELL_TIMEOUT,
            allow_errors: bool = False) -> tuple[Any, dict, float]:
    """Run the instrumented notebook once; (executed notebook, what the last cell reported, seconds).
    Raises Skipped for LabSkipped and AssertionError for any other failure (a hanging cell included),
    or, with `allow_errors`, runs straight through the cells that raise (the learner edition)."""
    import nbformat
    import papermill
    outdir.mkdir(parents=True, exist_ok=True)
    src, out = workdir / name, outdir / name
    nbformat.write(instrument(original), src)
    start = time.monotonic()
    try:
        papermill.execute_notebook(str(src), str(out), cwd=str(cwd), kernel_name="python3",
                                   execution_timeout=timeout, progress_bar=False, parameters={"quick": True},
                                   **({"allow_errors": True} if allow_errors else {}))
    except papermill.PapermillExecutionError as exc:
        if exc.ename == "LabSkipped":
            raise Skipped(exc.evalue) from None
        if not allow_errors:
            raise AssertionError(f"{name} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}") from None
    except Exception as exc:  # e.g. a cell that outlived the timeout: the kernel is gone, the rest goes on
        raise AssertionError(f"{name} did not finish: {type(exc).__name__}: {exc}"[:500]) from None
    seconds = time.monotonic() - start
    executed = nbformat.read(out, as_version=4)
    if allow_errors:
        from .core.ipython import skip_reason
        # papermill marks the first error with cells of its own: they are not the notebook's
        executed.cells = [c for c in executed.cells if PAPERMILL_MARK not in tags(c)]
        nbformat.write(executed, out)
        # errors allowed, a skip banner does not stop the run: it skips the notebook all the same
        reason = next((r for c in executed.cells if (r := skip_reason(c))), None)
        if reason is not None:
            raise Skipped(reason)
    # A LabSkipped banner stops the notebook without an error output (papermill returns normally)
    stopped = [c for c in executed.cells if c.get("metadata", {}).get("papermill", {}).get("exception")]
    if stopped:
        from .core.ipython import skip_reason
        reason = skip_reason(stopped[0])
        if reason is None:
            raise AssertionError(f"{name} stopped at a cell without an error or a skip banner:\n{stopped[0].source}")
        raise Skipped(reason)
    text = text_of(executed.cells[-1])
    report = json.loads(text[text.index(LOG_MARK) + len(LOG_MARK):].splitlines()[0])
    return executed, report, seconds


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


def verify_outputs(original, executed, name: str, rootless: bool = False) -> None:
    """Outputs tagged nbval-check-output match the committed ones; `rootless`: the run was on a
    rootless engine, whose few known differences (ROOTLESS_SANITIZE) are allowed."""
    fresh = [c for c in executed.cells if not INSTRUMENT_TAGS & set(tags(c))][:-1]
    assert len(fresh) == len(original.cells)
    for i, (want, got) in enumerate(zip(original.cells, fresh)):
        if "nbval-check-output" in tags(want) and want.get("outputs"):
            assert text_of(got, rootless) == text_of(want, rootless), f"{name} cell {i} output changed:\n{got.source}"


def exercise_starts(cell) -> bool:
    """An exercise begins at a "## Exercise" heading, or at its check where a notebook has none."""
    source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
    return (cell.cell_type == "markdown" and source.startswith("## Exercise")) or "check" in tags(cell)


def error_of(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error" and not (out.get("ename") == "SystemExit" and out.get("evalue") in ("", "0")):
            return f"{out.get('ename')}: {out.get('evalue')}"
    return None


def shows_a_pass(cell) -> bool:
    return any("".join((out.get("data") or {}).get("text/plain", "")).startswith(PASSED_MARK)
               for out in cell.get("outputs", []))


def verify_learner(executed, log: list[dict], name: str) -> tuple[int, str]:
    """The learner edition, run straight through: nothing before the first exercise raises, and no
    check passes (nobody solved anything). (checks seen failing, a note on the errors allowed)."""
    cells = [c for c in executed.cells if not INSTRUMENT_TAGS & set(tags(c))][:-1]
    first = next((i for i, c in enumerate(cells) if exercise_starts(c)), len(cells))
    for i, cell in enumerate(cells[:first]):
        error = error_of(cell)
        assert error is None, f"{name} (learner edition) cell {i}, before the first exercise, raised {error}"
    checks = [c for c in cells if "check" in tags(c)]
    assert checks, f"{name} has no exercise check"
    for cell in checks:
        assert not shows_a_pass(cell), f"{name} (learner edition): a check passed with no solution:\n{cell.source}"
    passed = [e["exercise"] for e in log if e["passed"]]
    assert not passed, f"{name} (learner edition): check(s) {', '.join(passed)} passed with no solution"
    later = [i for i, c in enumerate(cells[first:], first) if error_of(c)]
    note = f"{len(later)} cell(s) after the first exercise raised (allowed): {later}" if later else ""
    return len(checks), note


@dataclass
class Result:
    notebook: str
    status: str  # passed, failed, skipped
    reason: str = ""
    seconds: float = 0.0
    checks: int = 0
    images: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    executed: str = ""


def run_notebook(path: Path, outdir: Path, timeout: float = CELL_TIMEOUT, edition: str = "reference") -> Result:
    """Execute and verify one notebook in a fresh session; never raises. edition="learner" runs
    the learner edition (workspace.learner_edition) straight through, errors allowed."""
    import nbformat
    original = nbformat.read(path, as_version=4)
    learner = edition == "learner"
    if learner:
        from .workspace import learner_edition
        original = nbformat.from_dict(learner_edition(original))
    note = ""
    with tempfile.TemporaryDirectory(prefix="labkit-verify-") as tmp, fresh_session(Path(tmp)):
        try:
            executed, report, seconds = execute(original, path.name, Path(tmp), path.parent, outdir, timeout,
                                                allow_errors=learner)
            if learner:
                n, note = verify_learner(executed, report["checks"], path.name)
            else:
                n = verify_checks(original, report["checks"], path.name)
                from .core.engine import is_rootless
                verify_outputs(original, executed, path.name, rootless=is_rootless())
        except Skipped as exc:
            return Result(path.stem, "skipped", str(exc), executed=str(outdir / path.name))
        except AssertionError as exc:
            return Result(path.stem, "failed", str(exc), executed=str(outdir / path.name))
    return Result(path.stem, "passed", note, round(seconds, 1), n, report["images"],
                  round(report["peak_rss_kb"] / 1024, 1), str(outdir / path.name))


def notebooks(directory: Path, names: Iterable[str] = ()) -> list[Path]:
    found = sorted(directory.glob("[0-9][0-9]-*.ipynb"))
    wanted = list(names)
    return [p for p in found if not wanted or any(w in p.stem for w in wanted)]


def write_reports(results: list[Result], outdir: Path) -> Path:
    """report.json and report.html (executed notebooks linked) in `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "report.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    colours = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}
    rows = "".join(
        f"<tr><td><a href='{html.escape(Path(r.executed).name)}'>{html.escape(r.notebook)}</a></td>"
        f"<td style='color:{colours[r.status]};font-weight:bold'>{r.status}</td>"
        f"<td>{r.seconds:.1f} s</td><td>{r.checks}</td><td>{r.peak_rss_mb:.0f} MB</td>"
        f"<td>{html.escape(', '.join(r.images))}</td><td>{html.escape(r.reason[:400])}</td></tr>" for r in results)
    total = sum(r.seconds for r in results)
    counts = {s: sum(r.status == s for r in results) for s in colours}
    page = (f"<!doctype html><meta charset='utf-8'><title>labkit verify</title>"
            f"<h1>labkit verify</h1><p>{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} "
            f"skipped in {total:.0f} s ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})</p>"
            "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>notebook</th><th>status</th>"
            "<th>duration</th><th>checks proven</th><th>kernel peak memory</th><th>images</th><th>reason</th></tr>"
            f"{rows}</table>")
    (outdir / "report.html").write_text(page)
    return outdir / "report.html"


def update_readme(readme: Path, results: list[Result]) -> int:
    """Put each passed lab's measured duration into the README agenda's "CI run" column."""
    text, changed = readme.read_text(), 0
    for r in results:
        if r.status != "passed":
            continue
        number, _, topic = r.notebook.partition("-")
        pattern = re.compile(rf"^(\| {number} \| {re.escape(topic)} \|.*\| )([^|]*)( \|)$", re.M)
        text, n = pattern.subn(lambda m: f"{m.group(1)}{r.seconds:.0f} s{m.group(3)}", text)
        changed += n
    readme.write_text(text)
    return changed
