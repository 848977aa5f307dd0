r"""Profile-likelihood intervals for every parameter of any :class:`~.models.Model`.

A parameter's profile interval at level ``1 - a`` is ``{theta_j : dev_prof(theta_j) - dev_min <=
thr}`` with the small-sample threshold of :func:`~.likelihood.lr_threshold`; under the log loss
that is ``RSS_prof(theta_j) <= R* = RSS_min (1 + t^2_{m-p} / (m - p))``.

**Exact path** (log loss, at most one nonlinear parameter ``v``, e.g. ``ln n_b``): at fixed ``v``
the model is linear in ``w`` with ``RSS(w) = RSS(v) + (w - w_hat(v))' X'WX (w - w_hat(v))``, so
the set ``{w : RSS(w, v) <= R*}`` is an ellipsoid and the extremes of ``w_i`` on it are
``w_hat_i(v) +- sqrt((R* - RSS(v)) C_ii(v))`` with ``C = (X'WX)^-1``. The interval of a
parameter that depends on one ``w_i`` (and ``v``) is the union of these over a dense grid of
``v`` that includes the limits ``v = -inf, +inf`` (``n_b -> 0``, ``n_b -> inf``); the interval
of ``v`` itself is the hull of ``{v : RSS(v) <= R*}`` (the set can have two pieces: both
``n_b`` limits are pure power laws), *open* at an end that reaches a limit. All of this is
closed form, vmapped over curves and grid points. For a linear model it is the Student-t interval.

**General path** (other losses, ``k > 1``): the profile deviance from L-BFGS refits
(:func:`~.likelihood.profile_deviance`) on a grid per parameter.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import data_span, project, residuals, solve_small
from tokenscale_sim.fit.inference.likelihood import (
    delta_method_se,
    deviance,
    interval_from_profile,
    lr_threshold,
    profile_deviance,
)
from tokenscale_sim.fit.laws.models import Model

FINE_STEPS = 81
"""Points of the fine ``ln n_b`` grid (step 0.05) around the estimate."""


class Intervals(NamedTuple):
    """Intervals of G curves in natural units, each (G, p).

    ``open_low`` / ``open_high`` mark ends the data do not bound (then the end is the limit of
    the parameter: 0 or inf for ``n_b``, +-inf otherwise). ``available`` (p,) is False for a
    parameter no profile could be built for (it depends on several linear coefficients): its
    entries are NaN and the caller keeps another interval.
    """

    low: np.ndarray
    high: np.ndarray
    open_low: np.ndarray
    open_high: np.ndarray
    available: np.ndarray


@functools.lru_cache(maxsize=256)  # per law: jit of a new jacfwd closure compiles on every call
def dependence(model: Model) -> np.ndarray:
    """(p, P) bool: which unconstrained entries each natural parameter depends on.

    Read off the Jacobian of ``model.natural`` at a generic point (no accidental zeros).

    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> dependence(get_model("alpha_n")).astype(int).tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    u = 0.37 + 0.11 * np.arange(model.n_params)
    dep = np.asarray(jax.jit(jax.jacfwd(model.natural))(u)) != 0  # one program, not op by op
    dep.setflags(write=False)  # shared by every call for this law
    return dep


_data_spans = jax.jit(jax.vmap(data_span))
"""``data_span`` of every curve (G, M) -> (lo (G,), hi (G,)), one program."""


def nb_grid(opts: FitOptions, data: CurveArrays, v_hat, coarse: int) -> np.ndarray:
    """Per-curve ``ln n_b`` grids (G, 2 + coarse + FINE_STEPS), ascending.

    ``coarse`` points over each curve's ``ln n`` range widened by ``opts.boundary_span``, a fine
    grid (step 0.05) around the estimate ``v_hat`` (G,), and the limits ``-inf`` / ``+inf``.
    """
    lo, hi = (np.asarray(x) for x in _data_spans(data))
    lo, hi = lo - opts.boundary_span, hi + opts.boundary_span
    t = np.linspace(0.0, 1.0, coarse)[None, :]
    grid = lo[:, None] + t * (hi - lo)[:, None]
    v_hat = np.asarray(v_hat, float)
    centre = np.clip(np.where(np.isfinite(v_hat), v_hat, np.sign(v_hat) * np.inf), lo, hi)
    step = np.linspace(-2.0, 2.0, FINE_STEPS)[None, :]
    fine = np.clip(centre[:, None] + step, lo[:, None], hi[:, None])
    inf = np.full((grid.shape[0], 1), np.inf)
    return np.sort(np.concatenate([-inf, grid, fine, inf], axis=1), axis=1)


