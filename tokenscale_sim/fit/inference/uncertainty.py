r"""Uncertainty: bootstrap resampling, prediction and alpha(n) bands, per-parameter profiles.

Every resampling scheme builds an array of resampled curves of shape (m, G, M) and fits all of
them in **one** vmapped call of :func:`tokenscale_sim.fit.engine.solver.solve_batch` (the same
pipeline as the point fit: variable-projection starts, L-BFGS, boundary detection), so 1000+
resamples of all curves of a dataset cost one compiled program.

- ``residual``: ``y* = fit (+) r*`` with ``r*`` drawn with replacement from the curve's residuals in
  the loss's space, rescaled by ``sqrt(m / (m - p))``;
- ``case``: points drawn with replacement (as integer weights, so duplicate ``n`` are fine);
- ``parametric``: ``r* ~ N(0, s^2)`` with ``s^2 = RSS / (m - p)`` (known SEs for ``weighted``).

Intervals are percentile intervals of the resampled estimates, or (``interval="studentized"``)
bootstrap-t intervals: with ``phi`` a parameter on its interval scale (``ln theta`` for positive
parameters), ``s`` its delta-method SE and ``t* = (phi* - phi_hat) / s*`` over the resamples,

    [phi_hat - t*_(1 - a/2) s_hat,  phi_hat - t*_(a/2) s_hat]

(Hall 1992; Davison & Hinkley 1997, sec. 5.2.1). Unlike the percentile, ``t*`` carries the
uncertainty of the estimated noise level, which matters at ten points (m - p = 7). A resample
whose ``n_b`` reaches a limit has ``t* = +-inf`` (the interval end opens); parameters whose
own fit sits at a limit (``s_hat`` infinite) keep the percentile interval. Or
(``interval="calibrated"``) the profile-likelihood interval whose threshold is the bootstrap
quantile of the LR statistic of the estimate under each resample's fit
(:mod:`tokenscale_sim.fit.inference.calibrated`).
:func:`prediction_band` gives pointwise delta-method bands of the fitted law (any law,
user-defined ones included). Model comparison (transition test, tied fits) is in
:mod:`tokenscale_sim.fit.selection.transition`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.checks import check_arrays
from tokenscale_sim.fit.data.curves import CurveArrays, CurveSet, key_label
from tokenscale_sim.fit.data.frames import as_curves
from tokenscale_sim.fit.engine.options import Boundary, FitOptions, check_options
from tokenscale_sim.fit.engine.precision import in_fit_precision
from tokenscale_sim.fit.engine.solver import flat_rows, residuals, solve_batch, start_grid
from tokenscale_sim.fit.inference.calibrated import calibrated_intervals
from tokenscale_sim.fit.inference.estimate import FitResult, resampling_memory, summarize
from tokenscale_sim.fit.inference.likelihood import delta_method_se, t_quantile
from tokenscale_sim.fit.inference.profile import profile_intervals
from tokenscale_sim.fit.inference.resampled import (
    fall_back_below_measured,
    percentile_intervals,
    studentized_interval,
)
from tokenscale_sim.fit.inference.results import check_defined, check_domain, check_fitted_on
from tokenscale_sim.fit.laws.models import Model, alpha_curve
from tokenscale_sim.runtime.validation import as_key, check_count, check_memory

KINDS = ("residual", "case", "parametric")
"""Bootstrap schemes of :func:`bootstrap`."""

INTERVALS = ("percentile", "studentized", "calibrated")
"""Interval constructions of :func:`bootstrap` (see the module docstring)."""


class BootstrapResult(NamedTuple):
    """Bootstrap of G fitted curves with m resamples (NumPy).

    Attributes:
        kind: the scheme; params: parameter names; level: interval level.
        estimates: (m, G, p) natural estimates per resample (n_b may be 0 or inf at a boundary).
        converged: (m, G) bool; boundary: (m, G) codes of :class:`~.options.Boundary`.
        se: (G, p) standard deviation over converged resamples with finite estimates.
        ci_low, ci_high: (G, p) intervals over converged resamples (see ``interval``).
        boundary_fraction: (G,) share of resamples that landed on an ``n_b`` limit (-1: no n_b).
        interval: how ``ci_low``/``ci_high`` were built (one of :data:`INTERVALS`).
        threshold: (G, p) calibrated deviance thresholds (``interval="calibrated"``; compare
            :func:`~tokenscale_sim.fit.inference.likelihood.lr_threshold`), else None.
        interval_used: (G,) the interval each curve got: ``interval``, or ``"fit"`` for a curve
            of fewer than :data:`~tokenscale_sim.fit.inference.resampled.MEASURED_POINTS` points,
            which keeps the fit's own (profile) intervals (with an
            :class:`~tokenscale_sim.fit.inference.resampled.IntervalFallbackWarning`).
    """

    kind: str
    params: tuple[str, ...]
    level: float
    estimates: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    boundary_fraction: np.ndarray
    interval: str = "calibrated"
    threshold: np.ndarray | None = None
    interval_used: np.ndarray | None = None


class AlphaBand(NamedTuple):
    """Pointwise band of alpha(n): ``estimate``, ``low``, ``high`` have shape (G, K) over ``n``."""

    n: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


class PredictionBand(NamedTuple):
    """Pointwise bands of the fitted law over ``n`` (K,); ``fit`` and the bands are (G, K) in
    the units of y.

    ``low``/``high``: confidence band of the law's value; ``pred_low``/``pred_high``: prediction
    band of one new observation (NaN under the ``weighted`` loss, where the new point's standard
    error is not known); ``df``: (G,) residual degrees of freedom of the Student-t quantile.
    """

    n: np.ndarray
    fit: np.ndarray
    low: np.ndarray
    high: np.ndarray
    pred_low: np.ndarray
    pred_high: np.ndarray
    df: np.ndarray
    level: float


class ProfileInterval(NamedTuple):
    """Profile-likelihood interval of one parameter per curve (G,), in natural units.

    ``open_low`` / ``open_high`` mark ends the data do not bound (e.g. ``n_b`` down to 0 or up to
    inf; or beyond the searched range for other parameters, reported as +-inf).
    """

    param: str
    low: np.ndarray
    high: np.ndarray
    open_low: np.ndarray
    open_high: np.ndarray
    level: float


def fitted_curves(curves, result: FitResult, fn: str) -> CurveSet:
    """``curves`` (any form :func:`~tokenscale_sim.fit.data.frames.as_curves` takes) as the checked
    :class:`CurveSet` of the fit ``result``: as many curves as the fit, arrays as
    :func:`~tokenscale_sim.fit.data.checks.check_arrays` wants them under the fit's law and loss;
    curves other than the fitted ones are refused, after the data checks (a NaN is reported as
    a NaN): :func:`~tokenscale_sim.fit.inference.results.check_fitted_on`."""
    curves = as_curves(curves, fn=fn)
    labels = [key_label(k) for k in curves.keys]
    check_arrays(curves.arrays, result.model, result.loss_name, fn=fn, labels=labels)
    check_fitted_on(curves, result, fn)
    return curves


# ----------------------------------------------------------------------------- resampling


def _finite_u(model: Model, u, data: CurveArrays):
    """Replace +-inf ln n_b (boundary fits) by finite values for residual computations."""
    del model, data
    return jnp.where(jnp.isfinite(u), u, jnp.sign(u) * 60.0)


@partial(jax.jit, static_argnames=("model", "opts", "kind", "m"))
def resample(key, model: Model, opts: FitOptions, data: CurveArrays, u, kind: str, m: int):
    """``m`` resampled copies of every curve: CurveArrays of shape (m, G, M).

    ``u`` (G, p) are the fitted unconstrained parameters (+-inf allowed for ``n_b`` limits).
    """

    def per_curve(key, d, u):
        y_hat = model.predict(u, d.n, d.aux)  # any sign for linear-space laws
        r = residuals(model, opts.loss, u, d)
        ok = d.weight > 0
        count = jnp.sum(d.weight)
        p = model.n_params
        dof = jnp.maximum(count - p, 1.0)
        k1, k2 = jax.random.split(key)
        logits = jnp.where(ok, 0.0, -jnp.inf)
        if kind == "case":
            idx = jax.random.categorical(k1, logits, shape=(m, d.n.shape[0]))
            take = (jnp.arange(d.n.shape[0]) < count).astype(d.n.dtype)
            counts = jax.vmap(lambda i: jnp.zeros(d.n.shape[0], d.n.dtype).at[i].add(take))(idx)
            rep = [jnp.broadcast_to(x, (m, *x.shape)) for x in d]
            return CurveArrays(rep[0], rep[1], rep[2], counts.astype(d.n.dtype), rep[4])
        if kind == "residual":
            idx = jax.random.categorical(k1, logits, shape=(m, d.n.shape[0]))
            rstar = r[idx] * jnp.sqrt(count / dof)
        else:
            s = 1.0 if opts.loss == "weighted" else jnp.sqrt(jnp.sum(jnp.where(ok, r**2, 0)) / dof)
            rstar = s * jax.random.normal(k2, (m, d.n.shape[0]), dtype=d.n.dtype)
        if opts.loss in ("log", "huber"):
            ystar = y_hat * jnp.exp(rstar)
        elif opts.loss == "linear":  # the engine's scale of linear residuals: mean |y| se
            scale = jnp.sum(d.weight * jnp.abs(d.y)) / count
            ystar = y_hat + scale * d.se * rstar
        else:
            ystar = y_hat + d.se * rstar
        ystar = jnp.where(ok, ystar, 1.0)
        rep = [jnp.broadcast_to(x, (m, *x.shape)) for x in d]
        return CurveArrays(rep[0], ystar, rep[2], rep[3], rep[4])

    keys = jax.random.split(key, data.n.shape[0])
    out = jax.vmap(per_curve)(keys, data, _finite_u(model, u, data))
    return CurveArrays(*(jnp.swapaxes(x, 0, 1) for x in out))


@in_fit_precision
def bootstrap(
    key,
    curves: CurveSet,
    result: FitResult,
    *,
    kind: str = "residual",
    m: int = 1000,
    opts: FitOptions | None = None,
    n_starts: int = 1,
    interval: str = "calibrated",
) -> BootstrapResult:
    """Bootstrap every curve of ``curves`` around its fit ``result`` with ``m`` resamples.

    Args:
        key: ``jax.random`` key or an int seed (:func:`~tokenscale_sim.runtime.validation.as_key`).
        curves: the fitted curves (G).
        result: their :class:`~tokenscale_sim.fit.inference.estimate.FitResult`.
        kind: one of :data:`KINDS`.
        m: number of resamples (>= 1000 recommended for 95 % intervals).
        opts: the :class:`FitOptions` of the fit (its ``loss`` must match ``result.loss_name``).
        n_starts: optimizer starts per resample (the best variable-projection grid points; the
            ``n_b`` limits are always fitted too).
        interval: one of :data:`INTERVALS`; ``"calibrated"`` (the default) is the kind whose
            coverage held at ten points (``benchmarks/README.md``); ``"percentile"`` and
            ``"studentized"`` on request. Curves of fewer than
            :data:`~tokenscale_sim.fit.inference.resampled.MEASURED_POINTS` points, where no
            kind's coverage was measured, keep the fit's own intervals
            (``interval_used == "fit"``, with a warning).

    Returns:
        :class:`BootstrapResult` with (m, G, p) estimates and (G, p) intervals.

    Raises:
        TypeError: ``m`` or ``n_starts`` not an integer. ValueError: a bad ``kind``,
            ``interval``, ``m < 2``, or arrays past the memory available (the estimate of
            :func:`~tokenscale_sim.fit.inference.estimate.resampling_memory`, checked first).
    """
    key = as_key("bootstrap", key)
    if kind not in KINDS:
        raise ValueError(f"bootstrap: kind must be one of {KINDS}, got {kind!r}")
    if interval not in INTERVALS:
        raise ValueError(f"bootstrap: interval must be one of {INTERVALS}, got {interval!r}")
    m = check_count("bootstrap", "m", m, 2)
    n_starts = check_count("bootstrap", "n_starts", n_starts, 1)
    opts = check_options("bootstrap", opts, FitOptions(loss=result.loss_name, level=result.level))
    if opts.loss != result.loss_name:
        raise ValueError(
            f"bootstrap: opts.loss {opts.loss!r} differs from the fit's {result.loss_name!r}"
        )
    model = result.model
    curves = fitted_curves(curves, result, "bootstrap")
    g, points = curves.arrays.n.shape
    check_memory(
        "bootstrap", f"{m} resamples of {g} curve{'s' if g > 1 else ''} of up to {points} points",
        resampling_memory(model, g, points, m, replace(opts, n_starts=min(n_starts, 10_000))),
        "lower m (1000 resamples suffice for 95 % intervals) or bootstrap fewer curves at once",
    )  # fmt: skip
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    star = resample(key, model, opts, data, jnp.asarray(result.u), kind, m)
    sol = solve_batch(model, replace(opts, n_starts=n_starts), star, start_grid(model, data))
    est = np.asarray(jax.vmap(jax.vmap(model.natural))(sol.u))
    conv = np.asarray(sol.converged)
    lo, hi, sd = percentile_intervals(est, conv, opts.level)
    bnd = np.asarray(sol.boundary)
    if interval == "studentized":
        flat = flat_rows(star)
        p = model.n_params
        se_star = summarize(
            model, opts, jnp.reshape(sol.u, (-1, p)), jnp.reshape(sol.boundary, (-1,)), flat
        ).se
        t_lo, t_hi = studentized_interval(
            model,
            result.estimates,
            result.se,
            est,
            np.asarray(se_star).reshape(est.shape),
            conv,
            opts.level,
        )
        keep = np.isfinite(t_lo) | np.isfinite(t_hi)
        lo, hi = np.where(keep, t_lo, lo), np.where(keep, t_hi, hi)
    thr = None
    if interval == "calibrated":
        prof, thr = calibrated_intervals(
            model, opts, data, np.asarray(result.u), star, sol.u, conv, opts.level
        )
        lo, hi = np.where(prof.available, prof.low, lo), np.where(prof.available, prof.high, hi)
    n_points = (np.asarray(curves.arrays.weight) > 0).sum(axis=1)
    labels = [key_label(k) for k in curves.keys]
    lo, hi, used = fall_back_below_measured(
        interval, n_points, lo, hi, result.ci_low, result.ci_high, labels
    )
    frac = np.where(bnd[0] == Boundary.NONE, -1.0, np.mean(bnd > Boundary.INTERIOR, axis=0))
    return BootstrapResult(
        kind, model.params, opts.level, est, conv, bnd, sd, lo, hi, frac, interval, thr, used
    )


@in_fit_precision
def alpha_band(model: str | Model, estimates, samples, converged, n, level: float = 0.95):
    """Pointwise percentile band of alpha(n) from bootstrap samples.

    Args:
        model: ``"powerlaw"`` or ``"alpha_n"``.
        estimates: (G, p) point estimates; samples: (m, G, p) bootstrap estimates;
        converged: (m, G) which samples to use; n: (K,) token counts.

    Returns:
        :class:`AlphaBand` with (G, K) arrays.

    >>> import numpy as np
    >>> s = np.array([[[1.0, 1.0, 2.0]], [[1.0, 1.2, 2.0]], [[1.0, 0.8, 2.0]]])
    >>> b = alpha_band("alpha_n", s[0], s, np.ones((3, 1), bool), np.array([2.46]), level=0.5)
    >>> round(float(b.estimate[0, 0]), 3)
    -0.72
    """
    if isinstance(level, bool) or not 0 < level < 1:
        raise ValueError(f"alpha_band: level must be in (0, 1), got {level!r}")
    samples = jnp.asarray(samples)
    n = jnp.asarray(n, dtype=samples.dtype)
    est = np.asarray(alpha_curve(model, jnp.asarray(estimates), n))
    curves = np.asarray(alpha_curve(model, samples.reshape(-1, samples.shape[-1]), n))
    curves = curves.reshape(*samples.shape[:2], -1)
    curves = np.where(np.asarray(converged)[..., None], curves, np.nan)
    q = (0.5 - level / 2, 0.5 + level / 2)
    low = np.nanquantile(curves, q[0], axis=0)
    high = np.nanquantile(curves, q[1], axis=0)
    return AlphaBand(np.asarray(n), est, low, high, level)


@partial(jax.jit, static_argnames=("model", "loss"))
def _band_parts(model: Model, loss: str, u, boundary, data: CurveArrays, n):
    """Per curve: the law on the loss's scale at ``n`` (K,), its delta-method SE, the residual
    variance ``s^2``, the residual scale in y units and the degrees of freedom."""

    def one(u, boundary, d):
        p = model.n_params
        w = d.weight
        fixed = jnp.zeros(p, bool)
        if model.nb_index is not None:
            fixed = fixed.at[model.nb_index].set(boundary > Boundary.INTERIOR)
        u_fin = jnp.where(fixed, 0.0, u)
        aux = jnp.ones_like(n)

        def res(x):
            return residuals(model, loss, jnp.where(fixed, u, x), d) * jnp.sqrt(w)

        def value(x):  # the law on the scale its residuals are taken
            x = jnp.where(fixed, u, x)
            if loss in ("log", "huber"):
                return model.log_predict(x, n, aux)
            return model.predict(x, n, aux)

        df = jnp.sum(w) - (p - jnp.sum(fixed))
        s2 = 1.0 if loss == "weighted" else jnp.sum(res(u_fin) ** 2) / jnp.maximum(df, 1.0)
        se = delta_method_se(res, value, u_fin, fixed, s2)
        scale = 1.0
        if loss == "linear":  # residuals are (y - y_hat) / mean|y|
            scale = jnp.sum(w * jnp.abs(d.y)) / jnp.sum(w)
        return value(u_fin), se, s2, scale, df

    return jax.vmap(one)(u, boundary, data)


@in_fit_precision
def prediction_band(
    curves: CurveSet, result: FitResult, n, level: float | None = None
) -> PredictionBand:
    r"""Pointwise confidence and prediction bands of every fitted curve at token counts ``n``.

    With ``f(n; u)`` the law on the scale of the fit's residuals (``ln y_hat`` under the ``log``
    and ``huber`` losses, ``y_hat`` otherwise), the delta method with the Gauss-Newton covariance
    of the fit (the one behind its standard errors) gives ``se_f(n)^2 = g' s^2 (J'WJ)^-1 g``,
    ``g = df/du``, and with ``t = t_{(1+level)/2, m-p}``

        confidence: f +- t se_f,        prediction: f +- t sqrt(se_f^2 + s^2 c^2),

    ``c`` the residual scale in the law's units (1, or ``mean|y|`` under the ``linear`` loss).
    Log-scale bands are mapped to y by ``exp``. Fits at an ``n_b`` limit treat ``n_b`` as fixed;
    fits that did not converge get NaN bands (their covariance means nothing), ``fit`` still.

    Args:
        curves: the fitted curves (G; other curves are refused:
            :func:`~tokenscale_sim.fit.inference.results.check_fitted_on`). result: their fit (any
            law, user-defined ones included). n: (K,) predictor values in the law's domain
            (:func:`~tokenscale_sim.fit.inference.results.check_domain`, as for ``predict``).
            level: default ``result.level``.

    Returns:
        :class:`PredictionBand` with (G, K) arrays.

    >>> import numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays, fit_curves
    >>> n = np.array([1.0, 2, 4, 8, 16])
    >>> cs = curves_from_arrays(n, 2 * n**0.3 * np.exp([0.01, -0.02, 0.0, 0.02, -0.01]))
    >>> band = prediction_band(cs, fit_curves(cs, "powerlaw"), [4.0, 64.0])
    >>> bool(np.all((band.pred_low < band.low) & (band.low < band.fit) & (band.fit < band.high)))
    True
    """
    level = result.level if level is None else level
    if not 0 < level < 1:
        raise ValueError(f"prediction_band: level must lie in (0, 1), got {level!r}")
    model = result.model
    curves = fitted_curves(curves, result, "prediction_band")
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    grid = np.atleast_1d(np.asarray(n, dtype=np.asarray(data.n).dtype))
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("prediction_band: n must be a non-empty 1-D array of finite values")
    check_domain(model, grid, "prediction_band")
    parts = _band_parts(
        model, result.loss_name, jnp.asarray(result.u), jnp.asarray(result.boundary), data,
        jnp.asarray(grid),
    )  # fmt: skip
    f, se, s2, scale, df = (np.asarray(x) for x in parts)
    check_defined(result, grid, f, "prediction_band")
    t = np.array([t_quantile(0.5 + level / 2, float(v)) for v in df])[:, None]
    half = t * se
    spread = np.sqrt(se**2 + (s2 * np.broadcast_to(scale, s2.shape) ** 2)[:, None])
    # a new point's sigma is unknown: no prediction band for weighted fits
    weighted = result.loss_name == "weighted" or (curves.has_se and result.loss_name == "linear")
    pred_half = np.where(weighted, np.nan, t * spread)
    unsure = ~np.asarray(result.converged, bool)[:, None]  # no covariance to trust: no band
    half, pred_half = np.where(unsure, np.nan, half), np.where(unsure, np.nan, pred_half)
    to_y = np.exp if result.loss_name in ("log", "huber") else (lambda x: x)
    with np.errstate(over="ignore", invalid="ignore"):
        return PredictionBand(
            grid, to_y(f), to_y(f - half), to_y(f + half), to_y(f - pred_half),
            to_y(f + pred_half), df, level,
        )  # fmt: skip


# ----------------------------------------------------------------------------- profile likelihood


@in_fit_precision
def profile_interval(
    curves: CurveSet, result: FitResult, param: str, opts: FitOptions | None = None, width=8.0
) -> ProfileInterval:
    """Profile-likelihood interval of ``param`` for each curve of ``result``.

    One code path with the fit's own intervals
    (:func:`tokenscale_sim.fit.inference.profile.profile_intervals`; threshold
    :func:`~tokenscale_sim.fit.inference.likelihood.lr_threshold`), whatever ``opts.interval`` says.
    ``width``: for the general (non-log loss) path, the grid half-width in standard errors of a
    parameter other than ``n_b``; an end reaching it is open (+-inf, or 0 for positive ones).

    >>> import numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays, fit_curves
    >>> n = np.array([1.0, 2, 4, 8, 16])
    >>> cs = curves_from_arrays(n, 2 * n**0.3 * np.exp([0.01, -0.02, 0.0, 0.02, -0.01]))
    >>> pi = profile_interval(cs, fit_curves(cs, "powerlaw"), "alpha")
    >>> bool(pi.low[0] < -0.3 < pi.high[0])
    True
    """
    model = result.model
    opts = check_options(
        "profile_interval", opts, FitOptions(loss=result.loss_name, level=result.level)
    )
    if param not in model.params:
        raise ValueError(f"profile_interval: param must be one of {model.params}, got {param!r}")
    j = model.params.index(param)
    curves = fitted_curves(curves, result, "profile_interval")
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    prof = profile_intervals(model, opts, data, result.u, opts.level, width)
    if not prof.available[j]:
        raise ValueError(
            f"profile_interval: {param!r} of model {model.name!r} depends on several "
            "unconstrained parameters; no profile is available"
        )
    return ProfileInterval(
        param,
        prof.low[:, j],
        prof.high[:, j],
        prof.open_low[:, j],
        prof.open_high[:, j],
        opts.level,
    )
