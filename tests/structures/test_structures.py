"""Structures and kernels: exact v_n and psi(n) against dense matrices; validation errors."""

import numpy as np
import pytest
from scipy import special

from tokenscale_sim.structures import terms as S
from tokenscale_sim.theory import closed_forms as theory

N = 37


def dense_reference(sig):
    """v_n and psi(n) of a dense (2n, 2n) matrix by explicit sub-matrix sums (O(n^3), small n)."""
    n = sig.shape[0] // 2
    aa, bb, ab, ba = sig[:n, :n], sig[n:, n:], sig[:n, n:], sig[n:, :n]
    out = {k: [] for k in ("v", "psi_eq", "psi_aa", "psi_bb", "psi_ab")}
    for m in range(1, n + 1):
        off = ~np.eye(m, dtype=bool)
        out["v"].append((aa[:m, :m] + bb[:m, :m] - ab[:m, :m] - ba[:m, :m]).sum())
        out["psi_eq"].append(np.mean(np.diag(ab[:m, :m])))
        out["psi_aa"].append(aa[:m, :m][off].mean() if m > 1 else np.nan)
        out["psi_bb"].append(bb[:m, :m][off].mean() if m > 1 else np.nan)
        out["psi_ab"].append(((ab[:m, :m] + ba[:m, :m]) / 2)[off].mean() if m > 1 else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def build_dense(kernel_fn, c, n):
    """Independent dense Sigma: C (x) K with K from an explicit kernel function of positions."""
    k = np.array([[kernel_fn(i, j) for j in range(n)] for i in range(n)], dtype=float)
    return np.kron(np.asarray(c), k)


CASES = {
    "exchangeable": (S.exchangeable(0.5, 0.3, 0.35, 0.2), None),
    "decaying-exp": (
        S.decaying(3.0, 0.4),
        build_dense(lambda i, j: np.exp(-abs(i - j) / 3.0), [[1, 0.4], [0.4, 1]], N),
    ),
    "decaying-pow": (
        S.decaying(1.5, 0.2, "powerlaw"),
        build_dense(lambda i, j: (1 + abs(i - j)) ** -1.5, [[1, 0.2], [0.2, 1]], N),
    ),
    "grid": (
        S.patch_grid(2.0, 0.3),
        build_dense(
            lambda i, j: np.exp(-(abs(i // 7 - j // 7) + abs(i % 7 - j % 7)) / 2.0),
            [[1, 0.3], [0.3, 1]],
            N,
        ),
    ),
    "grid-width5": (
        S.patch_grid(1.0, 0.1, width=5),
        build_dense(
            lambda i, j: np.exp(-(abs(i // 5 - j // 5) + abs(i % 5 - j % 5))),
            [[1, 0.1], [0.1, 1]],
            N,
        ),
    ),
    "sum-with-shared": (0.7 * S.decaying(2.0, 0.5) + S.shared(0.3), None),
}


@pytest.mark.parametrize("name", CASES)
def test_exact_v_and_psi_against_dense(name):
    s, independent = CASES[name]
    s.validate(N)
    sig = s.sigma(N)
    if independent is not None:
        np.testing.assert_allclose(sig, independent, atol=1e-14)
    np.testing.assert_allclose(np.diag(sig), 1.0, atol=1e-14)
    assert np.linalg.eigvalsh(sig).min() > -1e-10
    ref = dense_reference(sig)
    np.testing.assert_allclose(s.v(N), ref["v"], rtol=1e-10)
    psi = s.psi(N)
    for key in ("psi_eq", "psi_aa", "psi_bb", "psi_ab"):
        np.testing.assert_allclose(getattr(psi, key), ref[key], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(psi.delta, psi.psi_aabb - psi.psi_ab)
    # v_n == 2 Upsilon(n) with the population psi's
    u = theory.upsilon(np.arange(1.0, N + 1), psi.psi_eq, psi.psi_aabb, psi.psi_ab)
    np.testing.assert_allclose(s.v(N), 2 * np.asarray(u), rtol=1e-10)
    np.testing.assert_allclose(s.upsilon(N), np.asarray(u), rtol=1e-10)


def test_exchangeable_is_constant_psi():
    s = S.exchangeable(0.5, 0.3, psi_ab=0.2)
    p = s.psi(50)
    np.testing.assert_allclose(p.psi_aa[1:], 0.3, rtol=1e-12)
    np.testing.assert_allclose(p.psi_ab[1:], 0.2, rtol=1e-12)
    np.testing.assert_allclose(p.psi_eq, 0.5, rtol=1e-12)
    n = np.arange(1.0, 51)
    np.testing.assert_allclose(s.v(50), 2 * (n * 0.5 + n * (n - 1) * 0.1), rtol=1e-12)


def test_dense_structure_roundtrip_and_mc_free_quantities():
    base = S.patch_grid(2.0, 0.3)
    user = S.dense(base.sigma(25))
    np.testing.assert_allclose(user.v(25), base.v(25), rtol=1e-12)
    for a, b in zip(user.psi(25), base.psi(25), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert user.max_n == 25
    assert not user.separable_psd
    with pytest.raises(ValueError, match=r"Structure.v: n_max must be <= 25"):
        user.v(26)


def test_gaussian_mean_divergence_matches_theory():
    s = S.decaying(3.0, 0.4)
    np.testing.assert_allclose(
        s.gaussian_mean_divergence(20, 64), theory.gaussian_mean_divergence(s.v(20), 64), rtol=1e-12
    )


def test_expected_cosine_psi_against_elementwise_reference():
    s = S.decaying(2.0, 0.5)
    d = 16
    sig = s.sigma(12)
    pre = np.exp(
        2 * special.gammaln((d + 1) / 2) - special.gammaln(d / 2) - special.gammaln(d / 2 + 1)
    )
    mapped = np.where(
        np.abs(sig) >= 1, np.sign(sig), sig * pre * special.hyp2f1(0.5, 0.5, d / 2 + 1, sig**2)
    )
    ref = dense_reference(mapped)
    q = s.expected_cosine_psi(12, d)
    for key in ("psi_eq", "psi_aa", "psi_ab"):
        np.testing.assert_allclose(getattr(q, key), ref[key], rtol=1e-10, atol=1e-14)
    assert np.all(q.psi_eq < s.psi(12).psi_eq)  # cosines shrink towards 0


def test_structured_kernels_scale_without_dense_matrices():
    v = S.patch_grid(5.0, 0.2).v(200_000)
    assert v.shape == (200_000,) and np.all(np.diff(v) > 0)


def test_grid_width_defaults_to_square():
    k = S.Grid2D(2.0)
    assert k.grid_width(16) == 4 and k.grid_width(17) == 5 and k.grid_width(1) == 1


def test_arithmetic_and_registry():
    s = S.from_name("decaying", length=2.0, coupling=0.1)
    mix = 0.5 * s + 0.5 * S.from_name("exchangeable", psi_eq=0.2, psi_aa=0.3, psi_ab=0.1)
    mix.validate(20)
    np.testing.assert_allclose(
        mix.v(20), 0.5 * s.v(20) + 0.5 * S.exchangeable(0.2, 0.3, psi_ab=0.1).v(20)
    )
    assert set(S.STRUCTURES) == {"exchangeable", "decaying", "patch-grid"}


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: S.exchangeable(1.5, 0.3),
            r"exchangeable: psi_eq must be finite and in \[-1.0, 1.0\], got 1.5",
        ),
        (lambda: S.exchangeable(0.5, float("nan")), r"exchangeable: psi_aa must be finite"),
        (lambda: S.exchangeable(0.5, "x"), r"exchangeable: psi_aa must be a real number, got 'x'"),
        (
            lambda: S.exchangeable(0.5, 0.3, psi_ab=0.5),
            r"exchangeable: \[\[psi_aa, psi_ab\].*positive semi-definite",
        ),
        (
            lambda: S.exchangeable(0.9, 0.8, psi_ab=0.0),
            r"exchangeable: \[\[1 - psi_aa.*positive semi-definite",
        ),
        (lambda: S.exchangeable(0.5, -0.1), r"positive semi-definite"),
        (
            lambda: S.decaying(0.0),
            r"Exponential: length must be finite and in \(0.0, inf\], got 0.0",
        ),
        (lambda: S.decaying(float("inf")), r"Exponential: length must be finite"),
        (lambda: S.decaying(2.0, kernel="gauss"), r"decaying: kernel must be one of"),
        (
            lambda: S.decaying(2.0, coupling=1.2),
            r"decaying: coupling must be finite and in \[-1.0, 1.0\]",
        ),
        (lambda: S.decaying(-1.0, kernel="powerlaw"), r"PowerLaw: gamma must be"),
        (lambda: S.patch_grid(2.0, width=0), r"Grid2D: width must be None or an integer >= 1"),
        (lambda: S.shared(1.5), r"shared: weight must be finite and in \[0.0, 1.0\]"),
        (lambda: -1 * S.shared(0.5), r"weight must be finite and in \[0.0, inf\]"),
        (lambda: S.dense(np.ones((3, 3))), r"dense: sigma must be a square \(2n, 2n\) matrix"),
        (lambda: S.dense(np.full((2, 2), np.nan)), r"dense: sigma must be finite"),
        (lambda: S.dense(np.array([[1, 0.5], [0.2, 1]])), r"dense: sigma must be symmetric"),
        (lambda: S.dense(2 * np.eye(4)), r"diagonal of Sigma \(A tokens\) must be 1"),
        (
            lambda: S.dense(
                np.array([[1, 0.9, 0.9, 0], [0.9, 1, 0, 0.9], [0.9, 0, 1, 0.9], [0, 0.9, 0.9, 1]])
            ),
            r"Sigma must be positive semi-definite",
        ),
        (
            lambda: (S.decaying(2.0) + S.shared(0.2)).validate(5),
            r"diagonal of Sigma \(A tokens\) must be 1.*got '1.2",
        ),
        (lambda: S.decaying(2.0).v(0), r"Structure.v: n_max must be an integer >= 1, got 0"),
        (
            lambda: S.decaying(2.0).psi(2.5),
            r"Structure.psi: n_max must be an integer >= 1, got 2.5",
        ),
        (lambda: S.decaying(2.0).sigma(True), r"n_max must be an integer >= 1"),
        (
            lambda: S.decaying(2.0).gaussian_mean_divergence(4, 0),
            r"Structure: n_max must be an integer >= 1, got 0",
        ),
        (lambda: S.from_name("nope"), r"from_name: name must be one of"),
        (lambda: S.from_name("decaying", width=3), r"from_name: bad parameters for 'decaying'"),
        (lambda: S.Structure(()).validate(3), r"terms must be at least one term"),
        (lambda: S.DenseKernel(np.ones((2, 3))), r"DenseKernel: matrix must be a square 2-D array"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_separable_psd_check_size_limit():
    big = S.Structure(
        (
            S.Term(((1.0, 0.5), (0.5, 1.0)), S.Identity()),
            S.Term(((0.0, 0.1), (-0.1, 0.0)), S.Ones()),
        )
    )
    assert not big.separable_psd
    with pytest.raises(ValueError, match=r"n_max must be <= 2048 to verify"):
        big.validate(3000)
