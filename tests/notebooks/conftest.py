from tests.notebooks.test_notebooks import notebook_env  # noqa: F401  (shared fixture)
