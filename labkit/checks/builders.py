"""Checks and questions of notebook 11 (image builders and reproducible builds)."""
from __future__ import annotations

import datetime as dt
import time

from ..builders import Buildah, BuilderRun
from ..core.render import volatile
from ..exercises import exercise
from ..predictions import question

APP = {"app.sh": "#!/bin/sh\necho hello from the app\n"}

question("builders", "buildah-twice", "buildah builds the same Dockerfile twice, a second apart: once as it is, once "
         "with --timestamp SOURCE_DATE_EPOCH. Do the two builds of each pair get the same digest?",
         ["yes, both pairs: same inputs, same image",
          "not without a timestamp; yes with SOURCE_DATE_EPOCH",
          "neither pair: the RUN step runs again and writes its file anew"], answer=1,
         why="Without a timestamp the created time and the file times are the moment of the build; --timestamp fixes "
             "both, and the RUN step writes the same bytes each time.")
question("builders", "engine-twice", "The engine's own BuildKit builds the same Dockerfile twice with --no-cache, a "
         "second apart, without SOURCE_DATE_EPOCH. Same image id both times?",
         ["yes: BuildKit builds are reproducible by default",
          "no: the image records when it was built",
          "yes, but only where BuildKit is the default builder (Docker 23.0 and later)"], answer=1,
         why="The image id is the digest of its config, and the config's created time (and the history) is the "
             "time of the build, on every Docker version.")


@exercise("builders", "reproducible", "Make the build reproducible", hints=(
    "Two things change from one build to the next: the image's own created time, and what the RUN step writes. "
    "Both must come from a fixed input instead of the clock.",
    "Section 3 fixed the first with `timestamp=`; for the second, a build argument (ARG in the Dockerfile, "
    "`build_args=` in the options) can carry SOURCE_DATE_EPOCH into the RUN step, and `date -d @SECONDS` prints it.",
    "Add `ARG SOURCE_DATE_EPOCH`, write `$(date -u -d @$SOURCE_DATE_EPOCH)`, and set my_options = "
    "{'timestamp': SOURCE_DATE_EPOCH, 'build_args': {'SOURCE_DATE_EPOCH': str(SOURCE_DATE_EPOCH)}}.",
))
def reproducible(lab, dockerfile: str, options: dict | None = None):
    options = dict(options or {})
    unknown = set(options) - {"timestamp", "build_args"}
    if unknown:
        return False, f"options may hold timestamp and build_args only, not {', '.join(sorted(unknown))}."
    if "/build-info" not in dockerfile:
        return False, "Your Dockerfile no longer writes /build-info: keep the build date, taken from SOURCE_DATE_EPOCH."
    buildah = Buildah(lab)
    first = buildah.build("repro-check-1", dockerfile, APP, **options)
    time.sleep(1.1)  # a second later: any wall-clock time that leaks in changes the digest
    second = buildah.build("repro-check-2", dockerfile, APP, **options)
    if first.digest != second.digest:
        if first.created != second.created:
            what = f"the created time changed: {first.created} then {second.created}"
        else:
            changed = sum(a != b for a, b in zip(first.layers, second.layers)) + abs(len(first.layers) - len(second.layers))
            what = f"the created time is fixed, but {changed} layer(s) differ: a step still writes the moment it ran"
        return False, f"Two builds a second apart have different digests ({what})."
    return True, f"Two builds a second apart have the same digest ({volatile(first.digest[:19] + '…')})."


@exercise("builders", "daemonless", "Publish an image built without a daemon and without root", hints=(
    "Section 1 already built as the unprivileged user; this time keep what the build returns, and send that "
    "image to the registry.",
    "`unprivileged` (builders.Buildah(lab, rootless=True), section 1) has build(tag, dockerfile, files), which "
    "returns a BuilderRun, and push(run, registry, name).",
    "run = unprivileged.build('daemonless', dockerfile, app); unprivileged.push(run, registry, 'daemonless:1')",
))
def daemonless(lab, registry, run: BuilderRun | None = None):
    if run is None:
        return False, "run is None: keep the BuilderRun your build returns in run and pass it to the check."
    if not run.unprivileged:
        return False, f"That build ran as {run.user} (uid 0): build with `unprivileged`, as the lab user."
    if "daemonless" not in registry.catalog() or "1" not in registry.tags("daemonless"):
        return False, f"The registry has no daemonless:1 yet (it holds: {registry.holds()}): push your build there."
    manifest, _ = registry.manifest("daemonless:1")
    labels = (registry.config("daemonless:1").get("config") or {}).get("Labels") or {}
    if "io.buildah.version" not in labels:
        return False, f"daemonless:1 was not built by buildah (its labels: {', '.join(labels) or 'none'})."
    if manifest.get("config", {}).get("digest") != run.image_id:  # pushing compresses layers; the config stays
        return False, (f"daemonless:1 in the registry is the image {manifest.get('config', {}).get('digest', '?')[:19]}…, "
                       f"not the image of this build ({run.image_id[:19]}…).")
    return True, f"daemonless:1 was built by {run.ran_as()} with no daemon and no root, and published by digest."


@exercise("builders", "buildah-cli", "Build and publish with buildah's own commands", hints=(
    "Two commands: one builds the directory into an image in buildah's storage (with the timestamps fixed), "
    "the other copies that image to the registry.",
    "`buildah bud --help` (look for --timestamp and -t) and `buildah push --help` (a docker://HOST/NAME:TAG "
    "destination; --tls-verify=false for plain HTTP); the registry listens on registry.host.",
    "`!buildah bud --timestamp {SOURCE_DATE_EPOCH} -t by-hand {by_hand}` then "
    "`!buildah push --tls-verify=false by-hand docker://{registry.host}/by-hand:1`.",
))
def buildah_cli(lab, registry, epoch: int):
    if (why := registry.missing("by-hand", "1")) is not None:
        return False, why
    config = registry.config("by-hand:1")
    inner = config.get("config") or {}
    labels = inner.get("Labels") or {}
    if "io.buildah.version" not in labels:
        return False, f"by-hand:1 was not built by buildah (its labels: {', '.join(labels) or 'none'})."
    if (inner.get("Cmd") or []) != ["/app.sh"]:
        return False, f"by-hand:1 runs {inner.get('Cmd')}, not [\"/app.sh\"]: build the Dockerfile in by_hand."
    want = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    created = config.get("created", "")
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00")[:19] + "+00:00")
    except ValueError:
        return False, f"by-hand:1 has no readable created time ({created!r})."
    if when != want:
        return False, (f"by-hand:1 was created at {created}, not at SOURCE_DATE_EPOCH ({want:%Y-%m-%dT%H:%M:%SZ}): "
                       "a rebuild would get another digest.")
    return True, ("by-hand:1 was built by buildah with its time fixed to SOURCE_DATE_EPOCH and pushed with no "
                  "Docker engine involved.")
