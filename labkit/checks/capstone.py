"""Checks of notebook 17 (the capstone: one app through the whole pipeline), its two predictions,
and the helpers its notebook shares with them (the SBOM's artifact type, finding referrers)."""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker

from ..archive import search_layers
from ..buildlog import BuildReport
from ..cnab import Runner
from ..core.errors import LabkitError
from ..exercises import exercise
from ..multiarch import run_platform
from ..oras import referrers
from ..predictions import question
from ..scan import ScanReport, scan
from ..testrun import run_pytest
from .scanning import gate_verdict

SBOM_TYPE = "application/vnd.labkit.sbom.v1"  # the artifact type notebook 10 gave its SBOM
PACKAGE = "shop-quotes"  # the private package the app's build fetches with the token
INSTALLATION = "shop"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def fingerprint(token: str) -> str:
    """What fetch-private records of the key it used (the first 12 hex digits of its sha256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def referrers_of(registry, repo: str, digest: str) -> tuple[str, list[dict[str, Any]]]:
    """(how they were found, descriptors) of the artifacts that refer to `repo@digest`: the OCI 1.1
    referrers API where the registry has it, else the referrers tag schema that `oras attach` falls
    back to (an index tagged sha256-<hex> of the subject's digest)."""
    supported, found = referrers(registry, f"{repo}@{digest}")
    if supported:
        return "referrers API", found
    tag = "sha256-" + digest.removeprefix("sha256:")
    try:
        index, _ = registry.manifest(f"{repo}:{tag}")
    except LabkitError:
        return f"tag {tag[:19]}… (none)", []
    return f"tag {tag[:19]}…", index.get("manifests", [])


_scans: dict[str, ScanReport] = {}


def _scan(lab, name: str) -> ScanReport | None:
    try:
        image_id = lab.client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None
    if image_id not in _scans:  # an image id is its content: the same id scans the same
        _scans[image_id] = scan(name)
    return _scans[image_id]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (OSError, ValueError) as error:
        return 0, str(error)


def _published(registry) -> tuple[dict[str, Any], str]:
    """app:1's manifest list and its digest; when it is missing, a LabkitError whose message the check shows."""
    try:
        return registry.manifest("app:1")
    except LabkitError:
        raise LabkitError(f"The session registry has no app:1 yet (it holds: {registry.holds()}): "
                          "publish it first (exercise 4).") from None


# --- 1. a secret-safe build ------------------------------------------------------------------------

@exercise("capstone", "secret-build", "Build the app with the token, and ship no trace of it", (
    "The build needs the token for one RUN step only. A build argument is recorded in the image; what hands "
    "a file to one step and to nothing else?",
    "Notebook 02, section 3: RUN --mount=type=secret,id=... makes /run/secrets/<id> exist during that step "
    "(fetch-private reads /run/secrets/token), and `docker build --secret id=token,src=FILE` provides it. "
    "Delete the ARG line; build from app_dir with -t {lab.image('app')}.",
    "In app_dir/Dockerfile: delete `ARG PRIVATE_TOKEN`, write `RUN --mount=type=secret,id=token /build/fetch-private`; "
    "then !docker build --progress=plain --secret id=token,src={token_file} -t {lab.image('app')} {app_dir}",
))
def secret_build(lab, secret: str, tag: str = "app"):
    name = lab.image(tag)
    try:
        lab.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False, f"No image {name} yet (in a %%bash cell: $LAB_PREFIX-{tag}): build the app with that name."
    said = lab.run(name, ["cat", "/opt/vendor/shop_quotes/FETCHED_BY"])
    if said.exit_code != 0:
        return False, f"{name} has no /opt/vendor/shop_quotes: its build did not fetch the private package."
    if said.stdout.strip() != fingerprint(secret):
        return False, (f"{name} fetched the package with another key ({said.stdout.strip()[:12]!r}): a secret's value "
                       "is not part of the cache key, so build again with --no-cache.")
    found = search_layers(name, secret)
    if found.leaked:
        return False, f"{name} used the token, and still holds it: " + "; ".join(f"{w}: {what}" for w, what in found.hits)
    return True, (f"The build fetched {PACKAGE} with the token, and none of the {found.layers_searched} layers, the "
                  "history or the config holds it.")


# --- 2. a cache warmed from the registry ----------------------------------------------------------

@exercise("capstone", "warm-cache", "Warm an empty builder with the cache you pushed to the registry", (
    "A fresh CI runner has no cache: the cache must travel with an image in the registry, and the next build "
    "must ask for it.",
    "Notebook 03, section 3: lab.build(..., inline_cache=True) puts BuildKit's cache metadata in the image, "
    "registry.push(image, 'app:cache') publishes it, lab.wipe_builds() empties this session's builder, and "
    "lab.build(..., cache_from=[registry.ref('app:cache')]) imports it. The build needs the token every time "
    "(secret_files={'token': token_file}).",
    "lab.build('app', context=app_dir, secret_files={'token': token_file}, inline_cache=True); "
    "registry.push(lab.image('app'), 'app:cache'); lab.wipe_builds(); warm = lab.build('app', context=app_dir, "
    "secret_files={'token': token_file}, cache_from=[registry.ref('app:cache')])",
))
def warm_cache(lab, registry, build: BuildReport | None = None):
    if (why := registry.missing("app", "cache")) is not None:
        return False, why + " Push the image that carries the cache as app:cache."
    if "moby.buildkit.cache.v0" not in registry.config("app:cache"):
        return False, ("app:cache is in the registry, but its config has no BuildKit cache metadata "
                       "(moby.buildkit.cache.v0): build it with inline cache.")
    if not isinstance(build, BuildReport):
        return False, "Pass build=... : what lab.build(...) returned for the build that imports the cache."
    if f"importing cache manifest from {registry.host}/app:cache" not in build.log:
        return False, "That build did not import app:cache: give it cache_from=[registry.ref('app:cache')]."
    steps = [s for s in build.steps if s.stage != "internal" and s.instruction.split()[0] in ("RUN", "COPY")]
    ran = [s.instruction[:40] for s in steps if not s.cached]
    if not steps or ran:
        return False, (f"The build imported app:cache, but {len(ran)} step(s) ran again ({'; '.join(ran)}): "
                       "push the cache of the very Dockerfile and context you build.")
    if "pulling sha256:" not in build.log:
        return False, ("Every step was a cache hit, but no layer came from the registry: they were in this "
                       "engine's cache already. Empty the builder first (lab.wipe_builds()), as on a fresh runner.")
    try:
        current = lab.client.images.get(build.tag).id
    except docker.errors.ImageNotFound:
        current = ""
    if current != build.image_id:
        return False, f"{build.tag} is no longer the image that build made: run the warm build again."
    return True, (f"An empty builder built the app with all {len(steps)} steps from app:cache, its layers "
                  "pulled from the registry: nothing ran.")


# --- 3. the scan gate ------------------------------------------------------------------------------

@exercise("capstone", "scan-gate", "Make the app pass notebook 07's gate", (
    "Scan the app as the check does (scan.scan(lab.image('app')) and .gate()): each blocking finding says "
    "what causes it. Fix the causes and build the app again under the same name.",
    "`COPY . /srv/` ships every file of the context, the developer's .env too: copy only what the service needs "
    "(serve and www/), or list .env in a .dockerignore. USER sets who runs. Then the docker build of stage 1.",
    "In app_dir/Dockerfile: `COPY serve /srv/` and `COPY www/ /srv/www/` instead of `COPY . /srv/`, and "
    "`USER 10001:10001` before CMD; then !docker build --progress=plain --secret id=token,src={token_file} "
    "-t {lab.image('app')} {app_dir}",
))
def scan_gate(lab, tag: str = "app"):
    name = lab.image(tag)
    report = _scan(lab, name)
    if report is None:
        return False, f"No image {name} yet: build the app with that name."
    return gate_verdict(lab, name, report, PACKAGE,
                        f"the scan finds no {PACKAGE}: keep the private package (and its metadata)", "the app")


# --- 4. amd64 and arm64 under one tag ---------------------------------------------------------------

@exercise("capstone", "multi-arch", "Publish app:1 for amd64 and arm64", (
    "One tag, two images: build the app once per platform, push both, then publish a manifest list that names them.",
    "Notebook 08: docker build --platform linux/arm64 --build-arg BASE=labkit/busybox:arm64 (plus the secret), "
    "docker push each as {registry.host}/app:1-amd64 and app:1-arm64, then `docker manifest create --insecure "
    "REF SOURCES...` and `docker manifest push --insecure REF`.",
    "!docker build -q --secret id=token,src={token_file} -t {registry.ref('app:1-amd64')} {app_dir}, the same with "
    "--platform linux/arm64 --build-arg BASE=labkit/busybox:arm64 -t {registry.ref('app:1-arm64')}, !docker push "
    "both, then !docker manifest create --insecure --amend {registry.ref('app:1')} {registry.ref('app:1-amd64')} "
    "{registry.ref('app:1-arm64')} and !docker manifest push --insecure --purge {registry.ref('app:1')}",
))
def multi_arch(lab, registry):
    index, _ = _published(registry)
    platforms = {m.get("platform", {}).get("architecture") for m in index.get("manifests", [])}
    if not {"amd64", "arm64"} <= platforms:
        return False, f"app:1 must be a manifest list naming amd64 and arm64 (it names: {sorted(p for p in platforms if p) or 'none'})."
    for arch, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
        try:
            said = run_platform(lab, registry.ref("app:1"), f"linux/{arch}",
                                ["sh", "-c", f"uname -m; ls -d /opt/vendor/{PACKAGE.replace('-', '_')}-*.dist-info"])
        except LabkitError as error:
            return False, f"The {arch} variant of app:1 is not the app (no private package in it?): {error.message}"
        if said.splitlines()[0] != machine:
            return False, f"The {arch} variant runs as {said.splitlines()[0]!r}, not {machine}: build it for linux/{arch} on its own base."
    return True, "docker pulled the right variant for each platform: both run the app, on x86_64 and on aarch64."


# --- 5. the SBOM as a referrer ----------------------------------------------------------------------

@exercise("capstone", "sbom-referrer", "Attach app:1's SBOM as an artifact that refers to it", (
    "An SBOM is a file; an OCI artifact can name the image it is about (its subject), and clients find it from "
    "the image's digest.",
    "Notebook 10: the registry has no referrers API, so a tag sha256-<hex of app:1's digest> holding an OCI index "
    "lists the referrers. labkit.oras.push_artifact(registry, 'app:sbom', {file: media type}, SBOM_TYPE, "
    "workdir=..., subject=app:1's digest) is `oras attach`; registry.put_manifest(...) writes the index. "
    "scan.inventory + scan.cyclonedx make the SBOM.",
    "_, digest = registry.manifest('app:1'); push_artifact(registry, 'app:sbom', {'sbom.cdx.json': "
    "'application/vnd.cyclonedx+json'}, SBOM_TYPE, workdir=work, subject=digest); then put_manifest("
    "'app:sha256-<hex>', an index listing "
    "app:sbom's manifest with its artifactType)",
))
def sbom_referrer(lab, registry):
    _, digest = _published(registry)
    how, found = referrers_of(registry, "app", digest)
    if not found:
        return False, (f"Nothing refers to app:1 ({digest[:19]}…) yet: neither a referrers API nor the "
                       f"{how.split(' (')[0]} lists an artifact.")
    seen = []
    for descriptor in found:
        try:
            manifest, _ = registry.manifest(f"app@{descriptor['digest']}")
        except LabkitError:
            seen.append(f"{descriptor.get('digest', '?')[:19]}… is listed but not in the repository")
            continue
        kind = manifest.get("artifactType") or manifest.get("config", {}).get("mediaType", "?")
        if (manifest.get("subject") or {}).get("digest") != digest:
            seen.append(f"an artifact of type {kind} whose subject is not app:1")
            continue
        for layer in manifest.get("layers", []):
            try:
                bom = json.loads(registry.blob("app", layer["digest"]))
            except (LabkitError, ValueError):
                continue
            if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
                continue
            if PACKAGE in {c.get("name") for c in bom.get("components", [])}:
                return True, (f"Found from app:1's digest through the {how}: an artifact of type {kind} whose "
                              f"subject is app:1, holding a CycloneDX SBOM that lists {PACKAGE}.")
        seen.append(f"an artifact of type {kind} about app:1, without a CycloneDX SBOM listing {PACKAGE}")
    return False, f"The {how} lists {len(found)} artifact(s), but: " + "; ".join(seen) + "."


# --- 6. integration tests with Testcontainers -------------------------------------------------------

@exercise("capstone", "integration-tests", "Test the published image with Testcontainers", (
    "A test is worth what it can fail: yours must pass against the published image, and fail against a copy "
    "that lost the private package.",
    "Notebook 12: a test_*.py in tests_dir whose tests take the `service` fixture (conftest.py starts "
    "SERVICE_IMAGE with testcontainers and gives its URL); helpers.get(url) returns (status, body). The app "
    "answers /cgi-bin/health (JSON) and /cgi-bin/quote.",
    "In tests_dir / 'test_app.py': `from helpers import get`, a test asserting get(f'{service}/cgi-bin/health') "
    "is 200 with status 'ok', and one asserting /cgi-bin/quote answers 200 with a line of text.",
))
def integration_tests(lab, registry, workdir: str | Path | None = None):
    if workdir is None or not Path(workdir).is_dir():
        return False, f"Pass workdir=... (the directory of your tests; got {workdir!r})."
    if not sorted(Path(workdir).glob("test_*.py")):
        return False, f"There is no test_*.py in {workdir} yet."
    _published(registry)
    image = registry.pull("app:1")
    good = run_pytest(lab, workdir, image)
    if not good.cases:
        return False, f"pytest found no test in {workdir} (it said: {good.output.strip()[-160:]})"
    if not good.passed:
        failing = next(c for c in good.cases if c.outcome not in ("passed", "skipped"))
        return False, f"{failing.name} fails against the published app:1: {(failing.message.splitlines() or [failing.outcome])[0][:120]}"
    user = lab.client.images.get(image).attrs["Config"].get("User") or "0"
    broken = lab.build("app-broken", f"FROM {image}\nUSER 0\nRUN rm -rf /opt/vendor\nUSER {user}\n").tag
    bad = run_pytest(lab, workdir, broken)
    if bad.passed:
        return False, (f"Your {len(good.cases)} test(s) pass against app:1, and also against a copy without the "
                       f"{PACKAGE} package: they would not notice it missing.")
    return True, (f"{len(good.cases)} test(s) pass against the published app:1 and "
                  f"{sum(c.outcome != 'passed' for c in bad.cases)} fail against a copy without {PACKAGE}.")


# --- 7. the CNAB install ----------------------------------------------------------------------------

@exercise("capstone", "cnab-install", "Install the published release with its CNAB bundle", (
    "An installation is an action of a bundle, run by a CNAB runtime from the bundle's invocation image, with "
    "parameters: which image (pinned by digest: what you tested) and which port.",
    "Notebook 16: build the invocation image from assets/capstone/cnab, put its name into the bundle's "
    "invocationImages, then cnab.Runner(lab, bundle, allow_docker_host_access=True).run('install', 'shop', "
    "parameters). The bundle's parameters: port and app_image (`release` names app:1 by digest).",
    "invocation = lab.build('shop-invocation:1.0.0', context='assets/capstone/cnab'); bundle['invocationImages'][0]"
    "['image'] = invocation.tag; runner = cnab.Runner(lab, bundle, allow_docker_host_access=True); "
    "runner.run('install', 'shop', {'port': lab.port(), 'app_image': release})",
))
def cnab_install(lab, registry, runner: Runner | None = None):
    if not isinstance(runner, Runner):
        return False, "Pass runner=... (the cnab.Runner that installed the app)."
    claims = runner.claims(INSTALLATION)
    if not claims or claims[-1]["action"] not in ("install", "upgrade") or claims[-1]["result"]["status"] != "succeeded":
        last = f"{claims[-1]['action']} ({claims[-1]['result']['status']})" if claims else "none"
        return False, f"The last claim of the installation {INSTALLATION!r} should be a successful install; it is {last}."
    _, digest = _published(registry)
    image = claims[-1]["parameters"].get("app_image", "")
    if "@sha256:" not in image:
        return False, f"It installed {image!r}, a tag that can move: install app:1 by its digest (`release`)."
    if image != f"{registry.host}/app@{digest}":
        return False, f"It installed {image}, not app:1 as published ({digest[:19]}…)."
    url = claims[-1]["outputs"].get("url", "").strip()
    status, body = _get(url.rstrip("/") + "/cgi-bin/health")
    if status != 200 or '"status": "ok"' not in body:
        return False, f"The claim says installed, but {url or 'its url output'} answers: {status} {body.strip()[:120]}"
    return True, (f"The claim pins app:1 by digest, and the installed service at {url} is healthy, with "
                  f"{PACKAGE} {json.loads(body).get('quotes', '?')}.")


# --- predict, then run ------------------------------------------------------------------------------

question("capstone", "token-where",
         "The team's Dockerfile hands the token to the build as a build argument (ARG PRIVATE_TOKEN) and never "
         "writes it to a file. Where does the finished image still hold it?",
         ["nowhere: a build argument exists only while the image is built",
          "in the image's history, which travels with the image",
          "in a file of the layer that RUN made"],
         answer=1, why="A build argument in scope is written into the history entry of every RUN after it "
                       "(`|1 PRIVATE_TOKEN=...`), and the history is part of the image's config: anyone who pulls "
                       "the image reads it with `docker history --no-trunc`.")

question("capstone", "sbom-digest",
         "You attached an SBOM to app:1 as an artifact whose subject is app:1's digest. What happened to app:1's "
         "digest?",
         ["it changed: the image now carries its SBOM",
          "it stayed the same: the SBOM is a manifest of its own that points at the image",
          "only the arm64 variant's digest changed"],
         answer=1, why="Nothing was written into app:1: the SBOM's manifest names app:1's digest as its subject, and "
                       "the registry (or the sha256-<hex> tag) lists it as a referrer. A digest names content, so "
                       "signatures and SBOMs can be added to a release without changing what was tested.")
