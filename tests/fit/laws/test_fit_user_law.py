"""A law defined outside the package (not registered) through fit, predict, bootstrap, profiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.fit import (
    FitOptions,
    IntervalMethod,
    Model,
    bootstrap,
    curves_from_arrays,
    fit_curves,
    fit_tied,
    predict,
    profile_interval,
)

# saturating law y = a (n / (n + k))^b: linear in (ln a, b), nonlinear in ln k


def _basis(v, n, aux):
    del aux
    x = jnp.log(n) - jnp.logaddexp(jnp.log(n), v[0])
    return jnp.zeros_like(n), jnp.stack([jnp.ones_like(n), x], axis=-1)


def _natural(u):
    return jnp.stack([jnp.exp(u[0]), u[1], jnp.exp(u[2])])


def _unconstrained(theta):
    return jnp.stack([jnp.log(theta[0]), theta[1], jnp.log(theta[2])])


def _grid(n_min, n_max):
    return np.linspace(np.log(n_min) - 1.0, np.log(n_max) + 1.0, 15)[:, None]


SATURATING = Model(
    "saturating",
    ("a", "b", "k"),
    2,
    1,
    _basis,
    _natural,
    _unconstrained,
    _grid,
    positive=(True, False, True),
)
TRUTH = np.array([50.0, 0.4, 40.0])
N = np.geomspace(1, 1000, 20)
SIGMA = 0.01


def _curves(reps, seed):
    rng = np.random.default_rng(seed)
    log_mean = np.asarray(SATURATING.log_predict(_unconstrained(jnp.asarray(TRUTH)), N))
    return curves_from_arrays(N, np.exp(log_mean + SIGMA * rng.standard_normal((reps, N.size))))


@pytest.fixture(scope="module")
def fitted():
    cs = _curves(40, 11)
    return cs, fit_curves(cs, SATURATING)


def test_fit_recovers_known_parameters(fitted):
    _, res = fitted
    assert res.model is SATURATING and res.converged.all()
    z = (res.estimates - TRUTH) / res.se  # per curve ~ N(0, 1): the mean over 40 has sd 1/sqrt(40)
    assert np.all(np.abs(z.mean(axis=0)) * np.sqrt(len(z)) < 5), z.mean(axis=0)
    assert np.all(np.abs(z) < 5)
    cover = np.mean((res.ci_low <= TRUTH) & (res.ci_high >= TRUTH), axis=0)
    assert res.interval == (IntervalMethod.PROFILE,) * 3
    mc_sd = np.sqrt(0.95 * 0.05 / len(z))
    assert np.all(np.abs(cover - 0.95) < 4 * mc_sd + 1 / len(z)), cover


def test_predict_uses_the_users_law(fitted):
    _, res = fitted
    n_new = np.array([2000.0, 5000.0])
    expect = (
        res.estimates[:, :1] * (n_new / (n_new + res.estimates[:, 2:])) ** res.estimates[:, 1:2]
    )
    np.testing.assert_allclose(predict(res, n_new), expect, rtol=1e-10)


def test_bootstrap_and_profile_interval_on_the_users_law(fitted):
    cs, res = fitted
    boot = bootstrap(jax.random.key(4), cs, res, kind="parametric", m=200, interval="percentile")
    assert boot.params == ("a", "b", "k") and boot.converged.mean() > 0.99
    cover = np.mean((boot.ci_low <= TRUTH) & (boot.ci_high >= TRUTH), axis=0)
    mc_sd = np.sqrt(0.95 * 0.05 / boot.ci_low.shape[0])
    assert np.all(cover > 0.95 - 4 * mc_sd), cover
    # bootstrap SD and delta-method SE estimate the same spread (200 resamples: ~5 % error)
    ratio = np.median(boot.se / res.se, axis=0)
    assert np.all(np.abs(ratio - 1) < 0.25), ratio
    for j, name in enumerate(SATURATING.params):
        pi = profile_interval(cs, res, name)
        np.testing.assert_allclose(pi.low, res.ci_low[:, j], rtol=1e-12)
        assert np.all((pi.low <= res.estimates[:, j]) & (res.estimates[:, j] <= pi.high))


@pytest.mark.slow
def test_wald_option_and_tied_fit_on_the_users_law(fitted):
    cs, res = fitted
    wald = fit_curves(cs, SATURATING, FitOptions(interval="wald"))
    assert wald.interval == (IntervalMethod.WALD,) * 3
    np.testing.assert_allclose(wald.estimates, res.estimates, rtol=1e-8)
    tied = fit_tied(cs, SATURATING, shared=("b", "k"), single_fit=res)
    z = (tied.estimates[0, 1:] - TRUTH[1:]) / tied.se[0, 1:]
    assert tied.converged and np.all(np.abs(z) < 5), z
