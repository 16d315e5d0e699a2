"""Checks of notebook 01 (the container universe)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..bases import session_base
from ..archive import save_layout

BASE = "labkit/busybox:latest"
MYSTERY_FILE = "/srv/app/settings.conf"


@exercise("container-universe", "three-layers", "Build an image with exactly three layers", (
    "Count first: how many layers does labkit/busybox bring, and which Dockerfile instructions add one?",
    "Section 2: each RUN, COPY or ADD adds a layer, ENV/LABEL/CMD add none. `docker build --help`: `-t` names the "
    "image (this session's name is $LAB_PREFIX-three) and `-` reads the Dockerfile from stdin.",
    "In a %%bash cell: docker build -t $LAB_PREFIX-three - <<'EOF' with the lines FROM labkit/busybox, "
    "RUN echo one > /one, RUN echo two > /two, then EOF.",
))
def three_layers(lab, tag: str = "three"):
    name = lab.name(tag)
    try:
        image = lab.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False, (f"No image {name} in the engine yet (in a shell it is $LAB_PREFIX-{tag}): build one "
                       "with that name.")
    layers = image.attrs["RootFS"].get("Layers", [])
    bases = []  # labkit/busybox, or the session's own copy of it that lab.build uses
    for ref in (BASE, session_base(lab, BASE)):
        try:
            bases.append(lab.client.images.get(ref).attrs["RootFS"]["Layers"])
        except docker.errors.ImageNotFound:
            pass
    if not any(layers[:len(base)] == base for base in bases):
        return False, f"Found the image {name} ({len(layers)} layer(s)), but its first layer is not {BASE}'s: start FROM labkit/busybox."
    if len(layers) != 3:
        return False, (f"Found the image {name}, built FROM labkit/busybox, with {len(layers)} layer(s): the base's 1 "
                       f"plus {len(layers) - 1} of yours, not 3 in total.")
    return True, f"{tag!r} has exactly 3 layers: the base plus two of yours."


@exercise("container-universe", "which-layer", f"Find the layer that added {MYSTERY_FILE}", (
    "A file shows up first in the layer whose step created it; a later layer that touches it holds a new copy.",
    "`mystery.find(path)` lists every layer holding a path, oldest first; each entry has an `.index` (the # of "
    "the layer table).",
    f"answer = mystery.find({MYSTERY_FILE!r})[0].index",
))
def which_layer(lab, answer: int | None = None, tag: str = "mystery"):
    if answer is None:
        return False, "`answer` is still None: set it to the # of the layer that added the file."
    layout = save_layout(lab.name(tag))
    layers = layout.find(MYSTERY_FILE)
    if not layers:
        return False, f"{MYSTERY_FILE} is in no layer of {tag!r}: rebuild it with the cell in section 2."
    if answer == layers[0].index:
        return True, f"Layer #{answer} added it ({layers[0].created_by[:60]})."
    holder = next((ly for ly in layers if ly.index == answer), None)
    if holder is not None:
        return False, (f"Layer #{answer} ({holder.created_by[:50]}) holds a copy of the file, but it is not the first "
                       "layer that does: it changed the file, an earlier one added it.")
    count = len(layout.layers)
    if not isinstance(answer, int) or not 0 <= answer < count:
        return False, f"{answer!r} is not a layer of {tag!r}: its layers are #0 to #{count - 1}."
    return False, f"Layer #{answer} ({layout.layers[answer].created_by[:50]}) does not contain {MYSTERY_FILE}."
