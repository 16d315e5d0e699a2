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

NEW_MESSAGE = "v2 is live"


@exercise("cnab", "upgrade", "Upgrade the installation with a new message", hints=(
    "An installation changes through an action of its bundle; which one keeps the installation and changes "
    "its parameters? It needs the same port and credential as before.",
    "Section 3 ran runner.run('install', 'shop-web', parameters, credentials); the bundle's actions are listed "
    "in bundle.json, and the message parameter goes in the parameters dictionary.",
    f"runner.run('upgrade', 'shop-web', {{'port': port, 'message': '{NEW_MESSAGE}'}}, {{'admin_token': token}})"))
def upgrade(lab, runner: Runner | None = None, installation: str = "shop-web"):
    if not isinstance(runner, Runner):
        return False, "Pass runner=... (the cnab.Runner of this notebook)."
    claims = runner.claims(installation)
    if not claims or claims[-1]["action"] != "upgrade" or claims[-1]["result"]["status"] != "succeeded":
        last = f"{claims[-1]['action']} ({claims[-1]['result']['status']})" if claims else "none"
        return False, f"The last claim of {installation} should be a successful upgrade; it is {last}."
    if claims[-1]["parameters"].get("message") != NEW_MESSAGE:
        return False, f"The upgrade ran with message={claims[-1]['parameters'].get('message')!r}, not {NEW_MESSAGE!r}."
    url = claims[-1]["outputs"].get("url", "").strip()
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            page = response.read().decode().strip()
    except (OSError, ValueError) as exc:
        return False, f"The upgraded application does not answer at {url or 'its url output'}: {exc}"
    if page != NEW_MESSAGE:
        return False, f"The application serves {page!r}; the claim says upgraded, the application disagrees."
    return True, "The claim and the running application agree: upgraded, with the new message."


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
