"""Bootstrap-calibrated profile-likelihood intervals: ``fit.bootstrap(interval="calibrated")``.

Independent reference: for a law linear in its parameters with Gaussian noise (the power law in
log space) the profile LR statistic of a parameter is exactly ``m ln(1 + t^2 / (m - p))`` with
``t ~ t_{m-p}`` (scipy), so the parametric bootstrap's statistics must follow that law, and the
interval with a threshold ``thr`` must be the textbook interval ``slope +- t_thr se`` with
``t_thr^2 = (m - p)(exp(thr / m) - 1)``.
"""

import json
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tokenscale_sim import fit
from tokenscale_sim.cli import main
from tokenscale_sim.fit.data.curves import CurveArrays
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import solve_batch, start_grid
from tokenscale_sim.fit.inference.calibrated import lr_statistics
from tokenscale_sim.fit.inference.coverage import PAPER_N, coverage
from tokenscale_sim.fit.inference.likelihood import lr_threshold
from tokenscale_sim.fit.inference.uncertainty import resample

N = np.array(PAPER_N)


def _curve(law, y):
    curves = fit.curves_from_arrays(N, y)
    return curves, fit.fit_curves(curves, law)


@pytest.fixture(scope="module")
def linear_case():
    rng = np.random.default_rng(26)
    return _curve("powerlaw", 40.0 * N**0.1 * np.exp(0.03 * rng.standard_normal(N.size)))


def _slope_interval(curves, thr):
    """OLS of ln y on ln n: alpha = -slope and its interval with LR threshold ``thr``."""
    x, y = np.log(N), np.log(np.asarray(curves.arrays.y[0]))
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    rss = float(np.sum((y - y.mean() - slope * dx) ** 2))
    dof = N.size - 2
    t = np.sqrt(dof * np.expm1(thr / N.size))
    half = t * np.sqrt(rss / dof / (dx @ dx))
    return -slope - half, -slope + half


def test_linear_law_statistics_follow_the_exact_law(linear_case):
    """m = 400 parametric resamples: every statistic is m ln(1 + t^2/(m - p)), t ~ t_8 (KS)."""
    curves, res = linear_case
    key = jax.random.key(5)
    b = fit.bootstrap(key, curves, res, kind="parametric", m=400, interval="calibrated")
    assert b.interval == "calibrated" and b.threshold is not None
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    opts = FitOptions()
    star = resample(key, res.model, opts, data, jnp.asarray(res.u), "parametric", 400)
    u_star = np.asarray(jax.vmap(jax.vmap(res.model.unconstrained))(jnp.asarray(b.estimates)))
    lr = lr_statistics(res.model, opts, data, res.u, star, u_star)
    assert lr.shape == (400, 1, 2)
    dof = N.size - 2
    t_abs = np.sqrt(dof * np.expm1(lr / N.size))  # |t| ~ |t_8|: cdf 2 F_t(x) - 1
    for j in range(2):
        p = stats.kstest(t_abs[:, 0, j], lambda x: 2 * stats.t.cdf(x, dof) - 1).pvalue
        assert p > 1e-3, (j, p)
    # the threshold is the 95 % quantile of those statistics: 95 % of them lie below it
    below = np.mean(lr[:, 0, :] <= b.threshold[0], axis=0)
    np.testing.assert_allclose(below, 0.95, atol=0.01)


def test_linear_law_interval_is_the_textbook_one_at_its_threshold(linear_case):
    """The profile machinery with the calibrated threshold gives slope +- t_thr se (1e-8)."""
    curves, res = linear_case
    b = fit.bootstrap(jax.random.key(3), curves, res, kind="residual", m=200, interval="calibrated")
    assert b.threshold is not None
    low, high = _slope_interval(curves, b.threshold[0, 1])
    np.testing.assert_allclose([b.ci_low[0, 1], b.ci_high[0, 1]], [low, high], rtol=1e-8)
    # and the threshold is near the exact F one (Monte Carlo error at m = 200, residual scheme)
    f_thr = lr_threshold("log", 0.95, N.size, 2)
    assert 0.6 * f_thr < b.threshold[0, 1] < 1.6 * f_thr


def _dense_reference(log_y, log_c, beta, n_b):
    """LR statistics (3,) of ln c, beta, n_b held at the given values for one curve, by NumPy
    least squares on a dense ln n_b grid (step 0.001, both limits): ln y = ln c + beta h, with
    h = (ln n + ln(n + n_b) - ln(1 + n_b)) / 2."""
    v = np.linspace(-15.0, 25.0, 40001)[:, None]
    x = np.log(N)
    h = np.concatenate([[x], (x + np.log(N + np.exp(v)) - np.log1p(np.exp(v))) / 2, [x / 2]])
    hc, yc = h - h.mean(axis=1, keepdims=True), log_y - log_y.mean()
    full = yc @ yc - (hc @ yc) ** 2 / np.sum(hc * hc, axis=1)
    z = log_y - log_c
    held_c = z @ z - (h @ z) ** 2 / np.sum(h * h, axis=1)
    r = log_y - beta * h
    held_beta = np.sum((r - r.mean(axis=1, keepdims=True)) ** 2, axis=1)
    hb = (x + np.log(N + n_b) - np.log1p(n_b)) / 2
    hbc = hb - hb.mean()
    held_nb = yc @ yc - (hbc @ yc) ** 2 / (hbc @ hbc)
    return N.size * np.log(np.array([held_c.min(), held_beta.min(), held_nb]) / full.min())


