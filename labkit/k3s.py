"""K3s in a container, the way k3d runs it (notebook 13): a privileged server container with tmpfs
/run, the host's cgroups, readiness read from its log, the kubeconfig fetched and pointed at
127.0.0.1, lab images imported into its containerd, and manifests checked before they are sent."""
from __future__ import annotations

import copy
import os
import re
import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import docker

from .core.render import table
from .core.errors import LabSkipped, LabkitError, ReadinessTimeout

if TYPE_CHECKING:
    from .containers import Container
    from .lab import Lab

IMAGE_ENV = "LABKIT_K3S_IMAGE"
SUGGESTED_IMAGE = "rancher/k3s:v1.31.4-k3s1"
READY_LINE = "Node controller sync successful"  # the line testcontainers' K3SContainer waits for too
FATAL = re.compile(r'level=fatal|msg="(?:Failed to|failed to) (?:start|run)', re.I)
API_PORT = 6443
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label: what Kubernetes names must be


class ManifestInvalid(LabkitError):
    default_hint = "Fix the field named above; the API server would refuse the manifest the same way."


# --- finding an image --------------------------------------------------------------------------

def find_image(client: docker.DockerClient) -> str | None:
    """A K3s image in the local store: $LABKIT_K3S_IMAGE, else any tag of a repository named k3s."""
    wanted = os.environ.get(IMAGE_ENV)
    if wanted:
        try:
            client.images.get(wanted)
            return wanted
        except docker.errors.ImageNotFound:
            return None
    for image in client.images.list():
        for tag in image.tags:
            if tag.rpartition(":")[0].rpartition("/")[2] == "k3s":
                return tag
    return None


def require_image(lab: "Lab") -> str:
    from .core.engine import is_rootless
    if is_rootless(lab.client):
        raise LabSkipped(
            "This engine is rootless (yours, as in a classroom): K3s runs as a privileged container that mounts "
            "filesystems and writes cgroups, and a rootless engine's containers have no privilege on this machine "
            "(on cgroup v1, no cgroups of their own either). The cluster part of this lab changes meaning here, so "
            "it stops after Exercise 1 (skipped, not failed).",
            "Run it on a root engine (the trainer's machine), where the committed outputs come from.")
    image = find_image(lab.client)
    if image is None:
        raise LabSkipped(
            "This lab needs a K3s image in the local image store, and none is there "
            "(this machine cannot pull one).",
            f"On a connected machine: `docker pull {SUGGESTED_IMAGE}` and `docker save {SUGGESTED_IMAGE} -o k3s.tar`; "
            f"here: `docker load -i k3s.tar` (or set {IMAGE_ENV} to the image's name), then run this notebook again.")
    return image


# --- readiness and kubeconfig ------------------------------------------------------------------

def ready(log: str) -> bool:
    return READY_LINE in log


def fatal(log: str) -> str | None:
    """The first line that says the server gave up, if any (no need to wait for the timeout)."""
    return next((line for line in log.splitlines() if FATAL.search(line)), None)


def kubeconfig(raw: Mapping[str, Any], host_port: int, name: str) -> dict[str, Any]:
    """K3s writes a kubeconfig for https://127.0.0.1:6443 inside its container; rewrite it for the
    published port on this machine's loopback and give cluster, user and context the lab's name."""
    config = copy.deepcopy(dict(raw))
    try:
        cluster, user, context = config["clusters"][0], config["users"][0], config["contexts"][0]
    except (KeyError, IndexError, TypeError):
        raise LabkitError("The kubeconfig K3s wrote has no cluster, user or context.",
                          "Read /etc/rancher/k3s/k3s.yaml in the server container.") from None
    server = cluster["cluster"]["server"]
    cluster["cluster"]["server"] = re.sub(r"^https://[^/]+", f"https://127.0.0.1:{host_port}", server)
    cluster["name"] = user["name"] = context["name"] = name
    context["context"]["cluster"] = context["context"]["user"] = name
    config["current-context"] = name
    return config


# --- manifests ---------------------------------------------------------------------------------

