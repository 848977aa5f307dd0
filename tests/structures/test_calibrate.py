"""tokenscale calibrate: recovery of known parameters, interval coverage, errors, the CLI."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from tokenscale_sim.montecarlo.sampling import token_sampler
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures import families
from tokenscale_sim.theory import divergence

TRUTH = np.array([0.2, 0.1, 0.4, 6.0, 0.3, 0.5])
N = 32


def _exact_data(theta=TRUTH, n=N) -> cb.PsiData:
    c = families.exact_psi(theta, n)
    return cb.PsiData(np.arange(1, n + 1), np.stack([c.psi_eq, c.psi_aa, c.psi_ab]))


def _simulated(key, pairs: int, d: int) -> cb.PsiData:
    """Per-pair psi curves of ``pairs`` Gaussian branch pairs of the TRUTH structure."""
    sample = token_sampler(families.to_structure(TRUTH), N, d)
    h = jax.vmap(sample)(jax.random.split(key, pairs))
    s = divergence.branch_statistics(h)
    reps = cb.replicate_curves(s.psi_eq, s.psi_aa, s.psi_bb, s.psi_ab)
    return cb.PsiData(np.arange(1, N + 1), cb.nan_mean(reps, axis=0), reps)


def test_recovers_two_parameters_from_exact_curves():
    """Fast sibling of the tests below: length and coupling free, the rest fixed at the truth."""
    fixed: dict[str, float] = dict(zip(families.PARAMS, TRUTH.tolist(), strict=True))
    del fixed["length"], fixed["coupling"]
    cal = cb.calibrate(_exact_data(n=12), n_fit=8, free=("length", "coupling"), fixed=fixed)
    assert cal.converged and cal.interval == "points"
    np.testing.assert_allclose(cal.estimates, TRUTH, rtol=1e-6)
    assert np.isnan(cal.ci_low[0]) and np.all(np.isfinite(cal.ci_low[3:5]))


@pytest.mark.slow
def test_recovers_known_parameters_from_exact_curves():
    cal = cb.calibrate(_exact_data(), n_fit=24)
    assert cal.converged and cal.interval == "points" and cal.boundary == ()
    np.testing.assert_allclose(cal.estimates, TRUTH, rtol=2e-2)
    assert np.all(cal.rmse < 1e-4) and np.all(cal.rmse_beyond < 1e-4)
    np.testing.assert_allclose(cal.structure.v(N), families.to_structure(TRUTH).v(N), rtol=1e-3)


@pytest.mark.slow
def test_recovers_parameters_from_simulated_pairs():
    jax.config.update("jax_enable_x64", True)
    data = _simulated(jax.random.key(0), 40, 256)
    cal = cb.calibrate(data, n_fit=N, bootstrap=100, level=0.99)
    assert cal.interval == "pairs" and cal.bootstrap is not None
    assert cal.bootstrap.shape == (100, 6)
    inside = (cal.ci_low <= TRUTH) & (cal.ci_high >= TRUTH)
    assert inside.all(), (cal.estimates, cal.ci_low, cal.ci_high)
    assert "converged" in cb.fit_line(cal)
    assert json.dumps(cb.summary(cal))  # plain data


@pytest.mark.slow
def test_pair_bootstrap_intervals_cover():
    """90 % pair-bootstrap intervals over 30 simulated measurements: each parameter's coverage
    at least 0.7 (binomial sd at 0.9 and 30 runs: 0.055)."""
    jax.config.update("jax_enable_x64", True)
    hits = []
    for r in range(30):
        data = _simulated(jax.random.key(100 + r), 30, 256)
        cal = cb.calibrate(data, n_fit=N, bootstrap=100, level=0.9, seed=r)
        hits.append((cal.ci_low <= TRUTH) & (cal.ci_high >= TRUTH))
    coverage = np.mean(hits, axis=0)
    assert np.all(coverage >= 0.7), coverage


def test_bad_calibrations():
    data = _exact_data()
    for kwargs, message in [
        ({"free": ("colour",)}, "free must be distinct names"),
        ({"free": ("length", "length")}, "free must be distinct names"),
        ({"free": ()}, "free must be distinct names"),
        ({"free": ("length",), "fixed": {"length": 2.0}}, "both free and fixed"),
        ({"fixed": {}, "free": ("length",), "level": 1.5}, "level must be in"),
        ({"n_fit": 2}, "3 <= n_fit <= N"),
        ({"n_fit": N + 1}, "3 <= n_fit <= N"),
        (
            {"free": ("length",), "fixed": {"shared": 0.8, "image": 0.5}},
            r"shared \+ image \+ weight",
        ),
    ]:
        kwargs.setdefault("n_fit", 10)
        with pytest.raises(ValueError, match=message):
            cb.calibrate(data, **kwargs)
