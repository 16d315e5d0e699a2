"""Cloud Native Application Bundles (notebook 16): validate a bundle.json against the CNAB Core
1.0 rules that matter here, and run its invocation image the way the spec's runtime section says
(environment, /cnab/bundle.json, parameters and credentials at their destinations, outputs read
from /cnab/app/outputs), recording a claim for every action."""
from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .core import engine
from .core.render import Renderable, Stack, callout, table, volatile
from .core.errors import LabkitError

if TYPE_CHECKING:
    from .lab import Lab

SEMVER = r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
OUTPUTS_DIR = "/cnab/app/outputs"
DOCKER_EXTENSION = "io.cnab.docker"  # Porter's name for "this bundle needs the host's engine"
_WHERE = {"env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"}, "path": {"type": "string", "pattern": "^/"}}
DESTINATION = {"type": "object", "properties": _WHERE, "additionalProperties": False, "minProperties": 1}
CREDENTIAL = {"type": "object", "additionalProperties": False, "anyOf": [{"required": ["env"]}, {"required": ["path"]}],
              "properties": {**_WHERE, "required": {"type": "boolean"}, "description": {"type": "string"},
                             "applyTo": {"type": "array", "items": {"type": "string"}}}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schemaVersion", "name", "version", "invocationImages"],
    "properties": {
        "schemaVersion": {"type": "string", "pattern": r"^v1\.\d+\.\d+"},
        "name": {"type": "string", "minLength": 1},
        "version": {"type": "string", "pattern": SEMVER},
        "description": {"type": "string"},
        "maintainers": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "invocationImages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["imageType", "image"],
            "properties": {"imageType": {"enum": ["docker", "oci"]}, "image": {"type": "string", "minLength": 1},
                           "contentDigest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}}}},
        "images": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["image"], "properties": {"image": {"type": "string"}}}},
        "definitions": {"type": "object", "additionalProperties": {"type": "object"}},
        "parameters": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["definition", "destination"],
            "properties": {"definition": {"type": "string"}, "destination": DESTINATION,
                           "applyTo": {"type": "array", "items": {"type": "string"}},
                           "required": {"type": "boolean"}}}},
        "credentials": {"type": "object", "additionalProperties": CREDENTIAL},
        "outputs": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["definition", "path"],
            "properties": {"definition": {"type": "string"}, "path": {"type": "string", "pattern": f"^{OUTPUTS_DIR}/"},
                           "applyTo": {"type": "array", "items": {"type": "string"}}}}},
        "actions": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"modifies": {"type": "boolean"}, "stateless": {"type": "boolean"},
                                             "description": {"type": "string"}}}},
        "requiredExtensions": {"type": "array", "items": {"type": "string"}},
        "custom": {"type": "object"},
    },
}
BUILTIN_ACTIONS = ("install", "upgrade", "uninstall")


class BundleInvalid(LabkitError):
    default_hint = "Fix the field named above (CNAB Core 1.0, section 101: the bundle.json file)."


class ActionFailed(LabkitError):
    default_hint = "Read the invocation image's output above; the claim records the failure."


def validate(bundle: Mapping[str, Any]) -> None:
    """Raise BundleInvalid naming the first field that breaks the spec (structure, then references)."""
    import jsonschema

    from .schema import problems

    found = [(path, _plain(e)) for path, e in problems(SCHEMA, bundle)]
    if found:
        raise BundleInvalid(f"bundle.json field {found[0][0]}: {found[0][1]}",
                            details="\n".join(f"{path}: {message}" for path, message in found[1:6]))
    definitions = bundle.get("definitions", {})
    for kind in ("parameters", "outputs"):
        for name, item in bundle.get(kind, {}).items():
            if item["definition"] not in definitions:
                raise BundleInvalid(f"bundle.json field {kind}.{name}.definition: "
                                    f"{item['definition']!r} is not in definitions.")
            try:
                jsonschema.Draft7Validator.check_schema(definitions[item["definition"]])
            except jsonschema.SchemaError as exc:
                raise BundleInvalid(f"bundle.json field definitions.{item['definition']}: {exc.message}") from None


def _plain(error) -> str:
    if error.validator == "pattern" and error.schema.get("pattern") == SEMVER:
        return f"{error.instance!r} is not a SemVer version (MAJOR.MINOR.PATCH, e.g. 1.1.0)"
    return error.message


