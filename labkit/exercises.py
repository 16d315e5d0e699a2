"""Exercise checks: `lab.check("id", ...)` inspects real state and returns a `CheckResult`;
results are kept per user as JSON under the XDG state directory."""
from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .core.render import Renderable, callout, table
from .core.errors import CheckError, LabkitError



class Checked(Protocol):
    """What a check receives: a Lab (the layer above; checks use its whole API)."""
    topic: str

CheckFn = Callable[..., tuple[bool, str]]


@dataclass(frozen=True)
class Exercise:
    lab: str
    id: str
    title: str
    hints: tuple[str, ...]  # levels: a nudge, then where to look, then the answer
    fn: CheckFn

    @property
    def hint(self) -> str:
        """The first level: what a failed check shows."""
        return self.hints[0]


EXERCISES: dict[tuple[str, str], Exercise] = {}
LISTENERS: list[Callable[["CheckResult"], None]] = []  # told of every check result (labkit verify, a roster)
_loaded = False


def subscribe(listener: Callable[["CheckResult"], None]) -> None:
    """Call `listener` with every check result from now on, in this process."""
    LISTENERS.append(listener)


def exercise(lab: str, id: str, title: str, hints: str | Sequence[str]) -> Callable[[CheckFn], CheckFn]:
    """Declare a check: the function gets the Lab and the learner's arguments, and returns
    (passed, message) after looking at the real state. `hints` are levels shown one at a time
    by `lab.hint(id)`: a nudge, then where to look, then the answer."""
    levels = (hints,) if isinstance(hints, str) else tuple(hints)
    if not levels:
        raise ValueError(f"exercise {lab}/{id} needs at least one hint")
    def register(fn: CheckFn) -> CheckFn:
        EXERCISES[(lab, id)] = Exercise(lab, id, title, levels, fn)
        return fn
    return register


def load_all() -> dict[tuple[str, str], Exercise]:
    global _loaded
    if not _loaded:
        # The checks register themselves (@exercise); they live in the layer above, so they are
        # found by the package's name, not imported by this module.
        checks = importlib.import_module(f"{__package__}.checks")
        for mod in pkgutil.iter_modules(checks.__path__):
            importlib.import_module(f"{checks.__name__}.{mod.name}")
        _loaded = True
    return EXERCISES


@dataclass
class CheckResult(Renderable):
    lab: str
    exercise: str
    title: str
    passed: bool
    message: str
    hint: str

    def __bool__(self) -> bool:
        return self.passed

    def _render(self):
        if self.passed:
            return callout("success", f"Passed: {self.title}", self.message)
        return callout("error", f"Not yet: {self.title}", self.message, hint=self.hint)


def find(topic: str, exercise_id: str) -> Exercise:
    """The exercise, or a CheckError that lists the lab's exercise ids."""
    exercises = load_all()
    ex = exercises.get((topic, exercise_id))
    if ex is None:
        raise unknown("exercise", topic, exercise_id, exercises)
    return ex


def unknown(kind: str, topic: str, wanted: str, registry: dict[tuple[str, str], Any]) -> CheckError:
    """The error for an id a lab does not have (an exercise, a question): it lists the lab's ids."""
    known = ", ".join(i for (t, i) in registry if t == topic) or "none"
    return CheckError(f"Lab {topic!r} has no {kind} {wanted!r} (its {kind}s: {known}).", f"Use one of: {known}.")


def run_check(lab: Checked, exercise_id: str, **kwargs: Any) -> CheckResult:
    ex = find(lab.topic, exercise_id)
    params = [p for p in inspect.signature(ex.fn).parameters.values()][1:]
    names = {p.name for p in params}
    unknown = set(kwargs) - names
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    if unknown or required - set(kwargs):
        expected = ", ".join(f"{p.name}=" + ("..." if p.default is inspect.Parameter.empty else repr(p.default))
                             for p in params) or "no arguments"
        what = f"unknown argument(s) {', '.join(sorted(unknown))}" if unknown else \
            f"missing argument(s) {', '.join(sorted(required - set(kwargs)))}"
        raise CheckError(f"lab.check({exercise_id!r}, ...) got {what}.", f"Call it as lab.check({exercise_id!r}, {expected}).")
    try:
        passed, message = ex.fn(lab, **kwargs)
    except LabkitError as exc:  # e.g. a container that does not exist: a fail that says what is missing
        passed, message = False, exc.message
    result = CheckResult(lab.topic, exercise_id, ex.title, bool(passed), message, ex.hint)
    record(lab.topic, exercise_id, result.passed)
    for listener in LISTENERS:
        listener(result)
    return result


