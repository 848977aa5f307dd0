"""Benchmark: ``tokenscale compare`` against a SciPy script doing the same fits, side by side in one
run, on the paper's 54 ten-point curves and on a collection of short curves (4-7 points).

For each collection and each ``--bootstrap`` of ``--resamples`` (default 0 and 1000):

- package, cold: ``tokenscale compare ... --quiet`` in a fresh process with an empty compile
  cache (``TOKENSCALE_CACHE_DIR`` a new temporary folder): wall time of the process;
- package, warm: the same command again on that cache (the best of ``--warm-runs``);
- SciPy: ``benchmarks/scipy_compare.py`` (the same laws, start grids, full, hold-out and
  leave-one-out fits and resamples; only what compare fits): the seconds of its fitting loops
  (its imports and data loading are not counted; with ``--scipy-sample K`` only K resamples per
  curve are fitted and their time scaled to all).

The package's times include starting Python, importing JAX and reading the data; SciPy's do not.
Writes ``benchmarks/results_compare_short.md``.

    python benchmarks/bench_compare_short.py [--resamples 0,1000] [--scipy-sample 20]
                                             [--warm-runs 2] [--out FILE]

The short collection is ``benchmarks/short_curves.csv`` (``make_short_curves.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHORT = HERE / "short_curves.csv"
COLLECTIONS = {
    "paper (54 curves x 10 points)": ["--paper"],
    "short (108 curves x 4-7 points)": [str(SHORT), "--group", "curve"],
}


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds of the process and its threads, stdout)`` of ``cmd``."""
    t0, c0 = time.perf_counter(), _cpu()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, _cpu() - c0, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resamples", default="0,1000")
    parser.add_argument("--scipy-sample", type=int, default=20)
    parser.add_argument("--warm-runs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results_compare_short.md"))
    args = parser.parse_args()
    env = dict(os.environ)
    cli = [sys.executable, "-m", "tokenscale_sim.cli"]
    rows = []
    for name, data in COLLECTIONS.items():
        for b in (int(x) for x in args.resamples.split(",")):
            with tempfile.TemporaryDirectory() as cache:
                env["TOKENSCALE_CACHE_DIR"] = cache
                cmd = [*cli, "compare", *data, "--bootstrap", str(b), "--quiet"]
                cold = _timed(cmd, env)[:2]
                warm = min(_timed(cmd, env)[:2] for _ in range(args.warm_runs))
            sp = [sys.executable, str(HERE / "scipy_compare.py"), *data, "--bootstrap", str(b)]
            if b:
                sp += ["--resample-sample", str(args.scipy_sample)]
            scipy = json.loads(_timed(sp, env)[2].strip().splitlines()[-1])
            rows.append((name, b, cold, warm, scipy))
            print(name, b, f"cold {cold} s warm {warm} s scipy {scipy}", flush=True)
    lines = [
        "# bench_compare_short: tokenscale compare vs the same fits in SciPy",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores; load average (1, 5, 15 "
        f"min) at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}: above the core "
        "count, other jobs shared the machine (then compare ratios, not seconds)",
        f"- command: `python benchmarks/bench_compare_short.py --resamples {args.resamples} "
        f"--scipy-sample {args.scipy_sample} --warm-runs {args.warm_runs}`",
        "- package: wall time of a `tokenscale compare --quiet` process (cold: empty compile "
        "cache; warm: the best of the reruns); SciPy: the fitting loops of "
        "`benchmarks/scipy_compare.py` (imports and data not counted)",
        "",
        "- each time as wall / CPU seconds (CPU: user + system of the process and all its "
        "threads, less disturbed by other jobs than the wall clock); ratios are SciPy's over "
        "the package's, wall (CPU)",
        "",
        "| collection | --bootstrap | fits (pairs compared) | package cold | package warm | "
        "SciPy | SciPy / warm | SciPy / cold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, b, (cold, cold_cpu), (warm, warm_cpu), sp in rows:
        extra = " (extrapolated)" if sp["extrapolated"] else ""
        sp_wall, sp_cpu = sp["seconds"], sp["cpu_seconds"]
        lines.append(
            f"| {name} | {b} | {sp['fits']:,} ({sp['pairs_compared']} of {sp['pairs']}) | "
            f"{cold:.1f} / {cold_cpu:.1f} s | {warm:.1f} / {warm_cpu:.1f} s | "
            f"{sp_wall:.1f} / {sp_cpu:.1f} s{extra} | "
            f"{sp_wall / warm:.1f}x ({sp_cpu / warm_cpu:.1f}x) | "
            f"{sp_wall / cold:.2f}x ({sp_cpu / cold_cpu:.2f}x) |"
        )
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
