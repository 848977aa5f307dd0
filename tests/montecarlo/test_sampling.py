"""sampling: every sampler's second moments against the structure's exact Sigma (z-scores)."""

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.montecarlo.kernel_draws import _ar1, _fast_len
from tokenscale_sim.montecarlo.sampling import (
    TokenModel,
    difference_sampler,
    sample_tokens,
    sampler_methods,
    token_sampler,
)
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import expected_squared_divergence
from tokenscale_sim.theory.divergence import branch_statistics


@dataclass(frozen=True)
class SquaredExponential(st.Kernel):
    """exp(-(k/length)^2): stationary, so smooth that its circulant embedding is not PSD."""

    length: float
    stationary = True

    def lags(self, n_max: int) -> np.ndarray:
        return np.exp(-((np.arange(n_max) / self.length) ** 2))

    def dense(self, n: int) -> np.ndarray:
        r = self.lags(n)
        i = np.arange(n)
        return r[np.abs(i[:, None] - i[None, :])] + 1e-9 * np.eye(n)


def random_correlation(n2: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(n2, n2)))[0]
    s = (q * rng.uniform(0.1, 2.0, n2)) @ q.T
    scale = np.sqrt(np.diag(s))
    return s / scale[:, None] / scale[None, :]


STRUCTURES = {
    "exchangeable": st.exchangeable(0.5, 0.3, psi_bb=0.4, psi_ab=0.1),
    "decaying": st.decaying(3.0, coupling=0.4),
    "powerlaw": st.decaying(0.8, coupling=0.2, kernel="powerlaw"),
    "patch-grid": st.patch_grid(2.0, coupling=0.3),
    "sum-with-shared": 0.7 * st.decaying(3.0, 0.3) + st.shared(0.3),
    "dense": st.dense(random_correlation(14)),
    "squared-exponential": st.Structure(
        (st.Term(((1.0, 0.2), (0.2, 1.0)), SquaredExponential(20.0)),), "sqexp"
    ),
}
METHODS = {
    "exchangeable": ("factor", "iid"),
    "decaying": ("ar1-scan",),
    "powerlaw": ("circulant-fft",),
    "patch-grid": ("grid-ar1-kronecker",),
    "sum-with-shared": ("ar1-scan", "factor"),
    "dense": ("dense-sigma-factor",),
    "squared-exponential": ("cholesky (circulant embedding not PSD",),
}
N, D, M = 7, 4, 3000


def covariance_z(x: np.ndarray, sigma: np.ndarray) -> float:
    """max |z| of the sample covariance of rows ``x`` (samples, p) against ``sigma`` (p, p).

    For Gaussian x, Var(x_i x_j) = S_ii S_jj + S_ij^2 per sample.
    """
    emp = x.T @ x / x.shape[0]
    var = np.outer(np.diag(sigma), np.diag(sigma)) + sigma**2
    return float(np.max(np.abs(emp - sigma) / np.sqrt(var / x.shape[0])))


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_token_covariance_matches_sigma(name):
    s = STRUCTURES[name]
    methods = sampler_methods(s, N)
    assert all(m.startswith(p) for m, p in zip(methods, METHODS[name], strict=True)), methods
    tokens, difference = token_sampler(s, N, D), difference_sampler(s, N, D)
    both = jax.jit(jax.vmap(lambda k: (tokens(k), difference(k))))  # one compilation
    h, diff = (np.asarray(a) for a in both(jax.random.split(jax.random.key(11), M)))
    x = h.transpose(0, 3, 1, 2).reshape(M * D, 2 * N) * math.sqrt(D)  # feature columns
    assert covariance_z(x, s.sigma(N)) < 5
    sig = s.sigma(N)
    k_diff = sig[:N, :N] + sig[N:, N:] - sig[:N, N:] - sig[N:, :N]
    assert covariance_z(diff.transpose(0, 2, 1).reshape(M * D, N) * math.sqrt(D), k_diff) < 5


