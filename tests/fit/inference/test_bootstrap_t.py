"""Studentized (bootstrap-t) intervals of ``fit.bootstrap``.

Independent reference: for a law linear in its parameters with Gaussian noise (the power law in
log space) the studentized statistic is exactly Student-t with m - p degrees of freedom, so the
parametric bootstrap-t interval must approach the textbook t interval (scipy), which the
percentile interval (normal quantiles at the fitted noise level) cannot.
"""

import jax
import numpy as np
import pytest
from scipy import stats

from tokenscale_sim import fit

N = np.array([1.0, 8, 16, 32, 64, 128, 256, 384, 512, 768])
M = 4000


@pytest.fixture(scope="module")
def curve_and_fit():
    rng = np.random.default_rng(26)
    y = 40.0 * N**0.1 * np.exp(0.03 * rng.standard_normal(N.size))
    curves = fit.curves_from_arrays(N, y)
    return curves, fit.fit_curves(curves, "powerlaw")


def _t_interval(curves):
    """OLS of ln y on ln n: the slope's t interval (textbook formulas, scipy's t quantile), as
    alpha = -slope."""
    x, y = np.log(N), np.log(np.asarray(curves.arrays.y[0]))
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    rss = float(np.sum((y - y.mean() - slope * dx) ** 2))
    stderr = np.sqrt(rss / (N.size - 2) / (dx @ dx))
    q = stats.t.ppf(0.975, N.size - 2)
    return -slope - q * stderr, -slope + q * stderr


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["studentized", "percentile"])
def test_parametric_bootstrap_t_matches_the_student_t_interval(curve_and_fit, interval):
    curves, res = curve_and_fit
    b = fit.bootstrap(jax.random.key(3), curves, res, kind="parametric", m=M, interval=interval)
    assert b.interval == interval
    low, high = _t_interval(curves)
    half = (b.ci_high[0, 1] - b.ci_low[0, 1]) / 2
    ratio = half / ((high - low) / 2)
    # t quantile's Monte Carlo error at M = 4000 is ~3 %; the percentile is ~17 % too narrow
    # (z_0.975 / t_7,0.975 = 0.83)
    if interval == "studentized":
        assert abs(ratio - 1) < 0.08, ratio
    else:
        assert ratio < 0.9, ratio


def test_bad_interval_kind_is_refused(curve_and_fit):
    curves, res = curve_and_fit
    with pytest.raises(ValueError, match="interval must be one of"):
        fit.bootstrap(jax.random.key(0), curves, res, m=10, interval="bca")
