"""Checks of notebook 01 (the container universe)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..bases import session_base
from ..archive import save_layout

BASE = "labkit/busybox:latest"
MYSTERY_FILE = "/srv/app/settings.conf"


@exercise("container-universe", "three-layers", "Build an image with exactly three layers",
          "Start FROM labkit/busybox (one layer) and add two filesystem-changing instructions (RUN or COPY); "
          "ENV, LABEL and CMD add no layer.")
def three_layers(lab, tag: str = "three"):
    try:
        image = lab.client.images.get(lab.name(tag))
    except docker.errors.ImageNotFound:
        return False, f"No image {tag!r} built in this session yet (use lab.build({tag!r}, dockerfile))."
    layers = image.attrs["RootFS"].get("Layers", [])
    bases = []  # labkit/busybox, or the session's own copy of it that lab.build uses
    for name in (BASE, session_base(lab, BASE)):
        try:
            bases.append(lab.client.images.get(name).attrs["RootFS"]["Layers"])
        except docker.errors.ImageNotFound:
            pass
    if not any(layers[:len(base)] == base for base in bases):
        return False, f"{tag!r} is not built FROM {BASE}."
    if len(layers) != 3:
        return False, f"{tag!r} has {len(layers)} layer(s), not 3."
    return True, f"{tag!r} has exactly 3 layers: the base plus two of yours."


@exercise("container-universe", "which-layer", f"Find the layer that added {MYSTERY_FILE}",
          "layout.find(path) lists every layer holding the file; the first one added it, later ones changed it.")
def which_layer(lab, answer: int | None = None, tag: str = "mystery"):
    if answer is None:
        return False, "No answer yet: set `answer` to the index (#) of the layer."
    layers = save_layout(lab.name(tag)).find(MYSTERY_FILE)
    if not layers:
        return False, f"{MYSTERY_FILE} is in no layer of {tag!r}: rebuild it with the cell above."
    if answer == layers[0].index:
        return True, f"Layer #{answer} added it ({layers[0].created_by[:60]})."
    if any(ly.index == answer for ly in layers):
        return False, f"Layer #{answer} holds the file, but an earlier layer added it: that one changed it."
    return False, f"Layer #{answer} does not contain {MYSTERY_FILE}."
