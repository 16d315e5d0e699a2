"""Detached watchdog: `python -m labkit.watchdog SESSION PID`. When the kernel process PID dies
(nbval SIGKILLs kernels, so atexit never runs), remove everything labelled with SESSION.

Dead means: no such process, a zombie (a SIGKILLed kernel its parent has not reaped yet keeps its
pid and start time, with state Z), or another process under the same pid (another start time).
When the engine does not answer at that moment (it is restarting, or stopped), the watchdog tries
again until it does, for ENGINE_WAIT seconds at most; it never crashes on it. If the engine stays
away longer, the session's state directory stays too, so `labkit clean` finds the leftovers later."""
from __future__ import annotations

import os
import shutil
import sys
import time

POLL = 0.5  # seconds; leftovers go within about a second of the kernel's death
ENGINE_WAIT = float(os.environ.get("LABKIT_WATCHDOG_ENGINE_WAIT", 900))  # seconds: an engine restart, generously
RETRY = 1.0  # seconds between two tries while the engine is away


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), message, file=sys.stderr, flush=True)


def wait_for_death(pid: int) -> None:
    from .core.reaper import wait_for_death as wait
    wait(pid, POLL)


def remove_when_engine_answers(session: str, wait: float = ENGINE_WAIT) -> bool:
    """Remove the session's leftovers, retrying while the engine does not answer; True when done."""
    import docker
    import requests

    from . import buildcache
    from .core import engine
    from .core.errors import LabkitError
    from .core.reaper import remove_session
    from .core.session import state_dir
    deadline = time.monotonic() + wait
    tries = 0
    while True:
        tries += 1
        try:
            remove_session(engine.client(), session)
        except (LabkitError, docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            reason = str(exc).splitlines()[0]
            if time.monotonic() + RETRY > deadline:
                log(f"gave up after {tries} tries: {reason} ({state_dir() / session} kept for `labkit clean`)")
                return False
            if tries == 1:
                log(f"the engine does not answer ({reason}); retrying every {RETRY:.0f} s for {wait:.0f} s")
            time.sleep(RETRY)
            continue
        if tries > 1:
            log(f"removed the leftovers of {session} at try {tries}")
        shutil.rmtree(state_dir() / session, ignore_errors=True)
        return True


def main(argv: list[str]) -> int:
    session, pid = argv[0], int(argv[1])
    wait_for_death(pid)
    return 0 if remove_when_engine_answers(session) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
