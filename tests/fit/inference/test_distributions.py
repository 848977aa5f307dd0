"""``fit.distributions`` (issue 20): Student-t and normal quantiles and tails in plain Python,
checked against SciPy (test-only) and closed forms; and no JAX program behind the thresholds."""

import logging
import math

import jax
import numpy as np
import pytest
from scipy import special, stats

from tokenscale_sim.fit.inference.distributions import (
    incomplete_beta_pair,
    log_beta,
    normal_quantile,
    regularized_incomplete_beta,
    t_cdf,
    t_quantile,
    t_upper_tail,
    t_upper_tails,
)
from tokenscale_sim.fit.inference.likelihood import interval_from_profile, lr_threshold

DFS = [0.5, 1, 1.5, 2, 3, 5, 8, 10, 30, 100, 1e3, 1e5, 1e7]
QS = [1e-10, 1e-6, 0.001, 0.025, 0.05, 0.3, 0.5, 0.7, 0.95, 0.975, 0.999, 1 - 1e-6]


def _rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a)


@pytest.mark.parametrize("df", DFS)
def test_t_quantile_matches_scipy_in_both_tails(df):
    for q in QS:
        got = t_quantile(q, float(df))
        assert _rel(got, special.stdtrit(df, q)) <= 1e-10, (df, q, got)
        assert _rel(got, stats.t.ppf(q, df)) <= 1e-10, (df, q, got)


@pytest.mark.parametrize("q", [1e-12, 1e-4, 0.3, 0.5 - 1e-9, 0.5 + 1e-9, 0.8, 1 - 1e-12])
def test_t_quantile_closed_forms_near_the_centre_and_far_out(q):
    # df = 1: -1/tan(pi p) with p = min(q, 1 - q); df = 2: (2q - 1) / sqrt(2 q (1 - q)) (SciPy
    # loses digits next to 1/2)
    sign, p = (1.0, 1.0 - q) if q > 0.5 else (-1.0, q)
    cauchy = math.tan(math.pi * (q - 0.5)) if p > 0.25 else sign / math.tan(math.pi * p)
    assert _rel(t_quantile(q, 1.0), cauchy) <= 1e-12
    assert _rel(t_quantile(q, 2.0), (2 * q - 1) / math.sqrt(2 * q * (1 - q))) <= 1e-12


def test_t_quantile_edges():
    assert t_quantile(0.975, 0.0) == math.inf and t_quantile(0.975, -1.0) == math.inf
    assert t_quantile(0.5, 7.0) == 0.0
    assert t_quantile(0.0, 7.0) == -math.inf and t_quantile(1.0, 7.0) == math.inf
    # beyond 1e25 degrees of freedom (and at inf) the normal quantile
    assert t_quantile(0.975, math.inf) == normal_quantile(0.975)
    assert _rel(t_quantile(0.975, 1e24), normal_quantile(0.975)) <= 1e-15
    # a quantile past the largest float is inf (P(T > t) ~ c t^-1/2 for df = 1/2)
    assert t_quantile(1e-200, 0.5) == -math.inf


@pytest.mark.parametrize("df", DFS)
def test_t_tails_match_scipy(df):
    ts = np.array([-40.0, -6.0, -2.0, -0.3, 0.0, 0.3, 2.0, 6.0, 40.0, 1e6])
    for t in ts:
        assert _rel(t_cdf(t, df), stats.t.cdf(t, df)) <= 1e-11, (df, t)
        sf = stats.t.sf(t, df)
        if sf > 1e-300:
            assert _rel(t_upper_tail(t, df), sf) <= 1e-11, (df, t)


@pytest.mark.parametrize("t", [1e-8, 0.3, 2.0, 1e3, 1e12])
def test_t_tails_closed_forms(t):
    # df = 1: 1/2 - atan(t)/pi = atan(1/t)/pi; df = 2: 1/2 - t / (2 sqrt(2 + t^2)) =
    # 1 / (2 + t^2 + t sqrt(2 + t^2)) (SciPy loses digits at t ~ 0)
    cauchy = 0.5 - math.atan(t) / math.pi if t < 1 else math.atan(1 / t) / math.pi
    assert _rel(t_upper_tail(t, 1.0), cauchy) <= 1e-12
    assert _rel(t_cdf(-t, 1.0), cauchy) <= 1e-12
    assert _rel(t_upper_tail(t, 2.0), 1 / (2 + t * t + t * math.sqrt(2 + t * t))) <= 1e-12


