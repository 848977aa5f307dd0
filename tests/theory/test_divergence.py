"""divergence: D(n) and psi(n) against an independent O(n^2 d) NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.theory.divergence import (
    BranchStats,
    branch_statistics,
    divergence,
    unit_normalise,
)


def reference(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Direct definitions of THEORY.md, pair by pair (one sample: a, b of shape (n, d))."""
    n = a.shape[0]
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    out = {k: np.full(n, np.nan) for k in ("div", "eq", "aa", "bb", "ab", "ups")}
    for k in range(1, n + 1):
        out["div"][k - 1] = np.linalg.norm((a[:k] - b[:k]).sum(0))
        out["eq"][k - 1] = np.mean([ua[i] @ ub[i] for i in range(k)])
        off = [(i, j) for i in range(k) for j in range(k) if i != j]
        if off:
            out["aa"][k - 1] = np.mean([ua[i] @ ua[j] for i, j in off])
            out["bb"][k - 1] = np.mean([ub[i] @ ub[j] for i, j in off])
            out["ab"][k - 1] = np.mean([(ua[i] @ ub[j] + ub[i] @ ua[j]) / 2 for i, j in off])
        cross = 0.0 if k == 1 else (out["aa"][k - 1] + out["bb"][k - 1]) / 2 - out["ab"][k - 1]
        out["ups"][k - 1] = k * (1 - out["eq"][k - 1]) + k * (k - 1) * cross
    return out


def check_against_reference(stats: BranchStats, a: np.ndarray, b: np.ndarray) -> None:
    ref = reference(a, b)
    pairs = zip(
        ("divergence", "psi_eq", "psi_aa", "psi_bb", "psi_ab", "upsilon"),
        ("div", "eq", "aa", "bb", "ab", "ups"),
        strict=True,
    )
    for field, key in pairs:
        np.testing.assert_allclose(getattr(stats, field), ref[key], rtol=1e-10, atol=1e-12)


def test_matches_pairwise_reference_both_call_forms():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 2, 7, 5)) + 0.3  # batch of 3, correlated through the offset
    joint = branch_statistics(h)
    split = branch_statistics(h[:, 0], h[:, 1])
    for s in (joint, split):
        assert all(x.shape == (3, 7) for x in s)
        for r in range(3):
            check_against_reference(BranchStats(*(x[r] for x in s)), h[r, 0], h[r, 1])
    np.testing.assert_array_equal(divergence(h), joint.divergence)
    np.testing.assert_array_equal(divergence(h[:, 0], h[:, 1]), joint.divergence)


def test_pairwise_undefined_at_one_token_and_upsilon_defined():
    h = np.random.default_rng(1).normal(size=(2, 1, 4))
    s = branch_statistics(h)
    assert np.isnan(s.psi_aa[0]) and np.isnan(s.psi_bb[0]) and np.isnan(s.psi_ab[0])
    assert np.isfinite(s.upsilon[0]) and np.isclose(s.upsilon[0], 1 - s.psi_eq[0])


def test_broadcasting_a_shared_branch():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 6, 3)), rng.normal(size=(6, 3))
    s = branch_statistics(a, b)
    assert s.divergence.shape == (4, 6)
    check_against_reference(BranchStats(*(x[2] for x in s)), a[2], b)


def test_unit_tokens_d_squared_is_twice_upsilon_per_sample():
    h = unit_normalise(jnp.asarray(np.random.default_rng(3).normal(size=(5, 2, 64, 16)) + 0.2))
    s = branch_statistics(h)
    np.testing.assert_allclose(s.divergence**2, 2 * s.upsilon, rtol=1e-10)


def test_raw_divergence_uses_unnormalised_tokens():
    h = np.zeros((2, 2, 3))
    h[0, :, 0] = 2.0
    h[1, :, 1] = 1.0
    s = branch_statistics(h)
    np.testing.assert_allclose(s.divergence, [np.sqrt(5), 2 * np.sqrt(5)])
    np.testing.assert_allclose(s.psi_eq, [0.0, 0.0])
    np.testing.assert_allclose(s.psi_aa[1], 1.0)


def test_jit_and_vmap():
    h = jnp.asarray(np.random.default_rng(4).normal(size=(3, 2, 5, 4)))
    eager = branch_statistics(h)
    jitted = jax.jit(branch_statistics)(h)
    mapped = jax.vmap(branch_statistics)(h)
    for e, j, m in zip(eager, jitted, mapped, strict=True):
        np.testing.assert_allclose(j, e, rtol=1e-12)
        np.testing.assert_allclose(m, e, rtol=1e-12)


def test_float32_smoke(float32):
    h = jnp.asarray(np.random.default_rng(5).normal(size=(2, 8, 4)), dtype=jnp.float32)
    s = branch_statistics(h)
    assert s.divergence.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(s.upsilon)))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((3, 4, 5)),), r"branch_statistics: h must have shape \(\.\.\., 2, n, d\)"),
        ((np.zeros((4, 5)),), r"branch_statistics: h must have shape"),
        ((np.zeros((4, 5)), np.zeros((4, 6))), r"branch_statistics: h_a and h_b must have"),
        ((np.zeros(5), np.zeros(5)), r"branch_statistics: h_a and h_b must have"),
        ((np.zeros((0, 5)), np.zeros((0, 5))), r"branch_statistics: need n >= 1 and d >= 1"),
    ],
)
def test_shape_errors(args, match):
    with pytest.raises(ValueError, match=match):
        branch_statistics(*args)


def test_divergence_shape_error_names_function():
    with pytest.raises(ValueError, match=r"^divergence: h must have shape"):
        divergence(np.zeros((3, 4, 5)))
