"""The harness itself must be able to fail: a skip is a skip, a check that cannot fail is caught."""
from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from labkit.verify import Skipped, execute, verify_checks


def notebook(*cells):
    nb = new_notebook(cells=[new_code_cell(src) for src, _ in cells])
    for cell, (_, tags) in zip(nb.cells, cells):
        cell.metadata["tags"] = tags
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_missing_capability_is_reported_as_skipped(notebook_env, docker_client):
    nb = notebook(("import labkit\nlab = labkit.Lab('welcome')\nlab.require('no-such-tool-xyz')", []),
                  ("raise RuntimeError('must not run')", []))
    with pytest.raises(Skipped) as exc:
        execute(nb, "harness-skip.ipynb", notebook_env, notebook_env, notebook_env / "out")
    assert "no-such-tool-xyz" in str(exc.value)


def test_a_check_that_passes_without_its_solution_is_caught(notebook_env, docker_client):
    nb = notebook(("import labkit\nlab = labkit.Lab('welcome')", []),
                  ("lab.start('labkit/busybox', ['sh', '-c', 'echo hello, labs; sleep 60'], name='greeter')", []),
                  ("pass", ["solution"]),
                  ("lab.check('first-container')", ["check"]),
                  ("lab.cleanup()", []))
    executed, report, _ = execute(nb, "harness-weak.ipynb", notebook_env, notebook_env, notebook_env / "out")
    with pytest.raises(AssertionError, match="cannot fail"):
        verify_checks(nb, report["checks"], "harness-weak")
    assert report["images"] == ["labkit/busybox:latest"] and report["peak_rss_kb"] > 10_000


def test_a_failing_cell_fails_the_notebook(notebook_env, docker_client):
    nb = notebook(("import labkit\nlab = labkit.Lab('welcome')", []),
                  ("lab.run('labkit/not-prepared', 'true')", []),
                  ("lab.cleanup()", []))
    with pytest.raises(AssertionError, match="ImageMissing"):
        execute(nb, "harness-error.ipynb", notebook_env, notebook_env, notebook_env / "out")


def test_a_hanging_cell_is_reported_and_the_run_goes_on(notebook_env, docker_client):
    nb = notebook(("import time\ntime.sleep(30)", []))
    with pytest.raises(AssertionError, match="did not finish|failed in cell"):
        execute(nb, "harness-hang.ipynb", notebook_env, notebook_env, notebook_env / "out", timeout=2)


def test_report_and_readme_durations(tmp_path):
    from labkit import verify
    results = [verify.Result("00-welcome", "passed", seconds=3.2, checks=1, images=["labkit/busybox:latest"],
                             peak_rss_mb=120, executed=str(tmp_path / "00-welcome.ipynb")),
               verify.Result("05-privileged", "skipped", reason="needs privileged")]
    page = verify.write_reports(results, tmp_path).read_text()
    assert "1 passed, 0 failed, 1 skipped" in page and "needs privileged" in page and "00-welcome.ipynb" in page
    readme = tmp_path / "README.md"
    readme.write_text("| 00 | welcome | run cells | keynote | 10 min | 2 s |\n| 05 | privileged | x | y | 25 min | 15 s |\n")
    assert verify.update_readme(readme, results) == 1
    assert "| 00 | welcome | run cells | keynote | 10 min | 3 s |" in readme.read_text()
    assert "| 05 | privileged | x | y | 25 min | 15 s |" in readme.read_text()