@dataclass
class Claim(Renderable):
    """One action on one installation (CNAB Claims: the record a runtime keeps)."""

    installation: str
    action: str
    revision: str
    created: str
    bundle: dict[str, Any]
    parameters: dict[str, Any]
    status: str = "unknown"
    message: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"schemaVersion": "v1.0.0", "installation": self.installation, "revision": self.revision,
                "created": self.created, "action": self.action,
                "bundle": {"name": self.bundle["name"], "version": self.bundle["version"]},
                "parameters": self.parameters, "result": {"status": self.status, "message": self.message},
                "outputs": self.outputs}

    def _render(self):
        rows = [("installation", self.installation), ("action", self.action), ("result", self.status),
                ("revision", volatile(self.revision)),
                ("parameters", ", ".join(f"{k}={v}" for k, v in self.parameters.items()) or "-"),
                ("outputs", ", ".join(f"{k}={v.strip()}" if "\n" not in v.strip() else f"{k} (below)"
                                      for k, v in self.outputs.items()) or "-")]
        blocks = [table(["claim", "value"], rows, title=f"{self.bundle['name']} {self.bundle['version']}: {self.action}")]
        blocks += [callout("info", f"output {k}", "", details=v.strip())  # a log such as `steps`: one line each
                   for k, v in self.outputs.items() if "\n" in v.strip()]
        if self.log.strip():
            blocks.append(callout("info", "invocation image said", "", details=self.log.strip()[-1200:]))
        return Stack(blocks)


