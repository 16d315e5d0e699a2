"""README, environment.yml, binder/ and pyproject.toml stay in step."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pyproject_deps() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = set(data["dependencies"])
    for extra in data["optional-dependencies"].values():
        deps |= set(extra)
    return deps


def _env_pip_deps(path: Path) -> set[str]:
    deps, in_pip = set(), False
    for line in path.read_text().splitlines():
        if re.match(r"\s+- pip:\s*$", line):
            in_pip = True
            continue
        if in_pip:
            m = re.match(r"\s{6}- (.+)$", line)
            if not m:
                break
            if not m.group(1).startswith("-e"):
                deps.add(m.group(1).strip())
    return deps


def test_environment_files_match_pyproject():
    deps = _pyproject_deps()
    assert _env_pip_deps(REPO / "environment.yml") == deps
    assert _env_pip_deps(REPO / "binder" / "environment.yml") == deps


def test_binder_installs_labkit_and_host_tools():
    assert "pip install" in (REPO / "binder" / "postBuild").read_text()
    apt = set((REPO / "binder" / "apt.txt").read_text().split())
    script = (REPO / "scripts" / "setup-host.sh").read_text()
    host = set(re.search(r"HOST_PACKAGES=\(([^)]*)\)", script).group(1).split())
    assert host <= apt


def test_readme_has_the_two_commands_and_ci_calls_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