@partial(jax.jit, static_argnames=("model", "opts"))
def se_unconstrained(model: Model, opts: FitOptions, u, data: CurveArrays):
    """Gauss-Newton standard errors of the unconstrained ``u`` (G, p) (inf for +-inf entries)."""

    def one(u, d):
        fixed = ~jnp.isfinite(u)
        u_fin = jnp.where(fixed, 0.0, u)
        m = jnp.sum(d.weight)

        def res(uu):
            return residuals(model, opts.loss, jnp.where(fixed, u, uu), d) * jnp.sqrt(d.weight)

        dof = jnp.maximum(m - jnp.sum(~fixed), 1.0)
        s2 = 1.0 if opts.loss == "weighted" else jnp.sum(res(u_fin) ** 2) / dof
        return delta_method_se(res, lambda x: x, u_fin, fixed, s2)

    return jax.vmap(one)(u, data)


def linear_covariance(model: Model, data: CurveArrays, v):
    """``(X'WX)^-1`` (q, q) of the linear parameters ``w`` at ``v`` (k,), one curve (M,): the
    normal equations of :func:`~tokenscale_sim.fit.engine.solver.project`, solved for each unit
    vector (symmetric; the unscaled covariance of ``w`` given ``v``)."""
    _, x = model.basis(v, data.n, data.aux)
    xw = x * jnp.where(data.weight > 0, data.weight, 0.0)[:, None]
    eye = jnp.eye(model.q, dtype=x.dtype)
    return jax.vmap(lambda e: solve_small(xw.T @ x, e))(eye)


@partial(jax.jit, static_argnames=("model",))
def _ellipsoid_extremes(model: Model, data: CurveArrays, v_grid, r_star):
    """For each curve (G) and grid value (K): ``rss`` (G, K) and the natural parameters at the
    two extremes of each ``w_i`` on ``{RSS(w, v) <= R*}``, (G, K, q, 2, p) (NaN outside)."""

    def at(d, v, r_star):
        u, rss = project(model, d, v)
        cov = linear_covariance(model, d, v)
        slack = jnp.where(rss <= r_star, r_star - rss, jnp.nan)
        step = jnp.sqrt(slack / jnp.diag(cov))[:, None] * cov  # row i: extreme direction of w_i
        ends = jnp.stack([u[None, : model.q] - step, u[None, : model.q] + step], axis=1)
        vv = jnp.broadcast_to(v, (model.q, 2, model.k))
        full = jnp.concatenate([ends, vv], axis=-1)  # (q, 2, p)
        theta = jax.vmap(jax.vmap(model.natural))(full)
        return rss, jnp.where(jnp.isnan(slack), jnp.nan, theta)

    per_curve = jax.vmap(at, in_axes=(None, 0, None))
    return jax.vmap(per_curve)(data, v_grid, r_star)


@partial(jax.jit, static_argnames=("model", "opts"))
def _at_estimate(model: Model, opts: FitOptions, u_hat, data: CurveArrays):
    """Deviance (G,) and natural parameters (G, p) at the estimates ``u_hat`` (G, p): one
    program (op by op, each operation on the host compiled a small program of its own)."""
    dev = jax.vmap(partial(deviance, model, opts))(u_hat, data)
    return dev, jax.vmap(model.natural)(u_hat)


@partial(jax.jit, static_argnames=("model",))
def _natural_batch(model: Model, u):
    """``model.natural`` of every row of ``u`` (..., p) in one program."""
    flat = jnp.reshape(u, (-1, u.shape[-1]))
    return jnp.reshape(jax.vmap(model.natural)(flat), (*u.shape[:-1], -1))


def _map_ends(model: Model, u_hat, i: int, lo, hi, open_low, open_high, j: int):
    """Natural parameter ``j`` at ``u_hat`` with ``u[i]`` at each interval end (G,) -> (low, high).

    Open ends go to ``-inf`` / ``+inf`` in ``u`` first (the parameter's limit, e.g. n_b = 0, inf).
    """
    ends = np.stack([u_hat, u_hat], axis=1)  # (G, 2, p)
    ends[:, 0, i] = np.where(open_low, -np.inf, lo)
    ends[:, 1, i] = np.where(open_high, np.inf, hi)
    nat = np.asarray(_natural_batch(model, ends))[..., j]
    nat = np.where(np.isnan(nat), np.array([-np.inf, np.inf]), nat)
    return nat.min(axis=1), nat.max(axis=1)


