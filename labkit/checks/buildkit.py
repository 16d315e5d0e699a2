"""Checks of notebook 02 (BuildKit)."""
from __future__ import annotations

import hashlib

import docker

from ..core.render import seconds
from ..exercises import exercise
from ..predictions import question
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


@exercise("buildkit", "fix-the-leak", "Fix the leaky app: the build uses the token, the image holds it nowhere", (
    "The token leaks in more than one way: find every place before you change anything. Then the fetch "
    "step needs the token another way, one that exists only while that step runs.",
    "`docker history --no-trunc` shows build arguments and ENV values, `docker inspect` the config's Env, "
    "`archive.search_layers(lab.image('app'), TOKEN)` every file of every layer (`COPY .` takes token.txt "
    "along, and a later `rm` leaves it in the COPY layer). Section 3's `with_secret` shows the mount; "
    "`docker build --help` shows the flag that hands it a file.",
    "Write app_dir/Dockerfile as: FROM labkit/busybox / COPY app.sh fetch-private-lib /app/ / "
    "RUN --mount=type=secret,id=token TOKEN=$(cat /run/secrets/token) /app/fetch-private-lib / "
    "CMD [\"/app/app.sh\"] (no ARG, no ENV), then "
    "!docker build --no-cache --secret id=token,src={app_dir}/token.txt -t {lab.image('app')} {app_dir}",
))
def fix_the_leak(lab, secret: str, tag: str = "app"):
    name = lab.name(tag)
    try:
        lab.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False, f"No image {name} in the engine (in a shell it is $LAB_PREFIX-{tag}): build it with that name."
    found = search_layers(name, secret)
    if found.leaked:
        return False, (f"The token can still be read in {tag!r}: " + "; ".join(f"{w}: {what}" for w, what in found.hits)
                       + ". Rebuild it so that none of these holds it.")
    app = lab.run(name, check=False)  # its own CMD, as anyone who pulls it would start it
    said = (app.stdout + app.stderr).strip()
    if app.exit_code != 0:
        return False, (f"No token in {tag!r} any more, but the app does not start ({said[-100:]!r}): the build "
                       "must still fetch the library with the token.")
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:12]
    if f"licensed to {fingerprint}" not in app.stdout:
        return False, (f"No token in {tag!r}, and the app starts, but it says {said[-100:]!r}, not 'licensed to "
                       f"{fingerprint}' (this session's token): if the fetch step came from the build cache (a "
                       "secret's value is not in the cache key), build again with --no-cache.")
    return True, (f"The app starts with the library the token fetched, and none of the {found.layers_searched} "
                  "layers, the history or the config holds the token.")


question("buildkit", "unused-stage",
         "BuildKit builds webapp.Dockerfile without cache: stages deps, assets and test, and a final stage that "
         "copies from deps and assets only. What does it do with the three stages?",
         ["Runs them one after the other, as written, like the classic builder",
          "Runs all three at the same time, test included",
          "Runs deps and assets at the same time, and never builds test",
          "Builds only the final stage: the others are skipped without a cache"],
         answer=2,
         why="BuildKit solves the graph of what the final image needs: deps and assets have no edge between them, "
             "so their steps overlap, and nothing leads from test to the final image, so it never runs. The "
             "classic builder runs every step in order, test included.")

question("buildkit", "cache-mount",
         "Each Dockerfile is built twice; the second time packages.txt also lists jq. How many packages does the "
         "second build of the RUN --mount=type=cache version download?",
         ["5: the changed step starts from scratch, like the plain RUN",
          "1: only jq; the other four are still in the cache mount",
          "0: the whole step comes from the layer cache"],
         answer=1,
         why="The changed packages.txt invalidates the RUN step in both Dockerfiles, but only the cache mount "
             "keeps /var/cache/pkgs between builds: the plain RUN downloads all five again, the cached one only jq.")

question("buildkit", "secret-leaks",
         "The same token goes into three builds: COPY the file and rm it in a later step, a build argument "
         "(ARG), and RUN --mount=type=secret. In which images can anyone who pulls them read the token?",
         ["Only leak-copy: a build argument is gone once the build ends",
          "leak-copy and leak-arg",
          "None: rm deletes the file, and build arguments are never stored",
          "All three: the secret mount is recorded in the image history too"],
         answer=1,
         why="The COPY layer still holds the file under rm's whiteout, and the history records the RUN step "
             "with its build arguments (|1 TOKEN=...); the secret mount exists only while its RUN step runs, "
             "so the third image holds the token nowhere.")
