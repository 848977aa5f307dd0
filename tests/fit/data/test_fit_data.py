"""Fit inputs: long/wide CSV, the shipped paper scores, and every input error."""

import numpy as np
import pytest

from tokenscale_sim.fit import (
    check_curves,
    curves_from_arrays,
    load_dataset,
    load_paper_scores,
    read_curves,
)


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


LONG = "benchmark,metric,n,score,se\nA,x,1,1.0,0.1\nA,x,2,1.5,0.1\nA,x,4,2.2,0.1\n" + (
    "B,x,1,3.0,0.2\nB,x,2,3.1,0.2\nB,x,4,3.3,0.2\nB,x,8,3.4,0.2\n"
)


def test_long_csv_groups_pads_and_sorts(tmp_path):
    cs = read_curves(_write(tmp_path, LONG), group=("benchmark", "metric"), se_col="se")
    assert cs.keys == (("A", "x"), ("B", "x"))
    assert cs.arrays.n.shape == (2, 4)
    np.testing.assert_array_equal(cs.arrays.weight[0], [1, 1, 1, 0])
    np.testing.assert_array_equal(cs.curve(1).se, [0.2] * 4)
    assert cs.has_se and cs.label(0) == "A / x"


def test_wide_csv(tmp_path):
    cs = read_curves(_write(tmp_path, "n,foo,bar\n1,1.0,2.0\n2,1.2,\n4,1.5,2.5\n"))
    assert cs.keys == (("foo",), ("bar",))
    np.testing.assert_array_equal(cs.curve(1).n, [1, 4])


def test_paper_scores_loader():
    cs = load_paper_scores()
    assert len(cs.keys) == 54 and cs.arrays.n.shape == (54, 10)
    np.testing.assert_array_equal(cs.curve(0).n, [1, 8, 16, 32, 64, 128, 256, 384, 512, 768])
    assert len(load_dataset("paper_exact").keys) == 36
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("nope")


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("n,value\n1,2\n", {"layout": "long"}, "column 'score' missing"),
        ("x,score\n1,2\n", {}, "column 'n' missing"),
        ("n,score\n1,abc\n", {}, "must be numeric, got 'abc'"),
        ("n,score\n1,nan\n", {}, "must be finite"),
        ("n,score\n1,\n", {}, "must be numeric"),
        ("n,score\n0,2\n", {}, "n must be >= 1"),
        ("n,score,se\n1,2,0\n", {"se_col": "se"}, "standard errors must be > 0"),
        ("n,score\n1,2\n", {"group": ("benchmark",)}, "column 'benchmark' missing"),
        ("n\n1\n", {"layout": "wide"}, "wide layout needs curve columns"),
        ("n,score\n1,2\n", {"layout": "diagonal"}, "layout must be"),
    ],
)
def test_read_errors(tmp_path, text, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read_curves(_write(tmp_path, text), **kwargs)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_curves(tmp_path / "absent.csv")


def test_check_curves_errors():
    cs = curves_from_arrays([1, 2, 4], [1.0, 1.5, 2.0])
    with pytest.raises(ValueError, match="needs at least 4 points, got 3"):
        check_curves(cs, "alpha_n")
    check_curves(cs, "powerlaw")
    neg = curves_from_arrays([1, 2, 4, 8], [1.0, -1.5, 2.0, 3.0])
    with pytest.raises(ValueError, match="log loss needs scores > 0"):
        check_curves(neg, "powerlaw")
    check_curves(neg, "powerlaw", loss="linear")
    with pytest.raises(ValueError, match="needs a standard-error column"):
        check_curves(cs, "powerlaw", loss="weighted")
    with pytest.raises(ValueError, match="model must be one of"):
        check_curves(cs, "quadratic")
    with pytest.raises(ValueError, match="must be finite"):
        curves_from_arrays([1, 2, 4], [1.0, np.nan, 2.0])


def test_replicates_are_points_in_readers_and_fits(tmp_path):
    """Repeated n are replicates: kept by every reader, fitted as points (the power law is OLS
    of ln S on ln n over every replicate), and the residual noise of a design counts them."""
    import jax

    from tokenscale_sim.design import noise_from_residuals
    from tokenscale_sim.fit import fit_curves

    jax.config.update("jax_enable_x64", True)
    n = np.array([1.0, 1, 4, 4, 4, 16, 64, 64, 256])
    y = 2.0 * n**0.3 * np.exp(0.05 * np.sin(7 * np.arange(n.size)))
    text = "n,score\n" + "".join(f"{a:g},{float(b)!r}\n" for a, b in zip(n, y, strict=True))
    cs = read_curves(_write(tmp_path, text))
    np.testing.assert_array_equal(cs.arrays.n[0], n)
    np.testing.assert_array_equal(np.sort(cs.arrays.y[0][n == 4]), np.sort(y[n == 4]))
    assert curves_from_arrays(n, y).arrays.n.shape == (1, 9)
    res = fit_curves(cs, "powerlaw")
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)
    np.testing.assert_allclose(
        res.estimates[0], [np.exp(intercept), -slope], rtol=1e-8
    )  # c n^-alpha
    rss = np.sum((np.log(y) - np.polyval([slope, intercept], np.log(n))) ** 2)
    assert noise_from_residuals(res).sigma == pytest.approx(np.sqrt(rss / (9 - 2)), rel=1e-8)
    with pytest.raises(ValueError, match="degenerate: 2 distinct n"):
        check_curves(curves_from_arrays([1, 1, 1, 8, 8], [1, 1.1, 0.9, 2, 2.1]), "powerlaw")
