"""Checks of notebook 04 (troubleshooting from scratch)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker

from ..containers import Container, TcpPort
from ..core.errors import LabkitError
from ..core.session import LOOPBACK, SESSION_LABEL
from ..exercises import exercise
from ..predictions import question
from ..procfs import cgroup

MIB = 1024 * 1024


def _container(lab, name: str) -> Container | None:
    try:
        return Container(lab.session, lab.client.containers.get(lab.name(name)))
    except docker.errors.NotFound:
        return None


def _joins(mode: str, target: Container) -> bool:
    return mode in (f"container:{target.id}", f"container:{target.name}")


def _not_running(lab, name: str, found: Container | None) -> str:
    """What a check found instead of a running container `name`: its state, or the session's containers."""
    full = lab.name(name)
    if found is not None:
        return f"Found the container {full}, but it is {found.status()} (not running): remove it and start it again."
    mine = lab.client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={lab.session.id}"})
    prefix = lab.name("")
    names = ", ".join(sorted(c.name.removeprefix(prefix) for c in mine)) or "none"
    return (f"No container named {full} (in a shell: $LAB_PREFIX-{name}); this session's containers: {names}.")


@exercise("troubleshooting", "debug-sidecar", "Debug the scratch container from a sidecar", (
    "Leave shop alone: start a second container that brings its own tools and lives in some of shop's namespaces.",
    "Section 3 joined shop's PID namespace from Python (pid_mode='container:...'); `docker run --help` has a "
    "flag for the PID namespace and one for the network namespace, both taking container:NAME "
    "($LAB_PREFIX-shop is shop's name).",
    "In a %%bash cell: docker run -d --name $LAB_PREFIX-debugger --pid container:$LAB_PREFIX-shop "
    "--network container:$LAB_PREFIX-shop labkit/busybox sleep 3600",
))
def debug_sidecar(lab):
    shop, debugger = _container(lab, "shop"), _container(lab, "debugger")
    if shop is None or shop.status() != "running":
        return False, "The shop container is not running: run the cell that starts it (start_shop())."
    if debugger is None or debugger.status() != "running":
        return False, _not_running(lab, "debugger", debugger)
    host = debugger.attrs()["HostConfig"]
    modes = {"PID": host.get("PidMode", ""), "network": host.get("NetworkMode", "")}
    missing = [ns for ns, mode in modes.items() if not _joins(mode, shop)]
    if missing:
        found = ", ".join(f"{ns} mode {mode or 'its own'!r}" for ns, mode in modes.items())
        return False, f"debugger does not share the {' and '.join(missing)} namespace(s) of shop (found: {found})."
    seen = debugger.exec(["sh", "-c", "ps -o comm && netstat -tln"]).stdout
    if "httpd" not in seen or ":8080" not in seen:
        return False, f"From debugger, ps does not show shop's httpd or netstat its port 8080; they said: {seen.strip()[:200]}"
    return True, "debugger sees shop's httpd process and its listening port 8080, without touching shop's image."


# A colleague's batch worker: it loads 30 MB at start (busybox sh needs about twice that while reading
# it), then waits for work. Their `docker run --memory 32m` kills it every time.
WORKER_COMMAND = ["sh", "-c", 'x=$(head -c 30000000 /dev/zero | tr "\\0" x); echo "loaded ${#x} bytes"; sleep 3600']
WORKER_READY = "loaded 30000000 bytes"
WORKER_CAP = 128 * MIB


def deploy_worker(lab) -> Container:
    """The colleague's deployment: the worker with 32 MiB and 50 processes; returns once it has ended."""
    worker = lab.start("labkit/busybox", WORKER_COMMAND, name="worker", mem_limit="32m", memswap_limit="32m",
                       pids_limit=50)
    worker.model.wait(timeout=60)
    return worker


@exercise("troubleshooting", "limits", "Keep the worker alive, and capped", (
    "A container that exits with code 137 was killed with SIGKILL (128 + 9). Who sends SIGKILL to a process "
    "nobody touched? The container's state says more than its exit code.",
    "docker inspect -f '{{.State.OOMKilled}} {{.HostConfig.Memory}}' $LAB_PREFIX-worker, and docker logs. "
    "Limits are set when a container starts: remove it and run the same command again with other flags "
    "(docker inspect -f '{{json .Config.Cmd}}' shows the command).",
    "In a %%bash cell: docker rm -f $LAB_PREFIX-worker, then docker run -d --name $LAB_PREFIX-worker --memory 128m "
    "--memory-swap 128m --pids-limit 50 labkit/busybox sh -c 'x=$(head -c 30000000 /dev/zero | tr \"\\0\" x); "
    "echo \"loaded ${#x} bytes\"; sleep 3600'",
))
def limits(lab):
    worker = _container(lab, "worker")
    if worker is None:
        return False, _not_running(lab, "worker", worker)
    attrs = worker.model.attrs
    if attrs["Config"]["Cmd"] != WORKER_COMMAND:
        return False, "worker runs another command than the colleague's: keep the command, change how it is run."
    deadline = time.monotonic() + 15  # loading takes a second or two
    while WORKER_READY not in worker.logs() and worker.status() == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    worker.model.reload()
    state = worker.model.attrs["State"]
    if worker.status() != "running" or WORKER_READY not in worker.logs():
        return False, (f"worker is {worker.status()} (exit code {state.get('ExitCode')}) and never said it was "
                       "ready: it still cannot load its data.")
    usage = cgroup(worker)  # what the kernel enforces, not just what docker was asked
    problems = []
    if usage.memory_limit is None or usage.memory_limit > WORKER_CAP:
        problems.append("its memory is " + ("not capped" if usage.memory_limit is None else
                                            f"capped at {usage.memory_limit / MIB:g} MiB") +
                        ": a leak could take the whole host's memory; keep a cap of at most 128 MiB")
    if usage.pids_limit is None or usage.pids_limit > 50:
        problems.append(f"its process limit is {usage.pids_limit or 'gone'}: keep the colleague's 50")
    if problems:
        return False, "worker is alive, but " + "; ".join(problems) + "."
    return True, (f"worker loaded its data and runs, capped at {usage.memory_limit / MIB:g} MiB and "
                  f"{usage.pids_limit} processes.")


