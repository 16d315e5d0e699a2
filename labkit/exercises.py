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
from typing import Any, Callable, Protocol

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
    hint: str
    fn: CheckFn


EXERCISES: dict[tuple[str, str], Exercise] = {}
LISTENERS: list[Callable[["CheckResult"], None]] = []  # told of every check result (labkit verify, a roster)
_loaded = False


def subscribe(listener: Callable[["CheckResult"], None]) -> None:
    """Call `listener` with every check result from now on, in this process."""
    LISTENERS.append(listener)


def exercise(lab: str, id: str, title: str, hint: str) -> Callable[[CheckFn], CheckFn]:
    """Declare a check: the function gets the Lab and the learner's arguments, and returns
    (passed, message) after looking at the real state."""
    def register(fn: CheckFn) -> CheckFn:
        EXERCISES[(lab, id)] = Exercise(lab, id, title, hint, fn)
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


def run_check(lab: Checked, exercise_id: str, **kwargs: Any) -> CheckResult:
    exercises = load_all()
    ex = exercises.get((lab.topic, exercise_id))
    if ex is None:
        known = ", ".join(i for (t, i) in exercises if t == lab.topic) or "none"
        raise CheckError(f"Lab {lab.topic!r} has no exercise {exercise_id!r} (its exercises: {known}).")
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


# --- progress store ------------------------------------------------------------------------

def progress_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "labkit" / "progress.json"


def load_progress() -> dict[str, dict[str, dict[str, Any]]]:
    try:
        return json.loads(progress_file().read_text())
    except (OSError, ValueError):
        return {}


def record(lab: str, exercise_id: str, passed: bool) -> None:
    data = load_progress()
    entry = data.setdefault(lab, {}).setdefault(exercise_id, {"attempts": 0, "status": "not tried"})
    entry["attempts"] += 1
    # once done, stays done: a later failing re-run of the cell does not erase the achievement
    entry["status"] = "done" if passed or entry["status"] == "done" else "failed"
    entry["last"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    _save_progress(data)


def _save_progress(data: dict) -> None:
    path = progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")  # written whole, then renamed: a crash never leaves half a file
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


@dataclass
class Progress(Renderable):
    rows: list[tuple[str, str, str, str, int]]

    def to_json(self) -> list[dict[str, Any]]:
        return [dict(zip(("lab", "exercise", "title", "status", "attempts"), r)) for r in self.rows]

    def _render(self):
        return table(["lab", "exercise", "title", "status", "attempts"], self.rows, title="Your progress",
                     status_column="status")


def progress(lab: str | None = None) -> Progress:
    data = load_progress()
    rows = []
    for (topic, ex_id), ex in sorted(load_all().items()):
        if lab and topic != lab:
            continue
        entry = data.get(topic, {}).get(ex_id, {})
        rows.append((topic, ex_id, ex.title, entry.get("status", "not tried"), entry.get("attempts", 0)))
    return Progress(rows)


# --- the dashboard ---------------------------------------------------------------------------

def reset(lab_topic: str) -> int:
    """Forget one lab's results and remove its resources (every session of that lab); how many
    resources were removed."""
    data = load_progress()
    data.pop(lab_topic, None)
    _save_progress(data)
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
