"""Detached watchdog: `python -m labkit.watchdog SESSION PID`. When the kernel process PID dies
(nbval SIGKILLs kernels, so atexit never runs), remove everything labelled with SESSION."""
from __future__ import annotations

import shutil
import sys
import time

POLL = 0.5  # seconds; leftovers go within about a second of the kernel's death


def main(argv: list[str]) -> int:
    session, pid = argv[0], int(argv[1])
    from .cleanup import _start_time, remove_session, state_dir
    start = _start_time(pid)
    while start is not None and _start_time(pid) == start:
        time.sleep(POLL)
    from . import engine
    try:
        remove_session(engine.client(), session)
    finally:
        shutil.rmtree(state_dir() / session, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
