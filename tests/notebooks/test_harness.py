"""The harness itself must be able to fail: a skip is a skip, a check that cannot fail is caught."""
from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.notebooks.test_notebooks import Skipped, execute, verify_checks


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
        execute(nb, "harness-skip.ipynb", notebook_env, notebook_env)
    assert "no-such-tool-xyz" in str(exc.value)


def test_a_check_that_passes_without_its_solution_is_caught(notebook_env, docker_client):
    nb = notebook(("import labkit\nlab = labkit.Lab('welcome')", []),
                  ("lab.start('labkit/busybox', ['sh', '-c', 'echo hello, labs; sleep 60'], name='greeter')", []),
                  ("pass", ["solution"]),
                  ("lab.check('first-container')", ["check"]),
                  ("lab.cleanup()", []))
    executed, log, _ = execute(nb, "harness-weak.ipynb", notebook_env, notebook_env)
    with pytest.raises(AssertionError, match="cannot fail"):
        verify_checks(nb, log, "harness-weak")


def test_a_failing_cell_fails_the_notebook(notebook_env, docker_client):
    nb = notebook(("import labkit\nlab = labkit.Lab('welcome')", []),
                  ("lab.run('labkit/not-prepared', 'true')", []),
                  ("lab.cleanup()", []))
    with pytest.raises(AssertionError, match="ImageMissing"):
        execute(nb, "harness-error.ipynb", notebook_env, notebook_env)