def exact_grid_size(opts: FitOptions) -> int:
    """Points of the closed-form path's ``v`` grid (before the estimate is added to n_b's)."""
    return 4 * opts.profile_points + 77


def exact_grid(model: Model, opts: FitOptions, data: CurveArrays, u_hat) -> np.ndarray:
    """The ``v`` grid (G, K, k) of the closed-form path for curves (G, M) fitted at ``u_hat``.

    ``k = 0``: one empty row; ``n_b``: :func:`nb_grid` plus the estimate; another nonlinear
    parameter: the estimate +- 8 of its standard errors.
    """
    g, q = u_hat.shape[0], model.q
    if model.k == 0:
        return np.zeros((g, 1, 0))
    if model.nb_index is not None:
        v_grid = nb_grid(opts, data, u_hat[:, q], exact_grid_size(opts))
        return np.sort(np.concatenate([v_grid, u_hat[:, q, None]], axis=1), axis=1)[..., None]
    se_v = np.asarray(se_unconstrained(model, opts, jnp.asarray(u_hat), data))[:, q]
    se_v = np.where(np.isfinite(se_v) & (se_v > 0), se_v, 1.0)
    t = np.linspace(-8.0, 8.0, exact_grid_size(opts))
    return (u_hat[:, q, None] + se_v[:, None] * t[None, :])[..., None]


def _thresholds(opts: FitOptions, data: CurveArrays, p: int, level: float, threshold):
    """Deviance thresholds (G, p): ``threshold`` where given (not NaN), else
    :func:`~.likelihood.lr_threshold`."""
    m = np.asarray(data.weight).sum(axis=-1)
    default = np.array([lr_threshold(opts.loss, level, float(mi), p) for mi in m])[:, None]
    if threshold is None:
        return np.broadcast_to(default, (m.size, p))
    threshold = np.broadcast_to(np.asarray(threshold, float), (m.size, p))
    return np.where(np.isnan(threshold), default, threshold)


def _exact(
    model: Model,
    opts: FitOptions,
    data: CurveArrays,
    u_hat,
    level: float,
    threshold=None,
    v_grid=None,
) -> Intervals:
    """The closed-form path of the module docstring (log loss, a law of ln y, ``k <= 1``)."""
    g, p, q = u_hat.shape[0], model.n_params, model.q
    m = np.asarray(data.weight).sum(axis=-1)
    if v_grid is None:
        v_grid = exact_grid(model, opts, data, u_hat)
    dev_hat, theta_hat = (np.asarray(x) for x in _at_estimate(model, opts, u_hat, data))
    thr = _thresholds(opts, data, p, level, threshold)
    rss_hat = m * np.exp(dev_hat / m)
    v_grid_j = jnp.asarray(v_grid, data.n.dtype)
    # both calls share one program: R* of the same dtype (inf: the RSS pass)
    rss, _ = _ellipsoid_extremes(
        model, data, v_grid_j, jnp.asarray(np.full(g, np.inf), v_grid_j.dtype)
    )
    rss = np.asarray(rss)
    rss_min = np.minimum(rss_hat, np.nanmin(np.where(np.isfinite(rss), rss, np.inf), axis=1))
    # rounding slack: exact data (RSS = 0) give the point interval, not an empty set
    eps = float(jnp.finfo(data.n.dtype).eps)
    log_y = np.log(np.where(np.asarray(data.weight) > 0, np.asarray(data.y), 1.0))
    tol = m * (16 * eps * (1 + np.abs(log_y).max(axis=1))) ** 2
    r_stars = rss_min[:, None] * np.exp(thr / m[:, None]) + tol[:, None]  # (G, p)
    extremes: dict[bytes, np.ndarray] = {}  # one ellipsoid pass per distinct threshold column

    def ellipsoid(r_star):
        key = r_star.tobytes()
        if key not in extremes:
            r = jnp.asarray(r_star, data.n.dtype)
            extremes[key] = np.asarray(_ellipsoid_extremes(model, data, v_grid_j, r)[1])
        return extremes[key]  # (G, K, q, 2, p)

    dep = dependence(model)
    low, high = np.full((g, p), np.nan), np.full((g, p), np.nan)
    open_low, open_high = np.zeros((g, p), bool), np.zeros((g, p), bool)
    available = np.ones(p, bool)
    for j in range(p):
        lin = np.flatnonzero(dep[j, :q])
        if len(lin) > 1:
            available[j] = False
            continue
        r_star = np.ascontiguousarray(r_stars[:, j])
        if len(lin) == 1:
            vals = ellipsoid(r_star)[:, :, lin[0], :, j].reshape(g, -1)
            vals = np.concatenate([vals, theta_hat[:, j, None]], axis=1)  # never empty
            low[:, j], high[:, j] = np.nanmin(vals, axis=1), np.nanmax(vals, axis=1)
            continue
        # depends on v only (n_b): the set {v : RSS(v) <= R*}, mapped through natural
        out = [
            interval_from_profile(
                v_grid[c, :, 0], rss[c], rss_min[c], level, r_star[c] - rss_min[c], hull=True
            )
            for c in range(g)
        ]
        lo_v, hi_v, open_low[:, j], open_high[:, j] = (np.array(x) for x in zip(*out, strict=True))
        low[:, j], high[:, j] = _map_ends(
            model, u_hat, q, lo_v, hi_v, open_low[:, j], open_high[:, j], j
        )
    return Intervals(low, high, open_low, open_high, available)


