"""`labkit classroom up|status|progress|down`: a class on one Linux server. JupyterHub (PyPI) with its
proxy (npm), one unprivileged account per learner with a generated password, and one rootless engine
per learner (labkit.hub starts it with the learner's server), the lab images loaded from a bundle.
Everything listens on 127.0.0.1 unless the trainer names an address. `down` removes what `up` made
and nothing else: accounts only if `up` created them."""
from __future__ import annotations

import json
import os
import re
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
from .core.tracker import process_alive, start_time

STATE = Path(os.environ.get("LABKIT_CLASSROOM_DIR", "/var/lib/labkit-classroom"))
DEFAULT_BUNDLE = Path("/var/lib/labkit-bundle")  # outside STATE: down keeps it for the next class
PER_LEARNER_MB = 500  # server + kernel + engine + lab containers, measured by bench/classroom.py
HUB_MB = 256  # hub + proxy + roster


def load_state() -> dict:
    try:
        return json.loads((STATE / "classroom.json").read_text())
    except (OSError, ValueError):
        return {}


def _save(state: dict) -> None:
    path = STATE / "classroom.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # passwords and the admin token
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, path)


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(n: int) -> list[int]:
    """n different free ports (all held until each is known, so none comes twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def max_learners(avail_mb: int | None = None) -> int:
    """How many learners this server's free memory holds (TLJH's rule: learners x peak + the hub)."""
    avail = available_mb() if avail_mb is None else avail_mb
    return max(0, (avail - HUB_MB) // PER_LEARNER_MB)


def limits_available() -> bool:
    """Can this host hold each learner to a memory/CPU budget? Only systemd with cgroup v2 can."""
    return Path("/sys/fs/cgroup/cgroup.controllers").exists() and Path("/run/systemd/system").is_dir()


def limits_note(memory: str = "2G", cpus: float = 1.0) -> str:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    systemd = Path("/run/systemd/system").is_dir()
    if v2 and systemd:
        return (f"per-learner limits: each learner's engine and containers run in a systemd scope held to "
                f"MemoryMax={memory} and {cpus:g} CPU (their server and kernels are not limited)")
    why = ", ".join(w for w, bad in (("cgroup v1", not v2), ("no systemd", not systemd)) if bad)
    return (f"per-learner limits: NOT enforced on this host ({why}): a learner's containers can use all of the "
            "server's memory and CPU; size the class with margin (see the README, 'A class on one server')")


NAME = re.compile(r"[a-z_][a-z0-9_-]{0,29}")


def learner_names(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(1, n + 1)]



def _preflight(names: list[str], trainer: str, ip: str, port: int, bundle: Path) -> None:
    if os.geteuid() != 0:
        raise LabkitError("`labkit classroom up` makes accounts and starts the hub: it needs root.",
                          f"Run it with sudo: `sudo {sys.executable} -m labkit.cli classroom up ...`.")
    if not names:
        raise LabkitError("A class needs at least one learner.", "Pass --learners N with N >= 1.")
    bad = [n for n in [*names, trainer] if not NAME.fullmatch(n)]
    if bad or trainer in names:
        raise LabkitError(f"Not a usable account name: {', '.join(bad) or trainer + ' (both trainer and learner)'}.",
                          "Use lower-case letters, digits, '-' and '_' (at most 30, not starting with a digit or '-'), "
                          "and a trainer name that is not a learner's.")
    if STATE.exists() and any(STATE.iterdir()) and not (STATE / "classroom.json").exists():
        raise LabkitError(f"{STATE} holds files that are not a classroom's; down would delete them.",
                          "Point LABKIT_CLASSROOM_DIR at an empty or new directory.")
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


def _run(cmd: list[str], **kwargs) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise LabkitError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-400:]}",
                          "`labkit classroom down` removes what was made so far; fix the cause and run up again.")


def _account(name: str, state: dict) -> str:
    """Make the account (home mode 700, a subordinate id range nobody else has) with a new password;
    noted in the state as soon as it exists, so that down removes it even if a later step fails."""
    from .rootless import free_subid_range
    password = secrets.token_urlsafe(9)
    _run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", "-K", "UMASK=077", name])
    state["accounts"].append({"name": name, "created": True})
    _save(state)
    _run(["chpasswd"], input=f"{name}:{password}")
    for kind in ("subuid", "subgid"):
        if not any(line.startswith(f"{name}:") for line in Path(f"/etc/{kind}").read_text().splitlines()):
            first, last = free_subid_range()
            _run(["usermod", f"--add-{kind}s", f"{first}-{last}", name])
    return password





def hub_api(state: dict, path: str, method: str = "GET", body: dict | None = None):
    from .hub import connect_host
    req = urllib.request.Request(f"http://{connect_host(state)}:{state['port']}/hub/api/{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"token {state['admin_token']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


def up(learners: int, prefix: str = "learner", trainer: str = "trainer", ip: str = "127.0.0.1", port: int = 8000,
       bundle: str | Path | None = None, timeout: float = 60, memory: str = "2G", cpus: float = 1.0) -> dict:
    """Make the accounts, the learners' venv and the hub config; start the hub; return the state."""
    if _hub_alive(load_state()):
        raise LabkitError("A classroom runs already.", "`labkit classroom status` shows it; `labkit classroom down` ends it.")
    bundle = Path(bundle or DEFAULT_BUNDLE).resolve()
    names = learner_names(learners, prefix)
    _preflight(names, trainer, ip, port, bundle)
    old_umask = os.umask(0o077)  # the hub's database, logs and the roster are root's alone (the venv is opened below)
    try:
        state = _up(names, trainer, ip, port, bundle, timeout, memory if limits_available() else "",
                    cpus if limits_available() else 0)
        return state
    finally:
        os.umask(old_umask)


