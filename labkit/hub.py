"""The classroom's JupyterHub spawner: before a learner's server starts, that learner's own rootless
engine starts (labkit.userengine), the lab images go into it from the class bundle, and the learner's
workspace (the learner edition) is made or updated; the server and its kernels get DOCKER_HOST and
the roster's address. After the server stops, the engine stops (its images stay for next time)."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from . import userengine, workspace


class LearnerSpawner(LocalProcessSpawner):
    bundle = Unicode("", config=True, help="the class bundle (labkit bundle export) loaded into each learner's engine")
    learner_bin = Unicode("", config=True, help="bin/ of the venv learners run (labkit, jupyterhub-singleuser)")
    roster_url = Unicode("", config=True, help="where a learner's kernel sends its progress")
    reference = Unicode("", config=True, help="the reference edition's notebooks (lab.solution reads them)")

    async def start(self):
        name = self.user.name
        engine = await asyncio.to_thread(userengine.start, name)
        self.log.info("labkit: %s's engine answers at %s", name, engine.socket)
        await asyncio.to_thread(self._load_images, engine)
        root = await asyncio.to_thread(self._workspace)
        self.notebook_dir = str(root)
        self.args = [*self.args, *workspace.jupyter_args(root)[1:], "--LabApp.news_url=None",
                     "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.environment = {**self.environment, "DOCKER_HOST": engine.url, "LABKIT_ROSTER_URL": self.roster_url,
                            "LABKIT_REFERENCE": self.reference, "LABKIT_CLASSROOM": "1"}
        return await super().start()

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await asyncio.to_thread(userengine.stop, self.user.name)

    async def poll(self):
        status = await super().poll()
        if status is None and not userengine.for_user(self.user.name).answers():
            self.log.warning("labkit: %s's server runs but their engine does not answer", self.user.name)
        return status

    def _load_images(self, engine: userengine.UserEngine) -> None:
        # root loads them (root may open any socket); importing what is there already is a no-op
        import docker
        from . import bundle
        bundle.import_(self.bundle, docker.DockerClient(base_url=engine.url, timeout=600))

    def _workspace(self) -> Path:
        """The learner edition in ~/labkit-workspace, made or updated as the learner (their files)."""
        home = Path(os.path.expanduser(f"~{self.user.name}"))
        root = home / "labkit-workspace"
        seed = f"from pathlib import Path; from labkit import workspace as w; w.update(Path({str(root)!r}), Path({self.reference!r})); " \
               f"w.seed_jupyterlab(Path({str(root)!r}))"
        subprocess.run(["runuser", "-u", self.user.name, "--", "env", f"HOME={home}",
                        f"{self.learner_bin}/python", "-c", seed], check=True, capture_output=True, cwd=home)
        return root
