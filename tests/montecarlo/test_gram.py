"""montecarlo.gram: the width-free gram recursion against exact oracles and the direct samplers.

Every comparison is a z-score at a fixed key (|z| < 5 at every n): Gaussian D(n) and D(n)^2
against the exact chi law, unit-norm and Student-t tokens (no closed form for D) against the
direct sampler of the same structure (two-sample z on means and variances of every statistic),
E[D^2] against its exact value and the psi's against the exact expected cosines.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tokenscale_sim.montecarlo.gram import (
    GRAM_CROSSOVER,
    GRAM_CROSSOVER_DIFFERENCE,
    _chi2,
    gram_state_dim,
    gram_statistics_sampler,
    prefer_gram,
)
from tokenscale_sim.montecarlo.sampling import token_sampler
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import TokenModel, expected_squared_divergence
from tokenscale_sim.theory import closed_forms as theory
from tokenscale_sim.theory.divergence import branch_statistics

SERVED = {
    "exchangeable": st.exchangeable(0.5, 0.3, psi_bb=0.4, psi_ab=0.1),
    "decaying": st.decaying(3.0, coupling=0.4),
    "sum-with-shared": 0.7 * st.decaying(3.0, 0.3) + st.shared(0.3),
    "mixed": 0.5 * st.decaying(2.0, 0.2)
    + 0.3 * st.exchangeable(0.5, 0.3, psi_ab=0.1)
    + st.shared(0.2),
}
NOT_SERVED = {
    "powerlaw": st.decaying(0.8, coupling=0.2, kernel="powerlaw"),
    "patch-grid": st.patch_grid(2.0, coupling=0.3),
    "dense": st.dense(np.eye(8)),
}
N = 16


def draw(
    structure, n_max, d, m, *, key=0, tokens: TokenModel | str = "gaussian", divergence_only=False
):
    one = gram_statistics_sampler(structure, n_max, d, tokens, divergence_only)
    keys = jax.random.split(jax.random.key(key), m)
    return np.asarray(jax.jit(jax.vmap(one))(keys))


def direct(structure, n_max, d, m, *, key=0, tokens: TokenModel | str = "gaussian"):
    sample = token_sampler(structure, n_max, d, tokens)

    def one(k):
        s = branch_statistics(sample(k))
        return jnp.stack(
            [s.divergence, s.divergence**2, s.psi_eq, s.psi_aa, s.psi_bb, s.psi_ab, s.upsilon]
        )

    keys = jax.random.split(jax.random.key(key), m)
    return np.asarray(jax.jit(jax.vmap(one))(keys))


def two_sample_z(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z of the differences of means and of variances of samples x, y (axis 0)."""
    z_mean = (x.mean(0) - y.mean(0)) / np.sqrt(x.var(0) / len(x) + y.var(0) / len(y))
    cx, cy = (x - x.mean(0)) ** 2, (y - y.mean(0)) ** 2
    z_var = (cx.mean(0) - cy.mean(0)) / np.sqrt(cx.var(0) / len(x) + cy.var(0) / len(y))
    return z_mean, z_var


