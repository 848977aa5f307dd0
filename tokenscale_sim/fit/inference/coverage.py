r"""Coverage of every interval method on synthetic curves with known truth.

For a law, a truth ``theta`` (p,), a design ``n`` (m,) and a log-noise level ``sigma``,
:func:`coverage` draws ``reps`` curves ``ln y_i = ln y(n_i; theta) + sigma z_i``, fits them all
in one vmapped call and records, for each interval method, the share of curves whose interval
contains the true value of each parameter, its Monte Carlo standard error
``sqrt(c (1 - c) / reps)``, the median width and the share of open intervals. An open end
(the data do not bound the parameter) counts as covering what lies beyond it.

Methods (:data:`METHODS`): ``wald`` (Student-t, delta method), ``profile`` (profile likelihood,
small-sample F threshold), ``boot_residual``, ``boot_case``, ``boot_parametric`` (percentile
intervals of :func:`~tokenscale_sim.fit.inference.uncertainty.bootstrap` with ``boot_m`` resamples;
the expensive ones: ``reps * boot_m`` fits), and the same three with ``_t``: studentized
(bootstrap-t) intervals from the same resampling, or with ``_cal``: bootstrap-calibrated
profile-likelihood intervals (:mod:`~tokenscale_sim.fit.inference.calibrated`). Reused by experiment
design: any design ``n`` and any :class:`~tokenscale_sim.fit.laws.models.Model`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveSet, curves_from_arrays
from tokenscale_sim.fit.engine.options import Boundary, FitOptions, IntervalMethod
from tokenscale_sim.fit.inference.estimate import fit_curves
from tokenscale_sim.fit.inference.uncertainty import bootstrap
from tokenscale_sim.fit.laws.models import Model, get_model
from tokenscale_sim.runtime.validation import as_key

METHODS = (
    "wald",
    "profile",
    "boot_residual",
    "boot_case",
    "boot_parametric",
    "boot_residual_t",
    "boot_case_t",
    "boot_parametric_t",
    "boot_residual_cal",
    "boot_case_cal",
    "boot_parametric_cal",
)
"""Interval methods :func:`coverage` can measure."""

INTERVAL_SUFFIXES = {"": "percentile", "t": "studentized", "cal": "calibrated"}
"""Method-name suffix -> ``interval`` of
:func:`~tokenscale_sim.fit.inference.uncertainty.bootstrap`."""

PAPER_N = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 384.0, 512.0, 768.0)
"""The paper's design: ten token counts."""


class CoverageResult(NamedTuple):
    """Coverage of M methods for p parameters at one truth and design.

    Attributes:
        methods: (M,) method names; params: (p,) parameter names; truth: (p,).
        cover: (M, p) share of curves whose interval holds the truth.
        cover_se: (M, p) its Monte Carlo standard error ``sqrt(c (1 - c) / reps)``.
        median_width: (M, p) median of ``high - low`` (inf when most intervals are open).
        open_share: (M, p) share of intervals with at least one open end.
        boundary_share: share of point fits at an ``n_b`` limit; reps: curves drawn.
    """

    methods: tuple[str, ...]
    params: tuple[str, ...]
    truth: np.ndarray
    cover: np.ndarray
    cover_se: np.ndarray
    median_width: np.ndarray
    open_share: np.ndarray
    boundary_share: float
    reps: int


def synthetic_curves(key, model: str | Model, theta, n, sigma: float, reps: int) -> CurveSet:
    """``reps`` curves ``y = exp(ln y(n; theta) + sigma z)``, ``z ~ N(0, 1)`` -> (reps, m) curves.

    >>> import jax
    >>> cs = synthetic_curves(jax.random.key(0), "powerlaw", [2.0, -0.3], [1, 2, 4, 8], 0.0, 3)
    >>> cs.arrays.y.shape, round(float(cs.arrays.y[0, 3]), 4)
    ((3, 4), 3.7321)
    """
    key = as_key("synthetic_curves", key)
    model = get_model(model)
    n = jnp.asarray(n, dtype=float)
    u = model.unconstrained(jnp.asarray(theta, dtype=n.dtype))
    log_mean = model.log_predict(u, n)
    z = jax.random.normal(key, (reps, n.shape[0]), dtype=n.dtype)
    return curves_from_arrays(np.asarray(n), np.exp(np.asarray(log_mean + sigma * z)))


