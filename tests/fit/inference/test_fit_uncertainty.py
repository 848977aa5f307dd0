"""Uncertainty: bootstrap schemes, interval coverage, alpha(n) bands, transition test, tied fits."""

import jax
import numpy as np
import pytest

from tokenscale_sim.fit import (
    FitOptions,
    curves_from_arrays,
    fit_curves,
    load_paper_scores,
)
from tokenscale_sim.fit.inference import uncertainty as unc
from tokenscale_sim.fit.selection import transition
from tokenscale_sim.theory import closed_forms as theory


@pytest.fixture(scope="module")
def paper():
    return load_paper_scores(exact_only=True)


def _noisy(rng, n, log_mean, sigma, reps):
    return np.exp(log_mean[None, :] + sigma * rng.standard_normal((reps, n.size)))


@pytest.mark.parametrize("kind", unc.KINDS)
def test_bootstrap_schemes_shapes_and_sanity(kind):
    rng = np.random.default_rng(0)
    n = np.geomspace(1, 1000, 12)
    y = _noisy(rng, n, np.log(2.0) + 0.3 * np.log(n), 0.05, 3)
    cs = curves_from_arrays(n, y)
    res = fit_curves(cs, "powerlaw")
    b = unc.bootstrap(jax.random.key(0), cs, res, kind=kind, m=300)
    assert b.estimates.shape == (300, 3, 2) and b.converged.all()
    assert np.all(b.ci_low <= res.estimates) and np.all(res.estimates <= b.ci_high)
    np.testing.assert_allclose(b.se[:, 1], res.se[:, 1], rtol=0.35)
    assert np.all(b.boundary_fraction == -1)


def test_bootstrap_argument_errors():
    cs = curves_from_arrays([1, 2, 4, 8], [1.0, 1.2, 1.5, 1.9])
    res = fit_curves(cs, "powerlaw")
    with pytest.raises(ValueError, match="kind must be one of"):
        unc.bootstrap(jax.random.key(0), cs, res, kind="jackknife")
    with pytest.raises(ValueError, match="bootstrap: m must be an integer >= 2, got 1"):
        unc.bootstrap(jax.random.key(0), cs, res, m=1)
    with pytest.raises(ValueError, match="differs from the fit"):
        unc.bootstrap(jax.random.key(0), cs, res, opts=FitOptions(loss="linear"))


@pytest.mark.slow
def test_interval_coverage_400_replicates():
    """95 % intervals cover the truth in 92-98 % of 400 noisy replicates (one vmapped call each)."""
    rng = np.random.default_rng(42)
    reps = 400
    # power law: t intervals (exact) and residual-bootstrap percentile intervals
    n = np.geomspace(1, 1000, 20)
    y = _noisy(rng, n, np.log(3.0) + 0.25 * np.log(n), 0.05, reps)
    cs = curves_from_arrays(n, y)
    res = fit_curves(cs, "powerlaw")
    cover_t = np.mean((res.ci_low[:, 1] <= -0.25) & (res.ci_high[:, 1] >= -0.25))
    assert 0.92 <= cover_t <= 0.98, cover_t
    boot = unc.bootstrap(jax.random.key(1), cs, res, kind="parametric", m=1000)
    cover_b = np.mean((boot.ci_low[:, 1] <= -0.25) & (boot.ci_high[:, 1] >= -0.25))
    assert 0.92 <= cover_b <= 0.98, cover_b
    # alpha(n) law with an interior transition: the default profile intervals for beta and n_b
    n = np.geomspace(1, 4096, 30)
    y = _noisy(rng, n, np.asarray(theory.log_score(n, 0.5, 1.0, 30.0)), 0.02, reps)
    res = fit_curves(curves_from_arrays(n, y), "alpha_n")
    cover_beta = np.mean((res.ci_low[:, 1] <= 1.0) & (res.ci_high[:, 1] >= 1.0))
    cover_nb = np.mean((res.ci_low[:, 2] <= 30.0) & (res.ci_high[:, 2] >= 30.0))
    assert 0.92 <= cover_beta <= 0.98, cover_beta
    assert 0.92 <= cover_nb <= 0.98, cover_nb


@pytest.mark.slow
def test_alpha_band_and_bootstrap_on_paper(paper):
    res = fit_curves(paper, "alpha_n")
    b = unc.bootstrap(jax.random.key(3), paper, res, m=200)
    assert b.estimates.shape == (200, 36, 3)
    assert b.converged.mean() > 0.99
    assert np.all((b.boundary_fraction >= 0) & (b.boundary_fraction <= 1))
    n = np.geomspace(1, 768, 9)
    band = unc.alpha_band("alpha_n", res.estimates, b.estimates, b.converged, n)
    assert band.low.shape == (36, 9)
    assert np.all(band.low <= band.high)
    assert np.all(np.isfinite(band.estimate))


