"""The Kubernetes path (deploy/kubernetes/): KubeSpawner builds a learner's pod offline from the chart
values and spawner_config.py, the way KubeSpawner's own tests do (a mock user and hub, no cluster),
and the pod keeps the learner's engine in its sidecar. No cluster, no daemon, no helm."""
from __future__ import annotations

import asyncio
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import Mock, patch

import pytest
import yaml
from jupyterhub.objects import Hub, Server
from jupyterhub.scopes import _check_scopes_exist
from kubespawner import KubeSpawner  # the classroom extra, in requirements.lock
from traitlets.config import Config, PyFileConfigLoader

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
SOCKET = "unix:///var/run/labkit-engine/docker.sock"


def chart_values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


class MockUser(Mock):  # as in KubeSpawner's tests/test_spawner.py
    name = "learner-1"
    id = 7
    server = Server()

    @property
    def escaped_name(self):
        return self.name

    @property
    def url(self):
        return self.server.url


def chart_get_config(values: dict):
    """z2jh's get_config(key, default): a dotted key into the chart's values."""
    def get_config(key, default=None):
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node
    return get_config


@contextmanager
def z2jh_module(values: dict):
    """A stand-in for the chart's z2jh module (in the hub pod, its get_config reads the installed values)."""
    z2jh = types.ModuleType("z2jh")
    z2jh.get_config = chart_get_config(values)
    saved = sys.modules.get("z2jh")
    sys.modules["z2jh"] = z2jh
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["z2jh"]
        else:
            sys.modules["z2jh"] = saved


def spawner_config(values: dict) -> Config:
    """spawner_config.py loaded the way traitlets loads a config file."""
    with z2jh_module(values):
        return PyFileConfigLoader("spawner_config.py", path=str(DEPLOY)).load_config()


def pod_manifest(config: Config) -> dict:
    """The learner pod KubeSpawner would create. KubeSpawner 7 reads a kube config and makes its API
    client when it is constructed; building the manifest calls neither, so both are stubbed here."""
    with patch("kubespawner.spawner.load_config"), patch("kubespawner.spawner.shared_client"):
        spawner = KubeSpawner(config=config, user=MockUser(), hub=Hub(), api_token="not-a-token",
                              oauth_client_id="jupyterhub-user-learner-1", _mock=True)
    return _without_nulls(asyncio.run(spawner.get_pod_manifest()).to_dict(serialize=True))


