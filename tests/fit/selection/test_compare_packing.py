"""Which law? fits only what is compared: the packed rows of ``compare_laws`` against fitting every
row of the layout (the layout before packing), the rows that reach the engine, and the work line.
"""

import re

import jax
import numpy as np
import pytest

from tokenscale_sim.fit.data.curves import curves_from_points
from tokenscale_sim.fit.engine.buckets import bucket_size
from tokenscale_sim.fit.selection import packing
from tokenscale_sim.fit.selection.compare import compare_laws

SIZES = {
    "three": [1, 8, 64],
    "four": [1, 16, 128, 768],
    "five": [1, 4, 16, 64, 256],
    "seven": [1, 4, 16, 64, 128, 256, 768],
    "seven_reps": [1, 1, 16, 64, 64, 256, 768],
}
LAWS = ("powerlaw", "alpha_n", "loglinear")
FIELDS = ("rss", "aicc", "bic", "weight", "loo_rmse", "extrap_rmse", "extrap_abs", "extrap_rel",
          "boot_share", "converged", "n_cut")  # fmt: skip


def _collection():
    """Curves of 3-7 points (one with replicates): every law skipped somewhere, unused
    leave-one-out slots on every curve shorter than the longest."""
    points = {}
    for s, (name, ns) in enumerate(SIZES.items()):
        ns = np.asarray(ns, float)
        y = 0.3 * ns**0.08 * np.exp(0.02 * np.random.default_rng(s).standard_normal(ns.size))
        points[(name,)] = [(a, b, 1.0, 1.0) for a, b in zip(ns, y, strict=True)]
    return curves_from_points(points, ("curve",))


def _every_row(comparable, distinct, testable, m, holdout_last, bootstrap):
    """The layout before packing: every row fitted, skipped pairs and unused slots included."""
    return np.arange(2 * comparable.size + comparable.size * m + bootstrap * comparable.size)


def _assert_same(packed, unpacked):
    for name in FIELDS:
        a, b = np.asarray(getattr(packed, name)), np.asarray(getattr(unpacked, name))
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(packed.status, unpacked.status)
    for w_packed, w_unpacked in zip(packed.winner, unpacked.winner, strict=True):
        np.testing.assert_array_equal(w_packed, w_unpacked)
    for e_packed, e_unpacked, ok in zip(
        packed.estimates, unpacked.estimates, (packed.status != "too few points").T, strict=True
    ):
        np.testing.assert_allclose(e_packed[ok], e_unpacked[ok], rtol=1e-12)
        assert np.isnan(e_packed[~ok]).all()  # a law not fitted to a curve has no estimates


@pytest.mark.parametrize("holdout_last", [2, 0])
def test_packed_rows_give_the_numbers_of_fitting_every_row(monkeypatch, holdout_last):
    cs = _collection()
    packed = compare_laws(jax.random.key(3), cs, LAWS, holdout_last=holdout_last, bootstrap=12)
    assert (packed.status == "too few points").any() and (packed.status != "too few points").any()
    assert np.isfinite(packed.boot_share).any()
    monkeypatch.setattr(packing, "row_sources", _every_row)
    unpacked = compare_laws(jax.random.key(3), cs, LAWS, holdout_last=holdout_last, bootstrap=12)
    _assert_same(packed, unpacked)


def test_only_the_rows_compared_reach_the_engine(monkeypatch):
    cs = _collection()
    seen = []
    solve = packing.solve_batch

    def counting(model, opts, data, grid):
        seen.append((model.name, data.n.shape[0]))
        return solve(model, opts, data, grid)

    monkeypatch.setattr(packing, "solve_batch", counting)
    c = compare_laws(jax.random.key(0), cs, ("powerlaw", "alpha_n"), holdout_last=2, bootstrap=4)
    compared = c.status != "too few points"
    testable = np.isfinite(c.shape.curvature)
    distinct = np.array([len(set(x)) for x in SIZES.values()])
    # per law and curve compared: full + hold-out + one leave-one-out row per distinct n, and
    # the 4 resamples where the curve has a shape test
    want = [int(np.sum(compared[:, j] * (2 + distinct + 4 * testable))) for j in range(2)]
    got = {law: sum(r for name, r in seen if name == law) for law in ("powerlaw", "alpha_n")}
    assert [bucket_size(x) for x in want] == [got["powerlaw"], got["alpha_n"]]
    assert want[1] < want[0]  # alpha_n (3 parameters) is skipped on more curves


def test_row_sources_copy_the_full_row_without_hold_out_and_skip_what_is_not_read():
    src = packing.row_sources(
        np.array([True, True]), np.array([1, 3]), np.array([False, True]), 3, 0, 2
    )
    g, m = 2, 3
    np.testing.assert_array_equal(src[:g], [0, 1])
    np.testing.assert_array_equal(src[g : 2 * g], [0, 1])  # hold-out = full row, copied
    np.testing.assert_array_equal(src[2 * g : 2 * g + g * m], [4, -1, -1, 7, 8, 9])
    np.testing.assert_array_equal(src[2 * g + g * m :], [-1, 11, -1, 13])  # untestable curve 0


def test_blocks_are_bucketed_and_split_past_the_block_size(monkeypatch):
    monkeypatch.setattr(packing, "BLOCK", 8)
    cs = _collection()
    shapes = []
    solve = packing.solve_batch

    def recording(model, opts, data, grid):
        shapes.append(data.n.shape[0])
        return solve(model, opts, data, grid)

    monkeypatch.setattr(packing, "solve_batch", recording)
    small = compare_laws(jax.random.key(1), cs, ("powerlaw",), bootstrap=0)
    # the rows split evenly into blocks of at most 8, all of one bucketed shape
    assert len(shapes) > 2 and len(set(shapes)) == 1 and shapes[0] == bucket_size(shapes[0]) <= 8
    monkeypatch.setattr(packing, "BLOCK", 8192)
    big = compare_laws(jax.random.key(1), cs, ("powerlaw",), bootstrap=0)
    _assert_same(small, big)


def test_the_work_is_announced_before_the_fits(capsys):
    compare_laws(jax.random.key(0), _collection(), LAWS, bootstrap=4, progress=True)
    err = capsys.readouterr().err
    line = err.splitlines()[0]
    assert line.startswith("which law? 5 curves x 3 laws (") and "skipped: too few points" in line
    assert "refits of 4 resamples" in line
    counts = re.search(r": ([0-9,]+) fits.* \+ ([0-9,]+) refits", line)
    assert counts is not None
    total = sum(int(x.replace(",", "")) for x in counts.groups())
    assert "100%" in err and f" {total}/{total} " in err  # the bar ends at the announced work
    compare_laws(jax.random.key(0), _collection(), LAWS, bootstrap=4, progress=False)
    assert capsys.readouterr().err == ""
