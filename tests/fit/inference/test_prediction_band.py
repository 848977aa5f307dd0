"""Prediction and confidence bands of fitted laws: exact against OLS, coverage for a user law."""

import jax
import numpy as np
import pytest
from scipy import stats

from tokenscale_sim.fit import (
    FitOptions,
    curves_from_arrays,
    define_law,
    fit_curves,
    prediction_band,
)

jax.config.update("jax_enable_x64", True)


def _ols_bands(x, y, x0, level):
    """Textbook OLS bands of y on [1, x] at x0: (fit, half-width conf, half-width pred)."""
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = x.size - 2
    s2 = np.sum((y - design @ coef) ** 2) / df
    d0 = np.stack([np.ones_like(x0), x0], axis=1)
    lever = np.einsum("ki,ij,kj->k", d0, np.linalg.inv(design.T @ design), d0)
    t = stats.t.ppf(0.5 + level / 2, df)
    return d0 @ coef, t * np.sqrt(s2 * lever), t * np.sqrt(s2 * (1 + lever))


def test_loglinear_bands_under_linear_loss_are_the_ols_bands():
    rng = np.random.default_rng(0)
    n = np.array([1.0, 2, 4, 8, 16, 32, 64, 128, 256, 576])
    y = 40 + 6 * np.log(n) + rng.normal(0, 1.5, n.size)
    cs = curves_from_arrays(n, y)
    res = fit_curves(cs, "loglinear", FitOptions(loss="linear"))
    n0 = np.array([1.0, 24.0, 576.0, 4096.0])
    band = prediction_band(cs, res, n0, level=0.9)
    fit, conf, pred = _ols_bands(np.log(n), y, np.log(n0), 0.9)
    np.testing.assert_allclose(band.fit[0], fit, rtol=1e-9)
    np.testing.assert_allclose(band.high[0] - band.fit[0], conf, rtol=1e-7)
    np.testing.assert_allclose(band.fit[0] - band.low[0], conf, rtol=1e-7)
    np.testing.assert_allclose(band.pred_high[0] - band.fit[0], pred, rtol=1e-7)
    assert band.df[0] == n.size - 2 and band.level == 0.9


def test_powerlaw_bands_under_log_loss_are_exp_of_the_ols_bands_of_ln_y():
    rng = np.random.default_rng(1)
    n = np.geomspace(1, 1000, 10)
    y = 3 * n**0.2 * np.exp(rng.normal(0, 0.05, (2, n.size)))
    cs = curves_from_arrays(n, y)
    band = prediction_band(cs, fit_curves(cs, "powerlaw"), n)
    for g in range(2):
        fit, conf, pred = _ols_bands(np.log(n), np.log(y[g]), np.log(n), 0.95)
        np.testing.assert_allclose(np.log(band.fit[g]), fit, rtol=1e-9)
        np.testing.assert_allclose(np.log(band.low[g]), fit - conf, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(np.log(band.pred_high[g]), fit + pred, rtol=1e-7, atol=1e-10)


CEILING = define_law(
    "ceiling_user",
    lambda n, t: t["top"] - t["gap"] * n ** (-t["rate"]),
    ["top", "gap", "rate"],
    transforms={"rate": "positive"},
    linear=["top", "gap"],
    starts={"rate": [0.1, 0.3, 1.0]},
)
TRUTH = {"top": 80.0, "gap": 50.0, "rate": 0.5}
N_DESIGN = np.array([1.0, 2, 4, 8, 16, 32, 64, 128, 256, 576])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["log", "linear"])
def test_bands_of_a_user_law_cover_at_the_nominal_rate(loss):
    """Monte Carlo: 400 noisy curves of a user-defined law; the 95 % confidence band covers the
    true law and the prediction band a new observation at the nominal rate (z-score <= 4)."""
    reps = 400
    rng = np.random.default_rng(2)
    truth = TRUTH["top"] - TRUTH["gap"] * N_DESIGN ** (-TRUTH["rate"])
    noise = rng.normal(0, 0.02, (reps, N_DESIGN.size))
    y = truth * np.exp(noise) if loss == "log" else truth * (1 + noise)
    cs = curves_from_arrays(N_DESIGN, y)
    res = fit_curves(cs, CEILING, FitOptions(loss=loss))
    n0 = np.array([3.0, 100.0, 576.0])
    band = prediction_band(cs, res, n0)
    true0 = TRUTH["top"] - TRUTH["gap"] * n0 ** (-TRUTH["rate"])
    new = rng.normal(0, 0.02, (reps, n0.size))
    y_new = true0 * np.exp(new) if loss == "log" else true0 * (1 + new)
    ok = res.converged
    assert ok.mean() > 0.95
    for covered in (
        (band.low <= true0) & (true0 <= band.high),
        (band.pred_low <= y_new) & (y_new <= band.pred_high),
    ):
        rate = covered[ok].mean(axis=0)
        z = (rate - 0.95) / np.sqrt(0.95 * 0.05 / ok.sum())
        assert np.all(np.abs(z) <= 4), (rate, z)


def test_prediction_band_rejects_bad_input():
    cs = curves_from_arrays(N_DESIGN, 2 * N_DESIGN**0.3)
    res = fit_curves(cs, "powerlaw")
    with pytest.raises(ValueError, match="prediction_band: level must lie in"):
        prediction_band(cs, res, [2.0], level=1.5)
    with pytest.raises(ValueError, match="prediction_band: token counts n must be >= 1"):
        prediction_band(cs, res, [0.5])
    with pytest.raises(ValueError, match="prediction_band: n must be a non-empty 1-D"):
        prediction_band(cs, res, [np.nan])


def test_a_fit_that_did_not_converge_gets_no_band():
    """A saturating law on a straight line in ln n has no interior optimum (a -> 0): the fit is
    reported not converged, and its band is NaN rather than rounding noise."""
    y = 40 + 6 * np.log(N_DESIGN) + np.array([0.3, -0.2, 0.1, -0.3, 0.2, 0.0, -0.1, 0.2, -0.2, 0.1])
    cs = curves_from_arrays(N_DESIGN, y)
    res = fit_curves(cs, CEILING)
    assert not res.converged[0]
    band = prediction_band(cs, res, [10.0, 100.0])
    assert (
        np.all(np.isfinite(band.fit))
        and np.all(np.isnan(band.low))
        and np.all(np.isnan(band.pred_high))
    )
