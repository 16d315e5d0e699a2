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


NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def _cells(path):
    import json
    return json.loads(path.read_text())["cells"]


def test_every_notebook_follows_the_skeleton():
    from labkit.notebook import AGENDA
    readme = (REPO / "README.md").read_text()
    agenda = {f"{n}-{stem}" for n, stem, _, _ in AGENDA}
    assert NOTEBOOKS, "no notebooks"
    for path in NOTEBOOKS:
        topic = path.stem[3:]
        cells = _cells(path)
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        tags = [c.get("metadata", {}).get("tags", []) for c in cells]
        assert any(f'labkit.Lab("{topic}"' in src for src in code), f"{path.name}: no Lab({topic!r})"
        assert any("check" in t for t in tags), f"{path.name}: no exercise check"
        assert any("solution" in t for t in tags), f"{path.name}: no reference solution"
        assert code[-1].strip() == "lab.cleanup()", f"{path.name}: the last code cell must be lab.cleanup()"
        assert f"| {path.stem[:2]} | {topic}" in readme.replace("`", ""), f"{path.name}: no row in the README agenda"
        assert path.stem in agenda, f"{path.name}: not in labkit.notebook.AGENDA"
        assert json_kernelspec(path), f"{path.name}: no kernelspec metadata"
        if any("assets/" in src for src in code):
            assert (REPO / "notebooks" / "assets" / topic).is_dir(), f"{path.name}: uses assets but has no assets/{topic}/"
        for src in code:
            for ref in re.findall(r"assets/[\w./-]+", src):
                assert (REPO / "notebooks" / ref).exists(), f"{path.name}: {ref} does not exist"


def json_kernelspec(path) -> bool:
    import json
    return json.loads(path.read_text()).get("metadata", {}).get("kernelspec", {}).get("name") == "python3"


def test_every_check_cell_follows_a_solution():
    for path in NOTEBOOKS:
        pending = 0
        for cell in _cells(path):
            tags = cell.get("metadata", {}).get("tags", [])
            if "solution" in tags:
                pending += 1
            if "check" in tags:
                assert pending <= 1, f"{path.name}: two solutions before one check"
                pending = 0
        assert pending == 0, f"{path.name}: a solution without a check after it"
