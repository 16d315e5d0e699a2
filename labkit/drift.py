"""Infrastructure drift (notebook 14): Ansible (community.docker's docker_api connection) applies a
desired state to lab containers, pytest-testinfra verifies it, and `--check --diff` finds drift."""
from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .core.render import Renderable, Stack, callout, command_line, seconds, table, volatile
from .core.engine import find_tool
from .core.errors import LabkitError
from .testrun import TestRun, pytest_subprocess

if TYPE_CHECKING:
    from .containers import Container
    from .lab import Lab


class AnsibleUnreachable(LabkitError):
    default_hint = "Is the container running (`docker ps`)? Ansible reaches it through the engine by its name."


@dataclass
class Task:
    name: str
    status: str  # ok, changed, failed, skipped
    diff: str = ""
    message: str = ""


@dataclass
class Play(Renderable):
    check: bool
    tasks: list[Task] = field(default_factory=list)
    seconds: float = 0.0
    equivalent: str = ""  # the ansible-playbook command line (its JSON-output environment left out)

    @property
    def changed(self) -> list[str]:
        return [t.name for t in self.tasks if t.status == "changed"]

    def _render(self):
        verb = "would change" if self.check else "changed"
        rows = [(t.name, t.status if not (self.check and t.status == "changed") else "would change",
                 t.message[:70]) for t in self.tasks]
        title = (f"ansible-playbook{' --check --diff' if self.check else ''}: {len(self.changed)} task(s) {verb} "
                 f"in {volatile(seconds(self.seconds))}")
        blocks = [table(["task", "result", "message"], rows, title=title)]
        diffs = "\n".join(t.diff for t in self.tasks if t.diff)
        if diffs:
            blocks.append(callout("info", "diff", "what differs from the desired state", details=diffs))
        return Stack(blocks)


def _diff_text(task: str, diffs: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    out = []
    for d in [diffs] if isinstance(diffs, Mapping) else diffs:
        before, after = d.get("before", ""), d.get("after", "")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = before or {}, after or {}
            for key in sorted(set(before) | set(after)):
                if key != "path" and before.get(key) != after.get(key):
                    out.append(f"{task}: {key}: {before.get(key, '-')} -> {after.get(key, '-')}")
        elif before != after:
            out += [line.rstrip("\n") for line in difflib.unified_diff(
                str(before).splitlines(True), str(after).splitlines(True),
                d.get("before_header", "before"), d.get("after_header", "after"))]
    return "\n".join(out)


def inventory(workdir: Path, hosts: Mapping[str, "Container"], daemon_url: str) -> Path:
    """An INI inventory: each host reached through the Docker API by its container's name, on the
    lab's engine (the docker_api connection does not read DOCKER_HOST: it needs the variable)."""
    lines = ["[servers]"] + [f"{name} ansible_connection=community.docker.docker_api ansible_host={c.name} "
                             f"ansible_docker_docker_host={daemon_url} "
                             "ansible_python_interpreter=/usr/bin/python3" for name, c in hosts.items()]
    path = workdir / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible(lab: "Lab", workdir: str | os.PathLike, playbook: str | os.PathLike, hosts: Mapping[str, "Container"],
            check: bool = False, extra_vars: Mapping[str, Any] | None = None, timeout: float = 300) -> Play:
    """Run a playbook on the lab containers; with check=True nothing changes and diffs are reported."""
    tool = find_tool("ansible-playbook")
    if tool is None:
        raise LabkitError("ansible-playbook is not installed.", "pip install ansible (or `make setup`).")
    workdir = Path(workdir)
    env = {**os.environ, "DOCKER_HOST": lab.daemon_url, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(workdir / ".ansible"),
           "ANSIBLE_LOCAL_TEMP": str(workdir / ".ansible" / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    cmd = [tool, "-i", str(inventory(workdir, hosts, lab.daemon_url)), str(playbook)]
    if check:
        cmd += ["--check", "--diff"]
    if extra_vars:
        cmd += ["--extra-vars", json.dumps(dict(extra_vars))]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabkitError(f"ansible-playbook took longer than {timeout:.0f} s.", "Is a host hanging?") from None
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise LabkitError(f"ansible-playbook failed before it ran a task (exit code {proc.returncode}).",
                          "Read the output: a YAML error names its line.",
                          details=(proc.stdout + proc.stderr)[-1500:]) from None
    play = Play(check, seconds=time.monotonic() - start, equivalent=command_line(["ansible-playbook", *cmd[1:]]))
    unreachable = []
    for p in result.get("plays", []):
        for t in p.get("tasks", []):
            name = t["task"]["name"]
            for host, r in t.get("hosts", {}).items():
                if r.get("unreachable"):
                    # the reason, without the HTTP details Ansible appends in parentheses
                    unreachable.append(f"{host}: {r.get('msg', '').split(' (', 1)[0][:200]}")
                    continue
                status = ("failed" if r.get("failed") else "skipped" if r.get("skipped")
                          else "changed" if r.get("changed") else "ok")
                prefix = f"{host} " if len(hosts) > 1 else ""
                play.tasks.append(Task(prefix + name, status, _diff_text(name, r.get("diff") or []),
                                       r.get("msg", "") if status == "failed" else ""))
    if unreachable:
        raise AnsibleUnreachable("Ansible could not reach " + "; ".join(unreachable))
    return play


def testinfra(lab: "Lab", workdir: str | os.PathLike, container: "Container", tests: Sequence[str],
              where: str = "against the server", timeout: float = 300) -> TestRun:
    """pytest-testinfra against one container (its docker backend, through the engine)."""
    if shutil.which("docker") is None:
        raise LabkitError("testinfra's docker backend needs the docker CLI.", "Install the docker CLI.")
    run = pytest_subprocess(workdir, [f"--hosts=docker://{container.name}", *tests], {"DOCKER_HOST": lab.daemon_url},
                            f"(testinfra) {where}", timeout)
    for case in run.cases:  # testinfra parametrizes every test by host: the name is said once, in the title
        case.name = case.name.split("[docker://", 1)[0]
    return run


def pulumi_available() -> bool:
    return shutil.which("pulumi") is not None
