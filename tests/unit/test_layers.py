"""The shape of labkit (README, "How labkit is built"): layers that only import downwards (checked by
import-linter, and proven to catch an upward import), no import cycle, small modules, and no private
name used across modules."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "labkit"
LINT = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 400


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)


def test_the_layer_contract_holds():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_layer_contract_catches_an_upward_import(tmp_path):
    copy = tmp_path / "labkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    session = copy / "core" / "session.py"
    session.write_text(session.read_text() + "\nfrom labkit import lab  # an upward import\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "labkit.core.session" in result.stdout and "labkit.lab" in result.stdout


def test_no_import_cycle():
    graph = grimp.build_graph("labkit", include_external_packages=False, exclude_type_checking_imports=False)
    modules = sorted(graph.modules)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in modules:
        if m not in state and (cycle := visit(m)):
            # a package's __init__ importing its own modules is no cycle of code
            assert cycle[0] == "labkit" or all(c.startswith("labkit.checks") for c in cycle), " -> ".join(cycle)


def test_no_module_is_over_400_lines():
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big


def test_no_private_name_crosses_modules():
    crossings = []
    module_names = {p.stem for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {}  # local name -> labkit module imported as a whole
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("labkit")):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name != "__version__":
                        crossings.append(f"{path.relative_to(REPO)}: from {node.module} import {alias.name}")
                    if alias.name in module_names:
                        modules[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                crossings.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not crossings, "\n".join(crossings)


def test_no_docker_sdk_internals():
    used = [f"{p.relative_to(REPO)}:{i}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if ".api._" in line]
    assert not used, used
