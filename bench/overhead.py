"""labkit run vs the raw docker CLI: the same busybox command N times each, interleaved,
in one run. Prints the median of each and the ratio (target: at most 1.15)."""
from __future__ import annotations

import argparse
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
    raw, kit = [], []
    try:
        lab.run(IMAGE, COMMAND, check=True)  # warm-up both paths
        subprocess.run([docker, "run", "--rm", IMAGE, *COMMAND], check=True, capture_output=True)
        for _ in range(args.n):
            t = time.perf_counter()
            subprocess.run([docker, "run", "--rm", "--label", f"labkit.session={lab.session}", IMAGE, *COMMAND],
                           check=True, capture_output=True)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            lab.run(IMAGE, COMMAND, check=True)
            kit.append(time.perf_counter() - t)
    finally:
        lab.cleanup()
    ratio = statistics.median(kit) / statistics.median(raw)
    print(f"{'':14}{'median':>10}{'min':>10}{'max':>10}   (n={args.n}, {docker})")
    for name, xs in (("raw docker", raw), ("labkit.run", kit)):
        print(f"{name:14}{statistics.median(xs):10.3f}{min(xs):10.3f}{max(xs):10.3f}")
    print(f"ratio labkit/raw: {ratio:.2f} (target <= {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