# --- hints in levels and reference solutions ------------------------------------------------

@dataclass
class Hint(Renderable):
    title: str
    level: int
    levels: int
    message: str

    def _render(self):
        more = "ask again for the next level" if self.level < self.levels else "that was the last level; " \
            "lab.solution(...) shows the reference solution"
        return callout("info", f"Hint {self.level}/{self.levels}: {self.title}", self.message, details=f"({more})")


def hint(topic: str, exercise_id: str) -> Hint:
    """The next hint level for this exercise (the last one again once all were shown); recorded."""
    ex = find(topic, exercise_id)
    data = load_progress()
    entry = _entry(data, topic, exercise_id)
    level = min(entry.get("hints", 0) + 1, len(ex.hints))
    entry["hints"] = level
    save_progress(data)
    return Hint(ex.title, level, len(ex.hints), ex.hints[level - 1])


def reference_dir() -> Path:
    """Where the reference (trainer) edition of the notebooks is: $LABKIT_REFERENCE, else the
    repository this labkit runs from."""
    return Path(os.environ.get("LABKIT_REFERENCE") or Path(__file__).resolve().parent.parent / "notebooks")


def solution_cells(notebook: dict, exercise_id: str) -> list[str]:
    """The sources of the cells tagged `solution` between the previous check and the check of
    `exercise_id`."""
    found: list[str] = []
    for cell in notebook.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        source = "".join(cell.get("source", ""))
        if "check" in tags:
            if f'lab.check("{exercise_id}"' in source or f"lab.check('{exercise_id}'" in source:
                return found
            found = []
        elif "solution" in tags:
            found.append(source)
    return []


@dataclass
class Solution(Renderable):
    title: str
    cells: list[str]

    def _render(self):
        return callout("info", f"Reference solution: {self.title}", "Run or adapt it, then run the check again.",
                       details="\n\n".join(self.cells))


