"""Checks of notebook 03 (build cache), and the small app the notebook builds."""
from __future__ import annotations

import datetime as dt
import secrets
import shutil
from pathlib import Path

from ..exercises import exercise
from ..predictions import question

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


@exercise("build-cache", "cache-order", "Order the Dockerfile so a source change rebuilds only the last two steps", (
    "A step's cache is lost as soon as a file it copied changes: which files does the slow step really need?",
    "The table 'What invalidates the cache' above: `COPY . .` also copies src/, so a source change re-runs "
    "everything after it. Copy in two steps, around RUN ./fetch-deps.",
    "WORKDIR /app, COPY deps.txt fetch-deps ./, RUN ./fetch-deps, then COPY src/ ./src/ and the last RUN and "
    "CMD unchanged.",
))
def cache_order(lab, dockerfile: str):
    lab.build("order", dockerfile, files=app_files(lab, "before"))
    report = lab.build("order", dockerfile, files=app_files(lab, "changed-" + secrets.token_hex(4)))
    slow = _slow_step(report)
    if slow is None:
        return False, f"No RUN ./fetch-deps step among the {len(report.steps)} steps of your Dockerfile: keep it."
    ran = [f"{s.index} {s.instruction[:40]}" for s in report.ran]
    if not slow.cached:
        return False, f"A source change re-ran the slow dependency step ({len(ran)} steps ran: {', '.join(ran)})."
    if len(ran) > 2:
        return False, f"The dependency step came from the cache, but a source change re-ran {len(ran)} steps: {', '.join(ran)}."
    return True, f"A source change re-ran only: {', '.join(ran)}; the dependency step came from the cache."


@exercise("build-cache", "cache-bust", "Re-run the dependency step when DEPS_DATE changes, and only then", (
    "Something in the dependency step's cache key must change when DEPS_DATE changes, and nothing else may.",
    "Section 1: a build argument in scope is part of the cache key of every RUN after its ARG line, so where "
    "the ARG line goes decides which steps re-run.",
    "Add `ARG DEPS_DATE` on the line just before `RUN ./fetch-deps`, in the ordered Dockerfile of exercise 1.",
))
def cache_bust(lab, dockerfile: str):
    date_a, date_b = "a-" + secrets.token_hex(3), "b-" + secrets.token_hex(3)
    lab.build("bust", dockerfile, files=app_files(lab, "one"), build_args={"DEPS_DATE": date_a})
    same = lab.build("bust", dockerfile, files=app_files(lab, "two"), build_args={"DEPS_DATE": date_a})
    changed = lab.build("bust", dockerfile, files=app_files(lab, "two"), build_args={"DEPS_DATE": date_b})
    slow_same, slow_changed = _slow_step(same), _slow_step(changed)
    if slow_same is None or slow_changed is None:
        return False, f"No RUN ./fetch-deps step among the {len(same.steps)} steps of your Dockerfile: keep it."
    if not slow_same.cached:
        ran = ", ".join(f"{s.index} {s.instruction[:30]}" for s in same.ran)
        return False, (f"With the same DEPS_DATE, a source change re-ran the dependency step (ran: {ran}): "
                       "keep the ordering of exercise 1.")
    if slow_changed.cached:
        ran = ", ".join(f"{s.index} {s.instruction[:30]}" for s in changed.ran) or "nothing"
        return False, (f"A new DEPS_DATE did not re-run the dependency step (ran: {ran}): the argument is not in "
                       "its cache key.")
    return True, "Same DEPS_DATE: the dependency step came from the cache; a new DEPS_DATE re-ran it."


@exercise("build-cache", "cache-image", "Publish the app with its cache to the registry, with the real commands", (
    "A fresh CI runner can only reuse what travels with the image: the cache metadata must be inside the image "
    "you push.",
    "Section 3 did it with lab.build(..., inline_cache=True) and registry.push(...): the docker CLI needs a build "
    "argument that BuildKit reads (BUILDKIT_...), a tag in the registry (registry.ref('app:main')) and a push.",
    "!docker build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 -t {registry.ref('app:main')} {app_dir} "
    "then !docker push --quiet {registry.ref('app:main')}",
))
def cache_image(lab, registry, ref: str = "app:main"):
    repo, tag = ref.rsplit(":", 1)
    if not registry.answers():
        return False, f"The registry at {registry.host} does not answer: run the cell of section 3 that starts it."
    try:
        catalog = {r: registry.tags(r) for r in registry.catalog()}
    except Exception as exc:  # noqa: BLE001 - a registry that answers /v2/ but not the catalog: say so
        return False, f"The registry at {registry.host} answered /v2/ but not its catalog: {exc}"
    held = "; ".join(f"{r}: {', '.join(t)}" for r, t in sorted(catalog.items())) or "nothing"
    if tag not in catalog.get(repo, []):
        return False, f"The registry holds {held}, but no {ref}: tag the image {registry.host}/{ref} and push it."
    config = registry.config(ref)
    steps = " ".join(h.get("created_by", "") for h in config.get("history", []))
    if "fetch-deps" not in steps:
        return False, f"Found {ref} in the registry, but it is not the app: its history has no fetch-deps step."
    if "moby.buildkit.cache.v0" not in config:
        return False, (f"Found the app as {ref} in the registry, but its config has no BuildKit cache metadata "
                       "(moby.buildkit.cache.v0): it was built without inline cache.")
    return True, f"{ref} is in the registry with BuildKit's cache metadata: a fresh builder can use it with --cache-from."


