r"""The likelihood of a fit: deviance, covariance, AIC/BIC and profile intervals (one code path).

Every fit of this package (single curves, bootstrap refits, tied joint fits) assumes Gaussian
residuals in the loss's space (:func:`tokenscale_sim.fit.engine.solver.residuals`):

- unknown variance (``log``, ``linear``, ``huber``): ``-2 ln L = m ln(RSS/m) + m (ln 2 pi + 1)``
  at the maximum over ``sigma``, one extra parameter (the variance) per curve;
- known standard errors (``weighted``): ``-2 ln L = chi^2 + sum_i ln(2 pi se_i^2)``.

``deviance`` is the part that depends on the parameters (``m ln(RSS/m)`` or ``chi^2``).
Covariances come from Gauss-Newton, ``Cov(u) = s^2 (J'WJ)^-1``, mapped to natural units by the
delta method. Profile intervals use the small-sample threshold of :func:`lr_threshold`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import project, residuals, rho, solve_fixed
from tokenscale_sim.fit.inference.distributions import normal_quantile, t_quantile
from tokenscale_sim.fit.laws.models import Model

# ----------------------------------------------------------------------------- likelihood


def deviance(model: Model, opts: FitOptions, u, data: CurveArrays):
    """``-2 ln L`` up to a constant for one curve: ``m ln(RSS/m)`` (unknown sigma) or ``chi^2``.

    Args:
        u: (p,) unconstrained parameters; data: one curve, arrays (M,).

    Returns:
        A scalar; ``RSS = sum_i w_i rho(r_i)`` over points with ``w_i > 0``.
    """
    r = residuals(model, opts.loss, u, data)
    w = data.weight
    rss = jnp.sum(jnp.where(w > 0, w * rho(opts, r), 0.0))
    if opts.loss == "weighted":
        return rss
    m = jnp.sum(w)
    return m * jnp.log(rss / m)


def neg2_loglik(model: Model, opts: FitOptions, u, data: CurveArrays):
    """The full ``-2 ln L`` of one curve (module docstring): :func:`deviance` plus its constant."""
    dev = deviance(model, opts, u, data)
    w = data.weight
    if opts.loss == "weighted":
        return dev + jnp.sum(jnp.where(w > 0, w * jnp.log(2 * jnp.pi * data.se**2), 0.0))
    return dev + jnp.sum(w) * (jnp.log(2 * jnp.pi) + 1)


def variance_params(loss: str) -> int:
    """Number of variance parameters a curve adds to AIC/BIC: 0 for ``weighted``, else 1."""
    return 0 if loss == "weighted" else 1


def information_criteria(m2ll, k, m):
    """``(AIC, BIC) = (-2 ln L + 2 k, -2 ln L + k ln m)`` for ``k`` parameters, ``m`` points.

    >>> [float(x) for x in information_criteria(10.0, 2, np.e**2)]
    [14.0, 14.0]
    """
    return m2ll + 2 * k, m2ll + k * jnp.log(m)


def corrected_aic(aic, k, m):
    """Small-sample AIC (Hurvich & Tsai): ``AICc = AIC + 2 k (k + 1) / (m - k - 1)``.

    ``k`` parameters (the noise variance included where estimated), ``m`` points; inf where
    ``m - k - 1 <= 0`` (undefined: the correction's pole). Broadcasts (NumPy).

    >>> corrected_aic(np.array([10.0, 10.0]), 2, np.array([6, 3])).tolist()
    [14.0, inf]
    """
    aic, k, m = (np.asarray(x, float) for x in (aic, k, m))
    room = m - k - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(room > 0, aic + 2 * k * (k + 1) / np.where(room > 0, room, 1), np.inf)


def akaike_weights(criterion, axis: int = -1):
    """``exp(-Delta/2)`` normalised along ``axis`` (Delta from the minimum); inf gets weight 0,
    a slice with no finite value gets NaN.

    >>> np.round(akaike_weights(np.array([0.0, 2.0, np.inf])), 4).tolist()
    [0.7311, 0.2689, 0.0]
    """
    c = np.asarray(criterion, float)
    finite = np.isfinite(c)
    best = np.min(np.where(finite, c, np.inf), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.where(finite, np.exp(-(c - best) / 2), 0.0)
        return e / np.sum(e, axis=axis, keepdims=True)


def delta_method_se(resid, natural, x, fixed, point_var):
    """Standard errors of ``natural(x)`` from the Gauss-Newton covariance of ``x``.

    ``Cov(x) = (J' V^-1 J)^-1`` with ``J = d resid / dx`` (N, P) by forward mode (P tangents:
    memory O(N P); reverse mode would seed N cotangents, an N x N identity),
    ``V = diag(point_var)`` (N,), restricted to the free entries (``fixed`` (P,) bool entries,
    and entries the residuals do not depend on, have zero variance); then
    ``Var(theta) = diag(J_nat Cov J_nat')`` with ``J_nat = d natural / dx``.

    Args:
        resid: ``x (P,) -> (N,)`` weighted residuals (``sqrt(w) r``).
        natural: ``x (P,) -> theta (p,)``.
        x: (P,) finite parameters; fixed: (P,) bool; point_var: (N,) or scalar residual variance.

    Returns:
        (p,) standard errors; inf where not identified (fixed, singular or negative variance).
    """
    size = x.shape[0]
    # forward mode: P (a few) passes over the N points; reverse mode would build N x N
    jac = jax.jacfwd(resid)(x) / jnp.sqrt(point_var)[..., None]
    fixed = fixed | jnp.all(jac == 0, axis=0)  # e.g. a clipped ln n_b: no information
    both = fixed[:, None] | fixed[None, :]
    cov = jnp.linalg.inv(jnp.where(both, jnp.eye(size), jac.T @ jac))
    cov = jnp.where(both, 0.0, cov)
    jnat = jax.jacfwd(natural)(x)
    var = jnp.diag(jnat @ cov @ jnat.T)
    touches_fixed = jnp.any((jnp.abs(jnat) > 0) & fixed[None, :], axis=1)
    bad = touches_fixed & jnp.all(jnp.where(fixed[None, :], True, jnat == 0), axis=1)
    var = jnp.where(bad | ~jnp.isfinite(var) | (var < 0), jnp.inf, var)
    return jnp.sqrt(var)


# ----------------------------------------------------------------------------- thresholds


def lr_threshold(loss: str, level: float, m: float, p: float) -> float:
    """Deviance threshold of a profile interval.

    ``chi2_1(level)`` for known SEs (``weighted``); else the small-sample F form
    ``m ln(1 + t^2_{m-p}(level) / (m - p))``: ``dev <= dev_min + thr`` is
    ``RSS <= RSS_min (1 + F_{1, m-p}(level) / (m - p))`` (Bates & Watts), exact for linear models.

    >>> round(lr_threshold("weighted", 0.95, 10, 3), 4)
    3.8415
    """
    if loss == "weighted" or m - p <= 0:
        return normal_quantile(0.5 + level / 2) ** 2
    t = t_quantile(0.5 + level / 2, float(m - p))
    return float(m * np.log1p(t * t / (m - p)))


def interval_from_profile(
    grid, dev, dev_min, level: float, thr: float | None = None, hull: bool = False
):
    """The set ``{x : dev(x) - dev_min <= thr}`` around the minimum of ``dev``, or its hull.

    With ``hull=True`` the interval spans every grid point inside the set, also ones the
    profile reaches again past a barrier (the alpha(n) law's two limits ``n_b -> 0`` and
    ``n_b -> inf`` are both pure power laws, so a power-law-like curve has a profile that is low
    at both ends: the honest interval is then ``[0, inf)``, not one of the two pieces).

    ``thr`` defaults to ``chi2_1(level)`` (see :func:`lr_threshold` for the small-sample one).
    ``grid`` (K,) ascending (first/last may be -inf/+inf). Returns ``(low, high, open_low,
    open_high)``: an end is *open* when the set reaches the grid's first/last point, i.e. the data
    do not bound it; the end is then the grid end (e.g. -inf for ln n_b: n_b can be 0).

    >>> interval_from_profile([-1.0, 0.0, 1.0], [4.0, 0.0, 4.0], 0.0, 0.95, thr=2.0)
    (np.float64(-0.5), np.float64(0.5), False, False)
    """
    grid = np.asarray(grid, float)
    stat = np.asarray(dev, float) - float(dev_min)
    thr = normal_quantile(0.5 + level / 2) ** 2 if thr is None else thr
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
    if hull:
        where = np.flatnonzero(inside)
        lo, hi = min(lo, int(where[0])), max(hi, int(where[-1]))
    open_low, open_high = lo == 0, hi == len(grid) - 1

    def cross(a, b):  # linear interpolation of the threshold crossing between a (in) and b (out)
        if not (np.isfinite(grid[a]) and np.isfinite(grid[b])):
            return grid[a]
        t = (thr - stat[a]) / (stat[b] - stat[a])
        return grid[a] + t * (grid[b] - grid[a])

    low = grid[0] if open_low else cross(lo, lo - 1)
    high = grid[-1] if open_high else cross(hi, hi + 1)
    return low, high, open_low, open_high


# ----------------------------------------------------------------------------- profiles


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
        u, *_ = solve_fixed(model, opts, data, u0, mask, fixed)
        dev = deviance(model, opts, u, data)
        if model.nb_index is None or model.nb_index == index:
            return dev
        both = mask.at[model.nb_index].set(True)
        for limit in (-jnp.inf, jnp.inf):
            u_lim, *_ = solve_fixed(
                model, opts, data, u0, both, fixed.at[model.nb_index].set(limit)
            )
            dev = jnp.minimum(dev, deviance(model, opts, u_lim, data))
        return dev

    return jax.vmap(one)(values)
