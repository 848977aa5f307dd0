"""Coverage of every interval method of the fit package on synthetic alpha(n) curves.

A grid of truths (n_b inside the design, near its ends, outside it; beta small and large; log
noise like the paper's residuals) on three designs (the paper's ten n, ten and thirty
log-spaced n over [1, 768]). For each cell ``fit.coverage.coverage`` draws the curves, fits them
in one vmapped call and reports the share of 95 % intervals that hold the truth (with its Monte
Carlo standard error), the median width and the share of open intervals. Wald and profile
intervals on every cell; the bootstrap schemes (percentile intervals) on the paper's design.

    python benchmarks/coverage.py                 # full grid, writes results_coverage.md
    python benchmarks/coverage.py --quick         # fewer curves, for a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import jax
import numpy as np

from tokenscale_sim.fit.inference.coverage import METHODS, PAPER_N, coverage
from tokenscale_sim.hidden.coverage import lambda_coverage
from tokenscale_sim.structures import terms as st

DESIGNS = {
    "paper (10)": np.array(PAPER_N),
    "log 10": np.geomspace(1.0, 768.0, 10),
    "log 30": np.geomspace(1.0, 768.0, 30),
}
TRUTHS = [  # label, (c, beta, n_b), log-noise sd
    ("n_b = 30 (issue 15)", (20.0, 0.3, 30.0), 0.03),
    ("n_b = 120, small beta (issue 15)", (45.0, 0.15, 120.0), 0.015),
    ("n_b = 3, near the low end", (20.0, 0.3, 3.0), 0.03),
    ("n_b = 500, near the high end", (20.0, 0.3, 500.0), 0.02),
    ("n_b = 60, large beta", (10.0, 0.6, 60.0), 0.03),
    ("n_b = 0.05, below the range", (20.0, 0.3, 0.05), 0.03),
    ("n_b = 20000, above the range", (20.0, 0.3, 20000.0), 0.02),
]
IDENTIFIED_NB = (1.0, 768.0)  # n_b counts as identified inside the design's range


def _cell(r, i: int) -> list[str]:
    cells = []
    for j in range(len(r.params)):
        c, se = r.cover[i, j], r.cover_se[i, j]
        flag = "" if 0.93 <= c <= 0.97 else " *"
        cells.append(f"{c:.3f} ± {se:.3f}{flag}")
    for j in range(len(r.params)):
        w = r.median_width[i, j]
        cells.append(f"{w:.3g}" if np.isfinite(w) else "open")
    cells.append(f"{r.open_share[i, 2]:.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=1000, help="curves per cell (Wald, profile)")
    parser.add_argument("--boot-reps", type=int, default=200, help="curves per bootstrap cell")
    parser.add_argument("--boot-m", type=int, default=300, help="resamples per curve")
    parser.add_argument("--quick", action="store_true", help="200 curves, 100 x 200 bootstrap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_coverage.md")))
    args = parser.parse_args()
    if args.quick:
        args.reps, args.boot_reps, args.boot_m = 200, 100, 200
    jax.config.update("jax_enable_x64", True)
    key = jax.random.key(args.seed)
    head = "| design | truth (c, beta, n_b), sd | method | cover c | cover beta | cover n_b "
    head += "| width c | width beta | width n_b | n_b open |"
    rows = [head, "|" + "---|" * 10]
    t_start = time.perf_counter()
    for d, (dname, n) in enumerate(DESIGNS.items()):
        for t, (label, theta, sd) in enumerate(TRUTHS):
            boot = dname.startswith("paper")
            methods = METHODS if boot else ("wald", "profile")
            k = jax.random.fold_in(key, 100 * d + t)
            t0 = time.perf_counter()
            r = coverage(k, "alpha_n", theta, n, sd, reps=args.reps, methods=("wald", "profile"))
            results = [(r, i) for i in range(2)]
            if boot:
                rb = coverage(
                    jax.random.fold_in(k, 1),
                    "alpha_n",
                    theta,
                    n,
                    sd,
                    reps=args.boot_reps,
                    methods=methods[2:],
                    boot_m=args.boot_m,
                )
                results += [(rb, i) for i in range(len(rb.methods))]
            for res, i in results:
                truth = f"{label}: ({theta[0]:g}, {theta[1]:g}, {theta[2]:g}), {sd:g}"
                rows.append(
                    f"| {dname} | {truth} | {res.methods[i]} ({res.reps}) | "
                    + " | ".join(_cell(res, i))
                    + " |"
                )
            print(f"{dname:10s} {label:35s} {time.perf_counter() - t0:6.1f} s", flush=True)
    measure_rows = [
        "",
        "## `tokenscale measure`: lambda of the divergence law on simulated hidden states",
        "",
        "Raw Gaussian tokens of a decaying structure (length 4, coupling 0.3), n = 16, d = 32; "
        "truth lambda* from the exact theory (`hidden.coverage`); 200 pair-bootstrap replicates.",
        "",
        "| pairs | measurements | pair bootstrap (default) | fit's own interval | median width |",
        "|---|---|---|---|---|",
    ]
    structure = st.decaying(4.0, coupling=0.3)
    for pairs in (6, 20, 60):
        c = lambda_coverage(key, structure, n_max=16, d=32, pairs=pairs, reps=args.reps // 2)
        measure_rows.append(
            f"| {pairs} | {c.reps} | {c.pair_bootstrap:.3f} ± {c.se:.3f} | {c.points:.3f} | "
            f"{c.pair_width:.4f} |"
        )
        print(measure_rows[-1], flush=True)
    rows += measure_rows
    total = time.perf_counter() - t_start
    lo, hi = IDENTIFIED_NB
    text = [
        "# coverage: 95 % intervals of the alpha(n) law on synthetic curves",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {total:.0f} s",
        f"- machine: {platform.platform()}, jax {jax.__version__} ({jax.default_backend()})",
        f"- command: `python benchmarks/coverage.py --reps {args.reps} --boot-reps "
        f"{args.boot_reps} --boot-m {args.boot_m} --seed {args.seed}`",
        "- curves: `ln S = ln c + (beta/2)(ln n + ln(n + n_b) - ln(1 + n_b)) + sd z`, fitted "
        "with the log loss; `(k)` after a method is the number of curves; ± is the Monte Carlo "
        "standard error; `*` marks coverage outside 93-97 %; an open interval (the data do not "
        "bound n_b) covers what lies beyond its open end; width `open` when most are open.",
        f"- n_b counts as identified when it lies inside the design's range [{lo:g}, {hi:g}].",
        "- `wald`: Wald-t for c and beta; the fit's n_b interval is always its profile.",
        "",
        *rows,
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print("\n".join(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