# --- the mission: a stamped build that never hits the cache ------------------------------------------

def stamped_dir(lab, project: str | Path | None = None) -> Path:
    """The session's working copy of the mission's project, copied once from `project`
    (assets/build-cache/stamped-app): the learner edits the copy, the assets stay as they are."""
    work = lab.state / "stamped-app"
    if project is not None and not work.exists():
        shutil.copytree(project, work)
    return work


def stamped_build(lab, app_dir: Path, tag: str = "stamped"):
    """What the project's build.sh does, through labkit (labelled, from the session's own base): write
    build-info.txt with the commit and the time, then build with --build-arg BUILD_DATE=<the time>."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    (Path(app_dir) / "build-info.txt").write_text(f"commit 3f2a9c1, built {now}\n")
    return lab.build(tag, context=app_dir, build_args={"BUILD_DATE": now})


@exercise("build-cache", "cache-stamp", "Mission: make the stamped app's rebuild hit the cache", (
    "Compare the second build with the first, step by step: the first step that did not come from the cache "
    "is where to look. What in its cache key changed, when the app did not?",
    "build.sh writes build-info.txt and passes BUILD_DATE before every build. Section 1: a COPY's key holds the "
    "checksum of every file it matches (what does `*.txt` match?), and a build argument in scope is part of "
    "the key of every RUN after its ARG line.",
    "In stamped_dir's Dockerfile: `COPY deps.txt fetch-deps ./` instead of `COPY *.txt fetch-deps ./`, and "
    "`ARG BUILD_DATE` moved down to just before the LABEL line. `COPY . .` after RUN ./fetch-deps still brings "
    "build-info.txt into the image.",
))
def cache_stamp(lab):
    app_dir = stamped_dir(lab)
    if not app_dir.is_dir():
        return False, "The project has not been copied yet: run the cell that calls stamped_dir(lab, ...)."
    if not (app_dir / "Dockerfile").is_file():
        return False, f"{app_dir}/Dockerfile is missing: write the project's Dockerfile back there."
    stamped_build(lab, app_dir)
    second = stamped_build(lab, app_dir)  # like CI: a new stamp, nothing else changed
    slow = _slow_step(second)
    if slow is None:
        return False, f"No RUN ./fetch-deps step among the {len(second.steps)} steps of the Dockerfile: keep it."
    if not slow.cached:
        first = min(second.ran, key=lambda s: int(s.index.split("/")[0]))
        why = ("a file it copies changed between the two builds" if first.instruction.split()[0] in ("COPY", "ADD")
               else "every step before it came from the cache, so something else in its cache key changed")
        return False, (f"The second build ran RUN ./fetch-deps again. The first step that ran: {first.index} "
                       f"{first.instruction[:50]} ({why}).")
    stamp = (app_dir / "build-info.txt").read_text().strip()
    date = stamp.rsplit(" ", 1)[-1]
    labels = lab.client.images.get(second.image_id).labels or {}
    if labels.get("org.opencontainers.image.created") != date:
        found = labels.get("org.opencontainers.image.created", "no such label")
        return False, (f"fetch-deps came from the cache, but the image's org.opencontainers.image.created label is "
                       f"{found!r}, not this build's time {date}: keep the stamp.")
    said = lab.run(second.image_id).stdout
    if stamp not in said:
        return False, (f"fetch-deps came from the cache and the label is right, but the app does not print this "
                       f"build's build-info.txt ({stamp!r}); it said: {said.strip()[:120]!r}")
    return True, ("A rebuild with a new stamp took RUN ./fetch-deps from the cache, and the image still carries "
                  "its own build's stamp (label and build-info.txt).")


# --- predict, then run ----------------------------------------------------------------------------

question("build-cache", "new-timestamps",
         "The next cell builds the same Dockerfile twice with the same files; labkit writes the build context "
         "afresh each time, so the second build sees every file with a new modification time. How many steps "
         "run in the second build?",
         ["all four: every file looks new", "the COPY and every step after it", "none: every step comes from the cache"],
         answer=2, why="BuildKit checksums the contents of the files a COPY reads, not their timestamps: the second "
                       "build took all four steps from the cache.")

question("build-cache", "shared-cache",
         "Another learner on this engine builds a two-step Dockerfile you have never built. A moment later you "
         "build the same Dockerfile with salt=False. How many of your steps run?",
         ["both: you never built it", "one: the slow step runs, the quick one is found",
          "none: both come from the cache their build filled"],
         answer=2, why="A cache key is made of contents only, not of who built the step: the other learner's build "
                       "filled the engine's cache, and both your steps were cache hits.")

question("build-cache", "cache-from",
         "The builder's cache was just wiped. It builds the app again with --cache-from the registry's app:cache "
         "(inline cache). How many of the five steps run?",
         ["all five: a wiped builder has nothing to reuse",
          "only the two RUN steps: the cache holds files, not command results",
          "none: each step is found in the image's cache metadata and its layer comes from the registry"],
         answer=2, why="With --cache-from, BuildKit matched every step's key against the cache metadata in "
                       "app:cache's config and pulled the layers it needed: nothing ran.")
