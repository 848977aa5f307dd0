"""Benchmark: ``compare_laws`` on the paper's 54 curves x laws x bootstrap resamples.

JAX/optax: one ``compare_laws`` call (per law one vmapped ``solve_batch`` over the full curves,
the hold-out fits, the leave-one-out fits and B resamples of every curve, plus the closed-form
shape test) against a Python loop of ``scipy.optimize.least_squares`` doing the same fits: the
same rows (same resamples), the same data-driven starts (the best ``n_starts`` points of the
law's variable-projection grid), the same objective (least squares of ln S), the exact n_b
limits for laws with a transition point. The optima are compared row by row as in
``bench_fit.py``; the table goes to ``benchmarks/results_compare.md``.

    python benchmarks/bench_compare.py [--laws powerlaw,alpha_n,broken] [--resamples 1000]
                                       [--scipy-resamples N] [--out FILE]

``--scipy-resamples N`` fits only N of the resamples with SciPy (all full, hold-out and LOO rows
always) and scales the loop's time to all of them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

from tokenscale_sim.fit import FitOptions, get_model, load_paper_scores
from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.solver import solve_batch
from tokenscale_sim.fit.selection.compare import compare_laws
from tokenscale_sim.fit.selection.curvature import quadratic_resample


def _basis(name, v, n):
    """NumPy ``(offset, X)`` of the built-in laws (``fit.models``), for SciPy without JAX."""
    ln = np.log(n)
    if name == "powerlaw":
        return np.zeros_like(n), np.stack([np.ones_like(n), -ln], axis=1)
    if name == "alpha_n":
        with np.errstate(over="ignore"):
            x = 0.5 * (ln + np.log1p((n - 1) / (1 + np.exp(v[0]))))
        return np.zeros_like(n), np.stack([np.ones_like(n), x], axis=1)
    if name == "broken":
        r = ln - v[0]
        s = np.exp(v[1])
        soft = s * np.logaddexp(0.0, r / s)
        return np.zeros_like(n), np.stack([np.ones_like(n), -(r - soft), -soft], axis=1)
    raise KeyError(name)


# Laws that predict the score itself (``Model.space == "linear"``,
# :mod:`tokenscale_sim.fit.laws.define`): NumPy ``f(n, theta)`` with theta in the model's parameter
# order, and the entries fitted as logs.
LINEAR_SPACE = {
    "saturating": (lambda n, t: t[0] - t[1] * n ** (-t[2]), (2,)),
    "loglinear": (lambda n, t: t[0] + t[1] * np.log(n), ()),
    "logistic": (
        lambda n, t: t[0] + (t[1] - t[0]) / (1 + np.exp(-(np.log(n) - np.log(t[2])) / t[3])),
        (2, 3),
    ),
}


def _linear_space(model):
    """NumPy ``(predict(u, n), basis(v, n))`` of a linear-space law: ``u`` unconstrained as the
    engine's (positive entries as logs); the basis columns are the law's linear parameters."""
    fn, positive = LINEAR_SPACE[model.name]
    q = model.q

    def predict(u, n):
        t = np.array(u, float)
        t[list(positive)] = np.exp(t[list(positive)])
        return fn(n, t)

    def basis(name, v, n):
        del name
        u0 = np.concatenate([np.zeros(q), v])
        off = predict(u0, n)
        cols = [predict(np.concatenate([np.eye(q)[j], v]), n) - off for j in range(q)]
        return off, np.stack(cols, axis=1)

    return predict, basis


def _jax_basis(model):
    """A law without a NumPy form: its JAX basis, jitted (slower per call; said in the table)."""
    fn = jax.jit(lambda v, n: model.basis(v, n, jnp.ones_like(n)))

    def basis(name, v, n):
        del name
        off, x = fn(jnp.asarray(v, float), jnp.asarray(n))
        return np.asarray(off), np.asarray(x)

    return basis


def _project(basis, name, v, n, target):
    """Linear least squares of ``target`` (ln y, or y for linear-space laws) at ``v``."""
    off, x = basis(name, v, n)
    w, *_ = np.linalg.lstsq(x, target - off, rcond=None)
    r = target - off - x @ w
    rss = float(r @ r)
    return np.concatenate([w, v]), rss if np.all(np.isfinite(w)) else np.inf


def _least_squares(resid, u0):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = least_squares(resid, u0, method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14)
    r = resid(res.x)
    return res.x, float(r @ r) if np.all(np.isfinite(r)) else np.inf


def scipy_fit(model, basis, n, y, grid, n_starts, predict=None):
    """The engine's fit in SciPy -> (u, rss of ln y).

    Log-space laws: variable projection of ln y on the grid, ``least_squares`` (LM) from the
    ``n_starts`` best grid points, and the n_b limits in closed form. Linear-space laws
    (``predict`` given): the grid is projected on y (the engine's starts), then LM on all
    parameters minimises the residuals ``ln y - ln f(n; u)`` from the ``n_starts`` best.
    """
    log_y = np.log(y)
    target = log_y if predict is None else y
    q = model.q
    if model.k == 0 and predict is None:
        return _project(basis, model.name, np.zeros(0), n, log_y)
    grid = grid if model.k else np.zeros((1, 0))
    cands = [_project(basis, model.name, v, n, target) for v in grid]
    finite = [c for c, v in zip(cands, grid, strict=True) if np.all(np.isfinite(v))]
    starts = sorted(finite, key=lambda c: c[1])[:n_starts]
    if predict is None:

        def resid(u):
            off, x = basis(model.name, u[q:], n)
            return log_y - off - x @ u[:q]

    else:

        def resid(u):
            with np.errstate(all="ignore"):
                f = predict(u, n)
                # a step into f <= 0 (ln undefined) is refused by a large residual
                return np.where(f > 0, log_y - np.log(np.where(f > 0, f, 1.0)), 1e3)

    out = [_least_squares(resid, u0) for u0, _ in starts]
    if model.nb_index is not None:  # the exact limits n_b -> 0 and n_b -> inf (grid ends)
        out += [cands[0], cands[-1]]
    return min(out, key=lambda c: c[1])


def rows_of(curves, star, holdout_last):
    """Full, hold-out, leave-one-out and resample rows (R, M) as ``compare_laws`` builds them."""
    a = curves.arrays
    w = np.asarray(a.weight)
    g, m = w.shape
    count = (w > 0).sum(axis=1)
    held = (np.arange(m)[None] >= (count - holdout_last)[:, None]) & (w > 0)
    loo = np.repeat(w[:, None], m, axis=1)
    loo[:, np.arange(m), np.arange(m)] = 0
    weight = np.concatenate([w, np.where(held, 0, w), loo.reshape(-1, m)])
    reps = np.r_[np.arange(g), np.arange(g), np.repeat(np.arange(g), m)]
    n = np.concatenate([np.asarray(a.n)[reps], np.asarray(star.n).reshape(-1, m)])
    y = np.concatenate([np.asarray(a.y)[reps], np.asarray(star.y).reshape(-1, m)])
    weight = np.concatenate([weight, np.asarray(star.weight).reshape(-1, m)])
    return n, y, weight, len(reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--laws", default="powerlaw,alpha_n,saturating,loglinear,logistic")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--scipy-resamples", type=int, default=None)
    parser.add_argument("--holdout-last", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_compare.md")))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    laws = [x.strip() for x in args.laws.split(",") if x.strip()]
    curves = load_paper_scores()
    opts = FitOptions()
    key = jax.random.key(args.seed)
    b = args.resamples

    def run():
        return compare_laws(key, curves, laws, holdout_last=args.holdout_last, bootstrap=b)

    t0 = time.perf_counter()
    comp = run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    comp = run()
    t_jax = time.perf_counter() - t0

    # the same rows, refitted law by law (untimed) for the row-by-row comparison
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    star = quadratic_resample(jax.random.fold_in(key, 0), data, b)  # compare_laws' resamples
    n_all, y_all, w_all, n_base = rows_of(curves, star, args.holdout_last)
    g = len(curves.keys)
    b_sp = min(args.scipy_resamples or b, b)
    pick = np.r_[np.arange(n_base), n_base + np.arange(b_sp * g)]
    n_valid = np.asarray(curves.arrays.n)[np.asarray(curves.arrays.weight) > 0]
    lines, t_sp_total, per_law = [], 0.0, []
    for name in laws:
        model = get_model(name)
        grid_np = model.grid(float(n_valid.min()), float(n_valid.max()))
        ones = np.ones_like(n_all)
        rows = CurveArrays(*(jnp.asarray(x) for x in (n_all, y_all, ones, w_all, ones)))
        sol = solve_batch(model, opts, rows, jnp.asarray(grid_np))
        u_jax, conv = np.asarray(sol.u), np.asarray(sol.converged)
        predict = None
        if model.space == "linear":
            predict, basis = _linear_space(model)
            how = "NumPy"
        else:
            try:
                _basis(name, np.zeros(model.k), n_valid[:2])
                basis, how = _basis, "NumPy"
            except KeyError:
                basis, how = _jax_basis(model), "jitted JAX basis"
        t0 = time.perf_counter()
        fits = []
        for r in pick:
            ok = w_all[r] > 0
            fits.append(scipy_fit(model, basis, n_all[r][ok], y_all[r][ok], grid_np, 3, predict))
        t_loop = time.perf_counter() - t0
        n_boot_sp = len(pick) - n_base
        t_base = t_loop * n_base / len(pick)
        t_law = t_base + (t_loop - t_base) * (b * g) / max(n_boot_sp, 1)
        t_sp_total += t_law
        rss_sp = np.array([f[1] for f in fits])
        lp = np.asarray(jax.vmap(model.log_predict)(sol.u, rows.n, rows.aux))[pick]
        with np.errstate(invalid="ignore"):
            r_jax = np.where(w_all[pick] > 0, np.log(y_all[pick]) - lp, 0.0)
        rss_jax = np.sum(r_jax**2, axis=1)
        rel = np.abs(rss_jax - rss_sp) / np.maximum(rss_sp, 1e-300)
        not_worse = rss_jax <= rss_sp * (1 + 1e-9) + 1e-15
        interior = np.all(np.isfinite(u_jax[pick]), axis=1) & conv[pick]
        u_sp = np.stack([np.broadcast_to(f[0], (model.n_params,)) for f in fits])
        nat_j = np.asarray(jax.vmap(model.natural)(jnp.asarray(u_jax[pick])))
        nat_s = np.asarray(jax.vmap(model.natural)(jnp.asarray(u_sp)))
        with np.errstate(all="ignore"):
            est_rel = np.max(np.abs(nat_j - nat_s) / np.abs(nat_s), axis=1)[interior]
        per_law.append((name, how, len(pick), t_loop, t_law, rel, not_worse, est_rel))
    rows_per_law = n_base + b * g
    lines = [
        "# bench_compare: which law? paper data x laws x bootstrap resamples",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores (shared with other jobs while measured), jax "
        f"{jax.__version__} ({jax.default_backend()}), float64",
        f"- command: `python benchmarks/bench_compare.py --laws {','.join(laws)} --resamples {b}"
        + (f" --scipy-resamples {b_sp}" if b_sp != b else "")
        + "`",
        f"- rows per law: {g} curves x (1 full + 1 hold-out + {curves.arrays.n.shape[1]} LOO + "
        f"{b} resamples) = {rows_per_law}; laws: {', '.join(laws)}",
        "- JAX: one `compare_laws` call (per law one `solve_batch`: variable projection + optax "
        "L-BFGS, 3 starts + exact n_b limits; shape test and all criteria included); SciPy: "
        "the same rows and starts, `least_squares` (LM, tolerances 1e-14) per start and row, "
        "the n_b limits in closed form, best RSS kept.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| JAX first call (compile + run) | {first:.1f} s |",
        f"| JAX run | {t_jax:.1f} s ({1e6 * t_jax / (rows_per_law * len(laws)):.0f} us/fit) |",
        f"| SciPy loop{' (extrapolated)' if b_sp != b else ''} | {t_sp_total:.1f} s |",
        f"| speed-up (run) | {t_sp_total / t_jax:.1f}x |",
        f"| speed-up incl. compile | {t_sp_total / first:.1f}x |",
    ]
    for name, how, count, t_loop, t_law, rel, not_worse, est_rel in per_law:
        lines += [
            f"| {name}: SciPy ({how}), {count} rows fitted | {t_loop:.1f} s "
            f"(all rows: {t_law:.1f} s) |",
            f"| {name}: RSS within 1e-6 relative | {100 * np.mean(rel <= 1e-6):.2f} % |",
            f"| {name}: JAX RSS <= SciPy RSS (1e-9) | {100 * np.mean(not_worse):.2f} % |",
            f"| {name}: estimates within 1e-4 rel. (interior, converged: {est_rel.size}) | "
            f"{100 * np.mean(est_rel <= 1e-4):.2f} % |",
        ]
    lines += [
        "",
        f"Paper's curves: {comp.shape.n_holds} of {comp.shape.n_curves} have the theory's "
        f"curvature sign; AICc wins per law: "
        + ", ".join(f"{x} {int(k)}" for x, k in zip(comp.laws, comp.pooled.wins.aicc, strict=True))
        + ".",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