def _named() -> dict[str, Any]:
    return {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "pattern": NAME.pattern, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}


CONTAINER = {"type": "object", "required": ["name", "image"], "properties": {
    "name": {"type": "string", "pattern": NAME.pattern},
    "image": {"type": "string", "minLength": 1},
    "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "command": {"type": "array", "items": {"type": "string"}},
    "args": {"type": "array", "items": {"type": "string"}},
    "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"], "properties": {
        "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535}}}},
    "resources": {"type": "object"}}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "apps/v1"}, "metadata": _named(),
        "spec": {"type": "object", "required": ["selector", "template"], "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "selector": {"type": "object", "required": ["matchLabels"]},
            "template": {"type": "object", "required": ["metadata", "spec"], "properties": {
                "metadata": {"type": "object", "required": ["labels"]},
                "spec": {"type": "object", "required": ["containers"], "properties": {
                    "containers": {"type": "array", "minItems": 1, "items": CONTAINER}}}}}}}}},
    "Service": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "v1"}, "metadata": _named(),
        "spec": {"type": "object", "required": ["selector", "ports"], "properties": {
            "ports": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["port"], "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "targetPort": {"type": ["integer", "string"]}}}}}}}},
}


def deployment(name: str, image: str, replicas: int = 1, port: int | None = None,
               command: Sequence[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "Never"}  # imported, never pulled
    if command:
        container["command"] = list(command)
    if port:
        container["ports"] = [{"containerPort": port}]
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def service(name: str, port: int, target_port: int | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target_port or port}]}}


def validate(manifest: Mapping[str, Any]) -> None:
    """Check a manifest against the schema of its kind (the fields this lab uses); the error names
    the field as kubectl would (spec.template.spec.containers[0].image)."""
    from .schema import problems

    kind = manifest.get("kind") if isinstance(manifest, Mapping) else None
    if kind not in SCHEMAS:
        raise ManifestInvalid(f"Field kind: {kind!r} is not one of {', '.join(SCHEMAS)}.")
    found = problems(SCHEMAS[kind], manifest, brackets=True)
    if found:
        raise ManifestInvalid(f"{kind} field {found[0][0]}: {found[0][1].message}")
    selector = manifest["spec"]["selector"]["matchLabels"] if kind == "Deployment" else {}
    labels = manifest["spec"]["template"]["metadata"]["labels"] if kind == "Deployment" else {}
    if any(labels.get(k) != v for k, v in selector.items()):
        raise ManifestInvalid("Deployment field spec.selector.matchLabels: does not match "
                              "spec.template.metadata.labels, so the Deployment would own no pod.")


# --- the cluster -------------------------------------------------------------------------------