def test_vmap_over_keys_equals_single_draws_and_prefix_property():
    s = STRUCTURES["powerlaw"]
    sample = token_sampler(s, 9, 3)
    keys = jax.random.split(jax.random.key(0), 4)
    batch = jax.vmap(sample)(keys)
    np.testing.assert_allclose(batch[2], sample(keys[2]), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(sample(keys[1]), sample(keys[1]))  # pure in the key
    assert not np.allclose(batch[0], batch[1])


def test_sample_tokens_and_dtype():
    h = sample_tokens(jax.random.key(3), STRUCTURES["decaying"], 5, 6)
    assert h.shape == (2, 5, 6) and h.dtype == jnp.float64


def test_unit_tokens_are_unit_and_satisfy_the_identity():
    h = jax.vmap(token_sampler(STRUCTURES["patch-grid"], 16, 8, "unit"))(
        jax.random.split(jax.random.key(4), 3)
    )
    np.testing.assert_allclose(np.linalg.norm(h, axis=-1), 1.0, rtol=1e-12)
    stats = branch_statistics(h)
    np.testing.assert_allclose(stats.divergence**2, 2 * stats.upsilon, rtol=1e-10)


def test_student_t_tokens_have_unit_mean_square_and_heavy_tails():
    h = np.asarray(
        jax.vmap(token_sampler(STRUCTURES["exchangeable"], 4, 8, TokenModel("student-t", 5.0)))(
            jax.random.split(jax.random.key(5), 4000)
        )
    )
    sq = (h**2).sum(-1).ravel()  # |h_i|^2 = s^2 chi2_8 / 8: mean 1, variance 2.75 (Gaussian 0.25)
    assert abs(sq.mean() - 1) < 5 * sq.std() / math.sqrt(sq.size)
    assert sq.var() > 1.0


def test_expected_squared_divergence_models():
    s = STRUCTURES["decaying"]
    v = s.v(6)
    np.testing.assert_allclose(expected_squared_divergence(s, 6, 16), v)
    nu = 7.0
    q = (nu - 2) / 2 * (math.gamma((nu - 1) / 2) / math.gamma(nu / 2)) ** 2
    n = np.arange(1, 7)
    np.testing.assert_allclose(
        expected_squared_divergence(s, 6, 16, TokenModel("student-t", nu)),
        q * v + 2 * n * (1 - q),
    )
    big_d = expected_squared_divergence(s, 6, 100_000, "unit")  # cosines -> correlations
    np.testing.assert_allclose(big_d, v, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 40])
def test_blocked_ar1_filter_equals_the_recursion(n):
    z = np.random.default_rng(n).normal(size=(n, 3, 2))
    for phi in (0.0, 0.7, 1.0):
        x = np.empty_like(z)
        x[0] = z[0]
        for i in range(1, n):
            x[i] = phi * x[i - 1] + math.sqrt(1 - phi**2) * z[i]
        np.testing.assert_allclose(_ar1(jnp.asarray(z), phi), x, rtol=1e-12, atol=1e-12)


def test_fast_len():
    assert [_fast_len(x) for x in (0, 1, 2, 7, 11, 13, 17, 97, 1000)] == [
        1, 1, 2, 8, 12, 15, 18, 100, 1000,
    ]  # fmt: skip


def test_one_token_and_width_one():
    for s in (STRUCTURES["patch-grid"], STRUCTURES["dense"]):
        assert token_sampler(s, 1, 1)(jax.random.key(0)).shape == (2, 1, 1)


def test_float32_smoke(float32):
    for name, tokens in (("powerlaw", "gaussian"), ("dense", "unit")):
        s = STRUCTURES[name]
        h = jax.vmap(token_sampler(s, 7, 5, tokens))(jax.random.split(jax.random.key(1), 8))
        assert h.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(h)))
        x = difference_sampler(s, 7, 5)(jax.random.key(2))
        assert x.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(x)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: token_sampler(STRUCTURES["decaying"], 0, 4), r"token_sampler: n_max must be"),
        (lambda: token_sampler(STRUCTURES["decaying"], 4, 0), r"token_sampler: d must be"),
        (lambda: token_sampler(STRUCTURES["decaying"], True, 4), r"n_max must be an integer"),
        (lambda: token_sampler(STRUCTURES["decaying"], 4.0, 4), r"n_max must be an integer"),
        (lambda: difference_sampler(STRUCTURES["dense"], 8, 4), r"n_max must be <= 7"),
        (lambda: sampler_methods(STRUCTURES["decaying"], -1), r"sampler_methods: n_max"),
        (lambda: TokenModel("cauchy"), r"TokenModel: kind must be one of"),
        (lambda: TokenModel("student-t", 2.0), r"TokenModel: df must be finite and > 2"),
        (lambda: token_sampler(STRUCTURES["decaying"], 4, 4, "x"), r"TokenModel: kind"),
        (
            lambda: expected_squared_divergence(STRUCTURES["decaying"], 4, 0),
            r"expected_squared_divergence: d must be",
        ),
        (
            lambda: token_sampler(
                st.Structure((st.Term(((0.5, 0.0), (0.0, 0.5)), st.Identity()),)), 4, 4
            ),
            r"diagonal of Sigma",
        ),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_separable_structure_uses_the_dense_factor():
    # a sum of terms whose C is indefinite, but whose Sigma is PSD: drawn from one factor
    s = st.Structure(
        (
            st.Term(((1.0, 0.6), (0.6, 0.2)), st.Identity()),
            st.Term(((0.0, 0.0), (0.0, 0.8)), st.Identity()),
        ),
        "indefinite-terms",
    )
    assert not s.separable_psd
    assert sampler_methods(s, 3) == ("dense-sigma-factor",)
    keys = jax.random.split(jax.random.key(7), 2000)
    h = np.asarray(jax.vmap(token_sampler(s, 3, 2))(keys))
    x = h.transpose(0, 3, 1, 2).reshape(-1, 6) * math.sqrt(2)
    assert covariance_z(x, s.sigma(3)) < 5
