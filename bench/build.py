"""Build benchmarks, each measured against a baseline in the same run:

1. labkit build vs the same BuildKit CLI build run raw (same client, same Dockerfile, same
   context; a small RUN step that always re-runs), interleaved, N times each. Target: ratio <= 1.10.
2. notebook 03's example: a cold build vs a rebuild by an empty builder that imports the cache
   from the session's local registry (--cache-from). Target: at least 10 times faster.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import labkit
from labkit import buildcache
from labkit.core import engine
from labkit.checks.build_cache import app_files

ORDERED = """FROM labkit/busybox
WORKDIR /app
COPY deps.txt fetch-deps ./
RUN ./fetch-deps
COPY src/ ./src/
RUN cp src/app.sh /app/run && chmod +x /app/run
"""


def overhead(lab: labkit.Lab, n: int) -> tuple[list[float], list[float]]:
    cli = engine.require_buildkit()
    raw, kit = [], []
    # noting: so cleanup also prunes what the raw builds cached
    with buildcache.noting(lab.session), tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        for i in range(n + 1):  # the first round warms both paths up and is not counted
            df = f"FROM labkit/busybox\nRUN echo {lab.session} round {i} > /round\n"  # never cached
            (ctx / "Dockerfile").write_text(df.replace("round", "raw-round"))
            t = time.perf_counter()
            labels = [arg for k, v in lab.labels.items() for arg in ("--label", f"{k}={v}")]  # the same flags
            subprocess.run([cli.path, "build", "--progress=plain", "-t", lab.name("raw"), *labels, str(ctx)],
                           env=cli.env(), check=True, capture_output=True)
            if i:
                raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            lab.build("kit", df)
            if i:
                kit.append(time.perf_counter() - t)
    return raw, kit


def remote_cache(lab: labkit.Lab) -> tuple[float, float]:
    registry = lab.registry()
    files = app_files(lab)
    cold = lab.build("app", ORDERED, files=files, no_cache=True, inline_cache=True)
    registry.push(lab.name("app"), "app:cache")
    lab.wipe_builds()
    warm = lab.build("app", ORDERED, files=files, cache_from=[registry.ref("app:cache")])
    assert warm.step("fetch-deps").cached, "the rebuild did not use the registry's cache"
    return cold.duration, warm.duration


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=10, help="builds per side for the overhead ratio (default: %(default)s)")
    p.add_argument("--max-ratio", type=float, default=1.10, help="exit 1 if labkit/raw is above this")
    p.add_argument("--min-speedup", type=float, default=10.0, help="exit 1 if the remote cache speed-up is below this")
    args = p.parse_args()
    lab = labkit.Lab("bench-build", watchdog=False)
    try:
        raw, kit = overhead(lab, args.n)
        cold, warm = remote_cache(lab)
    finally:
        lab.cleanup()
    ratio, speedup = statistics.median(kit) / statistics.median(raw), cold / warm
    print(f"{'':24}{'median':>10}{'min':>10}{'max':>10}   (n={args.n})")
    for name, xs in (("raw BuildKit CLI build", raw), ("labkit build", kit)):
        print(f"{name:24}{statistics.median(xs):10.3f}{min(xs):10.3f}{max(xs):10.3f}")
    print(f"ratio labkit/raw: {ratio:.2f} (target <= {args.max_ratio})")
    print(f"cold build {cold:.2f} s, empty builder with --cache-from {warm:.2f} s: "
          f"{speedup:.1f} times faster (target >= {args.min_speedup})")
    return 0 if ratio <= args.max_ratio and speedup >= args.min_speedup else 1


if __name__ == "__main__":
    raise SystemExit(main())
