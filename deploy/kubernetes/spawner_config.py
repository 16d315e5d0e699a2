# KubeSpawner configuration of a learner's pod, for the Zero to JupyterHub (z2jh) chart.
#
# values.yaml carries this file under hub.extraFiles (tests/unit/test_kubernetes.py keeps the two
# equal); the hub execs it after the chart's own settings, so it decides the learner pod:
#   initContainers  engine   docker:dind as a native sidecar (restartPolicy Always): the one privileged
#                            container, its socket on an emptyDir shared with the notebook, no TCP port
#                   prepare  the learner edition into the home volume, then `labkit bundle import` of
#                            the lab images from the bundle volume into the engine (no registry)
#   containers      notebook the classroom image, uid 1000, no privilege escalation, no capabilities
# The knobs (images, bundle claim, runtime class, roster URL) are read from the chart's values.
#
# In the z2jh hub this file runs inside the chart's jupyterhub_config.py, where `c` already exists
# and `get_config` is the chart's values helper, not traitlets' one: only call it when `c` is absent.
if "c" not in globals():
    c = get_config()  # noqa: F821 (traitlets provides it to config files)

from z2jh import get_config as chart_value  # noqa: E402 (the chart's module, on the hub's path)

SOCKET_DIR = "/var/run/labkit-engine"
DOCKER_HOST = f"unix://{SOCKET_DIR}/docker.sock"
UID = GID = 1000  # the classroom image's user (repo2docker's jovyan)
WORK = "/home/jovyan/work"  # the learner's volume; the repository (reference edition) stays in /home/jovyan
WORKSPACE = f"{WORK}/labkit-workspace"
BUNDLE = "/srv/labkit-bundle"


def image_of(key):
    return f"{chart_value(key + '.name')}:{chart_value(key + '.tag')}"


CLASSROOM_IMAGE = image_of("singleuser.image")
ENGINE_IMAGE = image_of("custom.labkit.engineImage")

# Not root, no setuid gain, no capability: the notebook and prepare containers
UNPRIVILEGED = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": GID,
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

SOCKET_MOUNT = {"name": "labkit-engine", "mountPath": SOCKET_DIR}
HOME_MOUNT = {"name": "home", "mountPath": WORK}
CACHE_MOUNT = {"name": "cache", "mountPath": "/home/jovyan/.cache"}  # e.g. the bundle's scanner database

c.KubeSpawner.image = CLASSROOM_IMAGE
c.KubeSpawner.uid = UID
c.KubeSpawner.gid = GID
c.KubeSpawner.fs_gid = 100  # z2jh's default: the home volume is group-writable for the learner
c.KubeSpawner.privileged = False
c.KubeSpawner.allow_privilege_escalation = False
c.KubeSpawner.container_security_context = UNPRIVILEGED

# Sizing (README): the notebook server and kernel measured about 116 + 140 MB at peak
c.KubeSpawner.mem_guarantee = "512M"
c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.cpu_guarantee = 0.25
c.KubeSpawner.cpu_limit = 1.0

# The learner edition, in the learner's own volume; JupyterLab opens on the start page
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "2Gi"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.notebook_dir = WORKSPACE
c.KubeSpawner.default_url = "/lab/tree/00-welcome.ipynb"
c.KubeSpawner.args = [
    f"--LabApp.user_settings_dir={WORKSPACE}/.jupyter/lab/user-settings",
    f"--LabApp.workspaces_dir={WORKSPACE}/.jupyter/lab/workspaces",
    "--LabApp.news_url=None",  # no calls home: the class may be offline
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
]
c.KubeSpawner.environment.update({
    "DOCKER_HOST": DOCKER_HOST,  # the learner's own engine, never the node's
    "LABKIT_WORKSPACE": WORKSPACE,
    "LABKIT_REFERENCE": "/home/jovyan/notebooks",  # lab.solution() reads the reference edition
    "XDG_STATE_HOME": f"{WORK}/.local/state",  # progress survives a restart of the pod
    # kernels POST each check result here with their JUPYTERHUB_API_TOKEN
    "LABKIT_ROSTER_URL": chart_value("custom.labkit.rosterUrl"),
})

c.KubeSpawner.volumes = [
    {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
    {"name": "labkit-engine", "emptyDir": {"sizeLimit": "1Mi"}},  # the socket only
    {"name": "engine-data", "emptyDir": {"sizeLimit": "20Gi"}},  # /var/lib/docker: images, layers, builds
    {"name": "cache", "emptyDir": {"sizeLimit": "2Gi"}},
    {"name": "bundle", "persistentVolumeClaim": {"claimName": chart_value("custom.labkit.bundleClaim"),
                                                 "readOnly": True}},
]
c.KubeSpawner.volume_mounts = [HOME_MOUNT, SOCKET_MOUNT, CACHE_MOUNT]

c.KubeSpawner.init_containers = [
    {
        "name": "engine",
        "image": ENGINE_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",  # a native sidecar: up before the notebook starts, stopped after it
        # `dockerd` as the first argument: the image's entrypoint then adds no TCP listener
        "args": ["dockerd", f"--host={DOCKER_HOST}", f"--group={GID}"],
        # the only privileged container of the pod: the price of a full engine (README, the risk)
        "securityContext": {"privileged": True, "runAsUser": 0},
        "startupProbe": {"exec": {"command": ["docker", f"--host={DOCKER_HOST}", "version"]},
                         "periodSeconds": 1, "failureThreshold": 60},
        # the lab containers run inside this container's cgroup (cgroup v2 nodes), so this caps them too
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"cpu": "2", "memory": "2Gi"}},
        "volumeMounts": [SOCKET_MOUNT, {"name": "engine-data", "mountPath": "/var/lib/docker"}],
    },
    {
        "name": "prepare",
        "image": CLASSROOM_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        # runs once the engine answers (its startupProbe): checksums first, then loads; a no-op the second time
        "command": ["sh", "-c", 'labkit workspace "$LABKIT_WORKSPACE" && '
                                f'labkit bundle import {BUNDLE} --docker-host "$DOCKER_HOST"'],
        "env": [{"name": "DOCKER_HOST", "value": DOCKER_HOST}, {"name": "LABKIT_WORKSPACE", "value": WORKSPACE}],
        "securityContext": UNPRIVILEGED,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}},
        "volumeMounts": [HOME_MOUNT, SOCKET_MOUNT, CACHE_MOUNT,
                         {"name": "bundle", "mountPath": BUNDLE, "readOnly": True}],
    },
]
c.KubeSpawner.extra_containers = []

# A sandboxed runtime (gVisor, Kata) for the whole pod where the cluster has one (README)
runtime_class = chart_value("custom.labkit.runtimeClassName")
c.KubeSpawner.extra_pod_config = {"runtimeClassName": runtime_class} if runtime_class else {}
