"""The learner's workspace: the learner edition of the notebooks (no reference solutions, no
answers in outputs) plus their assets, in a directory of the learner's own, updated from the
reference edition without ever losing what the learner wrote.

A manifest (`.labkit-workspace.json`) records what labkit last wrote to each file. On update, a
file missing in the workspace is written again; a file the learner did not change is replaced by
the new version; a file the learner changed is kept and the new version goes beside it
(`02-buildkit.new.ipynb`). For notebooks only the cell sources count as a change: running cells
and saving their outputs does not."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.render import Renderable, table

MANIFEST = ".labkit-workspace.json"
HIDDEN_TAGS = ("check", "reveals")  # outputs cleared in the learner edition: they give answers away
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
# What JupyterLab asks on a first start (news, update checks): a classroom answers once, here.
NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}
START_PAGE = "00-welcome.ipynb"


def default_workspace() -> Path:
    """$LABKIT_WORKSPACE, else ~/labkit-workspace."""
    return Path(os.environ.get("LABKIT_WORKSPACE") or Path.home() / "labkit-workspace").expanduser()


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def learner_edition(notebook: dict) -> dict:
    """The notebook without its `solution` cells, with the outputs of `check` and `reveals` cells
    cleared; every other cell (and the demos' outputs, which read well) stays."""
    nb = copy.deepcopy(notebook)
    cells = []
    for cell in nb.get("cells", []):
        tags = _tags(cell)
        if "solution" in tags:
            continue
        if cell.get("cell_type") == "code" and any(t in tags for t in HIDDEN_TAGS):
            cell["outputs"] = []
            cell["execution_count"] = None
        cells.append(cell)
    nb["cells"] = cells
    nb.setdefault("metadata", {})["labkit"] = {"edition": "learner"}
    return nb


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources_sha(data: bytes) -> str | None:
    """The digest of a notebook's cell types and sources (outputs, counts and metadata left out);
    None when the bytes are no notebook (then the whole file counts)."""
    try:
        cells = json.loads(data)["cells"]
        key = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in cells]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return _sha(json.dumps(key).encode())


def _same_work(a: bytes, b: bytes, notebook: bool) -> bool:
    if notebook:
        sa = sources_sha(a)
        return sa is not None and sa == sources_sha(b)
    return a == b


def notebook_bytes(nb: dict) -> bytes:
    # nbformat's own layout (indent 1, sorted keys, UTF-8), so a diff against a saved notebook stays small
    return (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def reference_files(reference: Path) -> dict[str, tuple[bytes, int]]:
    """What a workspace holds: relative path -> (content, file mode); notebooks as learner edition."""
    files: dict[str, tuple[bytes, int]] = {}
    for path in sorted(reference.glob("*.ipynb")):
        files[path.name] = (notebook_bytes(learner_edition(json.loads(path.read_text()))), 0o644)
    assets = reference / "assets"
    for path in sorted(assets.rglob("*")) if assets.is_dir() else []:
        rel = path.relative_to(reference)
        if path.is_file() and not SKIPPED_PARTS & set(rel.parts):
            files[rel.as_posix()] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Written whole to a temporary file beside it, then renamed: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_name(rel: str) -> str:
    """Where the new version of a file the learner changed goes: 02-buildkit.new.ipynb."""
    p = Path(rel)
    return (p.with_name(f"{p.stem}.new{p.suffix}") if p.suffix else p.with_name(p.name + ".new")).as_posix()


@dataclass
class WorkspaceReport(Renderable):
    workspace: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (the learner's file, the new version beside it)
    unchanged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("added", "updated", "kept", "unchanged")}

    def _render(self):
        def some(names: list[str]) -> str:
            return ", ".join(names[:6]) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")
        rows = [("added", len(self.added), some(self.added)),
                ("updated", len(self.updated), some(self.updated)),
                ("kept (yours)", len(self.kept), "\n".join(f"{a}: new version in {b}" for a, b in self.kept)),
                ("unchanged", len(self.unchanged), "")]
        return table(["files", "count", "which"], rows, title=f"Workspace {self.workspace}")


def _load_manifest(workspace: Path) -> dict[str, dict[str, str]]:
    try:
        return dict(json.loads((workspace / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def update(workspace: Path, reference: Path) -> WorkspaceReport:
    """Make or update `workspace` from the reference notebooks in `reference`; never deletes nor
    overwrites a file the learner changed."""
    workspace = Path(workspace).expanduser().resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    # relative path -> sha256 of what labkit last wrote there (and, for notebooks, of its cell sources)
    written = _load_manifest(workspace)
    report = WorkspaceReport(workspace)
    for rel, (data, mode) in reference_files(Path(reference)).items():
        target, new_sha = workspace / rel, _sha(data)
        notebook = rel.endswith(".ipynb")
        if not target.exists():
            write_atomic(target, data, mode)
            report.added.append(rel)
        else:
            current, entry = target.read_bytes(), written.get(rel, {})
            last = entry.get("sha256")
            sources = sources_sha(current) if notebook else None
            untouched = last is not None and (_sha(current) == last or (
                sources is not None and sources == entry.get("sources")))
            if last == new_sha:
                report.unchanged.append(rel)  # nothing new since labkit last wrote (or offered) it
            elif untouched:
                write_atomic(target, data, mode)
                report.updated.append(rel)
            elif _same_work(current, data, notebook):
                report.unchanged.append(rel)  # the learner's file already holds this version's work
            else:
                write_atomic(workspace / new_name(rel), data, mode)
                report.kept.append((rel, new_name(rel)))
        written[rel] = {"sha256": new_sha, **({"sources": sources_sha(data) or ""} if notebook else {})}
    write_atomic(workspace / MANIFEST, (json.dumps({"version": 1, "files": written}, indent=1, sort_keys=True)
                                        + "\n").encode())
    return report


# --- JupyterLab in the workspace --------------------------------------------------------------

def jupyter_dirs(workspace: Path) -> tuple[Path, Path]:
    """(user-settings dir, workspaces dir) under WORKSPACE/.jupyter: the learner's layout and
    settings live with their work."""
    base = Path(workspace) / ".jupyter" / "lab"
    return base / "user-settings", base / "workspaces"


def seed_jupyterlab(workspace: Path, start_page: str = START_PAGE) -> None:
    """Settings that keep JupyterLab quiet (no news, no update check) and a first layout that opens
    the start page; both only when absent, so what the learner changed or arranged stays."""
    settings, layouts = jupyter_dirs(workspace)
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    if not notification.exists():
        write_atomic(notification, (json.dumps(NOTIFICATION_SETTINGS, indent=2) + "\n").encode())
    # JupyterLab names the file of its "default" workspace (the one /lab opens) after its id
    default = layouts / f"default-{_sha(b'default')[:4]}.jupyterlab-workspace"
    if not default.exists() and (Path(workspace) / start_page).exists():
        widget = f"notebook:{start_page}"
        layout = {"data": {"layout-restorer:data": {"main": {"dock": {"type": "tab-area", "currentIndex": 0,
                                                                      "widgets": [widget]}, "current": widget},
                                                    "left": {"collapsed": False, "visible": True, "current": "filebrowser",
                                                             "widgets": ["filebrowser"]}},
                           widget: {"data": {"path": start_page, "factory": "Notebook"}}},
                  "metadata": {"id": "default"}}
        write_atomic(default, (json.dumps(layout, indent=1) + "\n").encode())


def jupyter_args(workspace: Path) -> list[str]:
    settings, layouts = jupyter_dirs(workspace)
    return [f"--ServerApp.root_dir={workspace}", f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={layouts}"]
