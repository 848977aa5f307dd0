r"""The optax fitting engine: one jit-compiled, vmappable pipeline per curve.

For one curve (arrays of shape (M,), padded entries carry weight 0) the pipeline is

1. **data-driven starts** (variable projection): for each grid value of the nonlinear parameters
   ``v`` the model is linear in ``w``, so weighted least squares of ``ln y`` gives ``w`` exactly;
   the ``n_starts`` best grid points start the optimizer;
2. **L-BFGS** (``optax.lbfgs`` with its zoom line search, values and gradients recycled through
   ``optax.value_and_grad_from_state``) on the unconstrained parameters ``u``, vmapped over starts;
3. for models with a transition point, the two **limits** ``n_b -> 0`` and ``n_b -> inf`` (pure
   power laws) are fitted too, holding ``ln n_b = -inf`` / ``+inf``; when the free optimum does not
   beat the better limit (relative ``boundary_rtol``), or drifts beyond ``n_min e^-boundary_span`` /
   ``n_max e^boundary_span``, the fit is reported *at the boundary* with ``n_b`` exactly 0 or inf.

The loss is ``(1/2) sum_i w_i rho(r_i) / sum_i w_i`` with residuals

- ``"log"`` (default, the paper's): ``r = ln y - ln y_hat`` and ``rho = r^2``; for the power law
  this *is* ordinary least squares of ln S on ln n;
- ``"linear"``: ``r = (y - y_hat) / mean(y)`` (the scale only conditions the optimizer);
- ``"weighted"``: ``r = (y - y_hat) / se`` (known standard errors, chi-square);
- ``"huber"``: log residuals with the Huber function of width ``huber_delta``.

Standard errors come from the Gauss-Newton covariance ``s^2 (J'WJ)^-1`` in ``u`` (``s^2`` =
weighted RSS/(m - p), or 1 for ``"weighted"``), mapped to natural units by the delta method;
confidence intervals are Student-t Wald intervals in ``u`` mapped back (so ``c`` and ``n_b`` stay
positive), except ``n_b``, whose interval is the profile-likelihood one and may be one-sided or
unbounded (flagged in ``ci_open``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.scipy.special import betainc, ndtri

from tokenscale_sim.fit.models import Model, get_model

LOSSES = ("log", "linear", "weighted", "huber")
"""Loss names accepted by :class:`FitOptions`."""

BOUNDARY = ("interior", "n_b=0 (pure power law)", "n_b=inf (pure power law)")
"""Names of the ``boundary`` codes of :class:`FitResult` (-1: model has no ``n_b``)."""


@dataclass(frozen=True)
class FitOptions:
    """Static fitting options (hashable: used as a ``jax.jit`` static argument).

    Attributes:
        loss: one of :data:`LOSSES`.
        huber_delta: width of the Huber loss in ln units (``loss="huber"``).
        max_iter: L-BFGS iterations per start.
        gtol: stop when the gradient norm of the loss falls below this.
        memory_size: L-BFGS history length.
        n_starts: number of variable-projection grid starts kept (best first).
        level: confidence level of the intervals.
        boundary_rtol: relative loss improvement over the best ``n_b`` limit needed to call the
            fit interior.
        boundary_span: an ``n_b`` beyond ``[n_min e^-span, n_max e^span]`` counts as a limit.
        profile_points: grid size of the ``n_b`` profile likelihood.
        adam_steps: optional Adam warm-up steps before L-BFGS (0: none).
        linesearch: ``"backtracking"`` (Armijo, cheap under vmap: the default) or ``"zoom"``
            (strong Wolfe, optax's default for L-BFGS).
        chunk: curves per vmapped chunk in :func:`solve_batch` (chunks run one after another).
    """

    loss: str = "log"
    huber_delta: float = 0.1
    max_iter: int = 400
    gtol: float = 1e-13
    memory_size: int = 10
    n_starts: int = 3
    level: float = 0.95
    boundary_rtol: float = 1e-7
    boundary_span: float = 9.0
    profile_points: int = 41
    adam_steps: int = 0
    linesearch: str = "backtracking"
    chunk: int = 256

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"FitOptions: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.linesearch not in ("backtracking", "zoom"):
            raise ValueError(
                f"FitOptions: linesearch must be 'backtracking' or 'zoom', got {self.linesearch!r}"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"FitOptions: level must be in (0, 1), got {self.level!r}")
        if self.n_starts < 1 or self.max_iter < 1:
            raise ValueError(
                f"FitOptions: n_starts and max_iter must be >= 1, got {self.n_starts}, "
                f"{self.max_iter}"
            )


class CurveArrays(NamedTuple):
    """Curves as padded arrays, each of shape (..., M); padded entries have ``weight = 0``.

    ``se`` holds standard errors (ones when not given), ``aux`` per-point model input (Upsilon(n)
    for ``divergence_measured``; ones otherwise). ``weight`` is 1 for data, 0 for padding, and a
    resampling count in the case bootstrap.
    """

    n: Any
    y: Any
    se: Any
    weight: Any
    aux: Any


class Solution(NamedTuple):
    """One curve's optimum (arrays; vmappable). ``u`` may hold +-inf for ``n_b`` limits."""

    u: Any
    loss: Any
    grad_norm: Any
    iterations: Any
    converged: Any
    boundary: Any


class FitResult(NamedTuple):
    """Fits of G curves (NumPy arrays with leading axis G; ``p`` natural parameters).

    Attributes:
        model: model name; ``params``: parameter names (p,); ``loss_name``: the loss used.
        estimates, se: (G, p) natural-unit estimates and standard errors (inf: not identified).
        ci_low, ci_high: (G, p) confidence bounds at ``level``; ``ci_open`` (G, p, 2) marks
            ends the data cannot pin (``n_b`` may have 0 or inf there).
        u: (G, p) unconstrained estimates. loss: (G,) final objective.
        r2_log, r2_linear: (G,) coefficients of determination of ln y and of y.
        aic, bic: (G,) from the Gaussian likelihood of the loss's residuals (log-space fits are
            comparable only with log-space fits).
        converged: (G,) bool; iterations: (G,) L-BFGS iterations of the chosen start.
        grad_norm: (G,); n_points: (G,) data points; boundary: (G,) code into :data:`BOUNDARY`.
    """

    model: str
    params: tuple[str, ...]
    loss_name: str
    level: float
    estimates: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    ci_open: np.ndarray
    u: np.ndarray
    loss: np.ndarray
    r2_log: np.ndarray
    r2_linear: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    grad_norm: np.ndarray
    n_points: np.ndarray
    boundary: np.ndarray


# ----------------------------------------------------------------------------- loss and solver


def residuals(model: Model, loss: str, u, data: CurveArrays):
    """Residuals of one curve (M,) under ``loss`` (see the module docstring)."""
    lp = model.log_predict(u, data.n, data.aux)
    if loss in ("log", "huber"):
        return jnp.log(data.y) - lp
    if loss == "linear":
        scale = jnp.sum(data.weight * data.y) / jnp.sum(data.weight)
        return (data.y - jnp.exp(lp)) / scale
    return (data.y - jnp.exp(lp)) / data.se


def _rho(opts: FitOptions, r):
    if opts.loss == "huber":
        a = jnp.abs(r)
        d = opts.huber_delta
        return jnp.where(a <= d, r**2, 2 * d * a - d**2)
    return r**2


def objective(model: Model, opts: FitOptions, u, data: CurveArrays):
    """``(1/2) sum w rho(r) / sum w`` for one curve: a scalar."""
    r = residuals(model, opts.loss, u, data)
    w = data.weight
    return 0.5 * jnp.sum(jnp.where(w > 0, w * _rho(opts, r), 0.0)) / jnp.sum(w)


def _lbfgs(fun, u0, opts: FitOptions, lower=None, upper=None):
    """Minimise ``fun`` from ``u0`` with optax L-BFGS + zoom line search (jit/vmap friendly).

    Stops when the gradient norm is below ``opts.gtol``, after 3 steps without decrease, after
    ``opts.max_iter`` steps, or when ``u`` leaves the box ``[lower, upper]`` (drift towards a
    limit that is fitted exactly elsewhere). Returns ``(u, value, grad_norm, iterations)``.
    """
    if opts.adam_steps:
        adam = optax.adam(0.05)

        def adam_step(carry, _):
            u, st = carry
            g = jax.grad(fun)(u)
            upd, st = adam.update(g, st, u)
            return (optax.apply_updates(u, upd), st), None

        (u0, _), _ = jax.lax.scan(adam_step, (u0, adam.init(u0)), None, length=opts.adam_steps)
        u0 = jnp.asarray(u0)

    solver = optax.lbfgs(
        memory_size=max(1, min(opts.memory_size, 2 * int(np.size(u0)))),
        linesearch=(
            optax.scale_by_zoom_linesearch(max_linesearch_steps=25)
            if opts.linesearch == "zoom"
            else optax.scale_by_backtracking_linesearch(
                max_backtracking_steps=10, decrease_factor=0.3, store_grad=True
            )
        ),
    )
    value_and_grad = optax.value_and_grad_from_state(fun)
    u0 = jnp.asarray(u0)
    eps = jnp.finfo(u0.dtype).eps
    lower = jnp.full_like(u0, -jnp.inf) if lower is None else lower
    upper = jnp.full_like(u0, jnp.inf) if upper is None else upper

    def step(carry):
        u, state, k, stall = carry
        value, grad = value_and_grad(u, state=state)
        updates, state = solver.update(grad, state, u, value=value, grad=grad, value_fn=fun)
        u = optax.apply_updates(u, updates)
        new = otu.tree_get(state, "value")
        improved = new < value - 4 * eps * jnp.abs(value)
        return u, state, k + 1, jnp.where(improved, 0, stall + 1)

    def keep_going(carry):
        u, state, k, stall = carry
        gnorm = otu.tree_norm(otu.tree_get(state, "grad"))
        inside = jnp.all((u >= lower) & (u <= upper))
        return (k == 0) | ((k < opts.max_iter) & (gnorm > opts.gtol) & (stall < 3) & inside)

    init = (u0, solver.init(u0), jnp.asarray(0), jnp.asarray(0))
    u, _, k, _ = jax.lax.while_loop(keep_going, step, init)
    value, grad = jax.value_and_grad(fun)(u)
    return u, value, otu.tree_norm(grad), k


def _solve_fixed(model: Model, opts: FitOptions, data: CurveArrays, u0, fix_mask, fix_value):
    """L-BFGS with entries ``fix_mask`` of ``u`` held at ``fix_value`` (may be +-inf)."""

    def fun(u):
        return objective(model, opts, jnp.where(fix_mask, fix_value, u), data)

    u0 = jnp.where(fix_mask, 0.0, u0)
    u, value, gnorm, k = _lbfgs(fun, u0, opts, *_drift_box(model, opts, data, u0.shape[0]))
    return jnp.where(fix_mask, fix_value, jnp.asarray(u)), value, gnorm, k


def _drift_box(model: Model, opts: FitOptions, data: CurveArrays, size: int, offset: int = 0):
    """Box on ``u`` (or ``v`` with ``offset = q``) outside which ln n_b has drifted to a limit."""
    lower = jnp.full(size, -jnp.inf, dtype=data.n.dtype)
    upper = jnp.full(size, jnp.inf, dtype=data.n.dtype)
    if model.nb_index is None:
        return lower, upper
    lo, hi = _data_span(data)
    j = model.nb_index - offset
    margin = opts.boundary_span + 1.0
    return lower.at[j].set(lo - margin), upper.at[j].set(hi + margin)


def _solve_small(a, b):
    """Solve ``a w = b`` for q <= 3 by Cramer's rule (batched LAPACK calls on tiny matrices are
    slow on CPU under vmap); larger systems use ``jnp.linalg.solve``."""
    q = b.shape[0]
    if q == 1:
        return b / a[0, 0]
    if q == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        return jnp.stack([a[1, 1] * b[0] - a[0, 1] * b[1], a[0, 0] * b[1] - a[1, 0] * b[0]]) / det
    if q == 3:
        det = jnp.dot(a[0], jnp.cross(a[1], a[2]))
        cols = [a.at[:, i].set(b) for i in range(3)]
        return jnp.stack([jnp.dot(c[0], jnp.cross(c[1], c[2])) for c in cols]) / det
    return jnp.linalg.solve(a, b)


def project(model: Model, data: CurveArrays, v):
    """Variable projection at ``v`` (k,): the exact weighted LS ``w`` of ln y -> (u (p,), rss).

    Solved through the (q x q) normal equations, so it is differentiable in ``v``; ``v`` may hold
    +-inf (the ``n_b`` limits). Non-finite solutions get ``rss = inf``.
    """
    log_y = jnp.log(jnp.where(data.y > 0, data.y, 1.0))
    offset, x = model.basis(v, data.n, data.aux)
    wt = jnp.where(data.weight > 0, data.weight, 0.0)
    xw = x * wt[:, None]
    w = _solve_small(xw.T @ x, xw.T @ (log_y - offset))
    r = log_y - offset - x @ w
    rss = jnp.sum(jnp.where(wt > 0, wt * r**2, 0.0))
    ok = jnp.all(jnp.isfinite(w)) & jnp.isfinite(rss)
    return jnp.concatenate([w, v]), jnp.where(ok, rss, jnp.inf)


def projection_starts(model: Model, data: CurveArrays, v_grid):
    """:func:`project` at every grid row ``v_grid`` (K, k) -> (u (K, p), rss (K,))."""
    return jax.vmap(partial(project, model, data))(v_grid)


def _candidates(model: Model, opts: FitOptions, data: CurveArrays, v_grid):
    """Optimised free starts and exact limit fits -> (u, value, gnorm, iters), each (S, ...).

    The first ``n_free`` rows are free optima; for models with ``n_b`` the last two are the limits
    ``n_b -> 0`` and ``n_b -> inf``. Under the log loss the optimizer works on ``v`` only, with
    ``w`` profiled out exactly (variable projection, Golub-Pereyra); otherwise on all of ``u``.
    """
    p = model.n_params
    sum_w = jnp.sum(data.weight)
    u_grid, rss = projection_starts(model, data, v_grid)
    n_free = min(opts.n_starts, v_grid.shape[0])
    finite_rows = jnp.all(jnp.isfinite(v_grid), axis=1)
    order = jnp.argsort(jnp.where(finite_rows, rss, jnp.inf))
    starts = u_grid[order[:n_free]]
    if opts.loss == "log":
        if model.k == 0:
            u, r = project(model, data, jnp.zeros((0,), data.n.dtype))
            cand = (u[None], 0.5 * r[None] / sum_w, jnp.zeros(1), jnp.zeros(1, int))
        else:

            def fun(v):
                return 0.5 * project(model, data, v)[1] / sum_w

            box = _drift_box(model, opts, data, model.k, offset=model.q)
            vs, values, gnorms, ks = jax.vmap(lambda v0: _lbfgs(fun, v0, opts, *box))(
                starts[:, model.q :]
            )
            us = jax.vmap(lambda v: project(model, data, v)[0])(vs)
            cand = (us, values, gnorms, ks)
        if model.nb_index is None:
            return cand, n_free
        lim = jnp.stack([u_grid[0], u_grid[-1]])  # rows 0 and -1 of the grid are the limits
        lim_val = 0.5 * jnp.stack([rss[0], rss[-1]]) / sum_w
        zeros = jnp.zeros(2)
        return tuple(
            jnp.concatenate([a, b])
            for a, b in zip(cand, (lim, lim_val, zeros, zeros.astype(int)), strict=True)
        ), n_free
    if model.nb_index is not None:
        j = model.nb_index
        fix_mask = jnp.zeros((2, p), bool).at[:, j].set(True)
        fix_value = jnp.zeros((2, p)).at[:, j].set(jnp.array([-jnp.inf, jnp.inf]))
        all_u0 = jnp.concatenate([starts, jnp.stack([u_grid[0], u_grid[-1]])])
        all_mask = jnp.concatenate([jnp.zeros((n_free, p), bool), fix_mask])
        all_val = jnp.concatenate([jnp.zeros((n_free, p)), fix_value])
    else:
        all_u0, all_mask, all_val = starts, jnp.zeros((n_free, p), bool), jnp.zeros((n_free, p))
    solve = jax.vmap(partial(_solve_fixed, model, opts, data))
    return solve(all_u0, all_mask, all_val), n_free


def _fit_one(model: Model, opts: FitOptions, data: CurveArrays, v_grid):
    """The full single-curve pipeline (starts, L-BFGS, limits, boundary choice) -> Solution."""
    (us, values, gnorms, ks), n_free = _candidates(model, opts, data, v_grid)
    values = jnp.where(jnp.isfinite(values), values, jnp.inf)
    best_free = jnp.argmin(values[:n_free])
    u, value, gnorm, k = us[best_free], values[best_free], gnorms[best_free], ks[best_free]
    boundary = jnp.asarray(-1)
    if model.nb_index is not None:
        j = model.nb_index
        lo, hi = _data_span(data)
        lim_values = values[n_free:]
        best_lim = jnp.argmin(lim_values)
        lim_value = lim_values[best_lim]
        no_gain = value >= lim_value - opts.boundary_rtol * jnp.abs(lim_value)
        drift_low = u[j] < lo - opts.boundary_span
        drift_high = u[j] > hi + opts.boundary_span
        at_boundary = no_gain | drift_low | drift_high
        # side: where the free optimum drifted; on a tie of the limits that is the honest pick
        tie = jnp.abs(lim_values[0] - lim_values[1]) <= 1e-10 * jnp.abs(lim_value)
        side = jnp.where(
            drift_low | drift_high,
            jnp.where(drift_low, 0, 1),
            jnp.where(tie, jnp.where(u[j] < 0.5 * (lo + hi), 0, 1), best_lim),
        )
        u = jnp.where(at_boundary, us[n_free + side], u)
        value = jnp.where(at_boundary, values[n_free + side], value)
        gnorm = jnp.where(at_boundary, gnorms[n_free + side], gnorm)
        k = jnp.where(at_boundary, k + ks[n_free + side], k)
        boundary = jnp.where(at_boundary, 1 + side, 0)
    converged = jnp.isfinite(value) & (gnorm <= jnp.maximum(1e-6, 1e3 * opts.gtol))
    return Solution(u, value, gnorm, k, converged, boundary)


def _data_span(data: CurveArrays):
    n_valid_min = jnp.min(jnp.where(data.weight > 0, data.n, jnp.inf))
    n_valid_max = jnp.max(jnp.where(data.weight > 0, data.n, -jnp.inf))
    return jnp.log(n_valid_min), jnp.log(n_valid_max)


def _grid(model: Model, data: CurveArrays):
    n = np.asarray(data.n)[np.asarray(data.weight) > 0]
    return jnp.asarray(model.grid(float(n.min()), float(n.max())), dtype=data.n.dtype)


@partial(jax.jit, static_argnames=("model", "opts"))
def solve_batch(model: Model, opts: FitOptions, data: CurveArrays, v_grid) -> Solution:
    """Fit every curve of ``data`` (leading axes batch, last axis M) in one vmapped call.

    ``v_grid`` (K, k) are the nonlinear starting values (``model.grid``); rows 0 and -1 must be
    the ``-inf``/``+inf`` limits for models with ``n_b``. Returns a :class:`Solution` with the
    batch shape of ``data``.
    """

    batch = data.n.shape[:-1]
    size = int(np.prod(batch))
    flat = CurveArrays(*(jnp.reshape(x, (size, x.shape[-1])) for x in data))
    fn = jax.vmap(partial(_fit_one, model, opts, v_grid=v_grid))
    chunk = opts.chunk
    if size > chunk:  # sequential chunks of vmapped fits: cache-friendly, lanes finish together
        pad = -size % chunk
        padded = CurveArrays(*(jnp.concatenate([x, jnp.repeat(x[-1:], pad, 0)]) for x in flat))
        chunks = CurveArrays(*(jnp.reshape(x, (-1, chunk, x.shape[-1])) for x in padded))
        sol = jax.lax.map(fn, chunks)
        sol = Solution(*(jnp.reshape(x, (-1, *x.shape[2:]))[:size] for x in sol))
    else:
        sol = fn(flat)
    return Solution(*(jnp.reshape(x, batch + x.shape[1:]) for x in sol))


# ----------------------------------------------------------------------------- profile likelihood


def deviance(model: Model, opts: FitOptions, u, data: CurveArrays):
    """-2 ln L up to a constant: ``m ln(RSS)`` (unknown sigma) or chi-square (``weighted``)."""
    r = residuals(model, opts.loss, u, data)
    w = data.weight
    rss = jnp.sum(jnp.where(w > 0, w * _rho(opts, r), 0.0))
    if opts.loss == "weighted":
        return rss
    m = jnp.sum(w)
    return m * jnp.log(rss / m)


@partial(jax.jit, static_argnames=("model", "opts", "index"))
def profile_deviance(model: Model, opts: FitOptions, index: int, data: CurveArrays, values):
    """Profile deviance of one curve with ``u[index]`` held at each of ``values`` (K,) -> (K,).

    The other parameters start from variable projection (exact for ``n_b`` under the log loss)
    and are re-optimised by L-BFGS; for models with ``n_b`` the profile over another parameter
    also tries both ``n_b`` limits (the minimum of the three is the profile).
    """
    p = model.n_params
    mask = jnp.zeros(p, bool).at[index].set(True)

    def one(value):
        if model.nb_index == index:
            u0, _ = project(model, data, value[None])
            if opts.loss == "log" and model.k == 1:  # variable projection is the exact optimum
                return deviance(model, opts, u0, data)
        else:
            u0, _ = project(model, data, jnp.zeros(model.k, dtype=data.n.dtype))
        fixed = jnp.zeros(p).at[index].set(value)
        u, *_ = _solve_fixed(model, opts, data, u0, mask, fixed)
        dev = deviance(model, opts, u, data)
        if model.nb_index is None or model.nb_index == index:
            return dev
        both = mask.at[model.nb_index].set(True)
        for limit in (-jnp.inf, jnp.inf):
            u_lim, *_ = _solve_fixed(
                model, opts, data, u0, both, fixed.at[model.nb_index].set(limit)
            )
            dev = jnp.minimum(dev, deviance(model, opts, u_lim, data))
        return dev

    return jax.vmap(one)(values)


def lr_threshold(loss: str, level: float, m: float, p: float) -> float:
    """Deviance threshold of a profile interval: ``chi2_1(level)`` for known SEs (``weighted``),
    else the small-sample F form ``m ln(1 + t^2_{m-p}(level) / (m - p))`` (Bates & Watts), which
    keeps 95 % profile intervals at 95 % with ten points.

    >>> round(lr_threshold("weighted", 0.95, 10, 3), 4)
    3.8415
    """
    if loss == "weighted" or m - p <= 0:
        return float(ndtri(0.5 + level / 2)) ** 2
    t = t_quantile(0.5 + level / 2, float(m - p))
    return float(m * np.log1p(t * t / (m - p)))


def interval_from_profile(grid, dev, dev_min, level: float, thr: float | None = None):
    """The set ``{x : dev(x) - dev_min <= thr}`` around the minimum of ``dev``.

    ``thr`` defaults to ``chi2_1(level)`` (see :func:`lr_threshold` for the small-sample one).

    ``grid`` (K,) ascending (first/last may be -inf/+inf). Returns ``(low, high, open_low,
    open_high)``: an end is *open* when the set reaches the grid's first/last point, i.e. the data
    do not bound it; the end is then the grid end (e.g. -inf for ln n_b: n_b can be 0).
    """
    grid = np.asarray(grid, float)
    stat = np.asarray(dev, float) - float(dev_min)
    thr = float(ndtri(0.5 + level / 2)) ** 2 if thr is None else thr
    inside = np.isfinite(stat) & (stat <= thr)
    if not inside.any():
        i = int(np.nanargmin(stat))
        return grid[i], grid[i], False, False
    i0 = int(np.nanargmin(np.where(np.isfinite(stat), stat, np.inf)))
    lo = i0
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    hi = i0
    while hi < len(grid) - 1 and inside[hi + 1]:
        hi += 1
    open_low, open_high = lo == 0, hi == len(grid) - 1

    def cross(a, b):  # linear interpolation of the threshold crossing between a (in) and b (out)
        if not (np.isfinite(grid[a]) and np.isfinite(grid[b])):
            return grid[a]
        t = (thr - stat[a]) / (stat[b] - stat[a])
        return grid[a] + t * (grid[b] - grid[a])

    low = grid[0] if open_low else cross(lo, lo - 1)
    high = grid[-1] if open_high else cross(hi, hi + 1)
    return low, high, open_low, open_high


# ----------------------------------------------------------------------------- summaries


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """Student-t quantile by bisection on the regularised incomplete beta (no SciPy at runtime).

    >>> round(t_quantile(0.975, 8), 3)
    2.306
    """
    if df <= 0:
        return float("inf")

    def cdf(t):
        x = df / (df + t * t)
        tail = 0.5 * float(betainc(df / 2, 0.5, x))
        return 1 - tail if t > 0 else tail

    lo, hi = 0.0, 1e4
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class Summary(NamedTuple):
    """Per-curve summaries computed by :func:`summarize` (arrays with the batch shape)."""

    estimates: Any
    se: Any
    r2_log: Any
    r2_linear: Any
    aic: Any
    bic: Any
    n_points: Any
    n_free: Any


@partial(jax.jit, static_argnames=("model", "opts"))
def summarize(model: Model, opts: FitOptions, u, boundary, data: CurveArrays) -> Summary:
    """Natural estimates, delta-method SEs, R^2 and AIC/BIC of fitted curves (G, ...) -> Summary.

    At a boundary ``n_b`` is fixed (not a free parameter): its SE is inf and the others' SEs are
    those of the limiting power law.
    """

    def one(u, boundary, d):
        p = model.n_params
        w = d.weight
        m = jnp.sum(w)
        fixed = jnp.zeros(p, bool)
        if model.nb_index is not None:
            fixed = fixed.at[model.nb_index].set(boundary > 0)
        u_fin = jnp.where(fixed, 0.0, u)

        def res(uu):
            return residuals(model, opts.loss, jnp.where(fixed, u, uu), d) * jnp.sqrt(w)

        r = res(u_fin)
        jac = jax.jacrev(res)(u_fin)
        both = fixed[:, None] | fixed[None, :]
        cov = jnp.linalg.inv(jnp.where(both, jnp.eye(p), jac.T @ jac))
        cov = jnp.where(both, 0.0, cov)
        p_free = p - jnp.sum(fixed)
        s2 = 1.0 if opts.loss == "weighted" else jnp.sum(r**2) / jnp.maximum(m - p_free, 1.0)
        jnat = jax.jacfwd(model.natural)(u_fin)
        var = jnp.diag(s2 * jnat @ cov @ jnat.T)
        var = jnp.where(fixed | ~jnp.isfinite(var) | (var < 0), jnp.inf, var)
        lp = model.log_predict(u, d.n, d.aux)
        ok = w > 0

        def r2(obs, fit):
            mean = jnp.sum(jnp.where(ok, w * obs, 0.0)) / m
            ss_res = jnp.sum(jnp.where(ok, w * (obs - fit) ** 2, 0.0))
            ss_tot = jnp.sum(jnp.where(ok, w * (obs - mean) ** 2, 0.0))
            return 1 - ss_res / ss_tot

        dev = deviance(model, opts, u, d)
        if opts.loss == "weighted":
            m2ll = dev + jnp.sum(jnp.where(ok, w * jnp.log(2 * jnp.pi * d.se**2), 0.0))
            k_par = p_free
        else:
            m2ll = dev + m * (jnp.log(2 * jnp.pi) + 1)
            k_par = p_free + 1
        return Summary(
            model.natural(u),
            jnp.sqrt(var),
            r2(jnp.log(d.y), lp),
            r2(d.y, jnp.exp(lp)),
            m2ll + 2 * k_par,
            m2ll + k_par * jnp.log(m),
            m,
            p_free,
        )

    return jax.vmap(one)(u, boundary, data)


def _flat(data: CurveArrays) -> CurveArrays:
    return CurveArrays(*(jnp.reshape(jnp.asarray(x), (-1, jnp.shape(x)[-1])) for x in data))


def wald_intervals(model: Model, est, se, df, level: float):
    """Student-t intervals (G, p): on the log scale for positive parameters -> (low, high)."""
    est = np.asarray(est, float)
    se = np.asarray(se, float)
    tq = np.array([t_quantile(0.5 + level / 2, float(x)) for x in np.atleast_1d(df)])[:, None]
    pos = np.array(model.positive, bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_half = np.where(est > 0, tq * se / est, np.inf)
        low = np.where(pos, est * np.exp(-log_half), est - tq * se)
        high = np.where(pos, est * np.exp(log_half), est + tq * se)
    low = np.where(np.isnan(low), -np.inf, low)
    high = np.where(np.isnan(high), np.inf, high)
    return low, high


def fit_arrays(model: str | Model, data: CurveArrays, opts: FitOptions | None = None) -> FitResult:
    """Fit each curve of ``data`` (arrays (G, M)) independently; see :func:`fit_curves`."""
    model = get_model(model)
    opts = opts or FitOptions()
    data = _flat(data)
    sol = solve_batch(model, opts, data, _grid(model, data))
    summ = Summary(*(np.asarray(x) for x in summarize(model, opts, sol.u, sol.boundary, data)))
    ci_low, ci_high = wald_intervals(
        model, summ.estimates, summ.se, summ.n_points - summ.n_free, opts.level
    )
    pos = np.array(model.positive, bool)
    ci_open = np.stack(
        [np.where(pos, ci_low <= 0, ~np.isfinite(ci_low)), ~np.isfinite(ci_high)], -1
    )
    if model.nb_index is not None:
        j = model.nb_index
        low, high, open_low, open_high = nb_profile_intervals(model, opts, data, sol.u)
        ci_low[:, j], ci_high[:, j] = np.exp(low), np.exp(high)
        ci_open[:, j, 0], ci_open[:, j, 1] = open_low, open_high
    return FitResult(
        model=model.name,
        params=model.params,
        loss_name=opts.loss,
        level=opts.level,
        estimates=summ.estimates,
        se=summ.se,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_open=ci_open,
        u=np.asarray(sol.u),
        loss=np.asarray(sol.loss),
        r2_log=summ.r2_log,
        r2_linear=summ.r2_linear,
        aic=summ.aic,
        bic=summ.bic,
        converged=np.asarray(sol.converged),
        iterations=np.asarray(sol.iterations),
        grad_norm=np.asarray(sol.grad_norm),
        n_points=summ.n_points.astype(int),
        boundary=np.asarray(sol.boundary),
    )


def _nb_grids(opts: FitOptions, data: CurveArrays, nb_hat):
    """Per-curve ln n_b grids: coarse over the widened data range, fine (0.05) near the estimate,
    plus the limits -inf and +inf; sorted, shape (G, 2 + profile_points + 81)."""
    lo, hi = (np.asarray(x) for x in jax.vmap(_data_span)(data))
    lo, hi = lo - opts.boundary_span, hi + opts.boundary_span
    t = np.linspace(0.0, 1.0, opts.profile_points)[None, :]
    coarse = lo[:, None] + t * (hi - lo)[:, None]
    centre = np.clip(np.where(np.isfinite(nb_hat), nb_hat, np.sign(nb_hat) * np.inf), lo, hi)
    fine = np.clip(centre[:, None] + np.linspace(-2.0, 2.0, 81)[None, :], lo[:, None], hi[:, None])
    inf = np.full((coarse.shape[0], 1), np.inf)
    return np.sort(np.concatenate([-inf, coarse, fine, inf], axis=1), axis=1)


def nb_profile_intervals(model: Model, opts: FitOptions, data: CurveArrays, u_hat):
    """Profile-likelihood intervals of ``ln n_b`` for curves (G, M) -> (low, high, open_low,
    open_high), each (G,).

    The grid spans each curve's ``ln n`` range widened by ``boundary_span`` plus the limits
    ``-inf``/``+inf``; an open end means the data cannot exclude ``n_b -> 0`` (low = -inf) or
    ``n_b -> inf`` (high = +inf) at the requested level.
    """
    if model.nb_index is None:
        raise ValueError(f"nb_profile_intervals: model {model.name!r} has no n_b")
    grids = _nb_grids(opts, data, np.asarray(u_hat)[:, model.nb_index])
    dev = np.asarray(
        jax.vmap(partial(profile_deviance, model, opts, model.nb_index))(
            data, jnp.asarray(grids, data.n.dtype)
        )
    )
    dev_hat = np.asarray(jax.vmap(partial(deviance, model, opts))(jnp.asarray(u_hat), data))
    m = np.asarray(data.weight).sum(axis=-1)
    out = [
        interval_from_profile(
            grids[g],
            dev[g],
            min(dev_hat[g], np.nanmin(dev[g])),
            opts.level,
            lr_threshold(opts.loss, opts.level, float(m[g]), model.n_params),
        )
        for g in range(grids.shape[0])
    ]
    low, high, open_low, open_high = (np.array(x) for x in zip(*out, strict=True))
    return low, high, open_low, open_high


def fit_curves(curves, model: str | Model, opts: FitOptions | None = None) -> FitResult:
    """Fit every curve of a :class:`~tokenscale_sim.fit.data.CurveSet` with ``model``.

    Checks the input first (:func:`~tokenscale_sim.fit.data.check_curves`), then runs the
    vmapped pipeline of this module over all curves at once.

    Args:
        curves: the curves (G of them, padded to M points).
        model: a :class:`~tokenscale_sim.fit.models.Model` or its name.
        opts: :class:`FitOptions` (loss, level, iterations...).

    Returns:
        :class:`FitResult` with arrays of leading shape (G,).

    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> res = fit_curves(curves_from_arrays([1, 2, 4, 8], [2.0, 2.0 * 2**0.3, 2.0 * 4**0.3,
    ...                                                      2.0 * 8**0.3]), "powerlaw")
    >>> [round(float(x), 6) for x in res.estimates[0]]
    [2.0, -0.3]
    """
    from tokenscale_sim.fit.data import check_curves

    model = get_model(model)
    opts = opts or FitOptions()
    check_curves(curves, model, opts.loss)
    return fit_arrays(model, curves.arrays, opts)


def predict(result: FitResult, n, aux=None) -> np.ndarray:
    """Fitted curves ``y_hat`` at token counts ``n`` (K,) for every curve -> (G, K).

    Uses the unconstrained estimates (exact limits included at a boundary). ``aux`` (G, K) is
    needed only for ``divergence_measured``.

    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> res = fit_curves(curves_from_arrays([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0]), "powerlaw")
    >>> [round(float(x), 6) for x in predict(res, [16.0])[0]]
    [48.0]
    """
    model = get_model(result.model)
    u = jnp.asarray(result.u)
    n = jnp.asarray(n, dtype=u.dtype)
    aux = jnp.ones((u.shape[0], n.shape[0]), u.dtype) if aux is None else jnp.asarray(aux)
    lp = jax.vmap(lambda uu, a: model.log_predict(uu, n, a))(u, aux)
    return np.asarray(jnp.exp(lp))


def fit_divergence(
    n, d, psi_eq=None, psi_aabb=None, psi_ab=None, *, opts: FitOptions | None = None
) -> FitResult:
    r"""Fit ``E[D(n)] = lambda sqrt(Upsilon(n))`` to divergence curves ``d`` (m,) or (G, m).

    With measured psi arrays (each broadcastable to ``d``) this is the authors' procedure: only
    ``lambda`` is free, ``Upsilon(n) = n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab)``
    (:func:`tokenscale_sim.theory.upsilon`). Without psi's the constant-psi form
    ``E[D] = scale sqrt(n (n + n_b))`` gives ``(scale, n_b)`` from the curve alone. The default
    loss is ``"linear"`` (unweighted least squares of D, as the authors did).

    >>> import numpy as np
    >>> n = np.arange(1.0, 65.0)
    >>> d = 0.3 * np.sqrt(n * (n + 12.0))
    >>> [round(float(x), 6) for x in fit_divergence(n, d).estimates[0]]
    [0.3, 12.0]
    """
    from tokenscale_sim import theory
    from tokenscale_sim.fit.data import curves_from_arrays

    opts = opts or FitOptions(loss="linear")
    psis = (psi_eq, psi_aabb, psi_ab)
    if all(p is None for p in psis):
        return fit_curves(curves_from_arrays(n, d), "divergence_const", opts)
    if any(p is None for p in psis):
        raise ValueError("fit_divergence: give all of psi_eq, psi_aabb, psi_ab or none of them")
    d2 = np.atleast_2d(np.asarray(d, float))
    n2 = np.broadcast_to(np.asarray(n, float), d2.shape)
    eq, aabb, ab = (np.broadcast_to(np.asarray(p, float), d2.shape) for p in psis)
    ups = np.asarray(theory.upsilon(n2, eq, aabb, ab))
    if not np.all(ups > 0):
        raise ValueError(
            f"fit_divergence: Upsilon(n) must be > 0 for every n, got min {np.nanmin(ups):g}"
        )
    return fit_curves(curves_from_arrays(n2, d2, aux=ups), "divergence_measured", opts)
