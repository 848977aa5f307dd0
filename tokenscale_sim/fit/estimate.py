r"""Estimates with uncertainty from the engine's optima: SEs, Wald and profile intervals, R^2, AIC.

:func:`fit_curves` is the entry point: it checks the curves, runs
:func:`tokenscale_sim.fit.engine.solve_batch` over all of them at once and summarises each fit:

- standard errors from the Gauss-Newton covariance ``s^2 (J'WJ)^-1`` in ``u`` (``s^2`` = weighted
  RSS/(m - p), or 1 for the ``weighted`` loss), mapped to natural units by the delta method;
- Student-t Wald intervals, on the log scale for positive parameters;
- for ``n_b`` the profile-likelihood interval over a grid that includes both limits, with the
  small-sample threshold of :func:`lr_threshold`; ends the data do not bound are *open*
  (``ci_open``) and sit at 0 or inf, never at an invented number;
- R^2 of ln y and of y, and AIC/BIC of the Gaussian likelihood of the loss's residuals.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtri

from tokenscale_sim.fit.engine import (
    CurveArrays,
    FitOptions,
    _data_span,
    _grid,
    _solve_fixed,
    deviance,
    project,
    residuals,
    solve_batch,
)
from tokenscale_sim.fit.models import Model, get_model


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
    n,
    d,
    psi_eq=None,
    psi_aabb=None,
    psi_ab=None,
    *,
    upsilon=None,
    opts: FitOptions | None = None,
) -> FitResult:
    r"""Fit ``E[D(n)] = lambda sqrt(Upsilon(n))`` to divergence curves ``d`` (m,) or (G, m).

    With measured psi arrays (each broadcastable to ``d``) this is the authors' procedure: only
    ``lambda`` is free, ``Upsilon(n) = n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab)``
    (:func:`tokenscale_sim.theory.upsilon`). Without psi's the constant-psi form
    ``E[D] = scale sqrt(n (n + n_b))`` gives ``(scale, n_b)`` from the curve alone. The default
    loss is ``"linear"`` (unweighted least squares of D, as the authors did). ``upsilon`` may be
    given directly instead of the psi's (e.g. Upsilon-hat averaged over measured pairs).

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
    given = sum(p is not None for p in psis)
    if given not in (0, 3) or (given and upsilon is not None):
        raise ValueError(
            "fit_divergence: give all of psi_eq, psi_aabb, psi_ab, or upsilon, or none of them"
        )
    if not given and upsilon is None:
        return fit_curves(curves_from_arrays(n, d), "divergence_const", opts)
    d2 = np.atleast_2d(np.asarray(d, float))
    n2 = np.broadcast_to(np.asarray(n, float), d2.shape)
    if upsilon is not None:
        ups = np.broadcast_to(np.asarray(upsilon, float), d2.shape)
    else:
        eq, aabb, ab = (np.broadcast_to(np.asarray(p, float), d2.shape) for p in psis)
        ups = np.asarray(theory.upsilon(n2, eq, aabb, ab))
    if not np.all(ups > 0):
        raise ValueError(
            f"fit_divergence: Upsilon(n) must be > 0 for every n, got min {np.nanmin(ups):g}"
        )
    return fit_curves(curves_from_arrays(n2, d2, aux=ups), "divergence_measured", opts)