@pytest.mark.slow
@pytest.mark.parametrize("divergence_only", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3, 16, 4096])
@pytest.mark.parametrize("name", sorted(SERVED))
def test_gaussian_divergence_matches_exact_chi_law(name, d, divergence_only):
    structure, m = SERVED[name], 2000
    x = draw(structure, N, d, m, key=d, divergence_only=divergence_only)
    assert x.shape == (m, 2 if divergence_only else 7, N)
    v = structure.v(N)
    mean, sd = structure.gaussian_mean_divergence(N, d), theory.gaussian_divergence_std(v, d)
    z = (x[:, 0].mean(0) - mean) / (np.asarray(sd) / math.sqrt(m))
    z2 = (x[:, 1].mean(0) - v) / (v * math.sqrt(2 / d) / math.sqrt(m))  # D^2 = v chi2_d / d
    assert np.abs(z).max() < 5 and np.abs(z2).max() < 5, (z, z2)
    np.testing.assert_allclose(x[:, 1], x[:, 0] ** 2, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("tokens", ["gaussian", "unit", TokenModel("student-t", 8.0)])
@pytest.mark.parametrize("name", sorted(SERVED))
def test_against_direct_sampler_and_exact_moments(name, tokens):
    """Same law as branch_statistics(token_sampler(...)) for every statistic and n (d = 5 < k
    for most of these structures, so the rank-deficient span is exercised too)."""
    structure, d, n, m = SERVED[name], 5, 10, 4000
    tokens = TokenModel(tokens) if isinstance(tokens, str) else tokens
    gram = draw(structure, n, d, m, key=1, tokens=tokens)
    ref = direct(structure, n, d, m, key=2, tokens=tokens)
    z_mean, z_var = two_sample_z(gram, ref)
    finite = np.isfinite(z_mean)
    assert finite[:, 1:].all() and finite[[0, 1, 2, 6], 0].all()  # pairwise psi NaN at n = 1
    assert np.isnan(gram[:, 3:6, 0]).all()
    assert np.nanmax(np.abs(z_mean)) < 5 and np.nanmax(np.abs(z_var)) < 5, (z_mean, z_var)
    # E[D^2] of the token model and the exact expected cosines
    exact_sq = expected_squared_divergence(structure, n, d, tokens)
    z_sq = (gram[:, 1].mean(0) - exact_sq) / (gram[:, 1].std(0) / math.sqrt(m))
    psi = structure.expected_cosine_psi(n, d)
    for row, exact in zip(
        (2, 3, 4, 5), (psi.psi_eq, psi.psi_aa, psi.psi_bb, psi.psi_ab), strict=True
    ):
        z_psi = (gram[:, row].mean(0) - exact) / (gram[:, row].std(0) / math.sqrt(m))
        assert np.nanmax(np.abs(z_psi)) < 5, (row, z_psi)
    assert np.abs(z_sq).max() < 5, z_sq


@pytest.mark.slow
@pytest.mark.parametrize("tokens", ["unit", TokenModel("student-t", 8.0)])
def test_divergence_only_matches_full_statistics(tokens):
    structure, d, n, m = SERVED["mixed"], 3, 12, 4000
    full = draw(structure, n, d, m, key=3, tokens=tokens)[:, :2]
    fast = draw(structure, n, d, m, key=4, tokens=tokens, divergence_only=True)
    z_mean, z_var = two_sample_z(full, fast)
    assert np.abs(z_mean).max() < 5 and np.abs(z_var).max() < 5, (z_mean, z_var)
    exact_sq = expected_squared_divergence(structure, n, d, tokens)
    z_sq = (fast[:, 1].mean(0) - exact_sq) / (fast[:, 1].std(0) / math.sqrt(m))
    assert np.abs(z_sq).max() < 5, z_sq


@pytest.mark.parametrize("d", [2, pytest.param(64, marks=pytest.mark.slow)])  # 2: fast sibling
def test_unit_tokens_satisfy_the_identity_per_sample(d):
    """Unit tokens: D(n)^2 = 2 Upsilon-hat(n) in every sample (only rounding in between)."""
    x = draw(SERVED["mixed"], 20, d, 16, key=5, tokens="unit")
    np.testing.assert_allclose(x[:, 1], 2 * x[:, 6], rtol=1e-9, atol=1e-9)
    assert np.all(np.abs(x[:, 2:6, 1:]) <= 1 + 1e-12)  # cosine averages


def test_layout_single_position_and_jit_vmap():
    x = draw(SERVED["exchangeable"], 1, 7, 3)
    assert x.shape == (3, 7, 1) and np.isnan(x[:, 3:6]).all()
    np.testing.assert_allclose(x[:, 6], 1 - x[:, 2])  # Upsilon(1) = 1 - psi_eq(1)
    one = gram_statistics_sampler(SERVED["decaying"], 6, 9, divergence_only=True)
    key = jax.random.key(8)
    np.testing.assert_allclose(jax.jit(one)(key), one(key), rtol=1e-12)
    assert one(key).shape == (2, 6)


def test_float32(float32):
    x = draw(SERVED["sum-with-shared"], 64, 4096, 32, tokens=TokenModel("student-t", 5.0))
    assert x.dtype == np.float32 and np.isfinite(x[:, :3]).all() and np.isfinite(x[:, :, 1:]).all()
    v = SERVED["sum-with-shared"].v(64)
    assert np.all(np.abs(np.log(x[:, 1].mean(0) / v)) < 1.0)  # finite, sane scale


def test_state_dimension_and_what_is_served():
    exch, dec = SERVED["exchangeable"], SERVED["decaying"]
    assert gram_state_dim(exch, 8) == 5  # two Ones streams + S, S^A, S^B
    assert gram_state_dim(exch, 8, "unit") == 4  # S = S^A - S^B is not carried
    assert gram_state_dim(exch, 8, divergence_only=True) == 2  # difference stream + S
    assert gram_state_dim(exch, 8, "unit", divergence_only=True) == 3
    assert gram_state_dim(dec, 8) == 5 and gram_state_dim(dec, 1) == 3  # n = 1: no state
    assert gram_state_dim(st.shared(1.0), 8, divergence_only=True) == 1  # D = 0: S alone
    assert gram_state_dim(SERVED["mixed"], 8) == 2 + 2 + 3  # Exp: 2 streams, Ones: 2 (merged)
    for structure in NOT_SERVED.values():
        assert gram_state_dim(structure, 8) is None
        assert not prefer_gram(structure, 8, 10**6)
    with pytest.raises(ValueError, match="gram_statistics_sampler: structure must be separable"):
        gram_statistics_sampler(NOT_SERVED["powerlaw"], 8, 16)
    with pytest.raises(ValueError, match="gram_statistics_sampler: d must be an integer >= 1"):
        gram_statistics_sampler(dec, 8, 0)


def test_prefer_gram_rule():
    dec = SERVED["decaying"]
    for tokens, divergence_only, c, entries in (
        ("gaussian", False, GRAM_CROSSOVER, 2),
        ("gaussian", True, GRAM_CROSSOVER_DIFFERENCE, 1),
        ("unit", True, GRAM_CROSSOVER, 2),
    ):
        k = gram_state_dim(dec, 1024, tokens, divergence_only)
        assert k is not None
        edge = math.ceil(c * k * k / entries)
        assert prefer_gram(dec, 1024, edge, tokens, divergence_only)
        assert edge == 1 or not prefer_gram(dec, 1024, edge - 1, tokens, divergence_only)
    wide = st.Structure(
        tuple(st.Term(((0.25, 0.1), (0.1, 0.25)), st.Exponential(1.0 + i)) for i in range(4))
    )  # k = 8 + 3: the direct sampler wins at small d
    assert not prefer_gram(wide, 64, 16) and prefer_gram(wide, 64, 64)


def test_chi_square_variates_have_the_exact_law():
    dof = np.array([1, 2, 3, 9, 4093])
    x = np.asarray(_chi2(jax.random.key(3), dof, (20_000,), jnp.float64))
    pvalues = [stats.kstest(x[:, j], stats.chi2(nu).cdf).pvalue for j, nu in enumerate(dof)]
    assert min(pvalues) > 1e-4, pvalues


@pytest.mark.slow
def test_several_blocks_of_positions():
    """n_max beyond one block of random numbers (and not a multiple of it) stays exact."""
    structure, n, d, m = SERVED["sum-with-shared"], 300, 16, 600
    x = draw(structure, n, d, m, key=9)
    v = structure.v(n)
    sd = np.asarray(theory.gaussian_divergence_std(v, d))
    z = (x[:, 0].mean(0) - structure.gaussian_mean_divergence(n, d)) / (sd / math.sqrt(m))
    assert x.shape == (m, 7, n) and np.abs(z).max() < 5, z
