"""Checks of notebook 16 (CNAB bundles)."""
from __future__ import annotations

import json
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import docker

from ..cnab import Runner, validate
from ..core.errors import LabkitError
from ..exercises import exercise
from ..predictions import question

BROKEN_VERSION = "1.1.0"  # bundle-1.1.0.json: its upgrade fails half-way (notebook 16, Exercise 1)

question("cnab", "claim-credential",
         "The install received the admin token as a credential. Does the claim the runtime wrote contain it?",
         ["yes: a later upgrade reads it from there", "no: a claim keeps parameters and outputs, never credentials",
          "only a hash of it, to check the next upgrade's token"], answer=1,
         why="The claims spec records parameters and outputs; credentials are handed to the action and forgotten, "
             "so a claim store can be shared without leaking them (and you supply them again on every action).")
question("cnab", "failed-upgrade",
         "Bundle 1.1.0's upgrade fails half-way, after it removed the running version. What does the runtime do?",
         ["it rolls back to 1.0.0 by itself", "it records a failed claim and leaves things as the action left them",
          "it marks shop-web as not installed"], answer=1,
         why="A CNAB runtime runs the action and records its result; it knows nothing of how to undo it. The "
             "history ends with the failed upgrade, and shop-web still counts as installed.")
question("cnab", "after-uninstall",
         "Now uninstall shop-web. What is left of it on this machine afterwards?",
         ["nothing: its container, its images and its claims are gone",
          "its container is stopped but kept, for the next install",
          "its container is gone, its claims and images remain"], answer=2,
         why="The uninstall action removed what the installer made; the runtime keeps the claims (the history, "
             "uninstall included), and images are the engine's business, removed by lab.cleanup() here.")


def _app(lab, installation: str):
    try:
        return lab.client.containers.get(lab.name(installation))
    except docker.errors.NotFound:
        return None


@exercise("cnab", "recover", "Bring shop-web back after the failed upgrade", hints=(
    "Nothing rolled back: the last claim is the failed upgrade. Find out which step failed and what runs now, then "
    "choose: go back to the version that worked, or run 1.1.0 with what it needs.",
    "The claim of the failed upgrade keeps its outputs: runner.claims('shop-web')[-1]['outputs']['steps']; "
    "runner.history('shop-web') lists the versions and parameters that worked. A claim never keeps the "
    "credential: pass the token again. bundle-1.1.0.json lists 1.1.0's new parameters.",
    "Roll back: runner.run('upgrade', 'shop-web', {'port': port}, {'admin_token': token}) (the 1.0.0 runner); "
    "or fix forward: runner_v11.run('upgrade', 'shop-web', {'port': port, 'docroot': '/tmp/www'}, "
    "{'admin_token': token}) (a directory the unprivileged user may write)."))
def recover(lab, runner: Runner | None = None, installation: str = "shop-web"):
    if not isinstance(runner, Runner):
        return False, "Pass runner=... (a cnab.Runner of this notebook)."
    claims = runner.claims(installation)
    failed = [i for i, c in enumerate(claims) if c["action"] == "upgrade" and c["result"]["status"] == "failed"
              and c["bundle"]["version"] == BROKEN_VERSION]
    if not failed:
        return False, f"No failed upgrade to {BROKEN_VERSION} in the claims of {installation}: run the incident's cell first."
    app = _app(lab, installation)
    last = claims[-1]
    if failed[-1] == len(claims) - 1 or last["result"]["status"] != "succeeded" or last["action"] not in ("install", "upgrade"):
        state = app.status if app is not None else "missing"
        return False, (f"The last claim of {installation} is {last['action']} of {last['bundle']['version']} "
                       f"({last['result']['status']}), and its application container is {state}.")
    first = next(c for c in claims if c["action"] == "install" and c["result"]["status"] == "succeeded")
    if last["parameters"].get("port") != first["parameters"].get("port"):
        return False, (f"{installation} now listens on port {last['parameters'].get('port')}; its users still "
                       f"go to {first['parameters'].get('port')}, the port it was installed with.")
    if app is None or app.status != "running":
        return False, f"The last claim says {last['action']} succeeded, but no application container runs."
    if app.labels.get("io.cnab.revision") != last["revision"]:
        return False, "The running container was not made by the last action (its io.cnab.revision label differs)."
    url = last["outputs"].get("url", "").strip()
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            page = response.read().decode().strip()
    except (OSError, ValueError) as exc:
        return False, f"The application does not answer at {url or 'its url output'}: {exc}"
    if page != last["parameters"].get("message"):
        return False, f"The application serves {page!r}, not the message its claim records."
    how = ("rolled back to " if last["bundle"]["version"] != BROKEN_VERSION else "fixed forward on ") + last["bundle"]["version"]
    user = app.attrs["Config"].get("User") or "root"
    return True, (f"{installation} answers again on its port, {how} (the web server runs as {user}); the claims keep "
                  "the whole story, the failed upgrade included.")


