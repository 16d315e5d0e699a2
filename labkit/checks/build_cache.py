"""Checks of notebook 03 (build cache), and the small app the notebook builds."""
from __future__ import annotations

import secrets

from ..exercises import exercise

# Stands in for a package manager: "building" each dependency costs real CPU time (hashing 30 MB),
# because a training room may have no network to download from.
FETCH_DEPS = r"""#!/bin/sh
set -e
mkdir -p /opt/deps
while read -r pkg; do
  case "$pkg" in ""|\#*) continue;; esac
  head -c 30000000 /dev/urandom | gzip -1 | sha256sum | cut -c1-16 > "/opt/deps/$pkg"
  echo "built $pkg"
done < deps.txt
"""
DEPS = ["libfoo", "libbar", "libbaz", "libqux", "libquux", "libcorge"]


def app_files(lab, source: str = "v1", deps: list[str] | None = None) -> dict[str, str]:
    """The app's build context. deps.txt names the session, so this session's cache is its own
    (a cold build is really cold, and pruning the session's cache empties it)."""
    return {"deps.txt": f"# session {lab.session}\n" + "\n".join(deps or DEPS) + "\n",
            "fetch-deps": FETCH_DEPS,
            "src/app.sh": f"#!/bin/sh\necho hello from the app, source {source}\n"}


def _slow_step(report):
    return next((s for s in report.steps if "fetch-deps" in s.instruction and s.instruction.startswith("RUN")), None)


@exercise("build-cache", "cache-order", "Order the Dockerfile so a source change rebuilds only the last two steps",
          "Copy only what the slow step needs (deps.txt and fetch-deps) before it, and the source after it.")
def cache_order(lab, dockerfile: str):
    lab.build("order", dockerfile, files=app_files(lab, "before"))
    report = lab.build("order", dockerfile, files=app_files(lab, "changed-" + secrets.token_hex(4)))
    slow = _slow_step(report)
    if slow is None:
        return False, "Keep the RUN ./fetch-deps step."
    ran = [f"{s.index} {s.instruction[:40]}" for s in report.ran]
    if not slow.cached:
        return False, f"A source change re-ran the slow dependency step ({len(ran)} steps ran: {', '.join(ran)})."
    if len(ran) > 2:
        return False, f"A source change re-ran {len(ran)} steps: {', '.join(ran)}."
    return True, f"A source change re-ran only: {', '.join(ran)}; the dependency step came from the cache."


@exercise("build-cache", "cache-bust", "Re-run the dependency step when DEPS_DATE changes, and only then",
          "Declare ARG DEPS_DATE just before RUN ./fetch-deps: a build argument in scope is part of the "
          "cache key of every RUN after it.")
def cache_bust(lab, dockerfile: str):
    date_a, date_b = "a-" + secrets.token_hex(3), "b-" + secrets.token_hex(3)
    lab.build("bust", dockerfile, files=app_files(lab, "one"), build_args={"DEPS_DATE": date_a})
    same = lab.build("bust", dockerfile, files=app_files(lab, "two"), build_args={"DEPS_DATE": date_a})
    changed = lab.build("bust", dockerfile, files=app_files(lab, "two"), build_args={"DEPS_DATE": date_b})
    slow_same, slow_changed = _slow_step(same), _slow_step(changed)
    if slow_same is None or slow_changed is None:
        return False, "Keep the RUN ./fetch-deps step."
    if not slow_same.cached:
        return False, "The dependency step re-ran on a source change too: keep the ordering of exercise 1."
    if slow_changed.cached:
        return False, "A new DEPS_DATE did not re-run the dependency step: the argument is not in its cache key."
    return True, "Same DEPS_DATE: the dependency step came from the cache; a new DEPS_DATE re-ran it."
