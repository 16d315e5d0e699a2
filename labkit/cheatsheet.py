"""The cheat sheet: every `equivalent: ...` command line the committed notebooks show, per topic, as
markdown (docs/cheatsheet.md). `python -m labkit.cheatsheet` writes it; `make notebooks` runs that
after re-executing the notebooks, and a unit test checks that the committed file is current."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from .core.render import masked

REPO = Path(__file__).resolve().parents[1]
PREFIX = "equivalent:"


def title(nb: dict[str, Any], default: str) -> str:
    """The notebook's first markdown heading, without its #s."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _lines(cell.get("source", "")):
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def commands(nb: dict[str, Any]) -> list[str]:
    """The `equivalent: ...` lines of the notebook's text/plain outputs, in order, without repeats."""
    seen: dict[str, None] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            for line in _lines(output.get("data", {}).get("text/plain", "")):
                line = line.strip()
                if line.startswith(PREFIX):
                    # a value that differs per run (a token, a digest) as "…": the sheet stays the same
                    seen.setdefault(masked(line[len(PREFIX):].strip().strip("`")), None)
    return [c for c in seen if c]


def _lines(source: str | Iterable[str]) -> list[str]:
    return ("".join(source) if not isinstance(source, str) else source).splitlines()


def _code(command: str) -> str:
    """A table cell's code span (a pipe inside a table cell needs its backslash even in code)."""
    text = f"`` {command} ``" if "`" in command else f"`{command}`"
    return text.replace("|", "\\|")


def markdown(topics: Iterable[tuple[str, list[str]]]) -> str:
    out = ["# Cheat sheet: the commands behind the labs", "",
           "Every labkit call that stands for a CLI command shows its equivalent command line under its "
           "result. These are the ones the committed notebooks show, per lab (placeholders such as "
           "`lab-<session>-app` stand for names that differ per run). Regenerate with "
           "`python -m labkit.cheatsheet`."]
    for name, cmds in topics:
        if cmds:
            out += ["", f"## {name}", "", "| command |", "|---|"]
            out += [f"| {_code(c)} |" for c in cmds]
    return "\n".join(out) + "\n"


def generate(notebooks_dir: str | os.PathLike) -> str:
    """The cheat sheet of the notebooks NN-*.ipynb in `notebooks_dir`, in their order."""
    topics = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]-*.ipynb")):
        nb = json.loads(path.read_text())
        topics.append((title(nb, path.stem), commands(nb)))
    return markdown(topics)


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m labkit.cheatsheet",
                                description="Write the cheat sheet (one table per lab) from the equivalent command "
                                            "lines the committed notebooks show.")
    p.add_argument("notebooks", nargs="?", default=str(REPO / "notebooks"), help="default: %(default)s")
    p.add_argument("out", nargs="?", default=str(REPO / "docs" / "cheatsheet.md"), help="default: %(default)s")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(generate(args.notebooks))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
