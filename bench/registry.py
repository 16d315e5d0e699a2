"""Registry throughput, measured against a baseline in the same run: a 50 MB file pushed and
pulled as an ORAS artifact, and an image pushed with the engine, versus copying the same bytes
on the local disk; and notebook 08's emulation ratio (arm64 under QEMU vs native). Prints MB/s
and ratios."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import labkit
from labkit.oras import pull_artifact, push_artifact


def best(fn, rounds: int) -> float:
    times = []
    for i in range(rounds):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mb", type=int, default=50, help="artifact size in MB (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="best of N (default: %(default)s)")
    args = p.parse_args()
    size = args.mb * 1_000_000
    lab = labkit.Lab("bench-registry", images=["labkit/debian:bookworm", "labkit/busybox:latest", "labkit/busybox:arm64"],
                     watchdog=False)
    try:
        registry = lab.registry()
        work = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
        lab.track_path(work)
        for i in range(args.rounds):
            (work / f"blob{i}.bin").write_bytes(os.urandom(size))  # random: no compression helps anyone
        copy = best(lambda i: shutil.copyfile(work / f"blob{i}.bin", work / f"copy{i}.bin"), args.rounds)
        push = best(lambda i: push_artifact(registry, f"blob:{i}", {f"blob{i}.bin": "application/octet-stream"},
                                            "application/vnd.labkit.bench.v1", workdir=work), args.rounds)
        pull = best(lambda i: pull_artifact(registry, f"blob:{i}", work / f"pulled{i}"), args.rounds)
        image = lab.client.images.get("labkit/debian:bookworm")
        image_bytes = image.attrs["Size"]
        docker_push = best(lambda i: registry.push("labkit/debian:bookworm", f"debian:{i}"), 1)
        emulation = None
        try:  # notebook 08's figure, in the same run: needs arm64 emulation and the arm64 image
            from labkit import multiarch
            multiarch.require("linux/arm64")
            emulation = multiarch.emulation_cost(lab)
        except labkit.LabkitError as exc:
            print(f"(emulation not measured: {exc.message})")
    finally:
        lab.cleanup()
    rows = [("copy on the local disk (baseline)", size, copy), ("ORAS push of the file", size, push),
            ("ORAS pull of the file", size, pull), ("docker push of labkit/debian (layers gzipped)", image_bytes, docker_push)]
    print(f"{'':48}{'MB':>8}{'seconds':>10}{'MB/s':>10}{'vs copy':>10}")
    base = size / copy
    for name, n, t in rows:
        print(f"{name:48}{n / 1e6:8.1f}{t:10.3f}{n / t / 1e6:10.0f}{(n / t) / base:10.2f}")
    if emulation is not None:
        print(f"emulation (arm64 under QEMU vs native, same workload): {emulation.ratio:.1f}x as long "
              f"({emulation.emulated:.2f} s vs {emulation.native:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