class Runner:
    """A small CNAB runtime on the lab's engine. Claims live in the session's state directory."""

    def __init__(self, lab: "Lab", bundle: Mapping[str, Any], allow_docker_host_access: bool = False) -> None:
        validate(bundle)
        self.lab = lab
        self.bundle = dict(bundle)
        self.allow_docker_host_access = allow_docker_host_access
        self.claims_dir = lab.state / "cnab-claims"
        self.claims_dir.mkdir(parents=True, exist_ok=True)

    # claims
    def claims(self, installation: str) -> list[dict[str, Any]]:
        path = self.claims_dir / f"{installation}.json"
        return json.loads(path.read_text()) if path.exists() else []

    def installed(self, installation: str) -> bool:
        """Installed: the last install/upgrade succeeded after the last successful uninstall."""
        state = False
        for claim in self.claims(installation):
            if claim["result"]["status"] == "succeeded" and claim["action"] in ("install", "upgrade"):
                state = True
            elif claim["result"]["status"] == "succeeded" and claim["action"] == "uninstall":
                state = False
        return state

    def _record(self, claim: Claim) -> None:
        path = self.claims_dir / f"{claim.installation}.json"
        path.write_text(json.dumps(self.claims(claim.installation) + [claim.to_json()], indent=1))

    # the run
    def _parameters(self, action: str, given: Mapping[str, Any]) -> dict[str, Any]:
        import jsonschema

        declared = self.bundle.get("parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise BundleInvalid(f"Unknown parameter(s) {', '.join(sorted(unknown))}; the bundle declares "
                                f"{', '.join(sorted(declared)) or 'none'}.", "Pass only declared parameters.")
        values = {}
        for name, spec in declared.items():
            if spec.get("applyTo") and action not in spec["applyTo"]:
                continue
            definition = self.bundle["definitions"][spec["definition"]]
            if name in given:
                value = given[name]
            elif "default" in definition:
                value = definition["default"]
            elif spec.get("required"):
                raise BundleInvalid(f"Parameter {name} is required for {action}.", f"Pass {name}=... to run().")
            else:
                continue
            try:
                jsonschema.validate(value, definition)
            except jsonschema.ValidationError as exc:
                raise BundleInvalid(f"Parameter {name}={value!r}: {exc.message}",
                                    f"Its definition {spec['definition']!r} says: {json.dumps(definition)}") from None
            values[name] = value
        return values

    def _check_action(self, action: str, installation: str) -> None:
        actions = self.bundle.get("actions", {})
        if action not in BUILTIN_ACTIONS and action not in actions:
            raise BundleInvalid(f"The bundle has no action {action!r}.",
                                f"Known: {', '.join(list(BUILTIN_ACTIONS) + list(actions))}.")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", installation):
            raise BundleInvalid(f"Installation name {installation!r} is not valid.", "Use lower-case letters, digits and -.")
        exists = self.installed(installation)
        if action == "install" and exists:
            raise BundleInvalid(f"{installation} is already installed.", "Use upgrade, or uninstall first.")
        if action != "install" and not exists:
            raise BundleInvalid(f"{installation} is not installed, so it cannot {action}.", "Install it first.")

    def run(self, action: str, installation: str, parameters: Mapping[str, Any] | None = None,
            credentials: Mapping[str, str] | None = None, timeout: float = 120) -> Claim:
        self._check_action(action, installation)
        values = self._parameters(action, parameters or {})
        needed = set(self.bundle.get("requiredExtensions", []))
        if DOCKER_EXTENSION in needed and not self.allow_docker_host_access:
            raise BundleInvalid(f"This bundle requires {DOCKER_EXTENSION}: its invocation image gets the host's "
                                "docker socket (root on the host, notebook 05).",
                                "Read the bundle, then Runner(..., allow_docker_host_access=True), "
                                "as Porter's --allow-docker-host-access.")
        creds = {}
        for name, spec in self.bundle.get("credentials", {}).items():
            if spec.get("applyTo") and action not in spec["applyTo"]:
                continue
            if name in (credentials or {}):
                creds[name] = credentials[name]  # type: ignore[index]
            elif spec.get("required"):
                raise BundleInvalid(f"Credential {name} is required for {action}.",
                                    f"Pass credentials={{'{name}': ...}}.")
        claim = Claim(installation, action, _ulid(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      self.bundle, values)
        env = {"CNAB_INSTALLATION_NAME": installation, "CNAB_ACTION": action,
               "CNAB_BUNDLE_NAME": self.bundle["name"], "CNAB_BUNDLE_VERSION": self.bundle["version"],
               "CNAB_REVISION": claim.revision, "CNAB_CLAIMS_VERSION": "v1.0.0",
               "LABKIT_LABELS": json.dumps(self.lab.labels)}  # so that what it creates is cleaned up
        files: dict[str, bytes] = {"/cnab/bundle.json": json.dumps(self.bundle, indent=1).encode()}
        for kind, given in (("parameters", values), ("credentials", creds)):
            for name, value in given.items():
                dest = self.bundle[kind][name] if kind == "credentials" else self.bundle[kind][name]["destination"]
                text = value if isinstance(value, str) else json.dumps(value)
                if "env" in dest:
                    env[dest["env"]] = text
                if "path" in dest:
                    files[dest["path"]] = text.encode()
        volumes = {}
        if DOCKER_EXTENSION in needed:
            socket = engine.unix_socket(self.lab.daemon_url, f"The {DOCKER_EXTENSION} extension")
            volumes[socket] = {"bind": "/var/run/docker.sock", "mode": "rw"}
        image = self.bundle["invocationImages"][0]["image"]
        container = self.lab.create(image, ["/cnab/app/run"], environment=env, volumes=volumes)
        try:
            container.model.put_archive("/", _tar(files))
            container.model.start()
            code = container.model.wait(timeout=timeout)["StatusCode"]
            claim.log = container.logs()
            claim.outputs = _outputs(container.model, self.bundle, action)
        finally:
            container.remove()  # an invocation container never outlives its action
        claim.status, claim.message = ("succeeded", "") if code == 0 else ("failed", f"exit code {code}")
        self._record(claim)
        if code != 0:
            raise ActionFailed(f"{action} of {installation} failed ({claim.message}); the claim says so.",
                               details=claim.log[-1500:])
        return claim

    def history(self, installation: str) -> Renderable:
        rows = [(c["action"], c["result"]["status"], c["bundle"]["version"],
                 ", ".join(f"{k}={v}" for k, v in c["parameters"].items()) or "-")
                for c in self.claims(installation)]
        return table(["action", "result", "bundle version", "parameters"], rows,
                     title=f"Claims of {installation}", status_column="result")


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o600 if "credentials" in path else 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _outputs(model, bundle: Mapping[str, Any], action: str) -> dict[str, str]:
    found = {}
    for name, spec in bundle.get("outputs", {}).items():
        if spec.get("applyTo") and action not in spec["applyTo"]:
            continue
        try:
            stream, _ = model.get_archive(spec["path"])
        except Exception:  # docker.errors.NotFound: the action wrote no such output
            continue
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            if member is not None and member.isfile():
                found[name] = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    return found


def _ulid() -> str:
    """A ULID-like revision (time-ordered, as the claims spec asks): 48-bit ms time + 80 random bits."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(alphabet[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def load(path: str | Path) -> dict[str, Any]:
    try:
        bundle = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise BundleInvalid(f"{path} is not valid JSON: {exc}") from None
    validate(bundle)
    return bundle
