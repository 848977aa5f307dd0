r"""Estimates with uncertainty from the engine's optima: SEs, intervals, R^2, AIC/BIC.

:func:`fit_curves` is the entry point: it checks the curves, runs
:func:`tokenscale_sim.fit.engine.solver.solve_batch` over all of them at once and summarises each
fit:

- standard errors from the Gauss-Newton covariance ``s^2 (J'WJ)^-1`` in ``u`` (``s^2`` = weighted
  RSS/(m - p), or 1 for the ``weighted`` loss), mapped to natural units by the delta method
  (:func:`tokenscale_sim.fit.inference.likelihood.delta_method_se`);
- intervals (``FitOptions.interval``, :class:`~tokenscale_sim.fit.engine.options.IntervalMethod`):
  profile likelihood for every parameter with the small-sample F threshold
  (:mod:`tokenscale_sim.fit.inference.profile`; the default wherever it is closed form), or
  Student-t Wald intervals (log scale for positive parameters). ``n_b`` always uses its profile,
  over a grid that includes both limits; ends the data do not bound are *open* (``ci_open``) and sit
  at 0 or inf, never at an invented number;
- R^2 of ln y and of y, and AIC/BIC of the Gaussian likelihood of the loss's residuals.

Results carry their :class:`~tokenscale_sim.fit.laws.models.Model`, so everything downstream
(``predict``, bootstrap, profiles, tests) works for laws a user defines without registering them.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.checks import check_arrays
from tokenscale_sim.fit.data.curves import CurveArrays, CurveSet, check_curves, curves_from_arrays
from tokenscale_sim.fit.data.frames import CurvesLike, as_curves
from tokenscale_sim.fit.engine.buckets import first_curves, pad_curves_to_bucket
from tokenscale_sim.fit.engine.lanes import over_rows
from tokenscale_sim.fit.engine.options import (
    Boundary,
    FitOptions,
    IntervalMethod,
    check_options,
    finite_fit,
)
from tokenscale_sim.fit.engine.precision import in_fit_precision
from tokenscale_sim.fit.engine.solver import Solution, residuals, solve_batch, start_grid
from tokenscale_sim.fit.inference.likelihood import (
    delta_method_se,
    information_criteria,
    neg2_loglik,
    t_quantile,
    variance_params,
)
from tokenscale_sim.fit.inference.profile import closed_form, exact_grid_size, profile_intervals
from tokenscale_sim.fit.inference.results import (
    FitResult,
    check_defined,
    check_domain,
    with_curves,
)
from tokenscale_sim.fit.laws.models import Model, get_model, program_token
from tokenscale_sim.runtime.stored_programs import stored_program
from tokenscale_sim.theory import closed_forms as theory


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
            fixed = fixed.at[model.nb_index].set(boundary > Boundary.INTERIOR)
        u_fin = jnp.where(fixed, 0.0, u)

        def res(uu):
            return residuals(model, opts.loss, jnp.where(fixed, u, uu), d) * jnp.sqrt(w)

        p_free = p - jnp.sum(fixed)
        s2 = (
            1.0
            if opts.loss == "weighted"
            else jnp.sum(res(u_fin) ** 2) / jnp.maximum(m - p_free, 1.0)
        )
        se = delta_method_se(res, model.natural, u_fin, fixed, s2)
        lp = model.log_predict(u, d.n, d.aux)
        ok = w > 0

        def r2(obs, fit):
            mean = jnp.sum(jnp.where(ok, w * obs, 0.0)) / m
            ss_res = jnp.sum(jnp.where(ok, w * (obs - fit) ** 2, 0.0))
            ss_tot = jnp.sum(jnp.where(ok, w * (obs - mean) ** 2, 0.0))
            return 1 - ss_res / ss_tot

        aic, bic = information_criteria(
            neg2_loglik(model, opts, u, d), p_free + variance_params(opts.loss), m
        )
        return Summary(
            model.natural(u),
            se,
            r2(jnp.log(d.y), lp),
            r2(d.y, model.predict(u, d.n, d.aux)),  # y_hat of any sign for linear-space laws
            aic,
            bic,
            m,
            p_free,
        )

    return over_rows(one, u, boundary, data)


@stored_program(2, program_token)
@partial(jax.jit, static_argnames=("model", "opts"))
def solve_and_summarize(
    model: Model, opts: FitOptions, data: CurveArrays, v_grid
) -> tuple[Solution, Summary]:
    """:func:`~tokenscale_sim.fit.engine.solver.solve_batch` then :func:`summarize`, as one compiled
    program (one trace, one compile and, with the compilation cache on, one stored executable
    per model, options and data bucket: what a one-curve fit costs)."""
    sol = solve_batch(model, opts, data, v_grid)
    return sol, summarize(model, opts, sol.u, sol.boundary, data)


def _flat(data: CurveArrays) -> CurveArrays:
    """Curves (..., M) as NumPy (G, M): they reach JAX only once padded to their bucket (every
    JAX operation on a new shape, even ``jnp.asarray``, compiles a small program)."""
    return CurveArrays(*(np.reshape(np.asarray(x), (-1, np.shape(x)[-1])) for x in data))


def wald_intervals(model: Model, est, se, df, level: float):
    """Student-t intervals ``est +- t_{df}(level) se`` -> (low, high), each (G, p).

    Positive parameters get ``est exp(+-t se / est)`` (the interval of ``ln theta``). ``est``,
    ``se`` (G, p); ``df`` (G,) residual degrees of freedom ``m - p``.

    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> lo, hi = wald_intervals(get_model("powerlaw"), [[1.0, 0.5]], [[0.0, 0.1]], [8], 0.95)
    >>> round(float(hi[0, 1] - 0.5), 4)
    0.2306
    """
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


@in_fit_precision
def fit_arrays(
    model: str | Model, data: CurveArrays, opts: FitOptions | None = None, *, v_grid=None
) -> FitResult:
    """Fit each curve of ``data`` (arrays (G, M)) independently; see :func:`fit_curves`.

    The arrays are checked first (:func:`~tokenscale_sim.fit.data.checks.check_arrays`: finite,
    ``y > 0`` under the log loss, ``n >= 1`` for laws of token counts, ...); unlike
    :func:`fit_curves` short or constant curves are fitted (studies of simulated experiments)
    and reported as they come out. A fit with a non-finite estimate (other than ``n_b = inf``
    at its limit) or loss is never ``converged``. Computed in ``opts.precision`` (float64 by
    default, whatever ``jax_enable_x64`` says; :mod:`tokenscale_sim.fit.engine.precision`).
    ``v_grid`` (K, k): starting values of the nonlinear parameters in place of the model's grid
    (e.g. one start of a law built with several: the starts then share one compiled program).
    """
    model = get_model(model)
    opts = opts or FitOptions()
    check_arrays(data, model, opts.loss, fn="fit_arrays")
    return _fit_checked(model, data, opts, v_grid)


def _fit_checked(model: Model, data: CurveArrays, opts: FitOptions, v_grid=None) -> FitResult:
    """:func:`fit_arrays` on arrays already checked (by it, or by :func:`check_curves`)."""
    data = _flat(data)
    g = data.n.shape[0]
    data = pad_curves_to_bucket(data)  # compiled programs reused by data of a similar size
    grid = start_grid(model, data) if v_grid is None else jnp.asarray(v_grid, data.n.dtype)
    sol, summ = solve_and_summarize(model, opts, data, grid)
    summ = Summary(*(np.asarray(x) for x in summ))
    ci_low, ci_high = wald_intervals(
        model, summ.estimates, summ.se, summ.n_points - summ.n_free, opts.level
    )
    pos = np.array(model.positive, bool)
    ci_open = np.stack(
        [np.where(pos, ci_low <= 0, ~np.isfinite(ci_low)), ~np.isfinite(ci_high)], -1
    )
    method = [IntervalMethod.WALD] * model.n_params
    use = np.zeros(model.n_params, bool)
    exact = closed_form(model, opts)  # profiles in closed form: cheap, so the default
    if opts.interval == IntervalMethod.PROFILE or (opts.interval == IntervalMethod.AUTO and exact):
        use[:] = True
    if model.nb_index is not None:
        use[model.nb_index] = True  # natural n_b sits at the index of ln n_b in u
    if use.any():
        prof = profile_intervals(model, opts, data, np.asarray(sol.u))
        use &= prof.available
        ci_low[:, use], ci_high[:, use] = prof.low[:, use], prof.high[:, use]
        ci_open[:, use, 0], ci_open[:, use, 1] = prof.open_low[:, use], prof.open_high[:, use]
        method = [IntervalMethod.PROFILE if x else IntervalMethod.WALD for x in use]
    finite = finite_fit(model, summ.estimates, sol.boundary, sol.loss)  # never a NaN converged
    return first_curves(FitResult(
        model=model,
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
        converged=np.asarray(sol.converged) & finite,
        iterations=np.asarray(sol.iterations),
        grad_norm=np.asarray(sol.grad_norm),
        n_points=summ.n_points.astype(int),
        boundary=np.asarray(sol.boundary),
        interval=tuple(method),
    ), g)  # fmt: skip


MEMORY_ARRAYS = 16
"""Arrays of the widest size (curves x grid values x points, float64) alive at once in a fit,
from the growth of peak resident memory: about 11 (one ``alpha_n`` curve, 16,000 to 64,000
points) and 15 (``tokenscale design``, 200 to 2000 experiments of 10 points), rounded up."""


def memory_estimate(
    model: str | Model, n_curves: int, n_points: int, opts: FitOptions | None = None
) -> float:
    """Bytes a fit of ``n_curves`` curves of ``n_points`` points needs at its widest.

    The interval pass evaluates every curve at ``K`` values of its nonlinear parameter at once:
    ``K = 4 profile_points + 78`` on the closed-form path of
    :func:`~tokenscale_sim.fit.inference.profile.profile_intervals` (log loss, a law of ln y with
    one nonlinear parameter), ``profile_points`` on the general path, 1 without nonlinear
    parameters: about ``8 * MEMORY_ARRAYS * G * K * M`` bytes, linear in the points. Measured
    peaks of ``tokenscale fit`` (resident, one curve of 200,000 points): 4.4 GiB for
    ``alpha_n`` (5.8 GiB estimated), 0.46 GiB for a three-parameter law of x under the linear
    loss (1.0 GiB estimated).

    >>> round(memory_estimate("alpha_n", 1, 200_000) / 2**30, 1)  # GiB
    5.8
    """
    m = get_model(model)
    o = opts or FitOptions()
    if m.k == 0:
        grid = 1
    elif closed_form(m, o):
        grid = exact_grid_size(o) + 1  # n_b's grid carries the estimate too
    else:
        grid = o.profile_points
    return 8.0 * MEMORY_ARRAYS * n_curves * grid * n_points


RESAMPLE_ARRAYS = 64
"""float64 arrays of one resampled point alive at once in a bootstrap or transition test (the
resampled curves, the optimizer's state of every start, the calibration's projections)."""


def resampling_memory(
    model: str | Model,
    n_curves: int,
    n_points: int,
    resamples: int,
    opts: FitOptions | None = None,
) -> float:
    """Bytes a fit of ``n_curves`` curves of ``n_points`` points plus ``resamples`` resamples of
    each (:func:`~tokenscale_sim.fit.inference.uncertainty.bootstrap`, the transition test) need:
    :func:`memory_estimate` plus ``8 * RESAMPLE_ARRAYS * resamples * G * M``. The one estimate
    ``fit.bootstrap`` and ``tokenscale fit`` check before they start.

    >>> round(resampling_memory("powerlaw", 1, 10, 10**8) / 2**30)  # GiB
    477
    """
    point = memory_estimate(model, n_curves, n_points, opts)
    return point + 8.0 * RESAMPLE_ARRAYS * resamples * n_curves * n_points


@in_fit_precision
def fit_curves(
    curves: CurveSet | CurvesLike, model: str | Model, opts: FitOptions | None = None
) -> FitResult:
    """Fit every curve of a :class:`~tokenscale_sim.fit.data.curves.CurveSet` with ``model``.

    Checks the input first (:func:`~tokenscale_sim.fit.data.curves.check_curves`), then runs the
    vmapped pipeline of this module over all curves at once, in ``opts.precision`` (float64 by
    default, with or without ``jax_enable_x64``). Curves carrying sigma are weighted by
    ``1/sigma^2`` under the ``linear`` loss (scipy's ``curve_fit``; ``absolute_sigma`` of
    :class:`FitOptions`); the ``log`` loss does not use them and warns.

    Args:
        curves: the curves (G of them, padded to M points), or any form
            :func:`~tokenscale_sim.fit.data.frames.as_curves` takes (a DataFrame or dict with
            columns ``n``, ``y``; named ``(n, y)`` curves; a list of ``(n, y)`` pairs).
        model: a :class:`~tokenscale_sim.fit.laws.models.Model` or its name.
        opts: :class:`FitOptions` (loss, level, iterations...).

    Returns:
        :class:`FitResult` with arrays of leading shape (G,).

    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> res = fit_curves(curves_from_arrays([1, 2, 4, 8], [2.0, 2.0 * 2**0.3, 2.0 * 4**0.3,
    ...                                                      2.0 * 8**0.3]), "powerlaw")
    >>> [round(float(x), 6) for x in res.estimates[0]]
    [2.0, -0.3]
    """
    model = get_model(model)
    opts = check_options("fit_curves", opts)
    curves = as_curves(curves, fn="fit_curves")
    check_curves(curves, model, opts.loss)  # check_arrays and the curve rules: checked once
    return with_curves(_fit_checked(model, curves.arrays, opts), curves)


@in_fit_precision
def predict(result: FitResult, n, aux=None) -> Any:
    """Fitted curves ``y_hat`` at predictor values ``n`` (any shape, a scalar included).

    Shapes (:mod:`tokenscale_sim.fit.inference.results`): a one-curve result gives ``n``'s shape (a
    scalar for a scalar ``n``), a result of G > 1 curves ``(G, *n.shape)``. ``n`` must lie in the
    law's domain (:func:`~tokenscale_sim.fit.inference.results.check_domain`: ``n >= 1`` for laws of
    token counts; a ``ValueError`` also where the law itself gives NaN,
    :func:`~tokenscale_sim.fit.inference.results.check_defined`), as for
    :func:`~tokenscale_sim.fit.inference.uncertainty.prediction_band`. Uses
    the unconstrained estimates (exact limits included at a boundary). ``aux``, broadcastable to
    ``(G, *n.shape)``, is needed only for ``divergence_measured``.

    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> res = fit_curves(curves_from_arrays([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0]), "powerlaw")
    >>> round(float(predict(res, 16.0)), 6), predict(res, [16.0, 32.0]).shape
    (48.0, (2,))
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"predict: result must be a FitResult, got {type(result).__name__}")
    model = result.model
    x = check_domain(model, n, "predict")
    u = jnp.asarray(result.u)
    g = u.shape[0]
    shape = (g, *x.shape)
    if aux is None:
        aux = np.ones(shape)
    else:
        try:
            aux = np.broadcast_to(np.asarray(aux, float), shape)
        except ValueError:
            raise ValueError(
                f"predict: aux must broadcast to (curves, *n.shape) = {shape}, got {np.shape(aux)}"
            ) from None
    flat_n = jnp.asarray(x.reshape(-1), u.dtype)
    flat_aux = jnp.asarray(aux.reshape(g, -1), u.dtype)
    y = np.asarray(jax.vmap(lambda uu, a: model.predict(uu, flat_n, a))(u, flat_aux))
    y = y.reshape(shape)
    check_defined(result, x, y, "predict")
    return y[0][()] if g == 1 else y