def _without_nulls(value):
    """The manifest as the API server would read it: Kubernetes' field names, unset fields left out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def isolation_problems(pod: dict, runtime_class: str | None = None) -> list[str]:
    """Why this learner pod does not isolate the learner, one line per problem (empty: it does)."""
    spec = pod["spec"]
    init = spec.get("initContainers", [])
    containers = init + spec["containers"]
    problems = []
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']} mounts the node's {volume['hostPath']['path']}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"the pod sets {key}")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("the pod may get a Kubernetes API token")
    if spec.get("runtimeClassName") != runtime_class:
        problems.append(f"runtimeClassName is {spec.get('runtimeClassName')!r}, not {runtime_class!r}")
    for ctr in containers:
        name, sc = ctr["name"], ctr.get("securityContext") or {}
        limits = (ctr.get("resources") or {}).get("limits") or {}
        if not {"cpu", "memory"} <= set(limits):
            problems.append(f"{name} has no cpu and memory limits")
        if any(m["mountPath"].endswith("docker.sock") for m in ctr.get("volumeMounts", [])):
            problems.append(f"{name} mounts a docker socket file")
        if name == "engine":
            if ctr not in init or ctr.get("restartPolicy") != "Always":
                problems.append("the engine is not a sidecar (an init container with restartPolicy Always)")
            if f"--host={SOCKET}" not in ctr.get("args", []) or any("tcp://" in a for a in ctr.get("args", [])):
                problems.append(f"the engine does not listen on {SOCKET} alone")
            continue
        if sc.get("privileged"):
            problems.append(f"{name} is privileged (only the engine sidecar may be)")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} allows privilege escalation")
        if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
            problems.append(f"{name} may run as root")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            problems.append(f"{name} keeps capabilities")
    engines = [ctr for ctr in containers if ctr["name"] == "engine"]
    if len(engines) != 1:
        problems.append(f"{len(engines)} engine containers, not one")
    notebook = next(ctr for ctr in spec["containers"] if ctr["name"] == "notebook")
    env = {e["name"]: e.get("value") for e in notebook.get("env", [])}
    if env.get("DOCKER_HOST") != SOCKET:
        problems.append(f"the notebook's DOCKER_HOST is {env.get('DOCKER_HOST')!r}, not {SOCKET}")
    shared = {m["name"] for m in notebook.get("volumeMounts", [])} & {
        m["name"] for e in engines for m in e.get("volumeMounts", [])}
    if not any(v["name"] in shared and "emptyDir" in v for v in spec.get("volumes", [])):
        problems.append("the notebook and the engine share no emptyDir for the socket")
    return problems


@pytest.fixture(scope="module")
def pod() -> dict:
    return pod_manifest(spawner_config(chart_values()))


def test_learner_pod_isolates_the_learner(pod):
    assert isolation_problems(pod) == []


def test_a_privileged_notebook_fails_the_check():
    config = spawner_config(chart_values())
    config.KubeSpawner.container_security_context = {**config.KubeSpawner.container_security_context,
                                                     "privileged": True}
    assert isolation_problems(pod_manifest(config)) == ["notebook is privileged (only the engine sidecar may be)"]


def test_the_nodes_docker_socket_fails_the_check():
    config = spawner_config(chart_values())
    config.KubeSpawner.volumes = config.KubeSpawner.volumes + [
        {"name": "node-docker", "hostPath": {"path": "/var/run/docker.sock"}}]
    config.KubeSpawner.volume_mounts = config.KubeSpawner.volume_mounts + [
        {"name": "node-docker", "mountPath": "/var/run/docker.sock"}]
    assert isolation_problems(pod_manifest(config)) == [
        "volume node-docker mounts the node's /var/run/docker.sock", "notebook mounts a docker socket file"]


def test_runtime_class_comes_from_the_values():
    values = chart_values()
    assert values["custom"]["labkit"]["runtimeClassName"] == ""  # no sandbox assumed: the README states the risk
    values["custom"]["labkit"]["runtimeClassName"] = "gvisor"
    pod = pod_manifest(spawner_config(values))
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert isolation_problems(pod, runtime_class="gvisor") == []
    assert isolation_problems(pod) == ["runtimeClassName is 'gvisor', not None"]


def test_images_bundle_and_roster_reach_the_pod(pod):
    values = chart_values()
    image = values["singleuser"]["image"]
    classroom = f"{image['name']}:{image['tag']}"
    engine = values["custom"]["labkit"]["engineImage"]
    init = {ctr["name"]: ctr for ctr in pod["spec"]["initContainers"]}
    assert [ctr["image"] for ctr in pod["spec"]["containers"]] == [classroom]
    assert init["prepare"]["image"] == classroom
    assert init["engine"]["image"] == f"{engine['name']}:{engine['tag']}"
    assert values["prePuller"]["extraImages"]["labkit-engine"] == engine
    assert list(init) == ["engine", "prepare"]  # prepare starts once the engine's startupProbe passes
    assert init["engine"]["startupProbe"]["exec"]["command"][-1] == "version"
    assert "labkit bundle import /srv/labkit-bundle --docker-host" in init["prepare"]["command"][-1]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims["bundle"] == {"claimName": values["custom"]["labkit"]["bundleClaim"], "readOnly": True}
    assert claims["home"]["claimName"] == "claim-learner-1"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LABKIT_ROSTER_URL"] == values["custom"]["labkit"]["rosterUrl"]
    assert env["LABKIT_ROSTER_URL"].endswith("/services/roster/api/progress")
    assert any(ctr.get("image") == classroom for ctr in values["hub"]["extraContainers"])  # the roster's image


def test_bundle_loader_fills_the_claim_learner_pods_read():
    claim, loader = yaml.safe_load_all((DEPLOY / "bundle-loader.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and loader["kind"] == "Pod"
    assert claim["metadata"]["name"] == chart_values()["custom"]["labkit"]["bundleClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # learner pods on any node
    assert loader["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert loader["spec"]["containers"][0]["volumeMounts"][0]["name"] == loader["spec"]["volumes"][0]["name"]


def test_values_register_the_roster_for_trainers():
    hub = chart_values()["hub"]
    assert hub["services"]["roster"]["url"] == "http://hub:10101"
    roles = hub["loadRoles"]
    assert roles["trainers"]["groups"] == ["trainers"]
    assert roles["trainers"]["scopes"] == ["access:services!service=roster"]
    assert "trainers" in hub["config"]["JupyterHub"]["load_groups"]
    for role in roles.values():
        _check_scopes_exist(role["scopes"])  # JupyterHub's own check: raises on an unknown scope
    # the roster's port is open where it must be: hub Service, hub ingress, proxy and learner egress
    values = chart_values()
    assert {"name": "roster", "port": 10101, "targetPort": 10101} in hub["service"]["extraPorts"]
    assert any({"port": 10101} in rule["ports"] for rule in hub["networkPolicy"]["ingress"])
    assert any({"port": 10101} in rule["ports"] for rule in values["proxy"]["chp"]["networkPolicy"]["egress"])
    assert any({"port": 10101} in rule["ports"] for rule in values["singleuser"]["networkPolicy"]["egress"])
    roster = next(ctr for ctr in hub["extraContainers"] if ctr["name"] == "roster")
    env = {e["name"]: e.get("value") for e in roster["env"]}
    assert roster["command"][-1] == "labkit.roster" and env["JUPYTERHUB_SERVICE_URL"].endswith(":10101")
    assert roster["securityContext"]["allowPrivilegeEscalation"] is False


def test_values_keep_the_network_rules_that_a_privileged_engine_cannot_undo():
    single = chart_values()["singleuser"]
    assert single["networkPolicy"]["enabled"] is True
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    assert single["networkPolicy"]["egressAllowRules"]["privateIPs"] is False
    # z2jh's iptables init container would be a second privileged container, and pointless here
    assert single["cloudMetadata"]["blockWithIptables"] is False


def test_values_carry_the_spawner_config_unchanged():
    """values.yaml mounts spawner_config.py into the hub through hub.extraFiles: one file, one text."""
    spawner = chart_values()["hub"]["extraFiles"]["labkit-spawner"]
    assert spawner["mountPath"].startswith("/usr/local/etc/jupyterhub/jupyterhub_config.d/")
    assert spawner["mountPath"].endswith(".py")
    assert spawner["stringData"] == (DEPLOY / "spawner_config.py").read_text(), (
        "deploy/kubernetes/values.yaml's hub.extraFiles.labkit-spawner.stringData differs from "
        "spawner_config.py. Hint: paste spawner_config.py into it again, indented by 8 spaces.")


def test_z2jh_loads_it_like_its_jupyterhub_config_d():
    """The chart execs the file inside its jupyterhub_config.py, where `c` exists and `get_config` is
    its values helper (it takes a key): the file must use that `c` and must not call get_config()."""
    values = chart_values()
    namespace = {"c": Config(), "get_config": chart_get_config(values)}
    with z2jh_module(values):
        exec(compile((DEPLOY / "spawner_config.py").read_text(), "labkit-spawner.py", "exec"), namespace)
    as_z2jh, as_traitlets = pod_manifest(namespace["c"])["spec"], pod_manifest(spawner_config(values))["spec"]
    assert as_z2jh["initContainers"] == as_traitlets["initContainers"]
    assert as_z2jh["volumes"] == as_traitlets["volumes"]

