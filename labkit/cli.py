"""`labkit` command line: doctor, images, prepare, clean, progress, verify, bundle, engine, workspace, lab."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .core.errors import LabkitError

REPO = Path(__file__).resolve().parent.parent


def _doctor(args: argparse.Namespace) -> int:
    from .core import capabilities
    from . import rootless
    from .core.render import table
    caps = capabilities.probe()
    # notebooks 06, 09 and 11 run a rootless engine / buildah as an unprivileged user: the lab user
    # when you are root, else you; what that needs (all of it set up once, by root) is optional
    user = rootless.engine_user()
    needs = rootless.requirements(user)
    if args.json:
        print(json.dumps({**caps.to_json(), "rootless": {"user": user, "checks": [
            {"item": w, "status": "ok" if ok else "missing", "fix": "" if ok else fix} for w, ok, fix in needs]}},
            indent=2))
    else:
        print(caps.text())
        print()
        print(table(["item", "status", "fix"], [(w, "ok" if ok else "optional", "" if ok else fix) for w, ok, fix in needs],
                    title=f"Rootless engine and unprivileged builds as {user} (notebooks 06, 09, 11)",
                    status_column="status").text())
    return 0 if caps.ok else 1


def _images(args: argparse.Namespace) -> int:
    from . import images
    print(images.catalog().text())
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from . import images
    mode = "offline" if args.offline else "online" if args.online else "auto"
    print(images.prepare(args.names or None, mode=mode).text())
    return 0


def _clean(args: argparse.Namespace) -> int:
    from . import buildcache  # noqa: F401  (registers the build cache kind of tracked resource)
    from . import images
    from .core import engine, reaper
    cli = engine.client()
    report = reaper.clean(cli, all_sessions=args.all)
    if args.images:
        report.removed["images"] += reaper.remove_images(cli, {"label": images.CATALOG_LABEL})
    print(report.text())
    return 0


def _progress(args: argparse.Namespace) -> int:
    from . import exercises, predictions
    report = exercises.progress(args.lab)
    guesses = predictions.predictions(args.lab)
    if args.json:
        print(json.dumps({"exercises": report.to_json(), "predictions": guesses}, indent=2))
        return 0
    print(report.text())
    answered = [g for g in guesses if g["choice"]]
    print(f"\npredictions: {len(answered)} of {len(guesses)} answered, "
          f"{sum(bool(g['correct']) for g in answered)} right the first time")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from . import verify
    if args.from_report:  # e.g. the report CI's notebook tests wrote: no second execution
        results = [verify.Result(**r) for r in json.loads(Path(args.from_report).read_text())]
        report = Path(args.from_report).with_suffix(".html")
    else:
        results, report = _run_verify(args)
        if not results:
            return 2
    for r in results:
        print(f"{r.status:8} {r.notebook:28} {r.seconds:6.1f} s  {r.peak_rss_mb:5.0f} MB  {r.reason[:100]}")
    if args.readme and args.edition == "reference":  # class durations are the reference run's
        print(f"README agenda: {verify.update_readme(REPO / 'README.md', results)} duration(s) updated")
    print(f"report: {report}")
    return 1 if any(r.status == "failed" for r in results) else 0


def _run_verify(args: argparse.Namespace):
    from tqdm.auto import tqdm

    from . import verify
    paths = verify.notebooks(Path(args.dir), args.names)
    if not paths:
        print(f"error: no notebook matches in {args.dir}", file=sys.stderr)
        return [], None
    results = []
    bar = tqdm(paths, unit="notebook")
    for path in bar:
        bar.set_description(path.stem)
        results.append(verify.run_notebook(path, Path(args.out), timeout=args.timeout, edition=args.edition))
        bar.set_postfix_str(results[-1].status)
    return results, verify.write_reports(results, Path(args.out))


def _bundle(args: argparse.Namespace) -> int:
    from . import bundle
    if args.action == "export":
        print(bundle.export(args.path, args.images or None, wheels=args.wheels).text())
    else:
        client = None
        if args.docker_host:
            import docker
            client = docker.DockerClient(base_url=args.docker_host, timeout=600)
        print(bundle.import_(args.path, client).text())
    return 0


def _engine(args: argparse.Namespace) -> int:
    from . import userengine
    if args.action == "start":
        engine = userengine.start(args.user, timeout=args.timeout)
        print(f"export DOCKER_HOST={engine.url}")  # `eval "$(labkit engine start)"` in a shell
    elif args.action == "stop":
        engine = userengine.for_user(args.user)
        killed = userengine.stop(engine, purge=args.purge)
        print(f"{engine.user}'s engine stopped ({killed} processes killed)" + (", its data deleted" if args.purge else ""))
    else:
        state = userengine.for_user(args.user).status()
        print(json.dumps(state, indent=2))
        return 0 if state["running"] else 1
    return 0


def _classroom(args: argparse.Namespace) -> int:
    from . import classroom, roster
    if args.action == "up":
        state = classroom.up(args.learners, prefix=args.prefix, trainer=args.trainer, ip=args.ip, port=args.port,
                             bundle=args.bundle, memory=args.memory, cpus=args.cpus)
        print(classroom.cards(state))
        print(f"\nJupyterHub: http://{state['ip']}:{state['port']}/ (each learner's engine starts with their server)")
        print(f"login cards also in {classroom.STATE / 'classroom.json'} (root only)")
        print(classroom.limits_note(args.memory, args.cpus))
        if args.ip != "127.0.0.1":
            print(f"WARNING: listening on {args.ip} over plain HTTP: put TLS in front (a reverse proxy with a "
                  "certificate) before learners type passwords over a network.")
    elif args.action == "status":
        state = classroom.status()
        if args.json:
            print(json.dumps(state, indent=2))
        elif not state.get("learners"):
            print("no classroom on this machine")
        else:
            from .core.render import table
            print(table(["learner", "server", "engine"], [(u["learner"], "running" if u["server"] else "stopped",
                                                           "answers" if u["engine"] else "down") for u in state["learners"]],
                        title=f"classroom at {state['url']} (hub {'running' if state['running'] else 'STOPPED'})").text())
            print(state["limits"])
        return 0 if state.get("running") else 1
    elif args.action == "progress":
        learners = classroom.load_state().get("learners", [])
        data = roster.rows(classroom.STATE / "roster.json", learners)
        if args.csv:
            import csv
            out = csv.DictWriter(sys.stdout, fieldnames=list(data[0]) if data else ["learner"])
            out.writeheader()
            out.writerows(data)
        elif args.json:
            print(json.dumps({"summary": roster.summary(classroom.STATE / "roster.json", learners), "rows": data}, indent=2))
        else:
            from .core.render import table
            summary = roster.summary(classroom.STATE / "roster.json", learners)
            labs = list(roster.catalog())
            print(table(["learner", *labs], [(u, *[s[lab] for lab in labs]) for u, s in summary.items()],
                        title="Roster").text())
    else:
        left = classroom.down()
        print("classroom removed; left behind: " + (", ".join(left) if left else "nothing"))
        return 1 if left else 0
    return 0


def _workspace(args: argparse.Namespace) -> int:
    from . import workspace
    print(workspace.update(Path(args.path) if args.path else workspace.default_workspace(), REPO / "notebooks").text())
    return 0


def _lab(args: argparse.Namespace) -> int:
    from . import workspace
    reference = REPO / "notebooks"
    if args.trainer:  # the reference edition, solutions included, where it is
        root = Path(args.dir or reference).resolve()
        where = [f"--ServerApp.root_dir={root}"]
    else:  # the learner edition in the learner's own workspace, updated from the reference first
        root = Path(args.dir).expanduser().resolve() if args.dir else workspace.default_workspace()
        print(workspace.update(root, reference).text(), flush=True)
        workspace.seed_jupyterlab(root)
        where = workspace.jupyter_args(root)
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={args.port}", *where,
           # no calls home: a classroom may be offline, and the labs send nothing off the machine
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if args.no_browser:
        cmd.append("--no-browser")
    if os.geteuid() == 0:  # CI machines and classroom containers run as root; Jupyter refuses that by default
        cmd.append("--allow-root")
    # lab.solution() reads the reference edition, wherever the learner works
    os.environ["LABKIT_REFERENCE"] = str(reference)
    edition = "reference edition" if args.trainer else "learner edition"
    print(f"Starting JupyterLab on 127.0.0.1 in {root} ({edition}; token required: the URL with the token "
          "is printed below).", flush=True)
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labkit",
        description="Cloud-native labs: helper commands for the workshop notebooks.",
        epilog="Typical first run: `labkit doctor`, then `labkit prepare`, then `labkit lab`.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("doctor", help="check the Docker engine, BuildKit client and tools; exit 1 if something required is missing")
    d.add_argument("--json", action="store_true", help="print machine-readable JSON")
    d.set_defaults(func=_doctor)
    i = sub.add_parser("images", help="list the lab image catalog and which images are present")
    i.set_defaults(func=_images)
    pr = sub.add_parser("prepare", help="build or pull every lab image that is missing or stale",
                        description="Pulls pinned upstream images when a registry answers, else builds them "
                                    "offline from the host's OS packages (busybox-static, debootstrap).")
    pr.add_argument("names", nargs="*", help="catalog names (default: all)")
    mode = pr.add_mutually_exclusive_group()
    mode.add_argument("--offline", action="store_true", help="never contact a registry; bootstrap from OS packages")
    mode.add_argument("--online", action="store_true", help="pull pinned upstream images (fails without a registry)")
    pr.set_defaults(func=_prepare)
    c = sub.add_parser("clean", help="remove leftovers of dead lab sessions (only things labkit labelled)")
    c.add_argument("--all", action="store_true", help="remove the resources of every lab session, live or dead")
    c.add_argument("--images", action="store_true", help="also remove the catalog images `prepare` made")
    c.set_defaults(func=_clean)
    pg = sub.add_parser("progress", help="show your exercise progress (stored under $XDG_STATE_HOME/labkit)")
    pg.add_argument("lab", nargs="?", help="only this lab (e.g. welcome)")
    pg.add_argument("--json", action="store_true", help="print JSON (for a trainer collecting results)")
    pg.set_defaults(func=_progress)
    v = sub.add_parser("verify", help="rehearse: run every notebook with its solutions, write an HTML report",
                       description="Executes each notebook (papermill) in a fresh session with the reference "
                                   "solutions, proves every check fails before its solution and passes after, "
                                   "and writes report.html/report.json. Exit 1 if any notebook failed.")
    v.add_argument("names", nargs="*", help="only notebooks whose name contains one of these (default: all)")
    v.add_argument("--dir", default=str(REPO / "notebooks"), help="notebook directory (default: %(default)s)")
    v.add_argument("--out", default=str(REPO / "build" / "verify"), help="report directory (default: %(default)s)")
    v.add_argument("--edition", choices=["reference", "learner"], default="reference",
                   help="reference: with the solutions, every check proven (default); learner: what a learner "
                        "gets, run straight through: nothing before the first exercise fails, no check passes")
    v.add_argument("--timeout", type=float, default=600, help="seconds per cell before it counts as hung (default: %(default)s)")
    v.add_argument("--readme", action="store_true", help="write the measured durations into the README agenda")
    v.add_argument("--from-report", metavar="JSON", help="use a report.json written earlier (e.g. by the notebook tests) instead of running")
    v.set_defaults(func=_verify)
    b = sub.add_parser("bundle", help="export / import everything an offline classroom needs (images, wheels, scanner data)",
                       description="export writes a folder with the catalog images (pinned by image id), "
                                   "optionally the wheels that install labkit offline, the trivy database if "
                                   "present, and bundle.json with checksums. import verifies every checksum and "
                                   "the free disk before loading anything; importing twice is a no-op.")
    b.add_argument("action", choices=["export", "import"])
    b.add_argument("path", help="the bundle folder")
    b.add_argument("--images", nargs="*", help="export only these images (default: the whole catalog)")
    b.add_argument("--wheels", action="store_true", help="export: also the Python wheels (needs the package index)")
    b.add_argument("--docker-host", help="import: into this engine (e.g. unix:///run/user/1000/docker.sock)")
    b.set_defaults(func=_bundle)
    e = sub.add_parser("engine", help="start, stop or show your own rootless Docker engine (socket and data in ~/.labkit/engine)",
                       description="Your own rootless engine, for a class where each learner has one: dockerd inside "
                                   "RootlessKit as you, its socket only yours. start prints `export DOCKER_HOST=...` "
                                   "(use `eval \"$(labkit engine start)\"`); starting a running engine does nothing. "
                                   "stop kills it and every container in it; --purge also deletes its images. "
                                   "status exits 1 when it does not answer. Root may name a --user.")
    e.add_argument("action", choices=["start", "stop", "status"])
    e.add_argument("--user", help="whose engine (root only; default: you)")
    e.add_argument("--purge", action="store_true", help="stop: also delete the engine's images and data")
    e.add_argument("--timeout", type=float, default=30, help="start: seconds to wait for it to answer (default: %(default)s)")
    e.set_defaults(func=_engine)
    cr = sub.add_parser("classroom", help="a class on one Linux server: JupyterHub, an account and a rootless engine per learner",
                        description="up (root): makes one account per learner (learner01, ...) and a trainer, prints login "
                                    "cards, starts JupyterHub on 127.0.0.1 (each learner's own rootless engine starts "
                                    "with their server; the lab images come from --bundle). status: hub, servers, "
                                    "engines. progress: the trainer's roster (--json, --csv). down: stops everything "
                                    "and removes what up made (accounts only if up made them).")
    cr.add_argument("action", choices=["up", "status", "progress", "down"])
    cr.add_argument("--learners", type=int, default=2, help="up: how many learners (default: %(default)s)")
    cr.add_argument("--prefix", default="learner", help="up: learner account names are PREFIX01, PREFIX02, ... (default: %(default)s)")
    cr.add_argument("--trainer", default="trainer", help="up: the trainer's account, who sees the roster (default: %(default)s)")
    cr.add_argument("--ip", default="127.0.0.1", help="up: the hub's address (default: %(default)s; another one needs TLS in front)")
    cr.add_argument("--port", type=int, default=8000, help="up: the hub's port (default: %(default)s)")
    cr.add_argument("--bundle", help="up: the class bundle from `labkit bundle export` (default: /var/lib/labkit-bundle, kept by down)")
    cr.add_argument("--memory", default="2G", help="up: memory of each learner's engine and containers, where the host "
                                                   "can hold it (systemd with cgroup v2; default: %(default)s)")
    cr.add_argument("--cpus", type=float, default=1.0, help="up: CPUs of each learner's engine and containers, likewise "
                                                            "(default: %(default)s)")
    cr.add_argument("--json", action="store_true", help="status, progress: JSON")
    cr.add_argument("--csv", action="store_true", help="progress: CSV, one row per learner and exercise")
    cr.set_defaults(func=_classroom)
    w = sub.add_parser("workspace", help="make or update your workspace: the learner edition of the notebooks",
                       description="Writes the notebooks without their reference solutions (and their assets) "
                                   "into DIR. A file you changed is kept; its new version goes beside it "
                                   "(e.g. 02-buildkit.new.ipynb). A notebook you deleted comes back.")
    w.add_argument("path", nargs="?", metavar="DIR",
                   help="the workspace (default: $LABKIT_WORKSPACE, else ~/labkit-workspace)")
    w.set_defaults(func=_workspace)
    lab = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 in your workspace (learner edition)",
                         description="Updates your workspace (see `labkit workspace`) and opens JupyterLab there, "
                                     "on notebook 00. --trainer opens the reference edition (with the solutions) "
                                     "instead.")
    lab.add_argument("--dir", help="the workspace (default: $LABKIT_WORKSPACE, else ~/labkit-workspace); with "
                                   f"--trainer, the notebook directory (default: {REPO / 'notebooks'})")
    lab.add_argument("--trainer", action="store_true",
                     help="open the reference edition (solutions included) instead of a workspace")
    lab.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1 (default: %(default)s)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(func=_lab)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