@in_fit_precision
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
    (:func:`tokenscale_sim.theory.closed_forms.upsilon`). Without psi's the constant-psi form
    ``E[D] = scale sqrt(n (n + n_b))`` gives ``(scale, n_b)`` from the curve alone. The default
    loss is ``"linear"`` (unweighted least squares of D, as the authors did). ``upsilon`` may be
    given directly instead of the psi's (e.g. Upsilon-hat averaged over measured pairs).

    >>> import numpy as np
    >>> n = np.arange(1.0, 65.0)
    >>> d = 0.3 * np.sqrt(n * (n + 12.0))
    >>> [round(float(x), 6) for x in fit_divergence(n, d).estimates[0]]
    [0.3, 12.0]
    """
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


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def fit_record(result: FitResult, keys=None) -> dict[str, Any]:
    """A JSON-ready dict of ``result`` following the package's file convention.

    Non-finite numbers are ``None`` (JSON ``null``) and a field says why: ``"n_b_status"``
    (:class:`~tokenscale_sim.fit.engine.solver.NbStatus`) for an ``n_b`` at 0 or inf, ``"low_open"``
    / ``"high_open"`` for interval ends the data do not bound, ``"identified": false`` for an
    infinite standard error, ``"converged": false`` for a failed fit.

    Args:
        result: the fits (G curves); keys: optional (G,) labels of the curves.

    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> r = fit_curves(curves_from_arrays([1, 2, 4, 8], [1.0, 1.3, 1.6, 2.2]), "alpha_n")
    >>> sorted(fit_record(r)["curves"][0]["n_b"])
    ['ci_high', 'ci_low', 'estimate', 'high_open', 'identified', 'interval', 'low_open', 'se']
    """
    curves = []
    for g in range(result.estimates.shape[0]):
        entry: dict[str, Any] = {} if keys is None else {"key": list(keys[g])}
        for i, name in enumerate(result.params):
            entry[name] = {
                "estimate": _num(result.estimates[g, i]),
                "se": _num(result.se[g, i]),
                "identified": bool(np.isfinite(result.se[g, i])),
                "ci_low": _num(result.ci_low[g, i]),
                "ci_high": _num(result.ci_high[g, i]),
                "low_open": bool(result.ci_open[g, i, 0]),
                "high_open": bool(result.ci_open[g, i, 1]),
                "interval": str(result.interval[i]) if result.interval else None,
            }
        entry["n_b_status"] = result.status(g).status.value
        for name in ("r2_log", "r2_linear", "aic", "aicc", "bic", "loss", "grad_norm"):
            entry[name] = _num(getattr(result, name)[g])
        entry["converged"] = bool(result.converged[g])
        entry["iterations"] = int(result.iterations[g])
        entry["n_points"] = int(result.n_points[g])
        curves.append(entry)
    return {
        "model": result.model.name,
        "params": list(result.params),
        "loss": result.loss_name,
        "level": result.level,
        "curves": curves,
    }
