"""structures: the O(n) expected-cosine psi's of stationary structures against the dense path."""

import numpy as np
import pytest

from tokenscale_sim.structures import terms as S
from tokenscale_sim.theory import closed_forms as theory

STATIONARY = {
    "exchangeable": S.exchangeable(0.5, 0.3, psi_bb=0.4, psi_ab=0.1),
    "decaying": S.decaying(3.0, coupling=0.4),
    "powerlaw": S.decaying(0.8, coupling=-0.2, kernel="powerlaw"),
    "sum-with-shared": 0.7 * S.decaying(3.0, 0.3) + S.shared(0.3),
    "three-kernels": S.Structure(
        (
            S.Term(((0.3, 0.1), (0.1, 0.2)), S.Exponential(5.0)),
            S.Term(((0.4, 0.2), (0.2, 0.5)), S.PowerLaw(1.5)),
            S.Term(((0.3, -0.1), (-0.1, 0.3)), S.Identity()),
        ),
        "three-kernels",
    ),
}


@pytest.mark.parametrize("name", list(STATIONARY))
@pytest.mark.parametrize("d", [1, 16, 256])
def test_stationary_path_equals_the_dense_path(name, d):
    s = STATIONARY[name]
    assert s.stationary
    fast = s.expected_cosine_psi(40, d)
    dense = S._dense_expected_cosine_psi(s.sigma(40), d)
    for key, a, b in zip(fast._fields, fast, dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=key)
        assert np.isnan(a[0]) == np.isnan(b[0])  # pairwise psi's NaN at n = 1 in both


def test_non_stationary_structures_keep_the_dense_path():
    assert not S.patch_grid(2.0, 0.3).stationary
    assert not S.dense(np.eye(6)).stationary
    assert not S.Structure(()).stationary
    s = S.patch_grid(2.0, 0.3)
    fast = s.expected_cosine_psi(20, 8)
    dense = S._dense_expected_cosine_psi(s.sigma(20), 8)
    for a, b in zip(fast, dense, strict=True):
        np.testing.assert_array_equal(a, b)


def test_stationary_path_runs_at_n_max_100_000():
    s = STATIONARY["decaying"]
    psi = s.expected_cosine_psi(100_000, 64)  # the dense 2n x 2n Sigma would need 160 GB
    assert all(a.shape == (100_000,) for a in psi)
    assert all(np.all(np.isfinite(a[1:])) for a in psi)
    e = float(theory.expected_cosine(0.4, 64.0))
    np.testing.assert_allclose(psi.psi_eq, e, rtol=1e-12)  # the lag-0 cross correlation
    exact = s.psi(100_000)  # cosines are biased towards 0, slightly
    assert np.all(np.abs(psi.psi_aa[1:]) <= np.abs(exact.psi_aa[1:]) + 1e-15)
    np.testing.assert_allclose(psi.psi_aa[1:], exact.psi_aa[1:], rtol=0.02)
