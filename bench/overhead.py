"""labkit run vs the raw docker CLI, and the docker CLI through the session's endpoint (the path a
learner's `!docker run` cell takes: labkit.endpoint adds the session's labels) vs the raw CLI: the
same busybox command N times each, interleaved, in one run. Prints the median of each and the
ratios (target: at most 1.15 each)."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time

import labkit

IMAGE = "labkit/busybox:latest"
COMMAND = ["sh", "-c", "echo hello"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=20, help="runs per side (default: %(default)s)")
    p.add_argument("--max-ratio", type=float, default=1.15, help="exit 1 above this ratio")
    args = p.parse_args()
    docker = shutil.which("docker") or "/usr/bin/docker"
    lab = labkit.Lab("bench", images=[IMAGE], watchdog=False)
    raw, kit, proxied = [], [], []
    assert lab.endpoint is not None
    via_endpoint = dict(os.environ, **lab.endpoint.env())
    try:
        lab.run(IMAGE, COMMAND, check=True)  # warm-up every path
        subprocess.run([docker, "run", "--rm", IMAGE, *COMMAND], check=True, capture_output=True)
        subprocess.run([docker, "run", "--rm", IMAGE, *COMMAND], check=True, capture_output=True, env=via_endpoint)
        for _ in range(args.n):
            t = time.perf_counter()
            subprocess.run([docker, "run", "--rm", "--label", f"labkit.session={lab.session}", IMAGE, *COMMAND],
                           check=True, capture_output=True)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            lab.run(IMAGE, COMMAND, check=True)
            kit.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([docker, "run", "--rm", IMAGE, *COMMAND], check=True, capture_output=True, env=via_endpoint)
            proxied.append(time.perf_counter() - t)
    finally:
        lab.cleanup()
    ratio = statistics.median(kit) / statistics.median(raw)
    ratio_endpoint = statistics.median(proxied) / statistics.median(raw)
    print(f"{'':22}{'median':>10}{'min':>10}{'max':>10}   (n={args.n}, {docker})")
    for name, xs in (("raw docker", raw), ("labkit.run", kit), ("docker via endpoint", proxied)):
        print(f"{name:22}{statistics.median(xs):10.3f}{min(xs):10.3f}{max(xs):10.3f}")
    print(f"ratio labkit/raw: {ratio:.2f} (target <= {args.max_ratio})")
    print(f"ratio endpoint/raw: {ratio_endpoint:.2f} (target <= {args.max_ratio})")
    return 0 if max(ratio, ratio_endpoint) <= args.max_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