def _up(names: list[str], trainer: str, ip: str, port: int, bundle: Path, timeout: float, memory: str,
        cpus: float) -> dict:
    STATE.mkdir(parents=True, exist_ok=True)
    hub_port, proxy_api_port, roster_port = _free_ports(3)
    state = {"learners": names, "trainer": trainer, "ip": ip, "port": port, "bundle": str(bundle),
             "hub_port": hub_port, "proxy_api_port": proxy_api_port, "roster_port": roster_port,
             "memory": memory, "cpus": cpus,
             "admin_token": secrets.token_hex(32), "accounts": load_state().get("accounts", []),
             "passwords": load_state().get("passwords", {})}  # a second up after a failed one keeps the cards
    _save(state)
    for name in [*names, trainer]:
        if not any(a["name"] == name for a in state["accounts"]):
            state["passwords"][name] = _account(name, state)
            _save(state)
    from . import hub
    state["proxy"] = hub.proxy_command(STATE)
    venv = hub.learner_venv(STATE)
    hub.check_learner_can_run(venv, names[0])
    hub.preload(str(bundle), names)
    (STATE / "jupyterhub_config.py").write_text(hub.config(state, venv, STATE))
    log = open(STATE / "hub.log", "ab")
    hub = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(STATE / "jupyterhub_config.py")],
                           cwd=STATE, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()  # the hub keeps its own copy
    state["hub_pid"], state["hub_start"] = hub.pid, start_time(hub.pid)
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
    host = socket.gethostname() if state["ip"] in ("0.0.0.0", "::", "") else state["ip"]  # an address people can type
    url = f"http://{host}:{state['port']}/"
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


def _hub_alive(state: dict) -> bool:
    """Is the hub `up` started still running (the same process: a pid reused after a reboot is not)?"""
    return bool(state.get("hub_pid")) and process_alive(state["hub_pid"], state.get("hub_start"))


def _engine_answers(name: str) -> bool:
    from . import userengine
    try:
        return userengine.for_user(name).answers(1)
    except LabkitError:  # an account a failed up never made
        return False


def status() -> dict:
    state = load_state()
    if not state:
        return {"running": False}
    up_ = _hub_alive(state)
    servers = {}
    if up_:
        try:
            servers = {u["name"]: bool(u.get("servers")) for u in hub_api(state, "users")}
        except OSError:
            pass
    learners = [{"learner": u, "server": servers.get(u, False), "engine": _engine_answers(u)} for u in state["learners"]]
    return {"running": up_, "url": f"http://{state['ip']}:{state['port']}/", "hub_pid": state.get("hub_pid"),
            "learners": learners, "limits": limits_note(state.get("memory") or "2G", state.get("cpus") or 1.0)}


def _services() -> list[int]:
    """The hub's helpers that outlive a killed hub (the proxy, the roster): found by what they carry."""
    marks = (f"LABKIT_ROSTER_STORE={STATE / 'roster.json'}".encode(), str(STATE / "proxy.pid").encode())
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                blob = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if any(m in blob for m in marks):
                out.append(int(proc.name))
    return out


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
    out += [f"process {pid} (hub service)" for pid in _services()]
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
    if _hub_alive(state):
        pid = state["hub_pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid, state.get("hub_start")) and time.monotonic() < deadline:
            time.sleep(0.2)
        if process_alive(pid, state.get("hub_start")):
            os.kill(pid, signal.SIGKILL)
    for pid in _services():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
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
        # what the learner left outside their home (the next class may get the same uid)
        subprocess.run(["find", "/tmp", "/var/tmp", "/dev/shm", "-xdev", "-user", name, "-delete"], capture_output=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
    if (STATE / "classroom.json").exists():  # only a classroom's own directory
        import shutil
        shutil.rmtree(STATE, ignore_errors=True)
    return leftovers(names)
