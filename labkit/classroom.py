"""`labkit classroom up|status|progress|down`: a class on one Linux server. JupyterHub (PyPI) with its
proxy (npm), one unprivileged account per learner with a generated password, and one rootless engine
per learner (labkit.hub starts it with the learner's server), the lab images loaded from a bundle.
Everything listens on 127.0.0.1 unless the trainer names an address. `down` removes what `up` made
and nothing else: accounts only if `up` created them."""
from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .core.errors import LabkitError

STATE = Path(os.environ.get("LABKIT_CLASSROOM_DIR", "/var/lib/labkit-classroom"))
PER_LEARNER_MB = 500  # server + kernel + engine + lab containers, measured by bench/classroom.py
HUB_MB = 256  # hub + proxy + roster


def load_state() -> dict:
    try:
        return json.loads((STATE / "classroom.json").read_text())
    except (OSError, ValueError):
        return {}


def _save(state: dict) -> None:
    path = STATE / "classroom.json"
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)  # passwords and the admin token


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def max_learners(avail_mb: int | None = None) -> int:
    """How many learners this server's free memory holds (TLJH's rule: learners x peak + the hub)."""
    avail = available_mb() if avail_mb is None else avail_mb
    return max(0, (avail - HUB_MB) // PER_LEARNER_MB)


def limits_note() -> str:
    """Can this host hold each learner to a memory/CPU budget? Only systemd with cgroup v2 delegation can."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    systemd = Path("/run/systemd/system").is_dir()
    if v2 and systemd:
        return "per-learner limits: available (systemd with cgroup v2: set them with `systemctl set-property user-UID.slice MemoryMax=...`)"
    why = ", ".join(w for w, bad in (("cgroup v1", not v2), ("no systemd", not systemd)) if bad)
    return (f"per-learner limits: NOT enforced on this host ({why}): a learner's containers can use all of the "
            "server's memory and CPU; size the class with margin (see the README, 'A class on one server')")


def learner_names(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(1, n + 1)]


def _preflight(names: list[str], trainer: str, ip: str, port: int, bundle: Path) -> None:
    if os.geteuid() != 0:
        raise LabkitError("`labkit classroom up` makes accounts and starts the hub: it needs root.",
                          f"Run it with sudo: `sudo {sys.executable} -m labkit.cli classroom up ...`.")
    limit = max_learners()
    if len(names) > limit:
        raise LabkitError(f"{len(names)} learners do not fit: {available_mb()} MB of memory is free, which holds "
                          f"{limit} at {PER_LEARNER_MB} MB each plus {HUB_MB} MB for the hub.",
                          f"Ask for at most --learners {limit}, or use a bigger server (or the Kubernetes path).")
    created = {u["name"] for u in load_state().get("accounts", []) if u.get("created")}
    for name in [*names, trainer]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        if name not in created:
            raise LabkitError(f"{name} is already an account on this machine; the classroom does not touch accounts "
                              "it did not make.", "Choose other names with --prefix (learners) or --trainer.")
    if not _port_free(ip, port):
        raise LabkitError(f"Port {port} on {ip} is in use.", "Pass another one with --port, or stop what listens there "
                          f"(`ss -ltnp 'sport = :{port}'`).")
    if not (bundle / "bundle.json").exists():
        raise LabkitError(f"No class bundle at {bundle}.", f"Make one where the lab images are: `labkit prepare && "
                          f"labkit bundle export {bundle}`, then pass --bundle {bundle}.")
    from .rootless import requirements
    missing = [(w, fix) for w, ok, fix in requirements("root") if not ok and not w.startswith(("user ", "/etc/sub"))]
    if missing:
        raise LabkitError("Learners' rootless engines cannot start here: missing " + ", ".join(w for w, _ in missing) + ".",
                          "; ".join(f for _, f in missing))


def _account(name: str, accounts: list[dict]) -> str:
    """Make the account (home mode 700, a subordinate id range nobody else has) with a new password."""
    from .rootless import free_subid_range
    password = secrets.token_urlsafe(9)
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", "-K", "UMASK=077", name],
                   check=True, capture_output=True)
    accounts.append({"name": name, "created": True})
    subprocess.run(["chpasswd"], input=f"{name}:{password}", text=True, check=True, capture_output=True)
    for kind in ("subuid", "subgid"):
        if not any(line.startswith(f"{name}:") for line in Path(f"/etc/{kind}").read_text().splitlines()):
            first, last = free_subid_range()
            subprocess.run(["usermod", f"--add-{kind}s", f"{first}-{last}", name], check=True, capture_output=True)
    return password





def hub_api(state: dict, path: str, method: str = "GET", body: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{state['port']}/hub/api/{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"token {state['admin_token']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


def up(learners: int, prefix: str = "learner", trainer: str = "trainer", ip: str = "127.0.0.1", port: int = 8000,
       bundle: str | Path | None = None, timeout: float = 60) -> dict:
    """Make the accounts, the learners' venv and the hub config; start the hub; return the state."""
    if load_state().get("hub_pid") and _alive(load_state()["hub_pid"]):
        raise LabkitError("A classroom runs already.", "`labkit classroom status` shows it; `labkit classroom down` ends it.")
    bundle = Path(bundle or STATE / "bundle").resolve()
    names = learner_names(learners, prefix)
    _preflight(names, trainer, ip, port, bundle)
    old_umask = os.umask(0o077)  # the hub's database, logs and the roster are root's alone (the venv is opened below)
    try:
        return _up(names, trainer, ip, port, bundle, timeout)
    finally:
        os.umask(old_umask)


def _up(names: list[str], trainer: str, ip: str, port: int, bundle: Path, timeout: float) -> dict:
    STATE.mkdir(parents=True, exist_ok=True)
    state = {"learners": names, "trainer": trainer, "ip": ip, "port": port, "bundle": str(bundle),
             "hub_port": _free_port(), "proxy_api_port": _free_port(), "roster_port": _free_port(),
             "admin_token": secrets.token_hex(32), "accounts": load_state().get("accounts", []),
             "passwords": load_state().get("passwords", {})}  # a second up after a failed one keeps the cards
    _save(state)
    for name in [*names, trainer]:
        if not any(a["name"] == name for a in state["accounts"]):
            state["passwords"][name] = _account(name, state["accounts"])
            _save(state)
    from . import hub
    state["proxy"] = hub.proxy_command(STATE)
    venv = hub.learner_venv(STATE)
    hub.check_learner_can_run(venv, names[0])
    (STATE / "jupyterhub_config.py").write_text(hub.config(state, venv, STATE))
    log = open(STATE / "hub.log", "ab")
    hub = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(STATE / "jupyterhub_config.py")],
                           cwd=STATE, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()  # the hub keeps its own copy
    state["hub_pid"] = hub.pid
    _save(state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise LabkitError("JupyterHub stopped while starting:\n" + (STATE / "hub.log").read_text()[-2000:],
                              f"Read {STATE / 'hub.log'}; `labkit classroom down` removes what was made.")
        try:
            hub_api(state, "")
            return state
        except OSError:
            time.sleep(0.3)
    raise LabkitError(f"JupyterHub did not answer within {timeout:.0f} s.", f"Read {STATE / 'hub.log'}.")


def cards(state: dict) -> str:
    """Login cards: one per account, to print and hand out."""
    url = f"http://{state['ip']}:{state['port']}/"
    out = []
    for name in [*state["learners"], state["trainer"]]:
        trainer = name == state["trainer"]
        pw = state["passwords"].get(name, "(unchanged)")
        lines = ["Cloud-native labs: " + ("trainer" if trainer else "learner"), url, f"user:     {name}", f"password: {pw}"]
        if trainer:
            lines.append(f"roster:   {url}services/roster/")
        width = max(map(len, lines))
        out.append("\n".join([f"+{'-' * (width + 2)}+", *[f"| {line:<{width}} |" for line in lines], f"+{'-' * (width + 2)}+"]))
    return "\n".join(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def status() -> dict:
    from . import userengine
    state = load_state()
    if not state:
        return {"running": False}
    up_ = bool(state.get("hub_pid")) and _alive(state["hub_pid"])
    servers = {}
    if up_:
        try:
            servers = {u["name"]: bool(u.get("servers")) for u in hub_api(state, "users")}
        except OSError:
            pass
    learners = [{"learner": u, "server": servers.get(u, False), "engine": userengine.for_user(u).answers(1)}
                for u in state["learners"]]
    return {"running": up_, "url": f"http://{state['ip']}:{state['port']}/", "hub_pid": state.get("hub_pid"),
            "learners": learners, "limits": limits_note()}


def leftovers(names: list[str]) -> list[str]:
    """What of the classroom is still on this machine: processes, sockets, homes, mounts, accounts."""
    out = []
    uids = {}
    for name in names:
        try:
            uids[pwd.getpwnam(name).pw_uid] = name
            out.append(f"account {name}")
        except KeyError:
            pass
        if Path(f"/home/{name}").exists():
            out.append(f"directory /home/{name}")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.stat().st_uid in uids:
                    out.append(f"process {proc.name} of {uids[proc.stat().st_uid]}")
            except OSError:
                pass
    mounts = Path("/proc/mounts").read_text()
    out += [f"mount {line.split()[1]}" for line in mounts.splitlines()
            if any(f"/home/{n}/" in line for n in names) or str(STATE) in line]
    if STATE.exists():
        out.append(f"directory {STATE}")
    return out


def down(timeout: float = 30) -> list[str]:
    """Stop the hub (it stops every server, and each server's end stops that learner's engine), then
    remove every engine, process, account and directory `up` made. Returns what is left (nothing)."""
    from . import userengine
    state = load_state()
    if not state:
        return []
    pid = state.get("hub_pid")
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    names = [a["name"] for a in state.get("accounts", []) if a.get("created")]
    for name in state.get("learners", []):
        try:
            userengine.stop(name, purge=True)
        except LabkitError:
            pass
    for name in names:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        for _ in range(50):
            if subprocess.run(["pgrep", "-u", name], capture_output=True).returncode:
                break
            time.sleep(0.1)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
    proxy = STATE / "proxy.pid"
    if proxy.exists():
        try:
            os.kill(int(proxy.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    from .core.reaper import remove_path
    remove_path(STATE)
    return leftovers(names)
