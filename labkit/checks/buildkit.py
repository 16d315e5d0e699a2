"""Checks of notebook 02 (BuildKit)."""
from __future__ import annotations

import hashlib

import docker

from ..core.render import seconds
from ..exercises import exercise
from ..archive import search_layers


@exercise("buildkit", "parallel-stages", "Build the two stages in parallel",
          "A stage that starts FROM another waits for it. Start both stages FROM labkit/busybox, and let the "
          "final stage COPY --from each of them.")
def parallel_stages(lab, dockerfile: str):
    report = lab.build("parallel", dockerfile, no_cache=True)
    steps = {name: [s for s in report.steps if s.instruction.startswith("RUN") and f"/{name}" in s.instruction]
             for name in ("deps", "assets")}
    if not steps["deps"] or not steps["assets"]:
        return False, "Keep the two RUN steps that write /deps and /assets."
    files = lab.run(report.tag, "cat /deps /assets", check=False)
    if files.exit_code != 0:
        return False, "The final image must contain both /deps and /assets (COPY --from each stage)."
    a, b = steps["deps"][-1], steps["assets"][-1]
    overlap = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    if overlap < 0.5 * min(a.duration, b.duration):
        return False, (f"The stages ran one after the other ({seconds(overlap)} overlap, build took "
                       f"{seconds(report.duration)}): one still depends on the other.")
    return True, f"Both stages ran at the same time ({seconds(overlap)} overlap); the build took {seconds(report.duration)}."


@exercise("buildkit", "no-secret-leak", "Ship the image without the secret in any layer",
          "Use RUN --mount=type=secret,id=token and read /run/secrets/token in that RUN; pass the value with "
          "lab.build(..., secrets={'token': TOKEN}). Deleting the file in a later step does not help.")
def no_secret_leak(lab, secret: str, tag: str = "app"):
    try:
        lab.client.images.get(lab.name(tag))
    except docker.errors.ImageNotFound:
        return False, f"No image {tag!r} built in this session yet."
    used = lab.run(lab.name(tag), "cat /app/token-id", check=False).stdout.strip()
    if used != hashlib.sha256(secret.encode()).hexdigest()[:12]:
        return False, "/app/token-id does not hold the token's fingerprint: the build must still use the token."
    found = search_layers(lab.name(tag), secret)
    if found.leaked:
        return False, "The token is still in the image: " + "; ".join(f"{w}: {what}" for w, what in found.hits)
    return True, f"The build used the token, yet none of the {found.layers_searched} layers, the history or the config holds it."
