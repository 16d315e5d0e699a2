"""Checks of notebook 01 (the container universe)."""
from __future__ import annotations

import docker

from ..exercises import exercise
from ..predictions import question
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


question("container-universe", "layer-count",
         "labkit/busybox has 1 layer. How many layers will the image built from this Dockerfile have?",
         ["5: one per RUN", "6: the base's layer plus one per RUN",
          "7: the base's layer, one per RUN and one for CMD"],
         answer=1,
         why="The build result says 6: the base's layer plus one per RUN. CMD only changes the image config "
             "(a history entry, no layer).")

question("container-universe", "rm-shrinks",
         "Step 4/6 runs `rm /srv/app/README`, a file that step 2/6 created. Does that make the image smaller by "
         "the file's size?",
         ["Yes: the file's bytes leave the image",
          "No: the earlier layer still holds the file; the rm layer only adds an entry that hides it",
          "No: rm fails in a build, because files of earlier layers are read-only"],
         answer=1,
         why="Layers are never changed once made: README stays in layer #1, bytes and all, and the rm step's "
             "layer #3 holds a whiteout (.wh.README) that hides it from the container's view.")

question("container-universe", "pid-inside",
         "On the host, the container's `sleep` is an ordinary process with a host PID (`pid` above). "
         "Which PID does `ps` inside the container show for it?",
         ["The same PID as on the host", "1", "None: ps inside the container cannot see sleep"],
         answer=1,
         why="The container has its own PID namespace: its first process, sleep, is PID 1 there, and ps inside "
             "sees only the container's own processes.")
