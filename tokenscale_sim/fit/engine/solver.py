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
- ``"linear"``: ``r = (y - y_hat) / (mean|y| se)`` (the scale only conditions the optimizer;
  ``se`` is 1 unless the curves carry sigma: then this is curve_fit's relative sigma);
- ``"weighted"``: ``r = (y - y_hat) / se`` (known standard errors, chi-square);
- ``"huber"``: log residuals with the Huber function of width ``huber_delta``.

Laws (:mod:`tokenscale_sim.fit.laws.define`) may predict y itself (``model.space == "linear"``:
variable projection then fits y, and is used only for starts under the log loss) and may ask to be
fitted as least-squares problems (``model.polish``): Levenberg-Marquardt
(:mod:`tokenscale_sim.fit.engine.polish`) from every start instead of L-BFGS, whose Gauss-Newton
step test then decides ``converged``.

Estimates, standard errors and intervals are assembled in
:mod:`tokenscale_sim.fit.inference.estimate`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.lanes import drain, over_rows
from tokenscale_sim.fit.engine.options import Boundary, FitOptions
from tokenscale_sim.fit.engine.polish import (
    DONE,
    LMSettings,
    Polished,
    lm_result,
    lm_start,
    lm_step,
)
from tokenscale_sim.fit.laws.models import Model, program_token
from tokenscale_sim.runtime.stored_programs import stored_program


class Solution(NamedTuple):
    """One curve's optimum (arrays; vmappable). ``u`` may hold +-inf for ``n_b`` limits;
    ``runaway``: not converged because Levenberg-Marquardt stopped a run heading to a limit the
    law has at infinity (``FitOptions.runaway``; always False otherwise)."""

    u: Any
    loss: Any
    grad_norm: Any
    iterations: Any
    converged: Any
    boundary: Any
    runaway: Any


# ----------------------------------------------------------------------------- loss and solver


def linear_scale(data: CurveArrays):
    """Weighted mean |y| of one curve: the scale of the linear loss's residuals; 1 when every y
    is 0 (a residual form ``0 = f(x; theta)``, e.g. the More-Garbow-Hillstrom test functions)."""
    scale = jnp.sum(data.weight * jnp.abs(data.y)) / jnp.sum(data.weight)
    return jnp.where(scale > 0, scale, 1.0)


def point_weights(data: CurveArrays):
    """``(ok, sqrt(w))`` of one curve (M,): real points, and the root weights (0 at padding)."""
    ok = data.weight > 0
    return ok, jnp.sqrt(jnp.where(ok, data.weight, 0.0))


def residuals(model: Model, loss: str, u, data: CurveArrays):
    """Residuals of one curve (M,) under ``loss`` (see the module docstring)."""
    if loss in ("log", "huber"):
        return jnp.log(data.y) - model.log_predict(u, data.n, data.aux)
    # laws: model.predict is y_hat in either model space (any sign for linear-space laws); the
    # linear loss scales by mean |y| (= mean y for scores), so y of any sign works
    y_hat = model.predict(u, data.n, data.aux)
    if loss == "linear":
        # se = 1: exactly the unweighted residuals
        return (data.y - y_hat) / linear_scale(data) / data.se
    return (data.y - y_hat) / data.se


def rho(opts: FitOptions, r):
    """Per-point loss ``rho(r)``: ``r^2``, or Huber of width ``opts.huber_delta``; same shape."""
    if opts.loss == "huber":
        a = jnp.abs(r)
        d = opts.huber_delta
        return jnp.where(a <= d, r**2, 2 * d * a - d**2)
    return r**2


def objective(model: Model, opts: FitOptions, u, data: CurveArrays):
    """``(1/2) sum w rho(r) / sum w`` for one curve: a scalar."""
    r = residuals(model, opts.loss, u, data)
    w = data.weight
    return 0.5 * jnp.sum(jnp.where(w > 0, w * rho(opts, r), 0.0)) / jnp.sum(w)


def lbfgs(fun, u0, opts: FitOptions, lower=None, upper=None):
    """Minimise ``fun`` from ``u0`` with optax L-BFGS + zoom line search (jit/vmap friendly).

    Stops when the gradient norm is below ``opts.gtol``, after 3 steps without decrease, after
    ``opts.max_iter`` steps, or when ``u`` leaves the box ``[lower, upper]`` (drift towards a
    limit that is fitted exactly elsewhere). Returns ``(u, value, grad_norm, iterations)``.
    """
    # imported when a program is traced, not with the package: a fit whose compiled program is
    # loaded whole from disk (Levenberg-Marquardt laws, stored programs) never needs optax
    import optax
    import optax.tree_utils as otu

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


def solve_fixed(model: Model, opts: FitOptions, data: CurveArrays, u0, fix_mask, fix_value):
    """L-BFGS with entries ``fix_mask`` of ``u`` held at ``fix_value`` (may be +-inf)."""

    def fun(u):
        return objective(model, opts, jnp.where(fix_mask, fix_value, u), data)

    u0 = jnp.where(fix_mask, 0.0, u0)
    u, value, gnorm, k = lbfgs(fun, u0, opts, *_drift_box(model, opts, data, u0.shape[0]))
    return jnp.where(fix_mask, fix_value, jnp.asarray(u)), value, gnorm, k


def _drift_box(model: Model, opts: FitOptions, data: CurveArrays, size: int, offset: int = 0):
    """Box on ``u`` (or ``v`` with ``offset = q``) outside which ln n_b has drifted to a limit."""
    lower = jnp.full(size, -jnp.inf, dtype=data.n.dtype)
    upper = jnp.full(size, jnp.inf, dtype=data.n.dtype)
    if model.nb_index is None:
        return lower, upper
    lo, hi = data_span(data)
    j = model.nb_index - offset
    margin = opts.boundary_span + 1.0
    return lower.at[j].set(lo - margin), upper.at[j].set(hi + margin)


def solve_small(a, b):
    """Solve ``a w = b`` (a (q, q), b (q,)) -> (q,); Cramer's rule for q <= 3.

    Batched LAPACK calls on tiny matrices are slow on CPU under vmap; larger systems use
    ``jnp.linalg.solve``.
    """
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
    if model.space == "linear":  # laws: the basis predicts y itself
        log_y = data.y
    offset, x = model.basis(v, data.n, data.aux)
    wt = jnp.where(data.weight > 0, data.weight, 0.0)
    xw = x * wt[:, None]
    w = solve_small(xw.T @ x, xw.T @ (log_y - offset))
    r = log_y - offset - x @ w
    rss = jnp.sum(jnp.where(wt > 0, wt * r**2, 0.0))
    ok = jnp.all(jnp.isfinite(w)) & jnp.isfinite(rss)
    return jnp.concatenate([w, v]), jnp.where(ok, rss, jnp.inf)


def projection_starts(model: Model, data: CurveArrays, v_grid):
    """:func:`project` at every grid row ``v_grid`` (K, k) -> (u (K, p), rss (K,))."""
    return jax.vmap(partial(project, model, data))(v_grid)


def best_starts(opts: FitOptions, v_grid, u_grid, rss):
    """The ``min(opts.n_starts, K)`` grid points of lowest ``rss`` (K,), best first: rows of
    ``u_grid`` (K, p) -> (S, p). Rows of ``v_grid`` (K, k) holding a limit (+-inf) are last."""
    n_free = min(opts.n_starts, v_grid.shape[0])
    finite_rows = jnp.all(jnp.isfinite(v_grid), axis=1)
    return u_grid[jnp.argsort(jnp.where(finite_rows, rss, jnp.inf))[:n_free]]


def _candidates(model: Model, opts: FitOptions, data: CurveArrays, v_grid):
    """Optimised free starts and exact limit fits -> (u, value, gnorm, iters), each (S, ...).

    The first ``n_free`` rows are free optima; for models with ``n_b`` the last two are the limits
    ``n_b -> 0`` and ``n_b -> inf``. Under the log loss the optimizer works on ``v`` only, with
    ``w`` profiled out exactly (variable projection, Golub-Pereyra); otherwise on all of ``u``.
    """
    p = model.n_params
    sum_w = jnp.sum(data.weight)
    u_grid, rss = projection_starts(model, data, v_grid)
    starts = best_starts(opts, v_grid, u_grid, rss)
    n_free = starts.shape[0]
    if opts.loss == "log" and model.space == "log":
        if model.k == 0:
            u, r = project(model, data, jnp.zeros((0,), data.n.dtype))
            cand = (u[None], 0.5 * r[None] / sum_w, jnp.zeros(1), jnp.zeros(1, int))
        else:

            def fun(v):
                return 0.5 * project(model, data, v)[1] / sum_w

            box = _drift_box(model, opts, data, model.k, offset=model.q)
            vs, values, gnorms, ks = jax.vmap(lambda v0: lbfgs(fun, v0, opts, *box))(
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
    solve = jax.vmap(partial(solve_fixed, model, opts, data))
    return solve(all_u0, all_mask, all_val), n_free


def _fit_one(model: Model, opts: FitOptions, data: CurveArrays, v_grid):
    """The full single-curve pipeline (starts, optimizer, limits, boundary choice) -> Solution."""
    (us, values, gnorms, ks), n_free = _candidates(model, opts, data, v_grid)
    values = jnp.where(jnp.isfinite(values), values, jnp.inf)
    best_free = jnp.argmin(values[:n_free])
    u, value, gnorm, k = us[best_free], values[best_free], gnorms[best_free], ks[best_free]
    boundary = jnp.asarray(int(Boundary.NONE))
    if model.nb_index is not None:
        j = model.nb_index
        lo, hi = data_span(data)
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
            jnp.where(drift_low, 0, 1),  # 0: the n_b -> 0 limit, 1: n_b -> inf
            jnp.where(tie, jnp.where(u[j] < 0.5 * (lo + hi), 0, 1), best_lim),
        )
        u = jnp.where(at_boundary, us[n_free + side], u)
        value = jnp.where(at_boundary, values[n_free + side], value)
        gnorm = jnp.where(at_boundary, gnorms[n_free + side], gnorm)
        k = jnp.where(at_boundary, k + ks[n_free + side], k)
        boundary = jnp.where(at_boundary, Boundary.ZERO + side, int(Boundary.INTERIOR))
    converged = jnp.isfinite(value) & (gnorm <= jnp.maximum(1e-6, 1e3 * opts.gtol))
    return Solution(u, value, gnorm, k, converged, boundary, jnp.asarray(False))


def _levenberg_marquardt_law(model: Model, opts: FitOptions) -> bool:
    """Laws asking for ``polish`` (no transition point) are least-squares problems: fitted by
    Levenberg-Marquardt from every start, the tool made for them (not under the Huber loss)."""
    return model.polish and model.nb_index is None and opts.loss != "huber"


def _least_squares_starts(model: Model, opts: FitOptions, data: CurveArrays, v_grid):
    """The ``n_starts`` best variable-projection starts of one curve (S, p), best first."""
    return best_starts(opts, v_grid, *projection_starts(model, data, v_grid))


def _least_squares_residuals(model: Model, opts: FitOptions, data: CurveArrays):
    """``u -> sqrt(w) r(u)`` of one curve (M,), 0 at padded points."""
    ok, sqrt_w = point_weights(data)

    def res(u):
        return jnp.where(ok, residuals(model, opts.loss, u, data), 0.0) * sqrt_w

    return res


def _least_squares_choice(model: Model, opts: FitOptions, data: CurveArrays, outs: Polished):
    """One curve's :class:`Solution` from its Levenberg-Marquardt runs ``outs`` (S starts): the
    lowest RSS. Its Gauss-Newton step test decides ``converged``, and so does resolution:
    residuals within ``1e4 eps`` of the rounding of y (an exact fit) leave the standard errors
    as rounding noise, so such a fit is not reported converged."""
    ok, sqrt_w = point_weights(data)
    best = jnp.argmin(jnp.where(jnp.isfinite(outs.rss), outs.rss, jnp.inf))
    u = outs.u[best]
    value, grad = jax.value_and_grad(partial(objective, model, opts, data=data))(u)
    y = jnp.where(ok, data.y, 1.0)
    if opts.loss == "log":  # size of the terms whose rounding the residuals carry
        size = jnp.abs(jnp.log(y)) + 1.0
    elif opts.loss == "linear":
        size = jnp.abs(y) / linear_scale(data) / jnp.where(ok, data.se, 1.0)
    else:
        size = jnp.abs(y) / jnp.where(ok, data.se, 1.0)
    floor = 1e4 * jnp.finfo(u.dtype).eps * jnp.linalg.norm(size * sqrt_w)
    resolved = jnp.sqrt(outs.rss[best]) > floor
    value = jnp.where(jnp.isfinite(value), value, jnp.inf)
    converged = outs.converged[best] & resolved & jnp.isfinite(value)
    return Solution(
        u,
        value,
        jnp.linalg.norm(grad),
        jnp.sum(outs.iterations),
        converged,
        jnp.asarray(int(Boundary.NONE)),
        outs.runaway[best] & ~converged,
    )


def minpack_budget(p: int) -> int:
    """MINPACK ``lmder``'s default budget of function evaluations for ``p`` parameters
    (``maxfev = 100 (p + 1)``).

    >>> minpack_budget(3), minpack_budget(4)
    (400, 500)
    """
    return 100 * (p + 1)


def evaluation_budget(opts: FitOptions, p: int) -> int:
    """Function evaluations (the start and each trial step, MINPACK's ``nfev``) a
    Levenberg-Marquardt run of a ``p``-parameter law may spend: ``opts.max_nfev``, or by default
    ``max(opts.max_iter, 100 (p + 1))`` (MINPACK's budget, at least that of L-BFGS).

    >>> evaluation_budget(FitOptions(), 2), evaluation_budget(FitOptions(max_nfev=5000), 2)
    (400, 5000)
    """
    return opts.max_nfev or max(opts.max_iter, minpack_budget(p))


def _solve_least_squares(model: Model, opts: FitOptions, flat: CurveArrays, v_grid) -> Solution:
    """laws (``model.polish``), curves (G, M): Levenberg-Marquardt
    (:mod:`tokenscale_sim.fit.engine.polish`) from the ``n_starts`` best variable-projection starts
    of every curve, the lowest RSS kept (:func:`_least_squares_choice`).

    All G x S runs share ``opts.chunk`` lanes (:func:`tokenscale_sim.fit.engine.lanes.drain`): a run
    that crawls for its whole budget (a saturating law on a straight curve, heading for a limit
    at infinity) costs its own lane only, not a whole batch. Function evaluations:
    :func:`evaluation_budget` (MINPACK's ``100 (p + 1)`` at least: NIST's MGH09 from start 1
    takes 415-444 trial steps for its four parameters, depending on XLA's rounding of the
    program); far starts (NIST's MGH10 from start 1) ask for more with
    ``FitOptions(max_nfev=...)``. The run-away rule stops runs heading to a limit at infinity
    only under ``opts.runaway``.
    """
    starts = over_rows(partial(_least_squares_starts, model, opts, v_grid=v_grid), flat)
    g, s, p = starts.shape
    m = flat.n.shape[-1]
    rows = CurveArrays(*(jnp.repeat(x, s, axis=0) for x in flat))
    cfg = LMSettings(max_iter=evaluation_budget(opts, p) - 1, runaway=opts.runaway)

    def step(state, problem):
        return lm_step(_least_squares_residuals(model, opts, problem[0]), state, cfg)

    outs = drain(
        lambda problem: lm_start(problem[1], m),
        step,
        lambda state: state.phase == DONE,
        lm_result,
        (rows, jnp.reshape(starts, (g * s, p))),
        opts.chunk,
    )
    outs = Polished(*(jnp.reshape(x, (g, s, *x.shape[1:])) for x in outs))
    return over_rows(partial(_least_squares_choice, model, opts), flat, outs)


def data_span(data: CurveArrays):
    """``(ln n_min, ln n_max)`` over the points of one curve with ``weight > 0`` (scalars)."""
    n_valid_min = jnp.min(jnp.where(data.weight > 0, data.n, jnp.inf))
    n_valid_max = jnp.max(jnp.where(data.weight > 0, data.n, -jnp.inf))
    return jnp.log(n_valid_min), jnp.log(n_valid_max)


def start_grid(model: Model, data: CurveArrays):
    """The model's starting grid of ``v`` (K, k) for the data's ``n`` range (concrete arrays).

    Rows 0 and -1 are the ``n_b`` limits ``-inf`` / ``+inf`` for models with a transition point.
    """
    n = np.asarray(data.n)[np.asarray(data.weight) > 0]
    grid = np.asarray(model.grid(float(n.min()), float(n.max())), dtype=data.n.dtype)
    return jax.device_put(grid)  # not jnp.asarray: that compiles a program per shape


def flat_rows(data: CurveArrays) -> CurveArrays:
    """Every leading (batch) axis of ``data`` as one axis of rows: (..., M) -> (prod(...), M)."""
    return CurveArrays(*(jnp.reshape(x, (-1, x.shape[-1])) for x in data))


@stored_program(2, program_token)
@partial(jax.jit, static_argnames=("model", "opts"))
def solve_batch(model: Model, opts: FitOptions, data: CurveArrays, v_grid) -> Solution:
    """Fit every curve of ``data`` (leading axes batch, last axis M) in one vmapped call.

    ``v_grid`` (K, k) are the nonlinear starting values (``model.grid``); rows 0 and -1 must be
    the ``-inf``/``+inf`` limits for models with ``n_b``. Returns a :class:`Solution` with the
    batch shape of ``data``.
    """

    batch = data.n.shape[:-1]
    size = int(np.prod(batch))
    flat = flat_rows(data)
    if _levenberg_marquardt_law(model, opts):
        sol = _solve_least_squares(model, opts, flat, v_grid)
        return Solution(*(jnp.reshape(x, batch + x.shape[1:]) for x in sol))
    fn = partial(over_rows, partial(_fit_one, model, opts, v_grid=v_grid))
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
