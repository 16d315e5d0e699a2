"""Rendering cost: a 200-row table to text and HTML (target: under 50 ms), and a chart."""
from __future__ import annotations

import statistics
import time

from labkit.core.render import Chart, table


def timed(fn, n: int = 20) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> int:
    t = table(["#", "name", "status", "size"], [(i, f"layer {i} <b>", "ok", f"{i} kB") for i in range(200)])
    bundle = timed(lambda: t._repr_mimebundle_())
    chart = Chart("layers", [(f"#{i}", i) for i in range(12)])
    png = timed(chart.png, 5)
    print(f"200-row table, text+HTML: {bundle * 1000:.1f} ms (target < 50 ms)")
    print(f"12-bar chart, PNG:        {png * 1000:.1f} ms")
    return 0 if bundle < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
