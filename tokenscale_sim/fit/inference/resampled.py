r"""Intervals from bootstrap resamples, where their coverage was measured, and what a bootstrap
costs before it starts.

- :func:`percentile_intervals` and :func:`studentized_interval` turn (m, G, p) resampled
  estimates into (G, p) intervals (formulas in :mod:`tokenscale_sim.fit.inference.uncertainty`);
- :data:`MEASURED_POINTS`: every bootstrap interval kind had its coverage measured on curves of
  ten token counts (``benchmarks/coverage.py``, ``benchmarks/coverage_fresh.py``; the tables in
  ``benchmarks/README.md``, "Interval coverage"). Below that size nothing vouches for it: the
  calibrated kind covered the truth in 70 % of 3-point curves at nominal 95 %, where the fit's own
  profile interval covered 95 %. :func:`fall_back_below_measured` gives such curves the fit's own
  intervals, with a :class:`IntervalFallbackWarning` and a per-curve label;
- :func:`check_count`: resample and start counts are integers (never ``bool`` or float).
"""

from __future__ import annotations

import warnings

import numpy as np

from tokenscale_sim.fit.laws.models import Model

MEASURED_POINTS = 10
"""Fewest points per curve at which the coverage of the bootstrap intervals was measured (the
paper's ten token counts; alpha(n) curves, ``benchmarks/README.md``)."""

FALLBACK = "fit"
"""Label (``BootstrapResult.interval_used``) of a curve that kept the fit's own intervals."""


class IntervalFallbackWarning(UserWarning):
    """Some curves are shorter than :data:`MEASURED_POINTS`: their bootstrap intervals are the
    fit's own (profile) intervals; ``tokenscale fit`` prints it as one line."""


def percentile_intervals(x, mask, level):
    """Percentile interval and SD over axis 0 where ``mask``; (m, G, p) -> three (G, p).

    >>> x = np.arange(1.0, 6.0)[:, None, None]
    >>> [a.ravel().tolist() for a in percentile_intervals(x, np.ones((5, 1), bool), 0.5)]
    [[2.0], [4.0], [1.5811388300841898]]
    """
    q = (0.5 - level / 2, 0.5 + level / 2)
    x = np.where(mask[..., None], x, np.nan)
    lo = np.nanquantile(x, q[0], axis=0, method="nearest")
    hi = np.nanquantile(x, q[1], axis=0, method="nearest")
    fin = np.where(np.isfinite(x), x, np.nan)
    sd = np.nanstd(fin, axis=0, ddof=1)
    return lo, hi, sd


def studentized_interval(model: Model, estimates, se, est_star, se_star, converged, level):
    """Bootstrap-t interval (see :mod:`~tokenscale_sim.fit.inference.uncertainty`) -> (low,
    high), each (G, p).

    ``estimates``, ``se`` (G, p): the fit; ``est_star``, ``se_star`` (m, G, p): the resamples';
    ``converged`` (m, G). NaN where the fit's own ``se`` is not finite (use the percentile).

    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> m = get_model("powerlaw")  # t* in {-1, 0, 1}: the 25/75 % points are -1 and 1
    >>> z = np.array([-1.0, 0.0, 1.0])[:, None, None] * np.array([[[0.0, 1.0]]])
    >>> lo, hi = studentized_interval(m, [[1.0, 0.5]], [[0.0, 0.1]], 0.5 + 0.1 * z,
    ...                               np.full((3, 1, 2), 0.1), np.ones((3, 1), bool), 0.5)
    >>> np.round([lo[0, 1], hi[0, 1]], 3).tolist()
    [0.4, 0.6]
    """
    pos = np.array(model.positive, bool)
    est, se = np.asarray(estimates, float), np.asarray(se, float)
    est_star, se_star = np.asarray(est_star, float), np.asarray(se_star, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        phi = np.where(pos, np.log(est), est)
        s = np.where(pos, se / est, se)
        phi_star = np.where(pos, np.log(est_star), est_star)
        s_star = np.where(pos, se_star / est_star, se_star)
        step = phi_star - phi
        t = np.where(np.isfinite(s_star) & (s_star > 0), step / s_star, np.sign(step) * np.inf)
    t = np.where(converged[..., None] & ~np.isnan(t), t, np.nan)
    q = (0.5 - level / 2, 0.5 + level / 2)
    with np.errstate(invalid="ignore"):
        t_lo = np.nanquantile(t, q[0], axis=0, method="nearest")
        t_hi = np.nanquantile(t, q[1], axis=0, method="nearest")
        ok = np.isfinite(phi) & np.isfinite(s) & (s > 0)
        low_phi = np.where(ok, phi - t_hi * s, np.nan)
        high_phi = np.where(ok, phi - t_lo * s, np.nan)
        low = np.where(pos, np.exp(low_phi), low_phi)
        high = np.where(pos, np.exp(high_phi), high_phi)
    return low, high


def fall_back_below_measured(
    interval: str, n_points, low, high, fit_low, fit_high, labels, fn: str = "bootstrap"
):
    """Curves with fewer than :data:`MEASURED_POINTS` points keep the fit's own intervals.

    Args:
        interval: the bootstrap interval kind asked for; n_points: (G,) points per curve;
        low, high: (G, p) the bootstrap intervals; fit_low, fit_high: (G, p) the fit's own;
        labels: (G,) curve labels for the warning.

    Returns:
        ``(low, high, used)``: the intervals and (G,) the kind each curve got (``interval``, or
        :data:`FALLBACK` with an :class:`IntervalFallbackWarning` naming the curves).

    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     lo, hi, used = fall_back_below_measured(
    ...         "calibrated", [3, 10], [[1.0], [2.0]], [[5.0], [6.0]], [[0.0], [0.5]],
    ...         [[9.0], [9.5]], ["a", "b"])
    >>> lo.ravel().tolist(), used.tolist(), len(caught)
    ([0.0, 2.0], ['fit', 'calibrated'], 1)
    """
    short = np.asarray(n_points) < MEASURED_POINTS
    used = np.where(short, FALLBACK, interval)
    if not short.any():
        return np.asarray(low), np.asarray(high), used
    names = [str(label) for label, s in zip(labels, short, strict=True) if s]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    warnings.warn(
        IntervalFallbackWarning(
            f"{fn}: {len(names)} curve{'s' if len(names) > 1 else ''} ({shown}) "
            f"{'have' if len(names) > 1 else 'has'} fewer than {MEASURED_POINTS} points, where "
            f"the coverage of {interval} bootstrap intervals was never measured (on 3 points "
            f"the calibrated kind covered 70 % at nominal 95 %): they keep the fit's own intervals "
            f"(profile by default; interval_used = {FALLBACK!r})"
        ),
        stacklevel=3,
    )
    keep = short[:, None]
    return np.where(keep, fit_low, low), np.where(keep, fit_high, high), used
