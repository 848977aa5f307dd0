"""Benchmark: a full design study (issue 13), 20 designs x 10 000 synthetic experiments each.

Every design: 10 000 experiments fitted by the power law and by the alpha(n) law with the n_b
profile interval and Wald intervals (``fit.fit_arrays``), plus 10 000 null experiments fitted by
both laws for the transition test's critical value. Baseline: the existing fitter called once per
experiment in a Python loop (``fit.fit_arrays`` on one curve, as a study without vmapping would
do), timed on a few experiments and extrapolated. The table goes to ``results_design.md``.

    python benchmarks/bench_design.py [--m 10000] [--designs 20] [--loop 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from tokenscale_sim import design as dz
from tokenscale_sim import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=10_000)
    parser.add_argument("--designs", type=int, default=20)
    parser.add_argument("--loop", type=int, default=40, help="experiments in the loop baseline")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_design.md")))
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    truth = dz.Truth("alpha_n", (30.0, 0.1, 16.0))
    noise = dz.Noise("binomial")
    budget = 3000
    found = dz.search_designs(truth, noise, k=10, total_questions=10 * budget, top=args.designs - 3)
    designs = [*dz.reference_designs(10, 10 * budget), *found.designs][: args.designs]
    options = dz.StudyOptions(m=args.m)

    t0 = time.perf_counter()  # compile once (first design at the full size), then the study
    dz.design_study(jax.random.key(1), truth, noise, designs[:1], options)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = dz.design_study(jax.random.key(0), truth, noise, designs, options)
    study_s = time.perf_counter() - t0
    # alpha(n) fits (with intervals) + power-law fits, experiments and null
    fits = 4 * args.m * len(designs)
    alpha_fits = 2 * args.m * len(designs)

    scores = np.asarray(
        dz.simulate_scores(jax.random.key(2), truth.log_score(designs[0].n),
                           designs[0].questions, noise, args.loop)
    )  # fmt: skip
    n = np.asarray(designs[0].n, float)
    fit.fit_arrays("alpha_n", fit.curves_from_arrays(n, scores[:1]).arrays)  # compile
    t0 = time.perf_counter()
    for row in scores:
        fit.fit_arrays("alpha_n", fit.curves_from_arrays(n, row[None]).arrays)
        fit.fit_arrays("powerlaw", fit.curves_from_arrays(n, row[None]).arrays)
    loop_s = (time.perf_counter() - t0) / (2 * args.loop)  # per fit (alpha(n) or power law)

    power = [r.result.power for r in rows]
    table = [
        ("designs x experiments", f"{len(designs)} x {args.m:,} (+ as many null experiments)"),
        ("fits (alpha(n) with intervals, power law; experiments and null)", f"{fits:,}"),
        ("compile + first design", f"{compile_s:.1f} s"),
        ("study (all designs, compiled)", f"{study_s:.1f} s ({study_s / 60:.1f} min)"),
        ("fits per second (study)", f"{fits / study_s:,.0f}"),
        ("alpha(n) fits per second (study)", f"{alpha_fits / study_s:,.0f}"),
        ("existing fitter in a Python loop (fit_arrays per curve)", f"{1e3 * loop_s:.1f} ms/fit"),
        ("fits per second (loop)", f"{1 / loop_s:,.0f}"),
        ("speed-up over the loop", f"{fits / study_s * loop_s:.0f}x"),
        ("the loop for the same study (extrapolated)", f"{fits * loop_s / 3600:.1f} h"),
        ("power over designs (min - max)", f"{min(power):.3f} - {max(power):.3f}"),
    ]
    setting = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores (shared with other jobs while measured), jax "
        f"{jax.__version__} ({jax.default_backend()}), float64",
        "command": f"`python benchmarks/bench_design.py --m {args.m} --designs {args.designs}`",
        "truth": "alpha(n) law, c = 30 %, beta = 0.1, n_b = 16; binomial noise, 3000 questions "
        "per point; designs: the paper's, two log-spaced, the rest from the Fisher search (K=10)",
    }
    text = "# bench_design: full design study (issue 13)\n\n"
    text += "".join(f"- {k}: {v}\n" for k, v in setting.items())
    text += "\n| quantity | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in table)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
