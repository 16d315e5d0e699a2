"""README, environment.yml, binder/, requirements.lock, the Makefile and pyproject.toml stay in step."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Callable

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def parse_lock(text: str) -> dict[str, list[tuple[Version, str, int]]]:
    """A hashed requirements file (uv's or pip-compile's format): canonical name -> its pins, each
    (version, environment marker or "", number of --hash options). A package pinned once per Python
    range (universal lock) has several pins."""
    pins: dict[str, list[tuple[Version, str, int]]] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():  # join continuation lines
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = re.split(r"\s+(?=--)", line)
        req = Requirement(requirement)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        assert len(exact) == 1, f"requirements.lock: {requirement!r} is not pinned with =="
        pins.setdefault(canonicalize_name(req.name), []).append(
            (Version(exact[0]), str(req.marker or ""), sum(o.startswith("--hash=") for o in options)))
    return pins


def _installed_requires(name: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError, requires
    try:
        return requires(name) or []
    except PackageNotFoundError:
        return []


def lock_problems(project: dict, lock_text: str,
                  requires: Callable[[str], list[str]] = _installed_requires) -> list[str]:
    """Why the lock does not install what pyproject.toml's [project] asks for, one line per problem,
    each naming the package: a dependency (of the base set or of any extra) missing from the lock,
    pinned outside its specifier, or pinned without a hash; a package the lock pins with no hash; and,
    for a dependency asked for with extras (`pkg[extra]`), the packages those extras add (read from
    `requires`, the installed package's metadata, for this Python) missing from the lock."""
    locked = parse_lock(lock_text)
    wanted = [(Requirement(r), "dependencies") for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        wanted += [(Requirement(r), f"extra '{extra}'") for r in reqs]
    problems = []
    for req, where in wanted:
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req.name}: pyproject.toml ({where}) asks for {req}, requirements.lock does not pin it")
            continue
        for version, marker, _ in locked[name]:
            if not req.specifier.contains(version, prereleases=True):
                on = f" (for {marker})" if marker else ""
                problems.append(f"{req.name}: requirements.lock pins {version}{on}, outside pyproject.toml's "
                                f"{req.name}{req.specifier} ({where})")
        for extra in sorted(req.extras):
            for line in requires(req.name):
                sub = Requirement(line)
                added = sub.marker and sub.marker.evaluate({"extra": extra}) and not sub.marker.evaluate({"extra": ""})
                if added and canonicalize_name(sub.name) not in locked:
                    problems.append(f"{sub.name}: needed by {req.name}[{extra}] ({where}), requirements.lock "
                                    "does not pin it")
    for name, entries in sorted(locked.items()):
        for version, _, hashes in entries:
            if not hashes:
                problems.append(f"{name}=={version}: requirements.lock has no --hash for it "
                                "(pip --require-hashes refuses the whole file)")
    return problems


def test_lock_pins_every_pyproject_dependency_with_hashes():
    problems = lock_problems(_pyproject()["project"], LOCK.read_text())
    assert not problems, "requirements.lock is out of step with pyproject.toml (run `make lock`):\n" + "\n".join(problems)


def test_lock_has_packaging_which_these_tests_use():
    assert "packaging" in parse_lock(LOCK.read_text())


PROJECT = {"dependencies": ["docker>=7.0", "tqdm>=4.60"],
           "optional-dependencies": {"lab": ["jupyterlab>=4.0"], "test": ["requests[socks]>=2.0"]}}
H = " \\\n    --hash=sha256:" + "0" * 64
GOOD = (f"docker==7.2.0{H}\n    # via labkit\ntqdm==4.70.1{H}\njupyterlab==4.6.6 ; python_full_version >= '3.11'{H}\n"
        f"jupyterlab==4.2.0 ; python_full_version < '3.11'{H}\nrequests==2.34.2{H}\npysocks==1.7.1{H}\n")


def _requires(name):
    return {"requests": ["idna<4,>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"']}.get(name, [])


def test_lock_comparison_accepts_a_matching_lock():
    assert lock_problems(PROJECT, GOOD, _requires) == []


@pytest.mark.parametrize("broken, package, why", [
    (GOOD.replace(f"tqdm==4.70.1{H}\n", ""), "tqdm", "does not pin it"),
    (GOOD.replace("docker==7.2.0", "docker==6.1.3"), "docker", "pins 6.1.3, outside pyproject.toml's docker>=7.0"),
    (GOOD.replace("jupyterlab==4.2.0", "jupyterlab==3.6.8"), "jupyterlab", 'pins 3.6.8 (for python_full_version < "3.11")'),
    (GOOD.replace(f"tqdm==4.70.1{H}", "tqdm==4.70.1"), "tqdm", "no --hash"),
    (GOOD.replace(f"pysocks==1.7.1{H}\n", ""), "PySocks", "needed by requests[socks]"),
])
def test_lock_comparison_names_the_package(broken, package, why):
    problems = lock_problems(PROJECT, broken, _requires)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{package}") and why in problems[0], problems[0]


def test_lock_comparison_refuses_an_unpinned_line():
    with pytest.raises(AssertionError, match="tqdm>=4"):
        parse_lock(GOOD.replace("tqdm==4.70.1", "tqdm>=4.60"))


def test_make_lock_resolves_every_extra_for_every_supported_python():
    """`make lock` is the documented refresh: it must cover every extra and the oldest supported Python."""
    project = _pyproject()["project"]
    recipe = re.search(r"^lock:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1)
    for extra in project["optional-dependencies"]:
        assert f"--extra {extra}" in recipe, f"make lock leaves out the extra {extra!r}"
    oldest = re.fullmatch(r">=\s*([\d.]+)", project["requires-python"]).group(1)
    assert f"--python-version {oldest}" in recipe and "--universal" in recipe and "--generate-hashes" in recipe


def test_make_installs_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    stamps = re.findall(r"^\$\(VENV\)/\.installed:([^|\n]*)", makefile, re.M)
    assert len(stamps) == 2, "one .installed rule per INSTALLER (uv, pip)"
    for prerequisites in stamps:
        assert set(prerequisites.split()) >= {"requirements.lock", "pyproject.toml"}
    assert "pip install -q --require-hashes -r requirements.lock" in makefile
    assert "pip sync --python $(PY) --require-hashes requirements.lock" in makefile
    assert makefile.count("--no-deps -e .") == 2, "labkit itself: editable, no dependencies beyond the lock"


def _env_pip_lines(path: Path) -> list[str]:
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    return []


@pytest.mark.parametrize("env", ["environment.yml", "binder/environment.yml"])
def test_environment_files_install_the_lock(env):
    """conda and micromamba write the pip section to a file in the environment file's folder and run pip
    there, so `-r PATH` is relative to that folder. Nothing else may be listed: a package named there
    would escape the lock, and an editable line makes pip refuse the hashed lock."""
    path = REPO / env
    lines = _env_pip_lines(path)
    assert len(lines) == 1 and re.fullmatch(r"-r \S+", lines[0]), f"{env}: the pip section must be only `-r <lock>`: {lines}"
    assert (path.parent / lines[0].split()[1]).resolve() == LOCK, f"{env}: {lines[0]} is not {LOCK.relative_to(REPO)}"


def test_binder_installs_labkit_and_host_tools():
    assert re.search(r"^pip install --no-deps -e \.$", (REPO / "binder" / "postBuild").read_text(), re.M)
    apt = set((REPO / "binder" / "apt.txt").read_text().split())
    script = (REPO / "scripts" / "setup-host.sh").read_text()
    host = set(re.search(r"HOST_PACKAGES=\(([^)]*)\)", script).group(1).split())
    assert host <= apt


def test_bundle_wheels_need_the_lock_and_say_how_to_install(monkeypatch, tmp_path):
    from labkit import bundle
    from labkit.core.errors import LabkitError
    assert bundle.lock_file() == LOCK
    assert "pip install --no-index --find-links wheels --require-hashes -r requirements.lock" in bundle.INSTALL_WHEELS
    monkeypatch.setattr(bundle, "REPO", tmp_path)
    with pytest.raises(LabkitError) as missing:
        bundle.export(tmp_path / "b", [], wheels=True, client=object())
    assert "requirements.lock" in missing.value.message
    assert str(missing.value).splitlines()[-1].startswith("Hint: ") and "make setup" in missing.value.hint


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


def test_committed_checks_show_a_pass():
    """A committed check output that says "Not yet" means the notebook was executed with a broken
    check or solution: CI would then compare against the wrong output."""
    import json
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if "check" not in cell.get("metadata", {}).get("tags", []) or not cell.get("outputs"):
                continue
            text = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in cell["outputs"])
            assert "Passed" in text, f"{path.name}: a committed check output does not pass:\n{text[:300]}"