@pytest.mark.slow
def test_closed_form_statistics_match_a_dense_numpy_reference():
    """alpha(n) law, 8 residual resamples: the closed-form statistics (grid over ln n_b, polished
    by golden section) equal brute-force least squares on a 40001-point ln n_b grid."""
    rng = np.random.default_rng(7)
    y = 20 * (N * (N + 30) / 31) ** 0.3 * np.exp(0.05 * rng.standard_normal(N.size))
    curves, res = _curve("alpha_n", y)
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    opts = FitOptions()
    star = resample(jax.random.key(2), res.model, opts, data, jnp.asarray(res.u), "residual", 8)
    sol = solve_batch(res.model, opts, star, start_grid(res.model, data))
    closed = lr_statistics(res.model, opts, data, res.u, star, sol.u)
    c, beta, n_b = res.estimates[0]
    ref = [_dense_reference(np.log(np.asarray(star.y[s, 0])), np.log(c), beta, n_b)
           for s in range(8)]  # fmt: skip
    assert np.ptp(np.asarray(ref)) > 1.0  # the resamples differ: the check is not vacuous
    np.testing.assert_allclose(closed[:, 0], ref, atol=5e-4)


@pytest.mark.slow
def test_refit_path_matches_the_closed_form_on_a_linear_law(linear_case):
    """Other losses take L-BFGS profile refits: a Huber loss whose width no residual reaches is
    the log loss, so on the power law (one optimum) both paths give the same statistics."""
    curves, res = linear_case
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    opts = FitOptions()
    star = resample(jax.random.key(4), res.model, opts, data, jnp.asarray(res.u), "residual", 6)
    sol = solve_batch(res.model, opts, star, start_grid(res.model, data))
    closed = lr_statistics(res.model, opts, data, res.u, star, sol.u)
    wide = replace(opts, loss="huber", huber_delta=1e3)
    refit = lr_statistics(res.model, wide, data, res.u, star, sol.u)
    np.testing.assert_allclose(refit, closed, rtol=1e-4, atol=1e-6)


def test_calibrated_coverage_of_a_linear_law():
    """Fast sibling of the slow study below: the power law (exact F pivot), 150 curves x 100
    parametric resamples: coverage of both parameters within 4 Monte Carlo SEs of 95 %."""
    r = coverage(jax.random.key(11), "powerlaw", [30.0, -0.2], PAPER_N, 0.05, reps=150,
                 methods=("boot_parametric_cal",), boot_m=100)  # fmt: skip
    assert np.all(np.abs(r.cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 150)), r.cover


@pytest.mark.slow
def test_calibrated_coverage_on_the_paper_design():
    """alpha(n) law, paper's ten n, a truth inside the design and paper-sized noise: 300 curves x
    200 residual resamples cover c, beta, n_b within 4 Monte Carlo SEs (0.05) of 95 %."""
    r = coverage(jax.random.key(12), "alpha_n", [25.0, 0.4, 50.0], PAPER_N, 0.08, reps=300,
                 methods=("boot_residual_cal",), boot_m=200)  # fmt: skip
    assert np.all(np.abs(r.cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 300)), r.cover


def test_fit_cli_prints_calibrated_intervals_with_their_coverage(tmp_path, capsys):
    """The CLI path (the power law: the alpha(n) law costs 7 s here and is checked by the slow
    tests above); thresholds finite and near the F one."""
    rng = np.random.default_rng(1)
    y = 30.0 * N**0.2 * np.exp(0.03 * rng.standard_normal(N.size))
    src = tmp_path / "s.csv"
    src.write_text("n,score\n" + "".join(f"{n:g},{s:.6f}\n" for n, s in zip(N, y, strict=True)))
    out = tmp_path / "o"
    argv = ["fit", str(src), "--model", "powerlaw", "--bootstrap", "50", "--out", str(out)]
    assert main([*argv, "--bootstrap-interval", "calibrated"]) == 0
    printed = capsys.readouterr().out
    assert "calibrated intervals are in fits.csv (*_boot_*), not the default: on ten" in printed
    boot = json.loads((out / "fits.json").read_text())["bootstrap"]
    assert boot["interval"] == "calibrated" and len(boot["threshold"][0]) == 2
    f_thr = lr_threshold("log", 0.95, N.size, 2)
    assert all(0.3 * f_thr < t < 3 * f_thr for t in boot["threshold"][0]), boot["threshold"]
