"""Benchmark: the least-squares engine on the NIST StRD nonlinear problems against SciPy's MINPACK.

For every shipped problem (and any further NIST ``.dat`` files named on the command line) and
both NIST starts: correct significant digits (LRE) of the estimates and standard errors, the
converged flag, and the time per fit, for

- the engine (``fit_arrays`` with the ``linear`` loss: Levenberg-Marquardt of
  :mod:`tokenscale_sim.fit.engine.polish`; time of a second, compiled call of ``solve_batch``), and
- SciPy's MINPACK (``scipy.optimize.least_squares(method="lm")``, analytic-free finite
  differences as SciPy does by default, tolerances 1e-15, 10 000 evaluations at most; standard
  errors from its final Jacobian by SVD, ``s^2 V S^-2 V'``),

plus a batch: the engine vmapped over ``--batch`` noisy copies of each problem's data (one call)
against a SciPy loop over them. Ratios are measured in one run; the table goes to
``benchmarks/results_nist.md``.

    python benchmarks/bench_nist.py [--batch 256] [--out FILE] [extra.dat ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

from tokenscale_sim.fit import CurveArrays, FitOptions, fit_arrays
from tokenscale_sim.fit.data.nist import NIST_PROBLEMS, NistProblem, load_nist, lre, parse_nist
from tokenscale_sim.fit.engine.solver import solve_batch

OPTS = FitOptions(loss="linear")


def _numpy_model(p: NistProblem):
    env = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "cos": np.cos, "sin": np.sin,
           "arctan": np.arctan, "atan": np.arctan, "pi": np.pi}  # fmt: skip
    code = compile(p.expression.replace("^", "**"), p.name, "eval")

    def model(b, x):
        return eval(code, env, {**{f"b{i + 1}": b[i] for i in range(len(b))}, "x": x})

    return model


def _scipy(p: NistProblem, y, start):
    model = _numpy_model(p)
    t = time.perf_counter()
    r = least_squares(
        lambda b: model(b, p.x) - y,
        start,
        method="lm",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
        max_nfev=10_000,
    )
    dt = time.perf_counter() - t
    m, k = r.jac.shape
    _, sv, vt = np.linalg.svd(r.jac, full_matrices=False)  # Cov = s^2 V S^-2 V', no J'J
    se = np.sqrt(np.sum((vt.T / sv) ** 2, axis=1) * np.sum(r.fun**2) / (m - k))
    return r.x, se, dt


def _data(p: NistProblem, y):
    y = np.atleast_2d(y)
    one = np.ones_like(y)
    return CurveArrays(np.broadcast_to(p.x, y.shape).copy(), y, one, one, one)


def run(problems: list[NistProblem], batch: int) -> list[str]:
    rows = [
        "| problem | start | engine digits est / se | converged | SciPy lm digits est / se "
        "| engine ms/fit | SciPy ms/fit | batch engine ms/fit | batch SciPy ms/fit "
        "| batch speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    for p in problems:
        law = p.model()
        grid = jnp.asarray(np.asarray(law.grid(1.0, 2.0)))
        data = _data(p, p.y)
        resid_sd = np.sqrt(p.certified_rss / (p.x.size - len(p.params)))
        noisy = p.y + resid_sd * rng.standard_normal((batch, p.x.size))
        for start in (1, 2):
            g = grid[start - 1 : start]
            res = fit_arrays(law, data, OPTS, v_grid=g)
            ours = (lre(res.estimates[0], p.certified).min(), lre(res.se[0], p.certified_se).min())
            jdata = CurveArrays(*(jnp.asarray(a) for a in data))
            jax.block_until_ready(solve_batch(law, OPTS, jdata, g))  # compiled already
            t = time.perf_counter()
            jax.block_until_ready(solve_batch(law, OPTS, jdata, g))
            ours_ms = 1e3 * (time.perf_counter() - t)
            x, se, dt = _scipy(p, p.y, p.starts[start - 1])
            theirs = (lre(x, p.certified).min(), lre(se, p.certified_se).min())
            bdata = CurveArrays(*(jnp.asarray(a) for a in _data(p, noisy)))
            jax.block_until_ready(solve_batch(law, OPTS, bdata, g))  # compile the batch shape
            t = time.perf_counter()
            jax.block_until_ready(solve_batch(law, OPTS, bdata, g))
            batch_ms = 1e3 * (time.perf_counter() - t) / batch
            loop = min(batch, 64)
            t = time.perf_counter()
            for i in range(loop):
                _scipy(p, noisy[i], p.starts[start - 1])
            loop_ms = 1e3 * (time.perf_counter() - t) / loop
            rows.append(
                f"| {p.name} | {start} | {ours[0]:.1f} / {ours[1]:.1f} | "
                f"{'yes' if res.converged[0] else 'no'} | {theirs[0]:.1f} / {theirs[1]:.1f} | "
                f"{ours_ms:.1f} | {1e3 * dt:.1f} | {batch_ms:.2f} | {loop_ms:.2f} | "
                f"{loop_ms / batch_ms:.1f}x |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("extra", nargs="*", help="further NIST StRD .dat files to check")
    parser.add_argument("--batch", type=int, default=256, help="noisy copies per problem")
    parser.add_argument("--problems", default=",".join(NIST_PROBLEMS), help="shipped subset")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_nist.md")))
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    problems = [load_nist(n) for n in args.problems.split(",") if n]
    problems += [parse_nist(Path(f).read_text(), Path(f).stem) for f in args.extra]
    t0 = time.perf_counter()
    rows = run(problems, args.batch)
    head = [
        "# NIST StRD: the least-squares engine against SciPy's MINPACK",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, JAX {jax.__version__} on {jax.default_backend()}, float64; "
        f"`python benchmarks/bench_nist.py --batch {args.batch}"
        f"{' ' + ' '.join(args.extra) if args.extra else ''}` took "
        f"{time.perf_counter() - t0:.0f} s. Digits: LRE, the smaller over parameters (15: "
        "exact); ms/fit of the engine: a compiled call; batch: noisy copies of the data "
        "(certified residual SD), one vmapped call vs a SciPy loop (at most 64 timed).",
        "",
    ]
    Path(args.out).write_text("\n".join(head + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
