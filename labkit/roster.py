"""The trainer's roster: a JupyterHub service that learners' kernels send their progress to (with
their own hub token, so nobody can send for someone else), and a page, for the trainers group only,
of who is done, failed, stuck or has not tried each lab. The hub starts it (`python -m labkit.roster`);
`labkit classroom progress` reads the same store."""
from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any

STATES = ("done", "in progress", "failed", "stuck", "not tried")
MAX_BODY = 256 * 1024


def clean(progress: object) -> dict[str, dict[str, dict]]:
    """A learner's progress record as the roster keeps it: only known shapes and values (a learner
    sends it, so it is checked like any input; junk is dropped, never shown)."""
    out: dict[str, dict[str, dict]] = {}
    if not isinstance(progress, dict):
        return out
    for lab, entries in progress.items():
        if not isinstance(lab, str) or lab.startswith("_") or not isinstance(entries, dict):
            continue
        for ex, e in entries.items():
            if isinstance(ex, str) and isinstance(e, dict):
                out.setdefault(lab[:64], {})[ex[:64]] = {
                    "status": e.get("status") if e.get("status") in ("done", "failed") else "not tried",
                    "attempts": e["attempts"] if isinstance(e.get("attempts"), int) else 0,
                    "hints": e["hints"] if isinstance(e.get("hints"), int) else 0,
                    "solution": e.get("solution") is True}
    return out


def lab_status(entries: dict[str, dict], exercise_ids: list[str]) -> str:
    """One lab's state from a learner's progress entries: done (every exercise), stuck (an exercise
    failed 3 times or more, or its solution was shown, and it is not done), failed (a check failed),
    in progress (some done), not tried."""
    got = [e if isinstance(e := entries.get(i, {}), dict) else {} for i in exercise_ids]
    if got and all(e.get("status") == "done" for e in got):
        return "done"
    open_ = [e for e in got if e.get("status") != "done"]
    if any(e.get("solution") is True or (e.get("status") == "failed" and int(e.get("attempts") or 0) >= 3) for e in open_):
        return "stuck"
    if any(e.get("status") == "failed" for e in got):
        return "failed"
    if any(e.get("status") == "done" for e in got):
        return "in progress"
    return "not tried"


def catalog() -> dict[str, list[str]]:
    """lab -> its exercise ids, from the registered checks."""
    from .exercises import load_all
    labs: dict[str, list[str]] = {}
    for lab, ex in sorted(load_all()):
        labs.setdefault(lab, []).append(ex)
    return labs


def load(store: Path) -> dict[str, Any]:
    try:
        data = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def rows(store: Path, learners: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per learner and exercise (for --json and --csv)."""
    data, labs = load(store), catalog()
    out = []
    for learner in sorted(set(learners or []) | set(data)):
        record = data.get(learner) if isinstance(data.get(learner), dict) else {}
        progress = clean(record.get("progress"))
        for lab, ids in labs.items():
            for ex in ids:
                e = progress.get(lab, {}).get(ex, {})
                out.append({"learner": learner, "lab": lab, "exercise": ex, "status": e.get("status", "not tried"),
                            "attempts": e.get("attempts", 0), "hints": e.get("hints", 0),
                            "solution": bool(e.get("solution")), "lab_status": lab_status(progress.get(lab, {}), ids),
                            "received": record.get("received")})
    return out


def summary(store: Path, learners: list[str]) -> dict[str, dict[str, str]]:
    """learner -> lab -> state."""
    data, labs = load(store), catalog()
    progress = {u: clean(r.get("progress")) if isinstance(r, dict) else {} for u, r in data.items()}
    return {u: {lab: lab_status(progress.get(u, {}).get(lab, {}), ids) for lab, ids in labs.items()}
            for u in sorted(set(learners) | set(data))}


def page(store: Path, learners: list[str], engines: dict[str, bool]) -> str:
    colours = {"done": "#c8e6c9", "in progress": "#fff9c4", "failed": "#ffcdd2", "stuck": "#ef9a9a", "not tried": "#eeeeee"}
    table = summary(store, learners)
    labs = list(catalog())
    data = load(store)
    head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labs)
    body = []
    for u, states in table.items():
        up = engines.get(u)
        engine = "up" if up else "DOWN" if up is False else "?"
        seen = data.get(u, {}).get("received")
        when = time.strftime("%H:%M:%S", time.localtime(seen)) if seen else "never"
        cells = "".join(f'<td style="background:{colours[s]}">{s}</td>' for s in states.values())
        body.append(f"<tr><th>{html.escape(u)}</th><td>{engine}</td><td>{when}</td>{cells}</tr>")
    return ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>Roster</title>"
            "<style>body{font-family:sans-serif}td,th{padding:3px 6px;font-size:13px}</style>"
            f"<h1>Roster</h1><p>{len(table)} learners; refreshes every 5 s. stuck = an exercise failed 3 times "
            "or its solution was shown, and not done.</p>"
            f"<table><tr><th>learner</th><th>engine</th><th>last sync</th>{head}</tr>{''.join(body)}</table>")


def engine_states(learners: list[str]) -> dict[str, bool]:
    """Does each learner's engine answer? Asked all at once, half a second each at most."""
    from concurrent.futures import ThreadPoolExecutor
    from . import userengine

    def answers(u: str) -> bool:
        try:
            return userengine.for_user(u).answers(0.5)
        except Exception:
            return False
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(learners, pool.map(answers, learners)))


def main() -> None:  # pragma: no cover - runs as a hub service; tests/integration/test_classroom.py drives it
    from urllib.parse import urlparse

    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import httpclient, ioloop, web

    store = Path(os.environ["LABKIT_ROSTER_STORE"])
    learners = [u for u in os.environ.get("LABKIT_LEARNERS", "").split(",") if u]
    trainers = {u for u in os.environ.get("LABKIT_TRAINERS", "").split(",") if u}
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    api = os.environ["JUPYTERHUB_API_URL"]

    class Trainers(HubOAuthenticated, web.RequestHandler):
        def trainer(self) -> None:
            user = self.get_current_user()
            if not user or user.get("name") not in trainers:
                raise web.HTTPError(403, "the roster is for the trainers group")

    class Page(Trainers):
        @web.authenticated
        def get(self):
            self.trainer()
            self.write(page(store, learners, engine_states(learners)))

    class Progress(Trainers):
        @web.authenticated
        def get(self):
            self.trainer()
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps({"summary": summary(store, learners), "rows": rows(store, learners),
                                   "engines": engine_states(learners)}))

        def check_xsrf_cookie(self):
            pass  # learners' kernels POST with a token, not a cookie

        async def post(self):
            if len(self.request.body) > MAX_BODY:
                raise web.HTTPError(413, "a progress record is far smaller")
            # who sends: the hub says whose token this is (a learner cannot send for another)
            token = self.request.headers.get("Authorization", "")
            reply = await httpclient.AsyncHTTPClient().fetch(url_path_join(api, "user"), headers={"Authorization": token},
                                                             raise_error=False)
            if reply.code != 200:
                raise web.HTTPError(403, "not a hub token")
            name = json.loads(reply.body).get("name")
            if learners and name not in learners:
                raise web.HTTPError(403, "only the class's learners send progress")
            try:
                progress = clean(json.loads(self.request.body))
            except ValueError:
                raise web.HTTPError(400, "not JSON") from None
            data = load(store)
            data[name] = {"progress": progress, "received": time.time()}
            tmp = store.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(store)
            self.set_status(204)

    app = web.Application([
        (prefix, Page), (url_path_join(prefix, "api/progress"), Progress),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=os.urandom(32))
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    app.listen(url.port, url.hostname)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
