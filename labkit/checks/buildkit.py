"""Checks of notebook 02 (BuildKit)."""
from __future__ import annotations

import hashlib

import docker

from ..core.render import seconds
from ..exercises import exercise
from ..archive import search_layers


@exercise("buildkit", "parallel-stages", "Build the two stages in parallel", (
    "BuildKit runs two stages at the same time only when neither needs the other: what does `assets` wait for?",
    "Compare with webapp.Dockerfile in section 1: every stage starts FROM labkit/busybox, and the last stage "
    "gathers the results with COPY --from=<stage>.",
    "Write `FROM labkit/busybox AS assets` instead of `FROM deps AS assets`, and in the final stage "
    "`COPY --from=deps /deps /deps` and `COPY --from=assets /assets /assets`.",
))
def parallel_stages(lab, dockerfile: str):
    report = lab.build("parallel", dockerfile, no_cache=True)
    steps = {name: [s for s in report.steps if s.instruction.startswith("RUN") and f"/{name}" in s.instruction]
             for name in ("deps", "assets")}
    missing = [f"/{name}" for name, found in steps.items() if not found]
    if missing:
        return False, f"The build has no RUN step that writes {' or '.join(missing)}: keep the two RUN steps of the stages."
    files = lab.run(report.tag, "cat /deps /assets", check=False)
    if files.exit_code != 0:
        said = (files.stderr or files.stdout).strip().splitlines()
        return False, ("The final image does not hold both /deps and /assets (cat said: "
                       f"{said[-1] if said else 'nothing'}): COPY --from each stage.")
    a, b = steps["deps"][-1], steps["assets"][-1]
    overlap = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    if overlap < 0.5 * min(a.duration, b.duration):
        return False, (f"The stages ran one after the other ({seconds(overlap)} overlap, build took "
                       f"{seconds(report.duration)}): one still depends on the other.")
    return True, f"Both stages ran at the same time ({seconds(overlap)} overlap); the build took {seconds(report.duration)}."


@exercise("buildkit", "no-secret-leak", "Ship the image without the secret in any layer", (
    "COPY puts the token in a layer and ARG puts it in the history: the RUN step must get it another way, "
    "one that exists only while that step runs.",
    "Section 3 built such an image from `with_secret` (RUN --mount=type=secret,id=token reads /run/secrets/token); "
    "`docker build --help` shows the flag that hands a file to that mount. Build from `app_dir`, not from where "
    "the token lies.",
    "(app_dir / 'Dockerfile').write_text(with_secret), then "
    "!docker build --progress=plain --no-cache --secret id=token,src={token_file} -t {lab.image('app')} {app_dir}",
))
def no_secret_leak(lab, secret: str, tag: str = "app"):
    name = lab.name(tag)
    try:
        lab.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False, f"No image {name} in the engine (in a shell it is $LAB_PREFIX-{tag}): build it with that name."
    used = lab.run(name, "cat /app/token-id", check=False)
    if used.exit_code != 0:
        return False, (f"Found the image {name}, but /app/token-id is missing: the build must still use the token "
                       "and write its fingerprint there.")
    held = used.stdout.strip()
    if not held:
        return False, (f"Found the image {name}, but /app/token-id is empty: the RUN step found no "
                       "/run/secrets/token (the secret's id must be `token`, and the build must be given the file).")
    if held != hashlib.sha256(secret.encode()).hexdigest()[:12]:
        return False, (f"Found the image {name}, but /app/token-id holds {held[:20]!r}, the fingerprint of another "
                       "value: if the step came from the build cache (a secret's value is not in the cache key), "
                       "build again with --no-cache.")
    found = search_layers(name, secret)
    if found.leaked:
        return False, (f"Found the image {name} with the right fingerprint, but the token is still in it: "
                       + "; ".join(f"{w}: {what}" for w, what in found.hits))
    return True, f"The build used the token, yet none of the {found.layers_searched} layers, the history or the config holds it."
