"""Checks of notebook 11 (image builders and reproducible builds)."""
from __future__ import annotations

import time

from ..builders import Buildah, BuilderRun
from ..core.render import volatile
from ..exercises import exercise

APP = {"app.sh": "#!/bin/sh\necho hello from the app\n"}


@exercise("builders", "reproducible", "Make the build reproducible",
          "Two sources differ between builds: the image's created time (buildah's timestamp= option) and the "
          "date the RUN step writes. Take both from SOURCE_DATE_EPOCH: pass it as a build argument and use "
          "`date -u -d @$SOURCE_DATE_EPOCH`.")
def reproducible(lab, dockerfile: str, options: dict | None = None):
    options = dict(options or {})
    unknown = set(options) - {"timestamp", "build_args"}
    if unknown:
        return False, f"options may hold timestamp and build_args only, not {', '.join(sorted(unknown))}."
    buildah = Buildah(lab)
    first = buildah.build("repro-check-1", dockerfile, APP, **options)
    time.sleep(1.1)  # a second later: any wall-clock time that leaks in changes the digest
    second = buildah.build("repro-check-2", dockerfile, APP, **options)
    if first.digest != second.digest:
        what = "the created time" if first.created != second.created else "a layer's content"
        return False, f"The two builds differ ({what} changed): the digests are not equal."
    return True, f"Two builds a second apart have the same digest ({volatile(first.digest[:19] + '…')})."


@exercise("builders", "daemonless", "Publish an image built without a daemon and without root",
          "builders.Buildah(lab, rootless=True) builds as an unprivileged user (the lab user when you are root, "
          "else you); its push(run, registry, "
          "'daemonless:1') sends the result to the session registry.")
def daemonless(lab, registry, run: BuilderRun | None = None):
    if run is None:
        return False, "Pass the BuilderRun of your build: lab.check('daemonless', registry=registry, run=run)."
    if not run.unprivileged:
        return False, "That build ran as root: build as the unprivileged lab user."
    if "daemonless" not in registry.catalog() or "1" not in registry.tags("daemonless"):
        return False, "The registry has no daemonless:1 yet: push your build there."
    manifest, _ = registry.manifest("daemonless:1")
    labels = (registry.config("daemonless:1").get("config") or {}).get("Labels") or {}
    if "io.buildah.version" not in labels:
        return False, "daemonless:1 was not built by buildah."
    if manifest.get("config", {}).get("digest") != run.image_id:  # pushing compresses layers; the config stays
        return False, "daemonless:1 in the registry is not the image of this build."
    return True, f"daemonless:1 was built by {run.ran_as()} with no daemon and no root, and published by digest."