@exercise("cnab", "fix-bundle", "Make the broken bundle.json follow the spec", hints=(
    "cnab.validate names one broken field at a time: fix it, validate again, until it says nothing.",
    "Compare with the valid bundle.json of section 1: how its version is written, which definitions its "
    "parameters name, and where its outputs live.",
    "report_bundle['version'] = '1.1.0'; the parameter's definition = 'text' (one that exists); the output's "
    "path = '/cnab/app/outputs/report.html'."))
def fix_bundle(lab, bundle: dict[str, Any] | None = None):
    if not isinstance(bundle, dict):
        return False, "Pass bundle=... (the dictionary you fixed)."
    try:
        validate(bundle)
    except LabkitError as error:
        return False, f"A runtime would refuse it: {error.message}"
    if bundle.get("name") != "report-job" or not bundle.get("parameters") or not bundle.get("outputs"):
        return False, "Fix the bundle, do not empty it: keep its name, its parameter and its output."
    return True, "Valid against the spec's rules: a runtime would accept it."


def bundle_images(bundle: dict[str, Any]) -> list[str]:
    """The images an installation of `bundle` needs: its invocation images and the defaults of its
    image-typed parameters (what `porter archive` puts beside bundle.json)."""
    images = [i["image"] for i in bundle.get("invocationImages", [])]
    for param in bundle.get("parameters", {}).values():
        definition = bundle.get("definitions", {}).get(param.get("definition"), {})
        if param.get("definition") == "image" and definition.get("default"):
            images.append(definition["default"])
    return [i if ":" in i.rsplit("/", 1)[-1] else f"{i}:latest" for i in images]


def _saved_images(path: Path) -> dict[str, str]:
    """Tag -> image id (sha256:...) of a `docker save` archive (classic or OCI layout: both write
    manifest.json with RepoTags and the config's file name, which is the image id)."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise KeyError("manifest.json")
        manifest = json.load(member)
    found = {}
    for entry in manifest:
        digest = "sha256:" + Path(entry["Config"]).name.removesuffix(".json")
        for tag in entry.get("RepoTags") or []:
            found[tag] = digest
    return found


@exercise("cnab", "air-gap", "Pack the installation's images into one archive for an air-gapped site", hints=(
    "A site with no registry receives images as a file. Which docker command writes images, with their tags, "
    "into one tar archive?",
    "`docker save --help`: it takes several images and -o for the file; the images are the invocation image "
    "(the invocation_image variable) and the app_image default from bundle.json.",
    "!docker save -o {airgap}/hello-web.tar {invocation_image} labkit/busybox:latest"))
def air_gap(lab, archive: str | Path | None = None, bundle: dict[str, Any] | None = None):
    if not archive or not isinstance(bundle, dict):
        return False, "Pass archive=... (the path of the tar file) and bundle=... (the bundle's dictionary)."
    path = Path(archive)
    if not path.is_file():
        present = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        return False, f"No file {path.name} in {path.parent} yet (it holds: {', '.join(present) or 'nothing'})."
    try:
        saved = _saved_images(path)
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        return False, f"{path.name} ({path.stat().st_size} bytes) is not an image archive of `docker save` ({exc})."
    needed = bundle_images(bundle)
    missing = [i for i in needed if i not in saved]
    if missing:
        return False, (f"{path.name} holds {', '.join(sorted(saved)) or 'no tagged image'}; it lacks "
                       f"{', '.join(missing)}.")
    for image in needed:
        try:
            live = lab.client.images.get(image).id
        except docker.errors.ImageNotFound:
            return False, f"{image} is in the archive but no longer in the engine: build it again, then save."
        if saved[image] != live:
            return False, (f"{path.name} holds another build of {image} than the engine has now: "
                           "save the current one.")
    return True, (f"{path.name} holds all {len(needed)} images of the installation, the very builds the engine "
                  "has: `docker load -i` on the other side restores them.")