def test_profile_interval_for_other_parameters():
    rng = np.random.default_rng(5)
    n = np.geomspace(1, 1000, 15)
    cs = curves_from_arrays(n, _noisy(rng, n, np.log(2.0) + 0.3 * np.log(n), 0.05, 2))
    res = fit_curves(cs, "powerlaw")
    pi = unc.profile_interval(cs, res, "alpha")
    # for a linear model the F-form profile interval is exactly the t interval
    np.testing.assert_allclose(pi.low, res.ci_low[:, 1], rtol=1e-3)
    np.testing.assert_allclose(pi.high, res.ci_high[:, 1], rtol=1e-3)
    assert not pi.open_low.any() and not pi.open_high.any()
    with pytest.raises(ValueError, match="param must be one of"):
        unc.profile_interval(cs, res, "beta")


@pytest.mark.slow
def test_transition_test_detects_a_transition_and_not_a_power_law():
    rng = np.random.default_rng(7)
    n = np.geomspace(1, 4096, 20)
    with_t = _noisy(rng, n, np.asarray(theory.log_score(n, 0.5, 1.0, 30.0)), 0.02, 1)
    without = _noisy(rng, n, 0.5 + 0.4 * np.log(n), 0.02, 1)
    cs = curves_from_arrays(n, np.concatenate([with_t, without]))
    t = transition.transition_test(jax.random.key(0), cs, m=200)
    assert t.p_value[0] < 0.01 and t.delta_aic[0] < -10
    assert t.p_value[1] > 0.01
    assert t.boundary[0] == 0


@pytest.mark.slow
def test_tied_beta_across_curves():
    n = np.geomspace(1, 2000, 25)
    y = np.stack(
        [
            np.exp(np.asarray(theory.log_score(n, lc, 0.7, nb)))
            for lc, nb in ((0.1, 10.0), (1.0, 100.0), (2.0, 30.0))
        ]
    )
    r = transition.fit_tied(curves_from_arrays(n, y), "alpha_n", shared=("beta",))
    np.testing.assert_allclose(r.estimates[:, 1], 0.7, rtol=1e-6)
    np.testing.assert_allclose(r.estimates[:, 2], [10.0, 100.0, 30.0], rtol=1e-5)
    assert r.converged and np.all(r.boundary == 0)
    with pytest.raises(ValueError, match="shared must name"):
        transition.fit_tied(curves_from_arrays(n, y), "alpha_n", shared=("gamma",))


def test_tied_aic_uses_the_standard_errors_under_the_weighted_loss():
    """Tying a parameter the curves already share costs nothing but one parameter: AIC drops by 2.

    Curve 2 is curve 1 times 2 with doubled standard errors, so both independent weighted fits
    have the same alpha and chi-square; the tied likelihood must equal the untied one, including
    the ``sum ln(2 pi se^2)`` term the weighted likelihood carries (the old code used log RSS).
    """
    rng = np.random.default_rng(3)
    n = np.geomspace(1, 500, 9)
    se = 0.05 * 2 * n**0.3
    y = 2 * n**0.3 + se * rng.standard_normal(n.size)
    cs = curves_from_arrays(n, np.stack([y, 2 * y]), se=np.stack([se, 2 * se]))
    opts = FitOptions(loss="weighted")
    single = fit_curves(cs, "powerlaw", opts)
    np.testing.assert_allclose(single.estimates[0, 1], single.estimates[1, 1], rtol=1e-8)
    tied = transition.fit_tied(cs, "powerlaw", shared=("alpha",), opts=opts, single_fit=single)
    np.testing.assert_allclose(tied.aic, single.aic.sum() - 2, rtol=1e-9)
    # BIC: 3 parameters over all 2m points against 2 + 2 parameters over m points each
    expect_bic = single.bic.sum() + 3 * np.log(2 * n.size) - 4 * np.log(n.size)
    np.testing.assert_allclose(tied.bic, expect_bic, rtol=1e-9)


def test_transition_test_reuses_given_fits():
    rng = np.random.default_rng(8)
    n = np.geomspace(1, 4096, 20)
    cs = curves_from_arrays(
        n, _noisy(rng, n, np.asarray(theory.log_score(n, 0.5, 1.0, 30.0)), 0.02, 2)
    )
    pl, an = fit_curves(cs, "powerlaw"), fit_curves(cs, "alpha_n")
    given = transition.transition_test(jax.random.key(2), cs, m=50, powerlaw_fit=pl, alpha_fit=an)
    fresh = transition.transition_test(jax.random.key(2), cs, m=50)
    np.testing.assert_allclose(given.lr, fresh.lr, rtol=1e-9)
    np.testing.assert_array_equal(given.p_value, fresh.p_value)
    with pytest.raises(ValueError, match="same 2 curves"):
        transition.transition_test(
            jax.random.key(2),
            cs,
            m=50,
            opts=FitOptions(),
            powerlaw_fit=fit_curves(cs, "powerlaw", FitOptions(loss="linear")),
        )
