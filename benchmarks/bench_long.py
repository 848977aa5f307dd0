"""Benchmark: one long curve (default 200 000 points) fitted by the power law (log loss) and by
the user law ``a*exp(-b*x)+c`` (linear loss, Levenberg-Marquardt): seconds for the first call
(compilation included) and a second call, and the peak resident memory of the process.

    python benchmarks/bench_long.py [--points 200000] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import time
from pathlib import Path

import jax
import numpy as np

from tokenscale_sim.fit import FitOptions, curves_from_arrays, fit_curves
from tokenscale_sim.fit.laws.expression import parse_law


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_long.md")))
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    m = args.points
    rng = np.random.default_rng(0)
    x = np.linspace(1.0, 100.0, m)
    cases = [
        ("powerlaw (log loss)", "powerlaw", FitOptions(),
         2 * x**0.3 * np.exp(0.01 * rng.normal(size=m))),
        (
            "a*exp(-b*x)+c (linear loss, LM)",
            parse_law("a*exp(-b*x)+c", predictor="x", params=("a", "b", "c")),
            FitOptions(loss="linear"),
            3 * np.exp(-0.05 * x) + 0.5 + 0.01 * rng.normal(size=m),
        ),
    ]  # fmt: skip
    rows = ["| law | points | first call s | second call s | converged |", "|---|---|---|---|---|"]
    for label, law, opts, y in cases:
        t = time.perf_counter()
        fit_curves(curves_from_arrays(x, y), law, opts)
        first = time.perf_counter() - t
        t = time.perf_counter()
        res = fit_curves(curves_from_arrays(x, y * 1.001), law, opts)
        second = time.perf_counter() - t
        rows.append(f"| {label} | {m} | {first:.1f} | {second:.1f} | {bool(res.converged[0])} |")
        print(rows[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    head = [
        "# One long curve",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), JAX {jax.__version__}, "
        f"float64; `python benchmarks/bench_long.py --points {m}`; peak resident memory of the "
        f"process {peak:.0f} MiB.",
        "",
    ]
    Path(args.out).write_text("\n".join(head + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