def _summary(low, high, open_any, truth):
    """Coverage, its MC SE, median width and open share of intervals (R, p) -> four (p,)."""
    inside = (low <= truth) & (truth <= high)
    cover = inside.mean(axis=0)
    reps = low.shape[0]
    with np.errstate(invalid="ignore"):
        width = np.median(np.where(np.isnan(high - low), np.inf, high - low), axis=0)
    return cover, np.sqrt(cover * (1 - cover) / reps), width, open_any.mean(axis=0)


def coverage(
    key,
    model: str | Model,
    theta,
    n,
    sigma: float,
    *,
    reps: int = 200,
    methods: tuple[str, ...] = ("wald", "profile"),
    boot_m: int = 200,
    opts: FitOptions | None = None,
) -> CoverageResult:
    """Coverage of the intervals of ``methods`` for ``model`` at truth ``theta`` on design ``n``.

    Args:
        key: ``jax.random`` key (curves from ``fold_in(key, 0)``, bootstraps from later folds).
        model: the law (built-in name or a user's :class:`~tokenscale_sim.fit.laws.models.Model`).
        theta: (p,) true natural parameters; n: (m,) design; sigma: log-noise SD.
        reps: synthetic curves; methods: subset of :data:`METHODS`; boot_m: resamples per curve.
        opts: fit options (``level`` is the nominal coverage; default :class:`FitOptions`).

    Returns:
        :class:`CoverageResult` with (M, p) arrays.

    >>> import jax
    >>> r = coverage(jax.random.key(1), "powerlaw", [2.0, -0.3], [1, 2, 4, 8, 16, 32], 0.05,
    ...              reps=400)
    >>> bool(abs(r.cover[0, 1] - 0.95) < 5 * r.cover_se[0, 1])
    True
    """
    key = as_key("coverage", key)
    model = get_model(model)
    opts = opts or FitOptions()
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"coverage: methods must be among {METHODS}, got {methods}")
    if reps < 2:
        raise ValueError(f"coverage: reps must be >= 2, got {reps}")
    truth = np.asarray(theta, float)
    curves = synthetic_curves(jax.random.fold_in(key, 0), model, truth, n, sigma, reps)
    prof = fit_curves(curves, model, replace(opts, interval=IntervalMethod.PROFILE))
    out = []
    for i, method in enumerate(methods):
        if method == "profile":
            res = prof
        elif method == "wald":
            res = fit_curves(curves, model, replace(opts, interval=IntervalMethod.WALD))
        else:
            kind, _, suffix = method.removeprefix("boot_").partition("_")
            interval = INTERVAL_SUFFIXES[suffix]
            b = bootstrap(
                jax.random.fold_in(key, 1 + i), curves, prof, kind=kind, m=boot_m, interval=interval
            )
            # intervals of parameters at a limit (n_b = 0 or inf) reach that limit: open
            open_any = ~np.isfinite(b.ci_low) | ~np.isfinite(b.ci_high) | (b.ci_low == 0)
            out.append(_summary(b.ci_low, b.ci_high, open_any, truth))
            continue
        open_any = res.ci_open.any(axis=-1)
        out.append(_summary(res.ci_low, res.ci_high, open_any, truth))
    cover, cover_se, width, open_share = (np.stack(x) for x in zip(*out, strict=True))
    boundary = float(np.mean(prof.boundary > Boundary.INTERIOR))
    return CoverageResult(
        tuple(methods), model.params, truth, cover, cover_se, width, open_share, boundary, reps
    )
