"""The classroom's JupyterHub: its spawner, and what `labkit classroom up` provisions for it (the
learners' venv, the proxy, the config). The spawner: before a learner's server starts, that
learner's own rootless engine starts (labkit.userengine), the lab images go into it from the class bundle, and the learner's
workspace (the learner edition) is made or updated; the server and its kernels get DOCKER_HOST and
the roster's address. After the server stops, the engine stops (its images stay for next time)."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Float, Unicode

from . import userengine, workspace
from .core.errors import LabkitError


class LearnerSpawner(LocalProcessSpawner):
    bundle = Unicode("", config=True, help="the class bundle (labkit bundle export) loaded into each learner's engine")
    learner_bin = Unicode("", config=True, help="bin/ of the venv learners run (labkit, jupyterhub-singleuser)")
    roster_url = Unicode("", config=True, help="where a learner's kernel sends its progress")
    reference = Unicode("", config=True, help="the reference edition's notebooks (lab.solution reads them)")
    engine_memory = Unicode("", config=True, help="MemoryMax of a learner's engine and containers (systemd + cgroup v2 only)")
    engine_cpus = Float(0, config=True, help="CPUs of a learner's engine and containers (systemd + cgroup v2 only)")

    async def start(self):
        name = self.user.name
        engine = await asyncio.to_thread(userengine.start, name, 30, self.engine_memory, self.engine_cpus)
        self.log.info("labkit: %s's engine answers at %s", name, engine.socket)
        await asyncio.to_thread(self._load_images, engine)
        root = await asyncio.to_thread(self._workspace)
        self.notebook_dir = str(root)
        self.environment = {**self.environment, "DOCKER_HOST": engine.url, "LABKIT_ROSTER_URL": self.roster_url,
                            "LABKIT_REFERENCE": self.reference, "LABKIT_CLASSROOM": "1",
                            # the learner's own runtime directory (locks, sockets), not a guessable one in /tmp
                            "XDG_RUNTIME_DIR": str(root.parent / ".labkit" / "runtime")}
        return await super().start()

    def get_args(self):
        root = Path(self.notebook_dir)
        return [*super().get_args(), *workspace.jupyter_args(root)[1:], "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # kernels talk over unix sockets in the learner's home (mode 700): loopback TCP
                # would let any local user read another learner's kernel output
                "--KernelManager.transport=ipc"]

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await asyncio.to_thread(userengine.stop, self.user.name)

    async def poll(self):
        status = await super().poll()
        engine = userengine.for_user(self.user.name)
        if status is None and not await asyncio.to_thread(engine.answers, 1):
            self.log.warning("labkit: %s's server runs but their engine does not answer", self.user.name)
        return status

    def _load_images(self, engine: userengine.UserEngine) -> None:
        load_images(self.bundle, engine)

    def _workspace(self) -> Path:
        """The learner edition in ~/labkit-workspace, made or updated as the learner (their files)."""
        home = Path(os.path.expanduser(f"~{self.user.name}"))
        root = home / "labkit-workspace"
        seed = f"from pathlib import Path; from labkit import workspace as w; w.update(Path({str(root)!r}), Path({self.reference!r})); " \
               f"w.seed_jupyterlab(Path({str(root)!r})); Path({str(home / '.labkit' / 'runtime')!r}).mkdir(mode=0o700, parents=True, exist_ok=True)"
        subprocess.run(["runuser", "-u", self.user.name, "--", "env", f"HOME={home}",
                        f"{self.learner_bin}/python", "-c", seed], check=True, capture_output=True, cwd=home)
        return root


_MANIFESTS: dict[str, dict] = {}  # bundle -> its manifest, checked once per process (300 MB of sha256)


def load_images(bundle_dir: str, engine: userengine.UserEngine):
    """The class bundle's images into a learner's engine. Root loads them (root may open any
    socket; start() checked it is the learner's own); what is there already is skipped."""
    import docker
    from . import bundle
    if bundle_dir not in _MANIFESTS:
        _MANIFESTS[bundle_dir] = bundle.verify_bundle(bundle_dir)
    return bundle.import_(bundle_dir, docker.DockerClient(base_url=engine.url, timeout=600), _MANIFESTS[bundle_dir])


def preload(bundle_dir: str, names: list[str], workers: int = 2) -> None:
    """Before the class: each learner's engine started once, loaded from the bundle, stopped again
    (its images stay), so that when everyone logs in at once a spawn only starts what is ready."""
    from concurrent.futures import ThreadPoolExecutor
    from tqdm.auto import tqdm

    def one(name: str) -> None:
        engine = userengine.start(name)
        try:
            load_images(bundle_dir, engine)
        finally:
            userengine.stop(engine)
    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # one bar for the class, not one per learner's import
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                tqdm(total=len(names), desc="learners' engines", unit="learner", disable=bool(quiet)) as bar:
            for _ in pool.map(one, names):
                bar.update(1)
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = quiet


# --- what `labkit classroom up` provisions for the hub ------------------------------------------

REPO = Path(__file__).resolve().parent.parent
CHP_VERSION = "5.3.0"


def learner_venv(state_dir: Path) -> Path:
    """A venv every learner may run (root's may sit under /root): the distribution's Python and the lock."""
    venv = state_dir / "venv"
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    uv = shutil.which("uv") or next(iter(sorted(Path(sys.prefix).glob("uv-*/bin/uv"))), None)
    lock = str(REPO / "requirements.lock")
    if uv:
        subprocess.run([str(uv), "pip", "sync", "--python", str(venv / "bin/python"), "--require-hashes", lock], check=True,
                       capture_output=True)
        subprocess.run([str(uv), "pip", "install", "--python", str(venv / "bin/python"), "--no-deps", "-e", str(REPO)],
                       check=True, capture_output=True)
    else:
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--require-hashes", "-r", lock], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)  # learners run it; nothing in it is secret
    state_dir.chmod(0o755)
    return venv


def check_learner_can_run(venv: Path, name: str) -> None:
    """A learner's server runs the class venv and reads the reference notebooks as that learner."""
    probe = subprocess.run(["runuser", "-u", name, "--", str(venv / "bin/python"), "-c",
                            f"import labkit; open({str(REPO / 'notebooks' / '00-welcome.ipynb')!r}).close()"],
                           capture_output=True, text=True, cwd="/")
    if probe.returncode:
        blocked = next((str(p) for p in [*reversed(venv.parents), *reversed(REPO.parents)]
                        if not os.stat(p).st_mode & 0o001), "?")
        raise LabkitError(f"Learner {name} cannot run {venv}/bin/python or read the notebooks: "
                          f"{probe.stderr.strip()[-300:]}",
                          f"Every directory on the way must let others through ({blocked} does not): "
                          "use a --dir/LABKIT_CLASSROOM_DIR and a checkout outside /root, or `chmod o+x` them.")

def proxy_command(state_dir: Path) -> str:
    home = Path(sys.prefix) / "node"  # beside the Python packages: installed once, like them (down keeps it)
    found = shutil.which("configurable-http-proxy") or home / "node_modules/.bin/configurable-http-proxy"
    if Path(found).exists():
        return str(found)
    npm = shutil.which("npm")
    if not npm:
        raise LabkitError("JupyterHub's proxy (configurable-http-proxy) is missing, and npm is not here to install it.",
                          "`apt-get install nodejs npm`, then run `labkit classroom up` again.")
    # the registry comes from npm's own configuration
    subprocess.run([npm, "install", "--silent", "--prefix", str(home),
                    f"configurable-http-proxy@{CHP_VERSION}"], check=True, capture_output=True)
    return str(found)

def connect_host(state: dict) -> str:
    """The address to reach the hub at from this machine (a wildcard listens on loopback too)."""
    return "127.0.0.1" if state["ip"] in ("0.0.0.0", "::", "") else state["ip"]


def config(state: dict, venv: Path, state_dir: Path) -> str:
    learners, trainer = state["learners"], state["trainer"]
    roster_port = state["roster_port"]
    service_env = {"LABKIT_ROSTER_STORE": str(state_dir / "roster.json"), "LABKIT_LEARNERS": ",".join(learners),
                   "LABKIT_TRAINERS": trainer, "PATH": os.environ.get("PATH", "")}
    return f"""# written by `labkit classroom up`; `labkit classroom down` removes it
c = get_config()  # noqa
c.JupyterHub.ip = {state['ip']!r}
c.JupyterHub.port = {state['port']}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {state['hub_port']}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{state['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [{state['proxy']!r}]
c.ConfigurableHTTPProxy.pid_file = {str(state_dir / 'proxy.pid')!r}
c.JupyterHub.db_url = "sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(state_dir / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(state_dir / 'hub.pid')!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = {set(learners) | {trainer}!r}
c.JupyterHub.spawner_class = "labkit.hub.LearnerSpawner"
c.Spawner.cmd = [{str(venv / 'bin/jupyterhub-singleuser')!r}]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
c.LearnerSpawner.bundle = {state['bundle']!r}
c.LearnerSpawner.learner_bin = {str(venv / 'bin')!r}
c.LearnerSpawner.reference = {str(REPO / 'notebooks')!r}
c.LearnerSpawner.engine_memory = {state.get('memory', '')!r}
c.LearnerSpawner.engine_cpus = {float(state.get('cpus', 0))!r}
# through the proxy: the roster's own port is never handed to learners (nor their tokens to whoever binds it)
c.LearnerSpawner.roster_url = "http://{connect_host(state)}:{state['port']}/services/roster/api/progress"
c.JupyterHub.load_groups = {{"trainers": {{"users": [{trainer!r}]}}}}
c.JupyterHub.services = [
    {{"name": "roster", "url": "http://127.0.0.1:{roster_port}", "command": [{sys.executable!r}, "-m", "labkit.roster"],
     "environment": {service_env!r}, "oauth_no_confirm": True}},
    {{"name": "classroom-admin", "api_token": {state['admin_token']!r}}},
]
c.JupyterHub.load_roles = [
    {{"name": "trainers", "groups": ["trainers"], "scopes": ["access:services!service=roster", "self"]}},
    {{"name": "classroom-admin", "services": ["classroom-admin"],
     "scopes": ["admin:users", "admin:servers", "read:users", "read:servers", "tokens", "access:servers", "read:roles"]}},
]
"""
