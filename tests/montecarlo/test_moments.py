"""Streaming moments merged in any chunking equal NumPy's mean and variance."""

import numpy as np
import pytest

from tokenscale_sim.montecarlo.moments import RunningMoments, block_moments, merge


@pytest.mark.parametrize("cuts", [[7], [1, 2, 50], [33, 34, 35, 36]])
def test_merge_of_chunks_equals_numpy(cuts):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(80, 5))
    total = None
    for part in np.split(x, cuts):
        m = block_moments(part)
        total = m if total is None else merge(total, m)
    assert total is not None and total.count == 80
    np.testing.assert_allclose(total.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(total.m2 / 79, x.var(0, ddof=1), rtol=1e-12)


def test_masked_moments_count_only_valid_entries():
    x = np.random.default_rng(1).normal(size=(40, 3))
    valid = np.random.default_rng(2).random((40, 3)) > 0.3
    total = merge(block_moments(x[:25], valid[:25]), block_moments(x[25:], valid[25:]))
    for j in range(3):
        col = x[valid[:, j], j]
        assert total.count[j] == col.size
        assert total.mean[j] == pytest.approx(col.mean(), rel=1e-13)
        assert total.m2[j] == pytest.approx(((col - col.mean()) ** 2).sum(), rel=1e-12)


def test_empty_part_is_identity():
    m = block_moments(np.arange(4.0)[:, None])
    empty = RunningMoments(np.zeros(1, int), np.zeros(1), np.zeros(1))
    merged = merge(m, empty)
    np.testing.assert_array_equal(merged.mean, m.mean)
    np.testing.assert_array_equal(merged.m2, m.m2)