# --- the mission: a distroless service that does not answer -----------------------------------------

def deploy_catalog(lab, project: str | Path) -> Container:
    """A colleague's deployment of the catalog service (how they ran it is for you to find out). The image
    id is kept in the session's state: the mission's check compares it with what runs in the end."""
    image = lab.build("catalog", context=project)
    (lab.state / "catalog.json").write_text(json.dumps({"image": image.image_id}))
    return lab.start(lab.image("catalog"), ["-p", "127.0.0.1:8080"], name="catalog", ports={8080: None},
                     wait=TcpPort(8080))


def ask(port: int, tries: float = 1) -> str:
    """What `curl http://127.0.0.1:PORT/` gets, in a few words; retried for `tries` seconds (a service
    started a moment ago may not listen yet)."""
    deadline = time.monotonic() + tries
    while True:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/", timeout=2) as resp:
                return f"HTTP {resp.status}: " + resp.read(200).decode(errors="replace").splitlines()[0]
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except OSError:  # reset, closed or refused: the engine's proxy found nobody listening
            if time.monotonic() > deadline:
                return "no HTTP answer (the connection closed without a reply)"
            time.sleep(0.2)


@exercise("troubleshooting", "catalog-answers", "Mission: make the catalog answer, from the same image", (
    "The catalog has no shell, so look at it from a neighbour: which process runs in it, with which "
    "arguments, and on which address does it listen?",
    "Section 3 and Exercise 1: a labkit/busybox container started with --pid and --network "
    "container:$LAB_PREFIX-catalog can run `ps -o pid,args`, `netstat -tln` and `wget -qO- "
    "http://127.0.0.1:8080/` in the catalog's namespaces. The published port reaches the container's own "
    "address, not its 127.0.0.1; and the arguments after the image name replace the image's CMD.",
    "httpd was started with `-p 127.0.0.1:8080`. In a %%bash cell: docker rm -f $LAB_PREFIX-catalog, then "
    "docker run -d --name $LAB_PREFIX-catalog -p 127.0.0.1::8080 $LAB_PREFIX-catalog (the image's own CMD is "
    "-p 8080, every address).",
))
def catalog_answers(lab):
    record = lab.state / "catalog.json"
    if not record.is_file():
        return False, "The catalog was never deployed here: run the cell that calls deploy_catalog(lab, ...)."
    image_id = json.loads(record.read_text())["image"]
    catalog = _container(lab, "catalog")
    if catalog is None or catalog.status() != "running":
        return False, _not_running(lab, "catalog", catalog)
    runs = catalog.attrs()["Image"]
    if runs != image_id:
        return False, (f"{catalog.name} runs the image {runs[7:19]}, not the catalog's image {image_id[7:19]} "
                       "(lab-...-catalog as deployed): change how it runs, not what it runs.")
    try:
        port = catalog.host_port(8080)
    except LabkitError:
        return False, f"{catalog.name} runs the right image but does not publish its port 8080 (on 127.0.0.1)."
    answer = ask(port, tries=3)
    if not answer.startswith("HTTP 200") or "catalog" not in answer:
        return False, f"{catalog.name} runs the right image and publishes its port 8080, but a GET / got: {answer}."
    return True, ("The catalog answers on its port 8080, published on 127.0.0.1, and runs the same image as "
                  "before: only how it runs changed.")


# --- predict, then run ----------------------------------------------------------------------------

question("troubleshooting", "exec-in-scratch",
         "The next cell starts the shop and runs `docker exec shop sh` in it. What happens?",
         ["a shell opens: docker exec brings its own sh", "it fails: there is no sh in the shop's filesystem",
          "a shell opens on the host, outside the container"],
         answer=1, why="docker exec starts a program from the container's own filesystem; the shop holds only "
                       "/httpd and its page, so there is nothing to start (exit code 126).")

question("troubleshooting", "pid-only-netstat",
         "The debug container joins only the shop's PID namespace. What does `netstat -tln` show in it?",
         ["the shop's port 8080", "no listening port at all", "every port that listens on the host"],
         answer=1, why="Sharing the process table does not share the sockets: listening ports belong to a network "
                       "namespace, and the debugger still has its own, where nothing listens.")

question("troubleshooting", "memory-limit",
         "hog may use 32 MiB of memory. A pipeline in it holds 100 MB in memory. What happens?",
         ["it succeeds: the limit only slows the container down",
          "the kernel kills the process that went over (SIGKILL, exit code 137)",
          "docker stops the whole container"],
         answer=1, why="The kernel enforces the cgroup's limit with its OOM killer: the pipeline died by SIGKILL "
                       "(137) and the cgroup counted the kill; hog itself keeps running.")