def _general(
    model: Model,
    opts: FitOptions,
    data: CurveArrays,
    u_hat,
    level: float,
    width: float,
    threshold=None,
) -> Intervals:
    """L-BFGS profiles (any loss, any ``k``) for parameters that depend on one entry of ``u``."""
    g, p = u_hat.shape
    thr = _thresholds(opts, data, p, level, threshold)
    dep = dependence(model)
    se_u = np.asarray(se_unconstrained(model, opts, jnp.asarray(u_hat), data))
    dev_hat = np.asarray(_at_estimate(model, opts, u_hat, data)[0])
    low, high = np.full((g, p), np.nan), np.full((g, p), np.nan)
    open_low, open_high = np.zeros((g, p), bool), np.zeros((g, p), bool)
    available = dep.sum(axis=1) == 1
    for j in (int(x) for x in np.flatnonzero(available)):
        i = int(np.flatnonzero(dep[j])[0])
        if i == model.nb_index:
            grids = nb_grid(opts, data, u_hat[:, i], opts.profile_points)
        else:
            s = np.where(np.isfinite(se_u[:, i]) & (se_u[:, i] > 0), se_u[:, i], 1.0)
            centre = np.where(np.isfinite(u_hat[:, i]), u_hat[:, i], 0.0)
            grids = centre[:, None] + s[:, None] * np.linspace(-width, width, 41)[None, :]
        dev = np.asarray(
            jax.vmap(partial(profile_deviance, model, opts, i))(
                data, jnp.asarray(grids, data.n.dtype)
            )
        )
        out = []
        for c in range(g):
            dmin = min(dev_hat[c], np.nanmin(dev[c]))
            out.append(interval_from_profile(grids[c], dev[c], dmin, level, thr[c, j], hull=True))
        lo, hi, open_low[:, j], open_high[:, j] = (np.array(x) for x in zip(*out, strict=True))
        low[:, j], high[:, j] = _map_ends(
            model, u_hat, i, lo, hi, open_low[:, j], open_high[:, j], j
        )
    return Intervals(low, high, open_low, open_high, available)


def closed_form(model: Model, opts: FitOptions) -> bool:
    """Whether :func:`profile_intervals` takes the closed-form path (module docstring): the log
    loss, a law of ln y and at most one nonlinear parameter."""
    return opts.loss == "log" and model.space == "log" and model.k <= 1


def profile_intervals(
    model: Model,
    opts: FitOptions,
    data: CurveArrays,
    u_hat,
    level: float | None = None,
    width: float = 8.0,
    threshold=None,
    v_grid=None,
) -> Intervals:
    """Profile-likelihood intervals of every natural parameter for curves (G, M).

    Args:
        model: the law; opts: fit options (loss, ``boundary_span``, ``profile_points``).
        data: curves (G, M); u_hat: (G, p) fitted unconstrained parameters (+-inf allowed).
        level: interval level (default ``opts.level``).
        width: general path only: half-width of the grid of a parameter other than ``n_b``, in
            standard errors (an end reaching it is reported open).
        threshold: optional (G, p) deviance thresholds replacing
            :func:`~.likelihood.lr_threshold` (NaN entries keep it), e.g. bootstrap-calibrated
            ones (:mod:`tokenscale_sim.fit.inference.calibrated`).
        v_grid: closed-form path only: its grid (:func:`exact_grid`), if the caller built it.

    Returns:
        :class:`Intervals` with (G, p) arrays in natural units.
    """
    level = opts.level if level is None else level
    u_hat = np.asarray(u_hat, float)
    if closed_form(model, opts):
        return _exact(model, opts, data, u_hat, level, threshold, v_grid)
    return _general(model, opts, data, u_hat, level, width, threshold)
