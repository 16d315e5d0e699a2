"""Notebook integration: LabkitError shows as a short callout instead of a traceback wall."""
from __future__ import annotations

from typing import Any

_installed = False


def _show_labkit_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    from IPython.display import display
    display(value)
    # A one-line error output still marks the cell as failed for papermill/nbval, with its ename.
    return [f"{etype.__name__}: {getattr(value, 'message', value)}"]


def install_error_display() -> bool:
    """Register the callout renderer for LabkitError in the running IPython kernel, if any."""
    global _installed
    if _installed:
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from .errors import LabkitError
    shell.set_custom_exc((LabkitError,), _show_labkit_error)
    _installed = True
    return True