def test_t_upper_tails_on_arrays():
    t = np.array([[np.nan, -np.inf, -1.0, 0.0], [0.5, 2.0, np.inf, 3.0]])
    df = np.array([4.0, 17.5])[:, None]
    got = t_upper_tails(t, df)
    assert got.shape == t.shape and np.isnan(got[0, 0])
    assert got[0, 1] == 1.0 and got[0, 3] == 0.5 and got[1, 2] == 0.0
    np.testing.assert_allclose(got[:, 1:], stats.t.sf(t, df)[:, 1:], rtol=1e-12)


@pytest.mark.parametrize("a", [0.1, 0.5, 1.0, 2.5, 10.0, 50.0, 1e3])
def test_incomplete_beta_matches_scipy_near_both_ends(a):
    for b in [0.1, 0.5, 1.0, 2.5, 10.0, 50.0, 1e3]:
        for x in [1e-12, 1e-6, 1e-3, 0.05, 0.3, 0.5, 0.7, 0.95, 1 - 1e-3, 1 - 1e-6, 1 - 1e-12]:
            lower, upper = incomplete_beta_pair(a, b, x, 1.0 - x)
            assert lower == regularized_incomplete_beta(a, b, x)
            # the smaller of the two is exact to relative precision (and so is SciPy's value of it,
            # up to its ln B: 1e-12 off at b = 1000, where log_beta agrees with 50-digit Stirling)
            small, ref = (
                (lower, special.betainc(a, b, x))
                if lower <= upper
                else (upper, special.betainc(b, a, 1.0 - x))
            )
            assert _rel(small, ref) <= 1e-11, (a, b, x, small, ref)
            assert lower + upper == pytest.approx(1.0, abs=2e-16)


def test_incomplete_beta_large_a_half_b_matches_the_t_law():
    # the large-a expansion (a >= 15, b = 1/2) against SciPy's t tail: I_x(nu/2, 1/2) = 2 P(T > t)
    for df in [30.0, 31.0, 1e3, 1e5, 1e7]:
        for t in [0.5, 1.0, 1.96, 3.0, 6.0]:
            x, y = df / (df + t * t), t * t / (df + t * t)
            got = incomplete_beta_pair(df / 2, 0.5, x, y)[0]
            assert _rel(got, 2 * stats.t.sf(t, df)) <= 1e-11, (df, t)


def test_log_beta_matches_scipy():
    for a, b in [(0.5, 0.5), (3.0, 7.0), (0.5, 8.0), (0.5, 5e6), (2.5, 1e12), (40.0, 60.0)]:
        assert log_beta(a, b) == pytest.approx(special.betaln(a, b), rel=1e-14, abs=1e-14)


def test_normal_quantile_matches_scipy():
    for p in [1e-300, 1e-10, 0.001, 0.025, 0.3, 0.5, 0.7, 0.975, 1 - 1e-10]:
        assert _rel(normal_quantile(p), special.ndtri(p)) <= 1e-14
    assert normal_quantile(0.0) == -math.inf and normal_quantile(1.0) == math.inf


def test_thresholds_compile_no_jax_program(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise AssertionError("an eager jax.scipy.special call")

    for name in ("betainc", "ndtri"):
        monkeypatch.setattr(jax.scipy.special, name, refuse)
    t_quantile.cache_clear()
    jax.clear_caches()  # a program compiled by an earlier test would not be logged again
    caplog.set_level(logging.DEBUG, logger="jax")
    with jax.log_compiles(True):
        t = t_quantile(0.975, 7.25)
        thresholds = [lr_threshold(loss, 0.95, 11, 3) for loss in ("log", "weighted")]
        ends = interval_from_profile([-1.0, 0.0, 1.0], [4.0, 0.0, 4.0], 0.0, 0.95)
    assert [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()] == []
    assert t == pytest.approx(stats.t.ppf(0.975, 7.25), rel=1e-12)
    f_thr = 11 * math.log1p(stats.t.ppf(0.975, 8) ** 2 / 8)
    assert thresholds == pytest.approx([f_thr, stats.chi2.ppf(0.95, 1)], rel=1e-12)
    half_width = stats.chi2.ppf(0.95, 1) / 4  # linear between the grid points: 4 |x| <= chi2_1
    assert ends[:2] == pytest.approx((-half_width, half_width), rel=1e-12)