class Cluster:
    """A one-node K3s cluster in a lab container; removed by lab.cleanup() with its volumes."""

    def __init__(self, lab: "Lab", container: "Container", config: dict[str, Any]) -> None:
        self.lab, self.container, self.config = lab, container, config
        self.kubeconfig_path = lab.state / "kubeconfig.yaml"
        import yaml
        self.kubeconfig_path.write_text(yaml.safe_dump(config))
        self.kubeconfig_path.chmod(0o600)

    @classmethod
    def start(cls, lab: "Lab", image: str | None = None, timeout: float = 180) -> "Cluster":
        from .privileged import privilege_mode

        image = image or require_image(lab)
        options = dict(privilege_mode(lab).options)
        container = lab.start(image, ["server", "--disable=traefik", "--disable=metrics-server",
                                      "--tls-san=127.0.0.1", f"--https-listen-port={API_PORT}"],
                              name="k3s-server", ports={API_PORT: None}, tmpfs={"/run": "", "/var/run": ""},
                              volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
                              cgroupns="host", **options)
        try:
            _wait_ready(container, timeout)
            raw = container.exec(["cat", "/etc/rancher/k3s/k3s.yaml"], check=True).stdout
        except BaseException:
            container.remove()  # a cluster that never got ready is not left running
            raise
        import yaml
        return cls(lab, container, kubeconfig(yaml.safe_load(raw), container.host_port(API_PORT), lab.session))

    def api(self):
        from kubernetes import config as kconfig
        return kconfig.new_client_from_config_dict(self.config)

    def import_image(self, image: str) -> None:
        """What `k3d image import` does: docker save here, ctr import in the node's containerd."""
        import tarfile
        import tempfile

        from .archive import save_image
        with tempfile.TemporaryFile() as wrapped:  # put_archive takes a tar: the docker-archive inside one
            with tempfile.TemporaryFile() as archive:
                save_image(image, archive)
                info = tarfile.TarInfo("image.tar")
                info.size = archive.tell()
                archive.seek(0)
                with tarfile.open(fileobj=wrapped, mode="w") as tar:
                    tar.addfile(info, archive)
            wrapped.seek(0)
            self.container.model.put_archive("/tmp", wrapped)
        self.container.exec(["ctr", "-n", "k8s.io", "images", "import", "/tmp/image.tar"], check=True)
        self.container.exec(["rm", "/tmp/image.tar"])

    def apply(self, manifest: Mapping[str, Any], namespace: str = "default") -> None:
        from kubernetes import utils
        validate(manifest)
        utils.create_from_dict(self.api(), dict(manifest), namespace=namespace)

    def scale(self, name: str, replicas: int, namespace: str = "default") -> None:
        from kubernetes import client
        client.AppsV1Api(self.api()).patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}})

    def pods(self, selector: str, namespace: str = "default") -> list[tuple[str, str, bool]]:
        from kubernetes import client
        items = client.CoreV1Api(self.api()).list_namespaced_pod(namespace, label_selector=selector).items
        return [(p.metadata.name, p.status.phase,
                 bool(p.status.container_statuses and all(s.ready for s in p.status.container_statuses)))
                for p in items]

    def watch(self, selector: str, until_ready: int, timeout: float = 120,
              namespace: str = "default") -> Iterator[Any]:
        """Tables of the pods, each time something changes, until `until_ready` pods are ready."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            rows = sorted(self.pods(selector, namespace))
            if rows != last:
                last = rows
                yield table(["pod", "phase", "ready"], [(n, ph, "yes" if r else "no") for n, ph, r in rows],
                            title=f"pods {selector}")
            if sum(r for _, _, r in rows) == until_ready and len(rows) == until_ready:
                return
            time.sleep(0.5)
        raise ReadinessTimeout(f"{selector}: not {until_ready} ready pods after {timeout:.0f} s.",
                               logs=self.container.logs(tail=30))

    def debug(self, pod: str, image: str, command: Sequence[str], target: str | None = None,
              namespace: str = "default", timeout: float = 60) -> str:
        """An ephemeral container in a running pod (kubectl debug): share its process namespace
        through `target`, run `command`, return what it printed."""
        from kubernetes import client
        core = client.CoreV1Api(self.api())
        name = f"debugger-{int(time.time()) % 100000}"
        body = {"spec": {"ephemeralContainers": [{"name": name, "image": image, "imagePullPolicy": "Never",
                                                  "command": list(command), "targetContainerName": target}]}}
        core.patch_namespaced_pod_ephemeralcontainers(pod, namespace, body)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = core.read_namespaced_pod(pod, namespace).status.ephemeral_container_statuses or []
            state = next((s.state for s in status if s.name == name), None)
            if state is not None and state.terminated is not None:
                return core.read_namespaced_pod_log(pod, namespace, container=name)
            time.sleep(0.5)
        raise ReadinessTimeout(f"The debug container in {pod} did not finish in {timeout:.0f} s.")


def _wait_ready(container: "Container", timeout: float) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = container.logs()
        if ready(log):
            return log
        line = fatal(log)
        container.model.reload()
        if line or container.model.status == "exited":
            raise ReadinessTimeout("The K3s server stopped before it was ready.", logs=log,
                                   hint="K3s needs a privileged container and cgroups it can write: "
                                        "read its last lines above.")
        time.sleep(0.5)
    raise ReadinessTimeout(f"The K3s server was not ready after {timeout:.0f} s (no {READY_LINE!r} line).",
                           logs=log)
