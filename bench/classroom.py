"""Classroom capacity on this server: for N = 1, 2, 4, 8 learners, `labkit classroom up`, every
learner's server spawned at once, then every learner runs the notebooks (default 00 and 02, with
their solutions) at the same time, in their own kernel, through the hub, the proxy and the kernel
websocket, against their own rootless engine. Prints spawn-to-ready p50/p95, notebook time and the
slowdown against N = 1 (the baseline measured in the same run), memory per learner (PSS of the
server, kernel, engine and containers: the learner's uid and subordinate ids), and the resulting
learners per core and per GB. Bounded: stops at --budget seconds, or when free memory falls
under --min-free-mb. Needs root (it makes accounts); leaves nothing (down after each N)."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labkit import bundle, classroom, hubkernel, rootless  # noqa: E402


def learner_memory_mb(names: list[str]) -> dict[str, float]:
    """PSS of every process running as the learner or as one of the learner's subordinate ids."""
    import pwd
    owners = {}
    for n in names:
        owners[n] = (pwd.getpwnam(n).pw_uid, [range(f, f + c) for f, c in rootless.subuids(n)])
    total = {n: 0.0 for n in names}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            uid = proc.stat().st_uid
            who = next((n for n, (u, subs) in owners.items() if uid == u or any(uid in r for r in subs)), None)
            if who is None:
                continue
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total[who] += int(line.split()[1]) / 1024
                    break
        except OSError:
            pass
    return total


def available_mb() -> int:
    return classroom.available_mb()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


async def _spawn(state, name) -> float:
    begin = time.monotonic()
    await asyncio.to_thread(classroom.hub_api, state, f"users/{name}/server", "POST", {})
    while True:
        user = await asyncio.to_thread(classroom.hub_api, state, f"users/{name}")
        if (user["servers"].get("") or {}).get("ready"):
            return time.monotonic() - begin
        if time.monotonic() - begin > 300:
            raise TimeoutError(f"{name}'s server not ready in 300 s")
        await asyncio.sleep(0.2)


async def _learner(state, name, notebooks) -> tuple[float, int]:
    token = (await asyncio.to_thread(classroom.hub_api, state, f"users/{name}/tokens", "POST",
                                     {"note": "bench", "expires_in": 3600}))["token"]
    failures, begin = 0, time.monotonic()
    for nb in notebooks:
        k = await hubkernel.LearnerKernel(f"http://127.0.0.1:{state['port']}/user/{name}/", token).open()
        try:
            for code in hubkernel.notebook_cells(REPO / "notebooks" / f"{nb}.ipynb"):
                reply = await k.run(code, timeout=600)
                if reply.status != "ok":
                    failures += 1
                    print(f"  {name} {nb}: {reply.error[:160]}", flush=True)
        finally:
            await k.close()
    return time.monotonic() - begin, failures


def run_size(n: int, bundle_dir: Path, notebooks: list[str], min_free: int) -> dict:
    state = classroom.up(n, prefix="bench", trainer="benchtr", port=classroom._free_port(), bundle=bundle_dir)
    peak = {u: 0.0 for u in state["learners"]}
    low = threading.Event()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for u, mb in learner_memory_mb(state["learners"]).items():
                peak[u] = max(peak[u], mb)
            if available_mb() < min_free:
                low.set()
            stop.wait(1)
    try:
        async def all_of_it():
            spawn = await asyncio.gather(*[_spawn(state, u) for u in state["learners"]])
            await asyncio.sleep(3)  # let the servers settle before measuring them idle
            idle = learner_memory_mb(state["learners"])
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            runs = await asyncio.gather(*[_learner(state, u, notebooks) for u in state["learners"]])
            return spawn, idle, runs
        wall = time.monotonic()
        spawn, idle, runs = asyncio.run(all_of_it())
        wall = time.monotonic() - wall
    finally:
        stop.set()
        left = classroom.down()
        if left:
            print(f"  down left: {left}", flush=True)
    return {"n": n, "spawn": spawn, "idle": statistics.mean(idle.values()), "peak": statistics.mean(peak.values()),
            "notebook": statistics.median(t for t, _ in runs), "failures": sum(f for _, f in runs), "wall": wall,
            "low_memory": low.is_set()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8], help="class sizes (default: %(default)s)")
    p.add_argument("--notebooks", nargs="+", default=["00-welcome", "02-buildkit"], help="default: %(default)s")
    p.add_argument("--budget", type=float, default=1500, help="stop starting new sizes after this many seconds")
    p.add_argument("--min-free-mb", type=int, default=1500, help="stop when free memory falls under this")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/classroom.py makes accounts: run it as root", file=sys.stderr)
        return 2
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labkit-classroom-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # learners run the class venv under it
        classroom.STATE = base / "state"
        bundle.export(base / "bundle")
        results = []
        for n in args.sizes:
            if time.monotonic() - begin > args.budget:
                print(f"N={n}: skipped, over the {args.budget:.0f} s budget", flush=True)
                break
            if n > classroom.max_learners():
                print(f"N={n}: skipped, more than this server's memory holds ({classroom.max_learners()})", flush=True)
                break
            print(f"N={n}: up, spawn, {' + '.join(args.notebooks)} with solutions ...", flush=True)
            r = run_size(n, base / "bundle", args.notebooks, args.min_free_mb)
            results.append(r)
            print(f"N={n}: spawn p50 {statistics.median(r['spawn']):.1f} s, notebooks {r['notebook']:.1f} s, "
                  f"{r['failures']} failed cells", flush=True)
            if r["low_memory"]:
                print(f"N={n}: free memory fell under {args.min_free_mb} MB: stopping here", flush=True)
                break
    if not results:
        return 1
    base_nb = results[0]["notebook"]
    print(f"\nclassroom capacity ({os.cpu_count()} cores, {classroom.available_mb() // 1024} GB free; "
          f"notebooks {', '.join(args.notebooks)} with solutions)")
    print("| learners | spawn p50 | spawn p95 | notebooks (median) | slowdown vs 1 | idle MB/learner | peak MB/learner | failed cells |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n']} | {statistics.median(r['spawn']):.1f} s | {pct(r['spawn'], 0.95):.1f} s | {r['notebook']:.1f} s "
              f"| {r['notebook'] / base_nb:.2f}x | {r['idle']:.0f} | {r['peak']:.0f} | {r['failures']} |")
    # capacity: the largest N whose notebooks took at most 1.5x the single learner's, per core; memory at peak
    ok = [r["n"] for r in results if r["notebook"] / base_nb <= 1.5]
    per_core = max(ok) / (os.cpu_count() or 1) if ok else 0
    per_gb = 1024 / max(r["peak"] for r in results)
    print(f"\nlearners per core (notebooks at most 1.5x slower than alone): {per_core:.1f}; "
          f"learners per GB (at peak): {per_gb:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
