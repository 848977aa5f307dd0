"""Data into the Python API: precision, input checks, DataFrames/dicts/pairs, sigma (issue 27).

- one precision policy: a fit gives the same numbers with and without ``jax_enable_x64`` (in a
  child process that never switches it on, and in this one with it switched off);
- every public entry point checks its input with one ``ValueError`` naming the argument, and no
  fit with a NaN estimate is ever ``converged``;
- DataFrames (group columns of any dtype), dicts of columns or of named curves, lists of pairs
  of different lengths, replicates from arrays, predictors below 1 for laws of ``x``;
- ``sigma``/``absolute_sigma`` with ``scipy.optimize.curve_fit``'s meaning (checked against it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from tokenscale_sim import fit
from tokenscale_sim.fit import CurveArrays, FitOptions
from tokenscale_sim.fit.engine.options import Boundary, finite_fit

ROOT = Path(__file__).resolve().parents[3]
N = np.array([1.0, 2, 4, 8, 16, 32, 64, 128])
NOISE = np.array([0.02, -0.01, 0.015, -0.02, 0.0, 0.01, -0.015, 0.005])
Y = 3.0 * N**0.2 * np.exp(NOISE)


def arrays(n, y) -> CurveArrays:
    n, y = np.atleast_2d(n), np.atleast_2d(y)
    one = np.ones_like(y)
    return CurveArrays(np.broadcast_to(n, y.shape), y, one, one, one)


# ----------------------------------------------------------------------------- precision

CHILD = """
import os, sys
import numpy as np
import jax, jax.numpy as jnp
import tokenscale_sim
from tokenscale_sim import fit
tokenscale_sim.enable_compilation_cache(os.environ.get("TOKENSCALE_CACHE_DIR"))
n = np.array([1.0, 2, 4, 8, 16, 32, 64, 128])
y = 3.0 * n**0.2 * np.exp([0.02, -0.01, 0.015, -0.02, 0.0, 0.01, -0.015, 0.005])
res = fit.fit_curves(fit.curves_from_arrays(n, y), "powerlaw")
print("x64", jax.config.read("jax_enable_x64"), jnp.zeros(1).dtype)
print("estimates", repr(res.estimates[0].tolist()), repr(res.se[0].tolist()))
"""


def _ols(n, y):
    """OLS of ln y on ln n: the power law's exact fit -> (c, alpha) with y = c n^-alpha."""
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)
    return np.array([np.exp(intercept), -slope])


