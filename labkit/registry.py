"""A local OCI registry on 127.0.0.1 for one session: Debian's docker-registry binary where it
is installed, else the official registry image when it is in the local store. Push, pull,
catalog, tags, manifests and the platforms of a manifest list, over the registry's HTTP API."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from .core.render import Renderable, command_line, human_bytes, seconds, table, volatile
from . import containers
from .core import engine
from .core.errors import LabkitError, ReadinessTimeout, translated
from .core.session import SESSION_LABEL, Session


REGISTRY_IMAGE = "registry:2"
IN_ENGINE_IMAGE = "labkit/debian:bookworm"  # glibc, as the Debian binary needs (a lab image: in every bundle)
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


class RegistryUnavailable(LabkitError):
    default_hint = "Start it with `registry = lab.registry()` (it stops at lab.cleanup())."


@dataclass
class Pushed(Renderable):
    ref: str
    digest: str
    seconds: float
    bytes: int
    equivalent: str = ""  # docker tag ... && docker push ...

    def _render(self):
        return table(["pushed", "digest", "uploaded", "time"],
                     [(self.ref.split("/", 1)[1], volatile(self.digest[:19] + "…"), human_bytes(self.bytes),
                       seconds(self.seconds))], title="Pushed to the local registry")


class RegistryClient:
    """The registry HTTP API (distribution v2 / OCI) of a registry on this machine."""

    def __init__(self, host: str) -> None:
        if not host.startswith(("127.0.0.1:", "localhost:")):
            raise LabkitError(f"labkit talks only to registries on this machine, not {host}.",
                              "Use the session registry: registry = lab.registry().")
        self.host = host
        self.url = f"http://{host}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    # --- the HTTP API -------------------------------------------------------------------------------
    def get(self, path: str, accept: str = "application/json") -> tuple[bytes, dict[str, str]]:
        req = urllib.request.Request(self.url + path, headers={"Accept": accept})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise LabkitError(f"The registry has no {path.split('/v2/', 1)[-1]}.",
                                  "registry.catalog() and registry.tags(repo) list what it holds.") from None
            raise LabkitError(f"The registry answered {exc.code} for {path}.", "Read the registry log.") from None
        except (OSError, urllib.error.URLError):
            raise RegistryUnavailable(f"The registry at {self.host} does not answer.") from None

    def catalog(self) -> list[str]:
        return json.loads(self.get("/v2/_catalog")[0]).get("repositories") or []

    def tags(self, repo: str) -> list[str]:
        return sorted(json.loads(self.get(f"/v2/{repo}/tags/list")[0]).get("tags") or [])

    def holds(self) -> str:
        """What the registry holds, for a message: 'config:1, sbom:debian-bookworm'."""
        try:
            return ", ".join(f"{repo}:{tag}" for repo in self.catalog() for tag in self.tags(repo)) or "nothing"
        except LabkitError:
            return "(the registry does not answer)"

    def missing(self, repo: str, tag: str) -> str | None:
        """Why `repo:tag` is not in the registry (a check's failure message), or None when it is."""
        try:
            tags = self.tags(repo)
        except LabkitError:
            return f"The registry has no repository {repo} yet (it holds: {self.holds()})."
        if tag not in tags:
            return f"{repo} has the tag(s) {', '.join(tags) or 'none'}, not {tag}."
        return None

    def manifest(self, ref: str) -> tuple[dict[str, Any], str]:
        """(manifest or index, its digest) for "repo:tag" or "repo@sha256:..."."""
        repo, reference = split_ref(ref)
        body, headers = self.get(f"/v2/{repo}/manifests/{reference}", MANIFEST_TYPES)
        return json.loads(body), headers.get("Docker-Content-Digest", "")

    def blob(self, repo: str, digest: str) -> bytes:
        return self.get(f"/v2/{repo}/blobs/{digest}", "*/*")[0]

    def config(self, ref: str) -> dict[str, Any]:
        """The image config of a single-platform manifest."""
        manifest, _ = self.manifest(ref)
        if manifest.get("mediaType") in INDEX_TYPES:
            raise LabkitError(f"{ref} is a manifest list: pick one platform's digest first.",
                              "registry.platforms(ref) lists them.")
        return json.loads(self.blob(split_ref(ref)[0], manifest["config"]["digest"]))

    def platforms(self, ref: str):
        """What `mquery` and `docker buildx imagetools inspect` show: one row per platform."""
        manifest, digest = self.manifest(ref)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            rows = [(_platform(m.get("platform", {})), volatile(m["digest"][:19] + "…"),
                     volatile(human_bytes(m.get("size")) + " (manifest)")) for m in manifest["manifests"]]
            title = f"{ref}: manifest list with {len(rows)} platform(s)"
        else:
            cfg = self.config(ref)
            rows = [(_platform(cfg), volatile(digest[:19] + "…"), human_bytes(sum(ly["size"] for ly in manifest["layers"])))]
            title = f"{ref}: single-platform image"
        return table(["platform", "manifest digest", "size"], rows, title=title)

    def put_manifest(self, name: str, manifest: dict[str, Any]) -> str:
        """PUT a manifest or index under repo:tag; returns its digest."""
        repo, reference = split_ref(name)
        body = json.dumps(manifest).encode()
        req = urllib.request.Request(f"{self.url}/v2/{repo}/manifests/{reference}", data=body, method="PUT",
                                     headers={"Content-Type": manifest["mediaType"]})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.headers.get("Docker-Content-Digest", "")
        except urllib.error.HTTPError as exc:
            raise LabkitError(f"The registry refused the manifest for {name}: {exc.read().decode(errors='replace')[:300]}",
                              "Every image the list names must be pushed to the same repository first.") from None
        except (OSError, urllib.error.URLError):
            raise RegistryUnavailable(f"The registry at {self.host} does not answer.") from None

    def make_index(self, name: str, sources: list[str]) -> str:
        """A manifest list under `name` from single-platform images already in the same
        repository (what `docker manifest create` / `buildx imagetools create` do); returns its digest."""
        entries = []
        for src in sources:
            manifest, digest = self.manifest(src)
            if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
                raise LabkitError(f"{src} is a manifest list already.", "Name single-platform images.")
            cfg = self.config(src)
            platform = {"architecture": cfg.get("architecture", "?"), "os": cfg.get("os", "?")}
            if cfg.get("variant"):
                platform["variant"] = cfg["variant"]
            raw, _ = self.get(f"/v2/{split_ref(src)[0]}/manifests/{digest}", MANIFEST_TYPES)
            entries.append({"mediaType": manifest.get("mediaType", "application/vnd.docker.distribution.manifest.v2+json"),
                            "digest": digest, "size": len(raw), "platform": platform})
        return self.put_manifest(name, {"schemaVersion": 2, "mediaType": INDEX_TYPES[1], "manifests": entries})


class Registry(RegistryClient, Renderable):
    """`registry = lab.registry()`; `registry.push(image, "app:1")`; `registry.platforms("app:1")`."""

    def __init__(self, session: Session, port: int | None = None, timeout: float = 15) -> None:
        self.session = session
        self.port = port or session.port(3)
        super().__init__(f"127.0.0.1:{self.port}")
        self.storage = session.tracker.path(Path(tempfile.mkdtemp(prefix=f"labkit-registry-{session.id}-")))
        self._proc: subprocess.Popen | None = None
        self._container = None
        self.running = False
        self.pushed: list[str] = []  # repositories this object pushed (shown without asking the registry)
        binary = shutil.which("docker-registry")
        if binary and engine.is_rootless(session.client):
            # A rootless engine lives in RootlessKit's network namespace: its 127.0.0.1 is not the
            # host's, so a registry on the host's loopback is out of its reach. The same program runs
            # as a container of that engine instead, published on 127.0.0.1:PORT: the engine reaches
            # it through its own proxy, the host (this kernel) through RootlessKit's port forwarding,
            # under one name, so image names stay those of a root engine.
            self.kind = "docker-registry (Debian package)"
            self._container = self._in_engine(binary)
        elif binary:
            self.kind = "docker-registry (Debian package)"
            (self.storage / "config.yml").write_text(CONFIG.format(root=self.storage / "data", port=self.port))
            with open(self.storage / "registry.log", "wb") as log:  # the server keeps its own copy of the handle
                self._proc = subprocess.Popen([binary, "serve", str(self.storage / "config.yml")], stdout=log,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            session.tracker.process(self._proc)
        else:
            try:
                session.client.images.get(REGISTRY_IMAGE)
            except docker.errors.ImageNotFound:
                raise LabkitError("No registry server here: neither the docker-registry program nor the "
                                  f"{REGISTRY_IMAGE} image.", "apt-get install docker-registry (Debian/Ubuntu), "
                                  f"or `docker pull {REGISTRY_IMAGE}` on a connected machine.") from None
            self.kind = f"{REGISTRY_IMAGE} image"
            self._container = containers.start(session, REGISTRY_IMAGE, name="registry", ports={5000: self.port},
                                               volumes={str(self.storage): {"bind": "/var/lib/registry", "mode": "rw"}})
        self._wait(timeout)
        self.running = True

    def _in_engine(self, binary: str):
        """The registry program in a container of a rootless engine. It is this session's registry
        process as on a root engine: its process on the host is tracked (killed at cleanup, and the
        engine then removes the container, --rm), and it carries no session label, so the session's
        container listings and its cleanup report stay those of a root engine."""
        session = self.session
        (self.storage / "config.yml").write_text(CONFIG.format(root="/var/lib/registry/data", port=5000)
                                                 .replace("127.0.0.1:5000", ":5000"))
        with translated("The registry container did not start", "Is labkit/debian:bookworm loaded? (`labkit prepare`)",
                        image=IN_ENGINE_IMAGE):
            container = session.client.containers.run(
                IN_ENGINE_IMAGE, ["/usr/bin/docker-registry", "serve", "/var/lib/registry/config.yml"],
                detach=True, auto_remove=True, name=session.name("registry"), ports={"5000/tcp": ("127.0.0.1", self.port)},
                labels={"labkit.registry-of": session.id, **{k: v for k, v in session.labels.items() if k != SESSION_LABEL}},
                volumes={binary: {"bind": "/usr/bin/docker-registry", "mode": "ro"},
                         str(self.storage): {"bind": "/var/lib/registry", "mode": "rw"}})
            container.reload()
        session.tracker.process(container.attrs["State"]["Pid"])
        return container

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.05)
        logs = (self.storage / "registry.log").read_text(errors="replace") if self._proc else \
            _text(self._container.logs()) if self._container else ""
        self.stop()
        raise ReadinessTimeout(f"The registry on {self.host} did not answer /v2/ in {timeout:.0f} s.", logs)


    # --- images in and out --------------------------------------------------------------------------
    def ref(self, name: str) -> str:
        return f"{self.host}/{name if ':' in name or '@' in name else name + ':latest'}"

    def push(self, image: str, name: str) -> Pushed:
        """Tag a local image as <registry>/<name> and push it; returns the manifest digest."""
        if not self.answers():
            raise RegistryUnavailable(f"The registry at {self.host} does not answer; nothing was pushed.")
        ref = self.ref(name)
        with translated(f"Cannot push {image!r}", image=image, missing_hint="Build it first (lab.build)."):
            img = self.session.client.images.get(image)
        repo, tag = ref.rsplit(":", 1)
        img.tag(repo, tag)
        self.session.tracker.tag(ref)
        start = time.monotonic()
        digest = ""
        for event in self.session.client.api.push(repo, tag, stream=True, decode=True):
            if "error" in event:
                raise LabkitError(f"Pushing {ref} failed: {event['error']}", "Read the registry log.")
            digest = (event.get("aux") or {}).get("Digest", digest)
        manifest, _ = self.manifest(f"{split_ref(name)[0]}@{digest}" if digest else name)
        total = sum(ly.get("size", 0) for ly in manifest.get("layers", [])) + manifest.get("config", {}).get("size", 0)
        self.pushed.append(split_ref(name)[0])
        return Pushed(ref, digest, time.monotonic() - start, total,
                      f"{command_line(['docker', 'tag', image, ref])} && {command_line(['docker', 'push', ref])}")

    def pull(self, name: str) -> str:
        """Pull <registry>/<name> into the local store; returns the local reference."""
        if not self.answers():
            raise RegistryUnavailable(f"The registry at {self.host} does not answer; nothing was pulled.")
        ref = self.ref(name)
        repo, tag = ref.rsplit(":", 1)
        with translated(f"Pulling {ref} failed", "registry.tags(repo) lists its tags."):
            self.session.client.images.pull(repo, tag=tag)
        self.session.tracker.tag(ref)
        return ref

    def stop(self) -> None:
        """Stop the server and delete its storage now (lab.cleanup() does the same)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._container is not None:
            try:
                getattr(self._container, "model", self._container).remove(force=True, v=True)
            except docker.errors.NotFound:  # gone by itself (--rm)
                pass
            self._container = None
        shutil.rmtree(self.storage, ignore_errors=True)
        self.running = False

    def _render(self):
        state = "answers /v2/" if self.running else "stopped"
        return table(["registry", "value"], [("server", self.kind), ("address", volatile(self.url, "http://127.0.0.1:…")),
                                            ("state", state), ("repositories", ", ".join(sorted(set(self.pushed))))],
                     title="Local registry (this session only)")


def _text(logs: "str | bytes") -> str:
    return logs.decode(errors="replace") if isinstance(logs, bytes) else logs


def split_ref(ref: str) -> tuple[str, str]:
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    return repo, tag


def _platform(p: dict[str, Any]) -> str:
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return text + (f"/{p['variant']}" if p.get("variant") else "")
