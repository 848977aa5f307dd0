"""Closed forms against independent NumPy/SciPy references (float64, 1e-10)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from tokenscale_sim.theory import closed_forms as theory

N = np.arange(1.0, 200.0)


def ref_upsilon(n, e, aabb, ab):
    return n * (1 - e) + n * (n - 1) * (aabb - ab)


def ref_alpha(n, beta, n_b):
    # S(n)/S(1) = (Upsilon(n)/Upsilon(1))^(beta/2), Upsilon ~ n (n + n_b); alpha = -ln(S/c)/ln n
    return -(beta / 2) * np.log(n * (n + n_b) / (1 + n_b)) / np.log(n)


def ref_gaussian_mean(v, d):
    return (
        np.sqrt(v) * np.sqrt(2 / d) * np.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    )


@pytest.mark.parametrize("e,aabb,ab", [(0.5, 0.3, 0.2), (0.1, 0.05, 0.05), (-0.2, 0.6, 0.1)])
def test_upsilon_bound_and_nb(e, aabb, ab):
    u = np.asarray(theory.upsilon(N, e, aabb, ab))
    np.testing.assert_allclose(u, ref_upsilon(N, e, aabb, ab), rtol=1e-12)
    np.testing.assert_allclose(theory.divergence_bound(u), np.sqrt(2 * u), rtol=1e-12)
    delta = aabb - ab
    if delta > 0:
        n_b = float(theory.transition_point(e, delta))
        np.testing.assert_allclose(theory.upsilon_from_nb(N, delta, n_b), u, rtol=1e-10)
        # literal convention: the n where n(n-1) delta == n (1 - e)
        lit = float(theory.transition_point(e, delta, "literal"))
        assert lit * (lit - 1) * delta == pytest.approx(lit * (1 - e), rel=1e-12)
        assert lit - n_b == pytest.approx(2.0)
    else:
        assert np.isinf(theory.transition_point(e, delta))


def test_upsilon_ignores_undefined_pairwise_psi_at_n1():
    u = theory.upsilon(
        jnp.array([1.0, 2.0]), 0.5, jnp.array([jnp.nan, 0.3]), jnp.array([jnp.nan, 0.1])
    )
    np.testing.assert_allclose(u, [0.5, 1.0 + 2 * 0.2])


@pytest.mark.parametrize("n_b", [0.0, 0.5, 2.0, 20.0, 1e4])
@pytest.mark.parametrize("beta", [0.7, 1.0, 2.5])
def test_alpha_and_log_score(n_b, beta):
    n = N[1:]
    np.testing.assert_allclose(theory.alpha(n, beta, n_b), ref_alpha(n, beta, n_b), rtol=1e-10)
    ls = theory.log_score(n, 0.3, beta, n_b)
    np.testing.assert_allclose(ls, 0.3 - ref_alpha(n, beta, n_b) * np.log(n), rtol=1e-10)
    # n -> 1 limit, and continuity there
    lim = -beta / 2 - beta / (2 * (1 + n_b))
    assert float(theory.alpha(1.0, beta, n_b)) == pytest.approx(lim, rel=1e-12)
    assert float(theory.alpha(1.0 + 1e-7, beta, n_b)) == pytest.approx(lim, rel=1e-6)
    assert float(theory.alpha(1.0 + 2e-6, beta, n_b)) == pytest.approx(
        ref_alpha(1.0 + 2e-6, beta, n_b), rel=1e-6
    )


def test_alpha_limits_and_check_values():
    assert float(theory.alpha(50.0, 1.3, jnp.inf)) == pytest.approx(-0.65)
    assert float(theory.alpha(1.0, 1.3, jnp.inf)) == pytest.approx(-0.65)
    assert float(theory.log_score(9.0, 0.0, 1.0, jnp.inf)) == pytest.approx(0.5 * np.log(9))
    assert float(theory.log_score(9.0, 0.0, 1.0, 0.0)) == pytest.approx(np.log(9))
    # THEORY.md check values, read off the authors' figure (+-0.002)
    for n_b, ns, expect in [
        (2, [2.46, 8.82, 21.53, 49.5], [-0.7207, -0.7948, -0.8355, -0.864]),
        (20, [4.58, 21.53, 38.48], [-0.5521, -0.6116, -0.6401]),
    ]:
        np.testing.assert_allclose(theory.alpha(np.array(ns), 1.0, n_b), expect, atol=0.002)


def test_alpha_from_upsilon_matches_closed_form():
    u = theory.upsilon(N, 0.5, 0.3, 0.25)
    n_b = float(theory.transition_point(0.5, 0.05))
    a = np.asarray(theory.alpha_from_upsilon(N, u, 1.4))
    assert np.isnan(a[0])
    np.testing.assert_allclose(a[1:], theory.alpha(N[1:], 1.4, n_b), rtol=1e-10)


def test_slope_and_regimes():
    n_b = 12.0
    # the slope of sqrt(Upsilon) is d ln sqrt(delta n (n + n_b)) / d ln n
    h = 1e-6
    num = (
        np.log(np.sqrt(N * (1 + h) * (N * (1 + h) + n_b))) - np.log(np.sqrt(N * (N + n_b)))
    ) / np.log1p(h)
    np.testing.assert_allclose(theory.sqrt_upsilon_slope(N, n_b), num, rtol=1e-5)
    assert float(theory.sqrt_upsilon_slope(n_b, n_b)) == 0.75
    r = np.asarray(theory.regime(np.array([1.0, 3.9, 4.1, 12, 35.9, 36.1]), n_b))
    assert r.tolist() == [0, 0, 1, 1, 1, 2]
    assert np.all(np.asarray(theory.regime(N, jnp.inf)) == 0)
    assert float(theory.rho(6.0, 12.0)) == 0.5


@pytest.mark.parametrize("d", [1, 2, 7, 64, 256, 1000])
def test_gaussian_mean_and_std(d):
    v = np.array([0.0, 0.5, 3.0, 1e4])
    m = np.asarray(theory.gaussian_mean_divergence(v, d))
    np.testing.assert_allclose(m, ref_gaussian_mean(v, d), rtol=1e-10)
    # chi_d: variance of D = v/d * (d - E[chi]^2)
    s = np.asarray(theory.gaussian_divergence_std(v, d))
    np.testing.assert_allclose(s**2 + m**2, v, rtol=1e-10, atol=1e-12)


def test_gaussian_mean_stable_for_huge_d():
    d = np.array([1e3, 1e4, 1e5, 1e6])
    ratio = np.asarray(theory.gaussian_mean_divergence(1.0, d))
    # asymptotic expansion of E[chi_d]/sqrt(d): 1 - 1/(4d) + 1/(32 d^2) + 5/(128 d^3)
    np.testing.assert_allclose(
        ratio, 1 - 1 / (4 * d) + 1 / (32 * d**2) + 5 / (128 * d**3), rtol=1e-13
    )
    assert np.all(np.isfinite(ratio))


@pytest.mark.parametrize("d", [1, 3, 8, 64, 300])
def test_expected_cosine_against_scipy(d):
    r = np.array([-0.95, -0.3, 0.0, 0.2, 0.6, 0.97])
    prefactor = np.exp(
        2 * special.gammaln((d + 1) / 2) - special.gammaln(d / 2) - special.gammaln(d / 2 + 1)
    )
    ref = r * prefactor * special.hyp2f1(0.5, 0.5, d / 2 + 1, r * r)
    ok = np.isfinite(ref)  # scipy's hyp2f1 gives NaN for large c near x = 1
    assert ok.sum() >= 4
    np.testing.assert_allclose(
        np.asarray(theory.expected_cosine(r, d))[ok], ref[ok], rtol=1e-10, atol=1e-14
    )
    assert float(theory.expected_cosine(1.0, d)) == 1.0
    assert float(theory.expected_cosine(-1.0, d)) == -1.0


def test_curves_flags_negative_upsilon_instead_of_nan():
    c = theory.curves(jnp.arange(1.0, 10.0), 0.5, 0.1, 0.3)  # delta = -0.2: Upsilon < 0 from n = 4
    assert np.asarray(c.valid).tolist() == [True] * 3 + [False] * 6
    assert np.all(np.isfinite(c.bound)) and np.all(np.isfinite(c.gaussian_mean))
    with pytest.raises(ValueError, match=r"check_upsilon: delta .* use n_max <= 3"):
        theory.check_upsilon(10, 0.5, 0.1, 0.3)
    with pytest.raises(ValueError, match="psi_eq must be < 1"):
        theory.check_upsilon(10, 1.0, 0.1, 0.1)
    theory.check_upsilon(3, 0.5, 0.1, 0.3)


def test_bad_convention():
    with pytest.raises(ValueError, match="transition_point: convention must be one of"):
        theory.transition_point(0.5, 0.1, "other")


def test_jit_vmap_grad():
    betas = jnp.array([0.5, 1.0, 2.0])
    n_bs = jnp.array([1.0, 5.0, 50.0])
    out = jax.jit(jax.vmap(lambda b, nb: theory.alpha(jnp.arange(1.0, 10.0), b, nb)))(betas, n_bs)
    assert out.shape == (3, 9)
    g = jax.grad(lambda nb: theory.log_score(30.0, 0.0, 1.0, nb))(5.0)
    assert g == pytest.approx(0.5 * (1 / 35 - 1 / 6))
    ga = jax.grad(lambda nb: theory.alpha(1.0, 1.0, nb))(3.0)
    assert ga == pytest.approx(0.5 / 16)  # d/dn_b of -1/2 - 1/(2 (1 + n_b))
    gd = jax.grad(lambda v: theory.gaussian_mean_divergence(v, 64))(4.0)
    assert np.isfinite(gd)
    assert np.isfinite(jax.grad(theory.expected_cosine)(0.3, 16.0))


def test_float32_smoke(float32):
    n = jnp.arange(1, 100, dtype=jnp.float32)
    for out in (
        theory.alpha(n, 1.0, 4.0),
        theory.gaussian_mean_divergence(n, 256),
        theory.expected_cosine(jnp.float32(0.4), 32),
        theory.curves(n, 0.5, 0.3, 0.2).bound,
    ):
        assert out.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(out)))
