"""The figures of ``compare``: what is drawn for pairs that were not compared or exploded."""

from types import SimpleNamespace

import numpy as np

from tokenscale_sim.plots.compare import extrapolation_errors


def _comparison(err):
    return SimpleNamespace(extrap_rmse=np.asarray(err, float), laws=("a", "b", "c"),
                           holdout_last=2)  # fmt: skip


def test_pairs_not_compared_are_not_drawn_and_do_not_move_the_median():
    nan, inf = np.nan, np.inf
    err = [[0.01, 0.02, nan], [0.03, inf, nan], [nan, 0.04, nan], [nan, 0.05, nan]]
    fig = extrapolation_errors(_comparison(err))
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    # law a: median of its two compared curves (0.02), nothing off scale (the NaN are skipped);
    # law b: one exploded fit (inf) off scale, median of (0.02, inf, 0.04, 0.05) = 0.045;
    # law c: compared on no curve
    assert texts == sorted(["0.02", "0.045", "1 off scale", "not compared"])
    bars = [seg[0][1] for c in ax.collections for seg in c.get_segments()]
    np.testing.assert_allclose(bars, [0.02, 0.045])  # one median bar per law compared