def solution(topic: str, exercise_id: str) -> Solution:
    """The reference solution's cells (from the reference edition); recorded as shown."""
    ex = find(topic, exercise_id)
    cells: list[str] = []
    for path in sorted(reference_dir().glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        code = "".join("".join(c.get("source", "")) for c in notebook.get("cells", []) if c.get("cell_type") == "code")
        if f'Lab("{topic}"' in code or f"Lab('{topic}'" in code:
            cells = solution_cells(notebook, exercise_id)
            break
    if not cells:
        raise CheckError(f"No reference solution of {exercise_id!r} was found in {reference_dir()}.",
                         "Set LABKIT_REFERENCE to the repository's notebooks/ directory, or ask your trainer.")
    data = load_progress()
    _entry(data, topic, exercise_id)["solution"] = True
    save_progress(data)
    return Solution(ex.title, cells)


# --- progress store ------------------------------------------------------------------------

def progress_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "labkit" / "progress.json"


def load_progress() -> dict[str, dict[str, dict[str, Any]]]:
    try:
        return json.loads(progress_file().read_text())
    except (OSError, ValueError):
        return {}


def _entry(data: dict, lab: str, exercise_id: str) -> dict[str, Any]:
    entry = data.setdefault(lab, {}).setdefault(exercise_id, {})
    entry.setdefault("attempts", 0)
    entry.setdefault("status", "not tried")
    return entry


def record(lab: str, exercise_id: str, passed: bool) -> None:
    data = load_progress()
    entry = _entry(data, lab, exercise_id)
    entry["attempts"] += 1
    # once done, stays done: a later failing re-run of the cell does not erase the achievement
    entry["status"] = "done" if passed or entry["status"] == "done" else "failed"
    entry["last"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    save_progress(data)


def save_progress(data: dict) -> None:
    path = progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")  # written whole, then renamed: a crash never leaves half a file
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
    push_progress(data)


def push_progress(data: dict | None = None) -> Any:
    """In a classroom, send the whole progress record to the trainer's roster (LABKIT_ROSTER_URL, with
    the learner's hub token): in the background, so a check never waits for it. The local file stays
    the truth; sending all of it each time is what re-syncs the roster after a restart."""
    url, token = os.environ.get("LABKIT_ROSTER_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not (url and token):
        return None
    import threading
    import urllib.request
    body = json.dumps(load_progress() if data is None else data).encode()

    def send() -> None:
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Authorization": f"token {token}", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass  # the roster is the trainer's view; the next record or restart sends everything again
    thread = threading.Thread(target=send, daemon=True, name="labkit-roster")
    thread.start()
    return thread


PROGRESS_COLUMNS = ("lab", "exercise", "title", "status", "attempts", "hints", "solution")


@dataclass
class Progress(Renderable):
    rows: list[tuple[str, str, str, str, int, int, bool]]

    def to_json(self) -> list[dict[str, Any]]:
        return [dict(zip(PROGRESS_COLUMNS, r)) for r in self.rows]

    def _render(self):
        rows = [(*r[:6], "shown" if r[6] else "") for r in self.rows]
        return table(PROGRESS_COLUMNS, rows, title="Your progress", status_column="status")


def progress(lab: str | None = None) -> Progress:
    data = load_progress()
    rows = []
    for (topic, ex_id), ex in sorted(load_all().items()):
        if lab and topic != lab:
            continue
        entry = data.get(topic, {}).get(ex_id, {})
        rows.append((topic, ex_id, ex.title, entry.get("status", "not tried"), entry.get("attempts", 0),
                     entry.get("hints", 0), bool(entry.get("solution", False))))
    return Progress(rows)


# --- the dashboard ---------------------------------------------------------------------------

def reset(lab_topic: str) -> int:
    """Forget one lab's results and remove its resources (every session of that lab); how many
    resources were removed."""
    data = load_progress()
    data.pop(lab_topic, None)
    data.get("_predictions", {}).pop(lab_topic, None)
    save_progress(data)
    from .core import engine
    from .core.session import LAB_LABEL, SESSION_LABEL
    from .core.reaper import remove_session
    cli = engine.client()
    sessions = {c.labels.get(SESSION_LABEL) for c in cli.containers.list(all=True, filters={"label": f"{LAB_LABEL}={lab_topic}"})}
    sessions |= {i.labels.get(SESSION_LABEL) for i in cli.images.list(filters={"label": f"{LAB_LABEL}={lab_topic}"})}
    return sum(remove_session(cli, s).total for s in sessions if s)


def dashboard(lab: str | None = None):
    """Labs and exercises (done, failed, not tried) as ipywidgets, with a reset button per lab;
    the plain table where widgets cannot show (no ipywidgets, a terminal, CI's stable mode)."""
    from .core.render import stable
    report = progress(lab)
    try:
        import ipywidgets as w
        from IPython import get_ipython
    except ImportError:
        return report
    if stable() or get_ipython() is None:
        return report
    colours = {"done": "#1a7f37", "failed": "#cf222e", "not tried": "#57606a"}
    rows = []
    by_lab: dict[str, list[tuple]] = {}
    for row in report.rows:
        by_lab.setdefault(row[0], []).append(row)
    for topic, items in by_lab.items():
        done = sum(r[3] == "done" for r in items)
        bar = w.IntProgress(value=done, min=0, max=len(items), description=topic,
                            bar_style="success" if done == len(items) else "", layout=w.Layout(width="340px"))
        badges = w.HTML(" ".join(f"<span style='color:{colours[r[3]]}' title='{r[2]}'>● {r[1]}</span>" for r in items))
        button = w.Button(description="reset", tooltip=f"forget {topic}'s results and remove its containers and images",
                          layout=w.Layout(width="70px"))
        status = w.HTML()

        def on_reset(_, topic=topic, bar=bar, status=status):
            removed = reset(topic)
            bar.value = 0
            status.value = f"<em>reset: {removed} resource(s) removed</em>"
        button.on_click(on_reset)
        rows.append(w.HBox([bar, button, badges, status]))
    legend = ", ".join(f"<span style='color:{c}'>● {status}</span>" for status, c in colours.items())
    return w.VBox([w.HTML(f"<b>Your progress</b> ({legend})"), *rows])