@pytest.mark.slow
def test_a_process_without_x64_fits_in_float64_and_keeps_its_setting():
    """A user who never enables x64 (a fresh process) gets this process's float64 numbers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["x64"] == "False float32"  # the user's setting is left as it was
    est, se = (np.array(v) for v in eval(lines["estimates"].replace("] [", "], [")))
    mine = fit.fit_curves(fit.curves_from_arrays(N, Y), "powerlaw")
    np.testing.assert_allclose(est, mine.estimates[0], rtol=1e-12)
    np.testing.assert_allclose(se, mine.se[0], rtol=1e-9)
    np.testing.assert_allclose(est, _ols(N, Y), rtol=1e-10)


def test_fits_are_float64_with_x64_switched_off(float32):
    """The fast sibling: x64 off in this process; the fit still matches float64 OLS to 1e-10
    (float32 reaches ~1e-6) and x64 is off again afterwards."""
    res = fit.fit_curves(fit.curves_from_arrays(N, Y), "powerlaw")
    assert res.estimates.dtype == np.float64 and bool(res.converged[0])
    np.testing.assert_allclose(res.estimates[0], _ols(N, Y), rtol=1e-10)
    assert not jax.config.read("jax_enable_x64") and jnp.zeros(1).dtype == jnp.float32


def test_float32_on_request_and_precision_checked():
    res = fit.fit_curves(fit.curves_from_arrays(N, Y), "powerlaw", FitOptions(precision="float32"))
    assert res.estimates.dtype == np.float32
    np.testing.assert_allclose(res.estimates[0], _ols(N, Y), rtol=1e-4)
    assert jax.config.read("jax_enable_x64")  # restored
    with pytest.raises(ValueError, match="precision must be one of"):
        FitOptions(precision="float16")


# ----------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("law", ["powerlaw", "alpha_n"])
def test_fit_arrays_refuses_nan_with_one_line(law):
    y = Y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"fit_arrays: y must be finite, got nan at point 3"):
        fit.fit_arrays(law, arrays(N, y))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (arrays(np.where(N == 4, np.inf, N), Y), ValueError, "n must be finite"),
        (arrays(N, -Y), ValueError, r"y must be > 0 \(the log loss needs scores > 0\)"),
        (arrays(N / 4, Y), ValueError, "n must be >= 1 .token counts of law 'powerlaw'"),
        (arrays(N, Y)._replace(se=np.zeros((1, 8))), ValueError, "se must be > 0"),
        (arrays(N, Y)._replace(weight=-np.ones((1, 8))), ValueError, "weight must be finite"),
        (arrays(N, Y)._replace(weight=np.zeros((1, 8))), ValueError, "has no points"),
        (arrays(N, Y)._replace(aux=np.ones((1, 7))), ValueError, "must share one shape"),
        ((N, Y), TypeError, "data must be a CurveArrays"),
    ],
)
def test_fit_arrays_checks(data, error, message):
    with pytest.raises(error, match=message):
        fit.fit_arrays("powerlaw", data)


def test_hand_built_curveset_with_nan_is_refused_by_fit_and_bootstrap():
    cs = fit.curves_from_arrays(N, Y)
    res = fit.fit_curves(cs, "powerlaw")
    bad = cs._replace(arrays=cs.arrays._replace(y=np.where(N == 8, np.nan, Y)[None]))
    with pytest.raises(ValueError, match="check_curves: y must be finite"):
        fit.fit_curves(bad, "powerlaw")
    with pytest.raises(ValueError, match="bootstrap: y must be finite"):
        fit.bootstrap(jax.random.key(0), bad, res, m=10)
    with pytest.raises(
        ValueError,
        match=r"prediction_band: curves must be the 1 curve\(s\) the result was fitted on, got 2",
    ):
        fit.prediction_band(fit.curves_from_arrays(N, np.stack([Y, Y])), res, [4.0])


def test_no_non_finite_fit_is_converged():
    """``finite_fit``: NaN or inf estimates or loss => not converged; n_b = inf only at its
    limit (Boundary.INF)."""
    an = fit.get_model("alpha_n")
    est = np.array([[1.0, 0.3, 5.0], [1.0, np.nan, 5.0], [1.0, 0.3, np.inf], [1.0, 0.3, np.inf]])
    loss = np.array([0.1, 0.1, 0.1, np.nan])
    at_inf = np.array([0, 0, Boundary.INF, Boundary.INF])
    assert finite_fit(an, est, at_inf, loss).tolist() == [True, False, True, False]
    interior = np.array([0, 0, Boundary.INTERIOR, 0])
    assert finite_fit(an, est, interior, loss).tolist() == [True, False, False, False]
    # the guard is in the result: a law that returns NaN at its optimum is not converged
    law = fit.define_law("nan_law", lambda n, t: t["a"] * n * jnp.nan, ("a",), linear=("a",))
    res = fit.fit_curves(fit.curves_from_arrays(N, Y), law, FitOptions(loss="linear"))
    assert not res.converged[0]


def test_curves_from_arrays_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"n must be a scalar, \(m,\) or \(G, m\)"):
        fit.curves_from_arrays(np.repeat(N, 3), np.stack([Y, Y, Y]))
    with pytest.raises(ValueError, match="sigma must be a scalar"):
        fit.curves_from_arrays(N, Y, sigma=np.ones(3))
    with pytest.raises(ValueError, match="curves of different lengths: pass a list of"):
        fit.curves_from_arrays([N, N[:5]], [Y, Y[:5]])
    with pytest.raises(ValueError, match="keys must name the 2 curves"):
        fit.curves_from_arrays(N, np.stack([Y, Y]), keys=["a"])
    with pytest.raises(ValueError, match="give sigma or se"):
        fit.curves_from_arrays(N, Y, se=1.0, sigma=1.0)


# ----------------------------------------------------------------------------- data in


def test_replicates_from_arrays_are_points():
    """``curves_from_arrays(np.repeat(n, 3), y)``: 24 points at 8 distinct n, fitted as OLS over
    every replicate."""
    rng = np.random.default_rng(0)
    n3 = np.repeat(N, 3)
    y3 = 3.0 * n3**0.2 * np.exp(0.03 * rng.standard_normal(n3.size))
    res = fit.fit_curves(fit.curves_from_arrays(n3, y3), "powerlaw")
    assert res.n_points.tolist() == [24]
    np.testing.assert_allclose(res.estimates[0], _ols(n3, y3), rtol=1e-9)


def test_pairs_of_different_lengths_fit_as_single_curves():
    short = (N[:5], Y[:5])
    long = (N, 2 * Y)
    res = fit.fit_curves([short, long], "powerlaw")  # a list of (n, y) pairs, as it is
    assert res.n_points.tolist() == [5, 8]
    np.testing.assert_allclose(res.estimates[0], _ols(*short), rtol=1e-9)
    np.testing.assert_allclose(res.estimates[1], _ols(*long), rtol=1e-9)
    named = fit.curves_from_pairs({"short": short, "long": long})
    assert named.keys == (("short",), ("long",)) and named.label(1) == "long"
    with pytest.raises(ValueError, match=r"every entry must be \(n, y\) or every one"):
        fit.curves_from_pairs([short, (N, Y, np.ones(8), 1)])
    with pytest.raises(ValueError, match=r"curve 0: n, y \(and sigma\) must be 1-D of one length"):
        fit.curves_from_pairs([(N[:4], Y)])


def _long_frame():
    """Long layout: two models (int ids) x two benchmarks, 8 points each, sigma per point."""
    rows = []
    for model in (7, 13):
        for bench in ("vqa", "ocr"):
            scale = model / 7 * (1.5 if bench == "ocr" else 1.0)
            rows += [
                {"model": model, "bench": bench, "n": n, "score": scale * y, "sd": 0.05 * y}
                for n, y in zip(N, Y, strict=True)
            ]
    return pd.DataFrame(rows)


def test_dataframe_with_int_group_column_and_dict_of_columns_agree():
    df = _long_frame()
    cs = fit.curves_from_frame(df, n="n", y="score", group=["model", "bench"], sigma="sd")
    assert cs.keys == ((7, "vqa"), (7, "ocr"), (13, "vqa"), (13, "ocr"))
    assert cs.label(2) == "13 / vqa" and cs.has_se and cs.group == ("model", "bench")
    np.testing.assert_allclose(cs.arrays.se[1], 0.05 * Y)
    as_dict = fit.curves_from_frame(
        {c: df[c].tolist() for c in df.columns}, y="score", group=("model", "bench"), sigma="sd"
    )
    assert as_dict.keys == cs.keys
    for a, b in zip(as_dict.arrays, cs.arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    # fit_curves takes a DataFrame with columns n and y directly (one curve)
    res = fit.fit_curves(pd.DataFrame({"n": N, "y": Y}), "powerlaw")
    np.testing.assert_allclose(res.estimates[0], _ols(N, Y), rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "change", "message"),
    [
        ({"y": "acc"}, None, r"column 'acc' missing \(columns: \['model'"),
        ({"group": "model"}, ("model", 3, None), "group column 'model' has a missing value"),
        ({}, ("score", 5, np.nan), "y must be finite, got nan in 7 / vqa"),
        ({}, ("score", 5, "high"), "column 'score' must be numbers"),
        ({"sigma": "sd"}, ("sd", 0, -1.0), "standard errors must be > 0"),
    ],
)
def test_dataframe_errors(kwargs, change, message):
    df = _long_frame().astype({"score": object, "model": object})
    if change:
        df.loc[change[1], change[0]] = change[2]
    group = kwargs.pop("group", ("model", "bench"))
    with pytest.raises(ValueError, match=message):
        fit.curves_from_frame(df, y=kwargs.pop("y", "score"), group=group, **kwargs)


def test_as_curves_forms_and_refusal():
    one = fit.as_curves({"n": N, "y": Y})
    assert one.keys == ((),) and one.arrays.n.shape == (1, 8)
    assert fit.as_curves({"a": (N, Y), "b": (N[:4], Y[:4])}).keys == (("a",), ("b",))
    with pytest.raises(TypeError, match=r"fit_curves: curves must be a CurveSet .* got int"):
        fit.fit_curves(3, "powerlaw")  # pyright: ignore[reportArgumentType]


def test_predictor_range_is_the_laws():
    """x < 1 is data for a law of x; a law of token counts refuses it at the fit, naming it."""
    x = np.linspace(-2.0, 2.0, 9)
    law = fit.define_law(
        "line", lambda x, t: t["a"] + t["b"] * x, ("a", "b"), linear=("a", "b"), predictor="x"
    )
    res = fit.fit_curves(fit.curves_from_arrays(x, 1.0 + 0.5 * x), law, FitOptions(loss="linear"))
    np.testing.assert_allclose(res.estimates[0], [1.0, 0.5], atol=1e-10)
    with pytest.raises(ValueError, match=r"n must be >= 1 \(token counts of law 'powerlaw'\)"):
        fit.fit_curves(fit.curves_from_arrays(N / 2, Y), "powerlaw")


# ----------------------------------------------------------------------------- sigma


def _noisy_with_sigma():
    rng = np.random.default_rng(4)
    n = np.geomspace(1, 1000, 15)
    sigma = 0.03 * 2 * n**0.25 * (1 + 0.5 * np.sin(n))
    return n, 2 * n**0.25 + sigma * rng.standard_normal(15), sigma


@pytest.mark.parametrize("absolute", [False, True])
def test_sigma_matches_curve_fit(absolute):
    """Estimates and standard errors agree with curve_fit(sigma, absolute_sigma) to ~1e-6."""
    n, y, sigma = _noisy_with_sigma()
    opts = FitOptions(loss="linear", absolute_sigma=absolute)
    assert opts.loss == ("weighted" if absolute else "linear")
    res = fit.fit_curves(fit.curves_from_arrays(n, y, sigma=sigma), "powerlaw", opts)
    p, cov = curve_fit(
        lambda x, c, a: c * x ** (-a), n, y, p0=[2, -0.25], sigma=sigma, absolute_sigma=absolute,
        ftol=1e-15, xtol=1e-15, gtol=1e-15,
    )  # fmt: skip
    np.testing.assert_allclose(res.estimates[0], p, rtol=1e-6)
    np.testing.assert_allclose(res.se[0], np.sqrt(np.diag(cov)), rtol=1e-6)


def test_sigma_is_never_silently_ignored():
    n, y, sigma = _noisy_with_sigma()
    cs = fit.curves_from_arrays(n, y, sigma=sigma)
    with pytest.warns(UserWarning, match="carry sigma .* which the 'log' loss .* does not use"):
        fit.fit_curves(cs, "powerlaw")
    with pytest.raises(ValueError, match="absolute_sigma=True is least squares of y"):
        FitOptions(absolute_sigma=True)
    with pytest.raises(ValueError, match=r"needs a standard-error column: sigma= in"):
        fit.fit_curves(fit.curves_from_arrays(n, y), "powerlaw", FitOptions(loss="weighted"))
    # relative sigma: the band of the fit exists, the band of a new point (unknown sigma) not
    res = fit.fit_curves(cs, "powerlaw", FitOptions(loss="linear"))
    band = fit.prediction_band(cs, res, [50.0])
    assert np.isfinite(band.high).all() and np.isnan(band.pred_high).all()


def test_cli_se_col_is_used_by_linear_and_warned_about_in_one_line_by_log(tmp_path, capsys):
    from tokenscale_sim.cli import main

    n, y, sigma = _noisy_with_sigma()
    path = tmp_path / "s.csv"
    rows = zip(n.tolist(), y.tolist(), sigma.tolist(), strict=True)
    path.write_text("n,score,se\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest: shown, not raised
        assert main(["fit", str(path), "--se-col", "se", "--model", "powerlaw"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "carry sigma" in ln]
    assert len(lines) == 1 and lines[0].startswith("tokenscale fit: warning: ")
    out = tmp_path / "lin"
    args = ["--se-col", "se", "--loss", "linear", "--model", "powerlaw", "--out", str(out)]
    assert main(["fit", str(path), *args]) == 0
    record = json.loads((out / "fits.json").read_text())["fit"]
    p, _ = curve_fit(lambda x, c, a: c * x ** (-a), n, y, p0=[2, -0.25], sigma=sigma)
    got = [record["curves"][0][k]["estimate"] for k in record["params"]]
    np.testing.assert_allclose(got, p, rtol=1e-6)
