"""Reading fit results from Python (issue 27): parameters by name, report, tidy table, repr,
AICc, one-curve results as scalars, predict's shapes and domain, prediction_band's curve check."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tokenscale_sim.fit import (
    FitOptions,
    IntervalMethod,
    Parameter,
    curves_from_arrays,
    define_law,
    fit_arrays,
    fit_curves,
    fit_record,
    fit_report,
    predict,
    prediction_band,
    profile_interval,
)

N = np.array([1.0, 2, 4, 8, 16, 32, 64, 128])
WIGGLE = np.array([0.02, -0.01, 0.015, -0.02, 0.0, 0.01, -0.015, 0.005])


def _curve(c=2.0, alpha=0.3, shift=0.0):
    return c * N**-alpha * np.exp(WIGGLE + shift * WIGGLE[::-1])


@pytest.fixture(scope="module")
def one():
    cs = curves_from_arrays(N, _curve())
    return cs, fit_curves(cs, "powerlaw")


@pytest.fixture(scope="module")
def three():
    cs = curves_from_arrays(N, np.stack([_curve(), _curve(3.0, 0.2, 1.0), _curve(1.5, 0.4, -1.0)]))
    return cs, fit_curves(cs, "powerlaw")


@pytest.fixture(scope="module")
def at_limit():
    """A pure power law fitted by alpha(n): n_b sits at a limit."""
    return fit_curves(curves_from_arrays(N, _curve()), "alpha_n")


def _ols(y):
    """Independent reference: least squares of ln y on ln N -> (c, alpha, se_alpha, rss)."""
    (slope, icept), cov = np.polyfit(np.log(N), np.log(y), 1, cov="unscaled")
    resid = np.log(y) - (icept + slope * np.log(N))
    rss = float(resid @ resid)
    s2 = rss / (N.size - 2)
    return np.exp(icept), -slope, np.sqrt(s2 * cov[0, 0]), rss


# ----------------------------------------------------------------------------- parameter mapping


def test_one_curve_parameters_are_scalars_matching_ols(one):
    _, res = one
    c, alpha, se_alpha, _ = _ols(_curve())
    p = res.params["alpha"]
    assert isinstance(p, Parameter) and p.name == "alpha"
    assert type(p.value) is float and type(p.stderr) is float
    assert all(type(x) is float for x in p.interval)
    np.testing.assert_allclose([res.params["c"].value, p.value], [c, alpha], rtol=1e-8)
    np.testing.assert_allclose(p.stderr, se_alpha, rtol=1e-6)
    assert p.interval == (res.ci_low[0, 1], res.ci_high[0, 1]) and p.interval[0] < alpha
    assert p.interval[1] > alpha and p.interval_open == (False, False)
    assert p.method == IntervalMethod.PROFILE and p.level == res.level
    assert res.params.valuesdict() == {"c": res.estimates[0, 0], "alpha": res.estimates[0, 1]}


def test_params_iterate_like_the_names_they_replace(one):
    _, res = one
    assert list(res.params) == ["c", "alpha"] == list(res.param_names)
    assert len(res.params) == 2 and "alpha" in res.params and "beta" not in res.params
    assert [name for name, _ in zip(res.params, res.interval, strict=True)] == ["c", "alpha"]
    with pytest.raises(KeyError, match=r"no parameter 'beta'; the law has \('c', 'alpha'\)"):
        res.params["beta"]
    with pytest.raises(TypeError, match=r"keys are parameter names .*res.param_names\[i\]"):
        res.params[0]  # type: ignore[index]


def test_several_curves_give_arrays_and_curve_g_a_one_curve_result(three):
    cs, res = three
    beta = res.params["alpha"]
    assert beta.value.shape == beta.stderr.shape == beta.interval[0].shape == (3,)
    np.testing.assert_array_equal(beta.value, res.estimates[:, 1])
    for g in range(3):
        _, alpha, se_alpha, _ = _ols(cs.arrays.y[g])
        part = res.curve(g)
        assert part.n_curves == 1 and part.keys == (cs.keys[g],)
        assert type(part.params["alpha"].value) is float
        np.testing.assert_allclose(part.params["alpha"].value, alpha, rtol=1e-8)
        np.testing.assert_allclose(part.params["alpha"].stderr, se_alpha, rtol=1e-6)
    assert res.curve(-1).params["c"].value == res.estimates[2, 0]
    for bad in (3, -4, 1.0):
        with pytest.raises(IndexError, match=r"FitResult.curve: g must be an integer in \[-3, 3\)"):
            res.curve(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- AICc


def test_aicc_matches_an_independent_formula(three):
    cs, res = three
    m = N.size
    for g in range(3):
        rss = _ols(cs.arrays.y[g])[3]
        m2ll = m * np.log(rss / m) + m * (np.log(2 * np.pi) + 1)  # Gaussian, sigma at its MLE
        k = 3  # c, alpha, noise variance
        np.testing.assert_allclose(res.aic[g], m2ll + 2 * k, rtol=1e-9)
        np.testing.assert_allclose(res.aicc[g], m2ll + 2 * k + 2 * k * (k + 1) / (m - k - 1))
    assert fit_record(res)["curves"][1]["aicc"] == pytest.approx(float(res.aicc[1]))


def test_aicc_counts_n_b_fixed_at_a_limit(at_limit):
    """n_b at a limit is fixed, not estimated: k = 2 free + 1 variance."""
    res = at_limit
    assert res.status(0).status.value in ("boundary_zero", "boundary_inf")
    k = int(res.n_free[0]) + 1
    assert k == 3
    m2ll_plus_2k = res.aic[0]  # AIC = -2 ln L + 2 k: recover -2 ln L independently
    rss = _ols(_curve())[3]
    m2ll = N.size * np.log(rss / N.size) + N.size * (np.log(2 * np.pi) + 1)
    np.testing.assert_allclose(m2ll_plus_2k - m2ll, 2 * k, rtol=1e-6)
    np.testing.assert_allclose(res.aicc[0], res.aic[0] + 2 * k * (k + 1) / (N.size - k - 1))


def test_weighted_loss_counts_no_noise_variance_and_reports_chi_square():
    se = 0.02 * _curve()
    cs = curves_from_arrays(N, _curve(), se=se)
    res = fit_curves(cs, "powerlaw", FitOptions(loss="weighted"))
    c, alpha = res.estimates[0]
    chi2 = float(np.sum(((_curve() - c * N**-alpha) / se) ** 2))
    m2ll = chi2 + float(np.sum(np.log(2 * np.pi * se**2)))  # known sigma: no variance fitted
    k = 2
    np.testing.assert_allclose(res.aic[0], m2ll + 2 * k, rtol=1e-9)
    np.testing.assert_allclose(res.aicc[0], m2ll + 2 * k + 2 * k * (k + 1) / (N.size - k - 1))
    text = res.report()
    assert "parameters k  = 2 (2 free + 0 noise variance)" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("chi-square"))
    assert float(line.split("=")[1]) == pytest.approx(chi2, rel=1e-5)


def test_aicc_undefined_is_inf_and_the_report_says_why():
    res = fit_curves(curves_from_arrays(N[:4], _curve()[:4]), "powerlaw")  # N - k - 1 = 0
    assert np.isinf(res.aicc[0]) and np.isfinite(res.aic[0])
    assert "AICc          = inf (undefined: N - k - 1 = 0 <= 0)" in res.report()


# ----------------------------------------------------------------------------- report and repr


def test_report_shows_every_statistic_and_parameter(one):
    _, res = one
    text = res.report()
    assert text == fit_report(res)
    rss = _ols(_curve())[3]
    lines = text.splitlines()
    assert lines[0] == "[[Fit]] law powerlaw (c, alpha), loss log, 1 curve, 1 converged"
    pairs = [x.split(" = ", 1) for x in lines if " = " in x and "+/-" not in x]
    stats = {k.strip(): v.strip() for k, v in pairs}
    assert stats["data points N"] == "8" and stats["converged"] == "yes"
    assert stats["parameters k"] == "3 (2 free + 1 noise variance)"
    assert float(stats["RSS of ln y"]) == pytest.approx(rss, rel=1e-5)
    for key, value in (("AIC", res.aic), ("AICc", res.aicc), ("BIC", res.bic)):
        assert float(stats[key]) == pytest.approx(float(value[0]), rel=1e-5)
    p = res.params["alpha"]
    line = next(x for x in lines if x.strip().startswith("alpha"))
    assert line.split() == [
        "alpha", "=", f"{p.value:.6g}", "+/-", f"{p.stderr:.6g}",
        f"[{p.interval[0]:.6g},", f"{p.interval[1]:.6g}]", "profile",
    ]  # fmt: skip


def test_report_marks_open_ends_and_lists_every_curve(three, at_limit):
    _, res = three
    text = res.report()
    assert [x.strip() for x in text.splitlines() if "[[Curve" in x] == [
        "[[Curve 0: 0]]",
        "[[Curve 1: 1]]",
        "[[Curve 2: 2]]",
    ]
    line = next(x for x in at_limit.report().splitlines() if x.split()[:2] == ["n_b", "="])
    assert line.split()[:5] == ["n_b", "=", "0", "+/-", "inf"]
    assert line.endswith("(0, inf)  profile; open low and high end (not bounded by the data)")


def test_repr_is_short_and_names_the_fit(one, three):
    r1, r3 = repr(one[1]), repr(three[1])
    assert r3 == "FitResult(law='powerlaw', loss='log', 3 curves, 3 converged)"
    assert r1.startswith("FitResult(law='powerlaw', loss='log', 1 curve, converged: c=2")
    assert len(r1) < 120 and "\n" not in r1 and "0x" not in r1
    page = three[1]._repr_html_()
    assert page.count("<tr>") == 1 + 3 * 2 and "<th>parameter</th>" in page


# ----------------------------------------------------------------------------- tidy table


def test_to_frame_is_one_row_per_curve_and_parameter(three):
    pd = pytest.importorskip("pandas")
    _, res = three
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6
    row = frame[(frame.curve == 2) & (frame.parameter == "alpha")].iloc[0]
    assert row.value == res.estimates[2, 1] and row.stderr == res.se[2, 1]
    assert (row.low, row.high) == (res.ci_low[2, 1], res.ci_high[2, 1])
    assert row.key == "2" and row.status == "no_n_b" and bool(row.converged)
    assert row.interval == "profile" and row.aicc == res.aicc[2]


def test_to_frame_without_pandas_gives_the_records(three, monkeypatch):
    _, res = three
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    rows = res.to_frame()
    assert rows == res.to_records() and isinstance(rows, list) and len(rows) == 6
    assert rows[3]["parameter"] == "alpha" and rows[3]["value"] == res.estimates[1, 1]


def test_records_label_curves_keyed_by_ints_and_tuples():
    """Keys of any values (an int group column of a DataFrame) label the rows: the report and
    to_records of grouped curves joined str(value), which failed on ints."""
    from tokenscale_sim.fit import curves_from_frame

    ys = [_curve(), _curve(3.0, 0.2, 1.0)]
    cs = curves_from_frame(
        {"model": np.repeat([7, 13], N.size), "size": np.repeat(["s", "l"], N.size),
         "n": np.tile(N, 2), "y": np.concatenate(ys)},
        group=["model", "size"],
    )  # fmt: skip
    res = fit_curves(cs, "powerlaw")
    assert cs.keys == ((7, "s"), (13, "l"))
    assert [res.label(g) for g in range(2)] == ["7 / s", "13 / l"]
    assert [r["key"] for r in res.to_records()] == ["7 / s"] * 2 + ["13 / l"] * 2
    assert "13 / l" in res.report()
    assert fit_curves(curves_from_arrays(N, _curve()), "powerlaw").label(0) == "curve 0"


# ----------------------------------------------------------------------------- predict


def test_predict_scalar_in_scalar_out_and_shapes(one, three):
    _, r1 = one
    _, r3 = three
    y = predict(r1, 100.0)
    assert np.ndim(y) == 0 and isinstance(y, float)
    c, alpha = r1.estimates[0]
    assert y == pytest.approx(c * 100.0**-alpha, rel=1e-12)
    assert predict(r1, [100.0, 200.0]).shape == (2,)
    grid = np.array([[2.0, 3.0, 4.0], [5.0, 6.0, 7.0]])
    assert predict(r3, 100.0).shape == (3,) and predict(r3, grid).shape == (3, 2, 3)
    expect = r3.estimates[:, :1, None] * grid ** -r3.estimates[:, 1:, None]
    np.testing.assert_allclose(predict(r3, grid), expect, rtol=1e-12)
    np.testing.assert_allclose(predict(r3.curve(1), grid), expect[1], rtol=1e-12)


def test_predict_and_prediction_band_refuse_n_outside_the_domain_alike(one):
    cs, res = one
    for n in (0.0, [0.5, 2.0]):
        with pytest.raises(ValueError, match=r"predict: token counts n must be >= 1 \(the domain"):
            predict(res, n)
        with pytest.raises(ValueError, match=r"prediction_band: token counts n must be >= 1 \(the"):
            prediction_band(cs, res, n)
    with pytest.raises(ValueError, match="predict: n must be finite, got nan"):
        predict(res, [2.0, np.nan])
    with pytest.raises(ValueError, match="predict: n must be numbers"):
        predict(res, "ten")
    with pytest.raises(ValueError, match=r"predict: aux must broadcast to \(curves, \*n.shape\)"):
        predict(res, [2.0, 3.0], aux=[1.0, 1.0, 1.0])


def test_predict_evaluates_laws_of_x_anywhere(one):
    """A law of a general predictor x admits any finite x (no fit needed: predict reads only
    the law and the unconstrained estimates)."""
    line = define_law(
        "line_x", lambda x, t: t["a"] + t["b"] * x, ["a", "b"], linear=["a", "b"], predictor="x"
    )
    res = one[1]._replace(model=line, u=np.array([[2.0, 0.5]]))
    np.testing.assert_allclose(predict(res, [-3.0, 0.0]), [0.5, 2.0], rtol=1e-12)
    assert predict(res, -1.0) == pytest.approx(1.5, rel=1e-12)
    with pytest.raises(ValueError, match="predict: x must be finite, got inf"):
        predict(res, np.inf)


# ----------------------------------------------------------------------------- fitted curves only


def test_prediction_band_refuses_curves_it_was_not_fitted_on(one, three):
    cs3, r3 = three
    cs1, r1 = one
    band = prediction_band(cs3, r3, [10.0])
    assert band.fit.shape == (3, 1)
    with pytest.raises(ValueError, match=r"prediction_band: curves must be the 3 curve\(s\)"):
        prediction_band(cs1, r3, [10.0])
    renamed = cs3._replace(keys=(("0",), ("x",), ("2",)))
    with pytest.raises(ValueError, match="curve 1 is 'x', the fit's is '1'"):
        prediction_band(renamed, r3, [10.0])
    other = curves_from_arrays(N, 1.01 * _curve())  # same key, other data
    with pytest.raises(ValueError, match=r"the data of curve 0 \('curve 0'\) differ"):
        prediction_band(other, r1, [10.0])
    with pytest.raises(ValueError, match=r"profile_interval: curves must be the 3 curve\(s\)"):
        profile_interval(cs1, r3, "alpha")
    bare = fit_arrays("powerlaw", cs3.arrays)  # no keys, no fingerprints: points are checked
    assert prediction_band(cs3, bare, [10.0]).fit.shape == (3, 1)
    short = curves_from_arrays(N[:6], np.stack([_curve()[:6]] * 3))
    with pytest.raises(ValueError, match="the number of points of curve 0"):
        prediction_band(short, bare, [10.0])


# ----------------------------------------------------------------------------- README


def _readme_section(title: str) -> str:
    text = (Path(__file__).parents[3] / "README.md").read_text()
    return text[text.index(title) :]


def _readme_snippet():
    """The code and the quoted report of the README's "From Python" section."""
    section = _readme_section("### From Python: reading a fit")
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    quoted = section.split("```text\n", 1)[1].split("```", 1)[0]
    return code, quoted


def _without_iterations(text):  # the iteration count is the engine's business, not the report's
    return "\n".join(x for x in text.splitlines() if not x.strip().startswith("iterations"))


def test_readme_one_curve_snippet_runs_and_its_report_is_quoted(capsys, at_limit):
    """Fast: the one-curve part (8 points, as ``at_limit``: its compiled programs are reused)."""
    del at_limit
    code, quoted = _readme_snippet()
    exec(compile(code.split("paper =")[0], "README.md", "exec"), {})
    assert _without_iterations(quoted) in _without_iterations(capsys.readouterr().out)


@pytest.mark.slow
def test_readme_from_python_snippet_runs_whole(capsys):
    """The whole snippet, the 54 paper curves included (~4 s of CPU with warm programs)."""
    code, quoted = _readme_snippet()
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert _without_iterations(quoted) in _without_iterations(out)
    assert "FitResult(law='powerlaw', loss='log', 54 curves, 54 converged)" in out
    assert "(54,) " in out
