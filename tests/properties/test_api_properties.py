"""Property-based bad input at the Python functions the README shows (issue 32).

Each door is called with hostile arguments (wrong types, out of range, non-finite, huge, bools
for numbers, malformed files and frames) and must keep the promise of
:func:`bad_input_strategies.check_python`: it returns, or raises ``ValueError`` / ``TypeError``
naming the function or the argument. What it returns is checked too: a fit that says converged
has finite estimates, a prediction is finite, an accepted option is in its range. Quick tier in
``make test``, long tier (hundreds of examples a door) in the slow tier.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from bad_input_strategies import TIERS, check_python, example_folder, hostile_numbers
from hypothesis import given
from hypothesis import strategies as st
from structure_cases import csv_tables, hidden_files, lay_down, structure_files

from tokenscale_sim import design, fit, structures
from tokenscale_sim.hidden import arrays, measure
from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate
from tokenscale_sim.structures.files import load_structure

N = np.array([1.0, 4, 16, 64, 256])
Y = 30 * N**0.1


@pytest.fixture(scope="module")
def fitted():
    """A one-curve and a two-curve power-law fit (what bootstrap and predict take)."""
    one = fit.curves_from_arrays(N, Y)
    two = fit.curves_from_pairs([(N, Y), (N, 40 * N**0.05)])
    return (one, fit.fit_curves(one, "powerlaw")), (two, fit.fit_curves(two, "powerlaw"))


def assert_honest(result) -> None:
    """A fit result that says a curve converged has finite estimates for it."""
    converged = np.asarray(result.converged, dtype=bool)
    estimates = np.asarray(result.estimates, dtype=float).reshape(len(converged), -1)
    assert np.all(np.isfinite(estimates[converged])), "a converged fit with NaN estimates"


# ------------------------------------------------------------------------------ options objects

FIT_OPTION_FIELDS = [f.name for f in dataclasses.fields(fit.FitOptions)]
COUNTS = {"max_iter", "memory_size", "n_starts", "profile_points", "adam_steps", "chunk"}
POSITIVE_REALS = {"huber_delta", "boundary_span"}
NONNEGATIVE_REALS = {"gtol", "boundary_rtol"}


@pytest.mark.parametrize("tier", TIERS)
def test_fit_options(tier):
    @tier
    @given(
        kwargs=st.dictionaries(st.sampled_from(FIT_OPTION_FIELDS), hostile_numbers | st.text(),
                               min_size=1, max_size=2)
    )  # fmt: skip
    def door(kwargs):
        ok, opts = check_python(lambda: fit.FitOptions(**kwargs), ["FitOptions", *kwargs])
        if not ok:
            return
        for name in COUNTS & set(kwargs):  # an accepted option is what it says it is
            value = getattr(opts, name)
            assert isinstance(value, int) and not isinstance(value, bool), (name, value)
            assert value >= (0 if name == "adam_steps" else 1), (name, value)
        for name in POSITIVE_REALS & set(kwargs):
            value = getattr(opts, name)
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
            assert math.isfinite(value) and value > 0, (name, value)
        for name in NONNEGATIVE_REALS & set(kwargs):
            value = getattr(opts, name)
            assert math.isfinite(value) and value >= 0, (name, value)
        if "level" in kwargs:
            assert 0 < opts.level < 1

    door()


CONFIG = {"n_max": 4, "d": 4, "m": 8}


@pytest.mark.parametrize("tier", TIERS)
def test_simulation_config(tier):
    names = ["n_max", "d", "m", "chunk", "tokens", "divergence_only", "confidence",
             "exact_psi", "max_chunk_bytes", "sampler"]  # fmt: skip

    @tier
    @given(kwargs=st.dictionaries(st.sampled_from(names), hostile_numbers, min_size=1,
                                  max_size=2))  # fmt: skip
    def door(kwargs):
        check_python(lambda: SimulationConfig(**{**CONFIG, **kwargs}),
                     ["SimulationConfig", *kwargs])  # fmt: skip

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_simulate_keys(tier):
    s = structures.exchangeable(psi_eq=0.5, psi_aa=0.3, psi_ab=0.25)
    config = SimulationConfig(**CONFIG)

    @tier
    @given(key=hostile_numbers)
    def door(key):
        ok, r = check_python(lambda: simulate(key, s, config), ["key", "seed", "simulate"])
        if ok:
            assert np.all(np.isfinite(np.asarray(r.divergence.mean)))

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_structure_constructors(tier):
    makers = {
        "exchangeable": (structures.exchangeable, ("psi_eq", "psi_aa", "psi_bb", "psi_ab")),
        "decaying": (structures.decaying, ("length", "coupling", "kernel")),
        "patch_grid": (structures.patch_grid, ("length", "coupling", "width")),
        "shared": (structures.shared, ("weight",)),
    }
    base = {"psi_eq": 0.5, "psi_aa": 0.3, "psi_ab": 0.25, "length": 4.0, "coupling": 0.3,
            "weight": 0.2}  # fmt: skip

    @tier
    @given(which=st.sampled_from(sorted(makers)), data=st.data())
    def door(which, data):
        make, params = makers[which]
        kwargs = {k: base[k] for k in params if k in base}
        bad = data.draw(st.sampled_from(params))
        kwargs[bad] = data.draw(hostile_numbers | st.sampled_from(["nope", "powerlaw"]))
        ok, s = check_python(lambda: make(**kwargs), [which, *params])
        if ok:  # a structure that was accepted has a correlation matrix at small n
            check_python(lambda: s.validate(4), [which, *params, "validate"])

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_load_structure(tier):
    @tier
    @given(files=structure_files())
    def door(files):
        with example_folder() as root:
            path = lay_down(root, files)
            check_python(lambda: load_structure(path), [files.main, "structure"])

    door()


# ------------------------------------------------------------------------------ curves in

arrays_like = st.one_of(
    st.sampled_from([N, N[:2], N[::-1], -N, N * 0, N + 0.5, np.append(N, np.nan)]),
    st.sampled_from([N.astype(object), N.astype(str), N > 2, N * 1j, N.reshape(1, -1), []]),
    st.sampled_from([N.astype("datetime64[s]"), [1, "2", 3, 4, 5], None, 5.0, "1,2,3"]),
    st.lists(hostile_numbers, min_size=0, max_size=6),
)


@pytest.mark.parametrize("tier", TIERS)
def test_curves_from_arrays(tier):
    @tier
    @given(n=arrays_like, y=arrays_like, sigma=st.none() | arrays_like,
           keys=st.none() | st.sampled_from([["a"], [], ["a", "b"], "a", [None]]))  # fmt: skip
    def door(n, y, sigma, keys):
        names = ["curves_from_arrays", "n", "y", "sigma", "keys", "curve"]
        check_python(lambda: fit.curves_from_arrays(n, y, keys=keys, sigma=sigma), names)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_curves_from_pairs(tier):
    pair = st.tuples(arrays_like, arrays_like) | st.sampled_from([(N,), (N, Y, Y), "ab", None])

    @tier
    @given(pairs=st.lists(pair, max_size=3) | st.dictionaries(st.text(max_size=3), pair,
                                                              max_size=2))  # fmt: skip
    def door(pairs):
        names = ["curves_from_pairs", "pair", "curve", "n", "y"]
        check_python(lambda: fit.curves_from_pairs(pairs), names)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_read_curves(tier):
    @tier
    @given(files=csv_tables(), group=st.sampled_from([(), ("curve",), ("nope",), ("n",)]),
           y_col=st.sampled_from(["score", "n", "x"]))  # fmt: skip
    def door(files, group, y_col):
        with example_folder() as root:
            path = lay_down(root, files)
            names = [files.main, "read_curves", "column", *group, y_col]
            check_python(lambda: fit.read_curves(path, group=group, y_col=y_col), names)

    door()


@st.composite
def frames(draw):
    """A long frame of two curves with a hostile column, dtype or layout."""
    df = pd.DataFrame({"bench": np.repeat(["a", "b"], 5), "n": np.tile(N, 2),
                       "score": np.r_[Y, 40 * N**0.05]})  # fmt: skip
    change = draw(st.sampled_from([
        "none", "datetime_n", "object_score", "string_n", "bool_n", "nan", "negative",
        "duplicate", "empty", "categorical", "timedelta_n", "extra", "int_score", "complex",
    ]))  # fmt: skip
    if change == "datetime_n":
        df["n"] = pd.to_datetime(df["n"], unit="D")
    elif change == "object_score":
        df["score"] = df["score"].astype(object)
        df.loc[3, "score"] = "x"
    elif change == "string_n":
        df["n"] = df["n"].astype(str)
    elif change == "bool_n":
        df["n"] = df["n"] > 2
    elif change == "nan":
        df.loc[2, "score"] = np.nan
    elif change == "negative":
        df.loc[2, "score"] = -1.0
    elif change == "duplicate":
        df = pd.concat([df, df[["score"]]], axis=1)
    elif change == "empty":
        df = df.iloc[:0]
    elif change == "categorical":
        df["n"] = df["n"].astype("category")
    elif change == "timedelta_n":
        df["n"] = pd.to_timedelta(df["n"], unit="s")
    elif change == "extra":
        df["sd"] = "high"
    elif change == "int_score":
        df["score"] = df["score"].round().astype(int)
    elif change == "complex":
        df["score"] = df["score"] * (1 + 0j)
    return df


@pytest.mark.parametrize("tier", TIERS)
def test_curves_from_frame(tier):
    @tier
    @given(df=frames(), group=st.sampled_from([(), "bench", ("bench", "n"), "nope"]),
           sigma=st.sampled_from([None, "score", "nope", 0.5, -1.0]))  # fmt: skip
    def door(df, group, sigma):
        names = ["curves_from_frame", "frame", "column", "group", "sigma", "n", "score", "y"]
        check_python(lambda: fit.curves_from_frame(df, y="score", group=group, sigma=sigma),
                     names)  # fmt: skip

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_fit_curves_of_frames(tier):
    """A frame straight into fit_curves: several curves without ``group`` are never fitted as
    one merged curve that says converged (it is refused, or the columns say it is one curve)."""

    @tier
    @given(df=frames(), model=st.sampled_from(["powerlaw", "powerlaw", "nope", ""]))
    def door(df, model):
        names = ["fit_curves", "frame", "group", "column", "curve", "model", "law", "n", "y"]
        frame = df.rename(columns={"score": "y"})
        ok, res = check_python(lambda: fit.fit_curves(frame, model), names)
        if ok:
            assert_honest(res)
            several = "bench" in frame and frame["bench"].nunique() > 1
            assert not (several and len(res.converged) == 1), "several curves fitted as one"

    door()


# ------------------------------------------------------------------------------ laws

law_texts = st.one_of(
    st.sampled_from(
        [
            "S_inf - A * n**(-a)",
            "c * n**b",
            "a*x + b",
            "exp(a) * n",
            "n**",
            "",
            "__import__('os').system('true')",
            "a" * 5000,
            "(" * 200 + "n" + ")" * 200,
            "1e999 * n**a",
            "log(-a) + n",
            "a.b",
            "lambda: 1",
            "n if a else b",
            "a[0] * n",
            "f(n)",
            "a + b + c + d + e + f + g + h + k + m + p * n",
            "n ** 1" + "0" * 400,
            "a\x00b",
            "é * n",
        ]
    ),
    st.text(alphabet="anbx+-*/() .0123456789e", max_size=30),
)


@pytest.mark.parametrize("tier", TIERS)
def test_parse_law(tier):
    @tier
    @given(text=law_texts, predictor=st.sampled_from(["n", "x", "", "a", "1"]),
           starts=st.none() | st.sampled_from([{"a": [0.5]}, {"a": "x"}, {"zz": [1.0]},
                                               {"a": [math.nan]}, {"a": []}]))  # fmt: skip
    def door(text, predictor, starts):
        names = ["parse_law", "law", "expression", "predictor", "start", "parameter", "name"]
        check_python(lambda: fit.parse_law(text, predictor=predictor, starts=starts), names)

    door()


def _saturating(n, S_inf, A, a):
    return S_inf - A * n**-a


@pytest.mark.parametrize("tier", TIERS)
def test_define_law(tier):
    @tier
    @given(
        name=st.sampled_from(["sat", "", "powerlaw", 3, None]),
        params=st.sampled_from([None, ("S_inf", "A", "a"), ("a",), (), ("a", "a"), "abc"]),
        transforms=st.none() | st.sampled_from([{"a": "positive"}, {"a": (1, 0)},
                                                {"a": (0, math.nan)}, {"zz": "positive"},
                                                {"a": "nope"}, {"a": 3}]),
        linear=st.sampled_from([(), ("S_inf", "A"), ("zz",), ("a",), "S_inf"]),
        starts=st.none() | st.sampled_from([{"a": [0.2, 1.0]}, {"a": [-1.0]}, {"a": "x"},
                                            {"a": [math.inf]}]),
    )  # fmt: skip
    def door(name, params, transforms, linear, starts):
        names = ["define_law", "law", "name", "params", "parameter", "transform", "linear",
                 "start", "sat"]  # fmt: skip
        check_python(lambda: fit.define_law(name, _saturating, params, transforms=transforms,
                                            linear=linear, starts=starts), names)  # fmt: skip

    door()


# ------------------------------------------------------------------------------ fits, after a fit

resample_counts = st.sampled_from([-1, 0, 1, 8, 1.5, 8.0, math.nan, True, "8", None, 10**30])
"""Bootstrap sizes: wrong, or one valid size (each new size is a new compiled program)."""
small_counts = st.one_of(st.integers(-3, 24), st.sampled_from([0, 1.5, 2.0, math.nan, True,
                                                               "8", None, 10**30]))  # fmt: skip


@pytest.mark.parametrize("tier", TIERS)
def test_bootstrap(tier, fitted):
    (curves, res), _ = fitted

    @tier
    @given(m=resample_counts, n_starts=st.sampled_from([1, 0, 2.0, "1", None]),
           kind=st.sampled_from(["residual", "case", "parametric", "nope"]),
           interval=st.sampled_from(["percentile", "studentized", "calibrated", "x"]),
           key=st.sampled_from([0, 1, -1, 2**64, "k", 1.5]))  # fmt: skip
    def door(m, n_starts, kind, interval, key):
        names = ["bootstrap", "m", "n_starts", "kind", "interval", "key", "seed"]
        ok, _ = check_python(lambda: fit.bootstrap(key, curves, res, m=m, kind=kind,
                                                      n_starts=n_starts, interval=interval),
                                names)  # fmt: skip
        if ok:
            assert isinstance(m, int) and m >= 2

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_predict(tier, fitted):
    (_, one), (_, two) = fitted

    @tier
    @given(
        which=st.booleans(),
        n=hostile_numbers
        | st.sampled_from(
            [np.array([1.0, 2.0]), np.array([0.5]), np.array([[4.0]]), np.array([]), [1, "a"]]
        ),
    )
    def door(which, n):
        res = one if which else two
        ok, value = check_python(lambda: fit.predict(res, n), ["predict", "n", "domain"])
        if ok:
            assert np.all(np.isfinite(np.asarray(value, dtype=float))), (n, value)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_compare_laws(tier, fitted):
    _, (curves, _) = fitted

    @tier
    @given(laws=st.sampled_from([None, ["powerlaw"], [], ["nope"], ["powerlaw", "powerlaw"],
                                 "powerlaw", [3]]),
           holdout=small_counts, boot=small_counts,
           level=st.sampled_from([0.95, 0.0, 1.0, math.nan, 95, "0.9"]),
           direction=st.sampled_from(["theory", "convex", "x"]))  # fmt: skip
    def door(laws, holdout, boot, level, direction):
        names = ["compare_laws", "laws", "law", "holdout_last", "bootstrap", "level",
                 "direction", "curve"]  # fmt: skip
        laws_used = ["powerlaw"] if laws is None else laws  # keep the valid runs small
        check_python(lambda: fit.compare_laws(0, curves, laws_used, holdout_last=holdout,
                                              bootstrap=boot, level=level,
                                              direction=direction), names)  # fmt: skip

    door()


# ------------------------------------------------------------------------------ hidden states


@pytest.mark.parametrize("tier", TIERS)
def test_open_hidden_and_measure(tier):
    option_names = ["chunk", "normalise", "fit", "loss", "level", "bootstrap", "seed"]

    @tier
    @given(
        files=hidden_files(),
        options=st.dictionaries(st.sampled_from(option_names), small_counts, max_size=1),
    )
    def door(files, options):
        with example_folder() as root:
            path = lay_down(root, files)
            other = root / "b.npy" if files.main == "a.npy" else None
            names = [files.main, "b.npy", "hidden", "open_hidden"]
            ok, source = check_python(lambda: arrays.open_hidden(path, other), names)
            if not ok:
                return
            opts = {"fit": False, "bootstrap": 0, **options}
            names = ["MeasureOptions", "measure", *opts, files.main, "hidden", "pair", "token"]
            ok, _ = check_python(lambda: measure.measure(source, measure.MeasureOptions(**opts)),
                                 names)  # fmt: skip

    door()


# ------------------------------------------------------------------------------ design


@pytest.mark.parametrize("tier", TIERS)
def test_design_objects(tier):
    @tier
    @given(which=st.sampled_from(["truth", "noise", "design", "options", "log_spaced"]),
           a=hostile_numbers, b=hostile_numbers)  # fmt: skip
    def door(which, a, b):
        calls = {
            "truth": (lambda: design.Truth("alpha_n", (30.0, a, b)), ["Truth", "alpha_n",
                                                                       "params", "beta", "n_b"]),
            "noise": (lambda: design.Noise("lognormal", sigma=a, scale=b), ["Noise", "sigma",
                                                                              "scale"]),
            "design": (lambda: design.Design((1.0, 4.0, a), (3000, 3000, b)), ["Design", "n",
                                                                                 "questions"]),
            "options": (lambda: design.StudyOptions(m=a, level=b), ["StudyOptions", "m",
                                                                     "level"]),
            "log_spaced": (lambda: design.log_spaced(4, 1.0, a, b), ["log_spaced", "n_max",
                                                                      "total_questions", "k"]),
        }  # fmt: skip
        call, names = calls[which]
        check_python(call, names)

    door()
