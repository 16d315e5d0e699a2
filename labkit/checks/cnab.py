"""Checks of notebook 16 (CNAB bundles)."""
from __future__ import annotations

import urllib.request
from typing import Any

from ..cnab import Runner, validate
from ..core.errors import LabkitError
from ..exercises import exercise

NEW_MESSAGE = "v2 is live"


@exercise("cnab", "upgrade", "Upgrade the installation with a new message",
          f"runner.run('upgrade', 'shop-web', {{'port': port, 'message': '{NEW_MESSAGE}'}}, "
          "{'admin_token': token})")
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


@exercise("cnab", "fix-bundle", "Make the broken bundle.json follow the spec",
          "Three things are wrong: the version is not SemVer (1.1 → 1.1.0), the parameter names a definition "
          "that does not exist, and an output lives outside /cnab/app/outputs.")
def fix_bundle(lab, bundle: dict[str, Any] | None = None):
    if not isinstance(bundle, dict):
        return False, "Pass bundle=... (the dictionary you fixed)."
    try:
        validate(bundle)
    except LabkitError as error:
        return False, error.message
    if bundle.get("name") != "report-job" or not bundle.get("parameters") or not bundle.get("outputs"):
        return False, "Fix the bundle, do not empty it: keep its name, its parameter and its output."
    return True, "Valid against the spec's rules: a runtime would accept it."
