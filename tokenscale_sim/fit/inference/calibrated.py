r"""Bootstrap-calibrated profile-likelihood intervals: ``fit.bootstrap(interval="calibrated")``.

A profile interval is ``{theta_j : LR_j(theta_j) <= thr}`` with ``LR_j(theta_j) =
dev_prof(theta_j) - dev_min`` (:mod:`tokenscale_sim.fit.inference.profile`). The default ``thr`` is
the small-sample F form of :func:`~tokenscale_sim.fit.inference.likelihood.lr_threshold`, exact for
a law linear in its parameters; with a nonlinear ``n_b`` over ten points, and near its limits
``n_b -> 0, inf``, the statistic is not F-distributed. The bootstrap estimates its null
distribution at the estimate (Hall 1987, *Biometrika* 74: 481): for every resample ``b`` of a
curve, the LR statistic of the *original* estimate's value under the resample's fit,

    LR*_bj = dev*_b,prof(theta_hat_j) - dev*_b,min,

and the calibrated threshold ``thr_j`` is its ``level`` quantile over the converged resamples.
The interval is the profile interval with ``thr_j`` in place of the F threshold: the same code
path, so open ends (``n_b`` unbounded) and the hull over both ``n_b`` limits are kept.

**Closed-form path** (log loss, a law of ln y, at most one nonlinear ``v``; as in
:mod:`~tokenscale_sim.fit.inference.profile`): at fixed ``v`` the law is linear in ``w`` with
``RSS(w, v) = RSS(v) + (w - w_hat(v))' X'WX (w - w_hat(v))``, so holding ``w_i = a``,

    RSS_prof(w_i = a) = min_v [ RSS(v) + (a - w_hat_i(v))^2 / C_ii(v) ],   C = (X'WX)^-1,

minimised over the profile's ``v`` grid (both limits included) and polished by a golden-section
search between the grid neighbours of its minimum, and ``RSS_prof(v_hat) =
RSS(v_hat)``; ``LR = m ln(RSS_prof / RSS_min)``. No refits: ``m G K`` small projections, mapped
over the resamples. **General path** (other losses, ``k > 1``):
:func:`~tokenscale_sim.fit.inference.likelihood.profile_deviance` refits at the one value. A
parameter that depends on several unconstrained entries has no profile (NaN: the caller keeps
another interval); one with no usable resample keeps the F threshold.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import flat_rows, project
from tokenscale_sim.fit.inference.likelihood import deviance, profile_deviance
from tokenscale_sim.fit.inference.profile import (
    Intervals,
    closed_form,
    dependence,
    exact_grid,
    linear_covariance,
    profile_intervals,
)
from tokenscale_sim.fit.laws.models import Model


def golden_min(fun, lo, hi, steps: int = 40):
    """``min fun`` over ``[lo, hi]`` (arrays (k,)) by golden-section search, ``fun`` unimodal
    there: the bracket shrinks by 0.618 a step (40 steps: 4e-9 of its width).

    >>> round(float(golden_min(lambda v: (v[0] - 0.3) ** 2 + 1.0, jnp.zeros(1), jnp.ones(1))), 9)
    1.0
    """
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def step(_, bracket):
        a, b = bracket
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        left = fun(c) < fun(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, steps, step, (lo, hi))
    return fun((a + b) / 2)


@partial(jax.jit, static_argnames=("model",))
def _closed_form_lr(model: Model, star: CurveArrays, u_star, u_hat, v_grid):
    """LR statistics (m, G, p_u) of every unconstrained entry held at ``u_hat`` (G, p_u), for
    resamples ``star`` (m, G, M) fitted at ``u_star`` (m, G, p_u), ``v_grid`` (G, K, k)."""
    q = model.q

    def one(d, us, uh, grid):
        m = jnp.sum(d.weight)

        def at(v):  # RSS(v) and RSS at v with each w_i held at uh[i]
            u, rss = project(model, d, v)
            c_ii = jnp.diag(linear_covariance(model, d, v))
            return rss, rss + (uh[:q] - u[:q]) ** 2 / c_ii

        rss, held = jax.vmap(at)(grid)  # (K,), (K, q)
        clean = jnp.where(jnp.isnan(held), jnp.inf, held)
        rss_min = jnp.minimum(jnp.min(rss), project(model, d, us[q:])[1])
        rss_prof = jnp.min(clean, axis=0)
        if model.k:  # polish each grid minimum between its finite neighbours
            best, last = jnp.argmin(clean, axis=0), grid.shape[0] - 2
            lo, hi = grid[jnp.clip(best - 1, 1, last)], grid[jnp.clip(best + 1, 1, last)]
            polished = jax.vmap(lambda i, a, b: golden_min(lambda v: at(v)[1][i], a, b))(
                jnp.arange(q), lo, hi
            )
            rss_prof = jnp.minimum(rss_prof, jnp.where(jnp.isnan(polished), jnp.inf, polished))
            rss_prof = jnp.concatenate([rss_prof, project(model, d, uh[q:])[1][None]])
        return m * jnp.log(jnp.maximum(rss_prof, rss_min) / rss_min)

    per_curve = jax.vmap(one)
    return jax.lax.map(lambda a: per_curve(a[0], a[1], u_hat, v_grid), (star, u_star))


def _general_lr(model: Model, opts: FitOptions, star: CurveArrays, u_star, u_hat, index: int):
    """LR statistics (m, G) of ``u[index]`` held at ``u_hat[:, index]`` (G,) by refits."""
    lead = star.n.shape[:2]
    flat = flat_rows(star)
    held = jnp.broadcast_to(jnp.asarray(u_hat[:, index]), lead).reshape(-1, 1)
    dev_prof = jax.vmap(partial(profile_deviance, model, opts, index))(flat, held)[:, 0]
    dev_min = jax.vmap(partial(deviance, model, opts))(jnp.reshape(u_star, (-1, model.n_params)),
                                                       flat)  # fmt: skip
    return np.maximum(np.asarray(dev_prof - dev_min), 0.0).reshape(lead)


def lr_statistics(
    model: Model, opts: FitOptions, data: CurveArrays, u_hat, star, u_star, v_grid=None
):
    """Bootstrap LR statistics ``LR*_bj`` (m, G, p) of the module docstring.

    Args:
        model: the law; opts: the fit's options; data: the curves (G, M) fitted at ``u_hat``
            (G, p); star: resamples (m, G, M) fitted at ``u_star`` (m, G, p) (+-inf allowed).
        v_grid: the closed-form path's grid (:func:`~.profile.exact_grid`), if already built.

    Returns:
        (m, G, p) per natural parameter; NaN for one that depends on several entries of ``u``.
    """
    dep = dependence(model)
    single = dep.sum(axis=1) == 1
    index = np.argmax(dep, axis=1)
    u_hat = np.asarray(u_hat, float)
    if closed_form(model, opts):
        if v_grid is None:
            v_grid = exact_grid(model, opts, data, u_hat)
        grid = jnp.asarray(v_grid, data.n.dtype)
        per_u = np.asarray(
            _closed_form_lr(model, star, jnp.asarray(u_star), jnp.asarray(u_hat), grid)
        )
        stats = per_u[..., index]
    else:
        stats = np.full((*star.n.shape[:2], model.n_params), np.nan)
        for j in np.flatnonzero(single):
            stats[..., j] = _general_lr(model, opts, star, u_star, u_hat, int(index[j]))
    return np.where(single, stats, np.nan)


def calibrated_intervals(
    model: Model,
    opts: FitOptions,
    data: CurveArrays,
    u_hat,
    star: CurveArrays,
    u_star,
    converged,
    level: float,
) -> tuple[Intervals, np.ndarray]:
    """Bootstrap-calibrated profile intervals of curves (G, M) -> (intervals, thresholds (G, p)).

    ``star`` (m, G, M) are the resamples, ``u_star`` (m, G, p) their fits, ``converged`` (m, G)
    which to use. The thresholds are the ``level`` quantiles of :func:`lr_statistics` (NaN where
    no resample gives one: the interval then keeps the F threshold).
    """
    u_hat = np.asarray(u_hat, float)
    v_grid = exact_grid(model, opts, data, u_hat) if closed_form(model, opts) else None
    stats = lr_statistics(model, opts, data, u_hat, star, u_star, v_grid)
    stats = np.where(np.asarray(converged)[..., None] & np.isfinite(stats), stats, np.nan)
    usable = np.any(~np.isnan(stats), axis=0)
    with np.errstate(invalid="ignore"):
        thr = np.nanquantile(np.where(usable, stats, 0.0), level, axis=0)
    thr = np.where(usable, thr, np.nan)
    return profile_intervals(model, opts, data, u_hat, level, threshold=thr, v_grid=v_grid), thr
