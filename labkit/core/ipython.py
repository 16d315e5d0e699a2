"""In a notebook, a LabkitError shows as a short callout instead of a traceback wall, and a skip as
a banner that stops the notebook without an error."""
from __future__ import annotations

from typing import Any

_installed = False
SKIP_KEY = "labkit"  # a skip banner's output metadata: {"labkit": {"skipped": "<reason and hint>"}}


def skip_reason(cell: Any) -> str | None:
    """The reason of the skip banner an executed cell shows, if it does (labkit verify)."""
    for out in cell.get("outputs", []):
        skipped = (out.get("metadata") or {}).get(SKIP_KEY, {}).get("skipped")
        if skipped:
            return skipped
    return None


def _show_labkit_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    from IPython.display import display

    from .errors import LabSkipped
    if isinstance(value, LabSkipped):
        # A skip is no error: its banner is the cell's whole visible output. The cell still fails
        # (the kernel replies "error"), so Run All and papermill stop here. The one error output is
        # an empty SystemExit, papermill's sign of a deliberate stop: it then writes no error banner
        # into the notebook and exits 0, and a committed skipped notebook shows no error.
        # `labkit verify` recognises the skip by the banner's metadata (skip_reason).
        display(value._render().bundle(), raw=True, metadata={SKIP_KEY: {"skipped": str(value)}})
        shell._showtraceback(SystemExit, SystemExit(), [])
        return []
    display(value._render())  # type: ignore[attr-defined]
    # Still emit an error output (one line, not a traceback wall): papermill and nbval only see
    # a failed cell, and its ename, through that output.
    stb = [f"{etype.__name__}: {getattr(value, 'message', value)}"]
    shell._showtraceback(etype, value, stb)
    return stb


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


def in_kernel() -> bool:
    """Is this code running in an IPython kernel (a notebook), where shell cells exist?"""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"
