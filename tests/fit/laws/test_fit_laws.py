"""User laws: define_law, the expression parser, load_law, and recovery by the built-in laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import curve_fit

from tokenscale_sim.fit import CurveArrays, FitOptions, define_law, fit_arrays, get_model
from tokenscale_sim.fit.laws.define import LAWS
from tokenscale_sim.fit.laws.expression import load_law, parse_law

jax.config.update("jax_enable_x64", True)

N = np.unique(np.round(np.geomspace(1, 2048, 30)))


def arrays(x, y):
    y = np.atleast_2d(np.asarray(y, float))
    x = np.broadcast_to(np.asarray(x, float), y.shape)
    one = np.ones_like(y)
    return CurveArrays(x, y, one, one, one)


# ----------------------------------------------------------------------------- parser


ACCEPT = [
    ("S_inf - A * n**(-a)", {"S_inf": 80.0, "A": 50.0, "a": 0.5}, lambda n, t: 80 - 50 * n**-0.5),
    ("a + b * log(n)", {"a": 1.0, "b": 2.0}, lambda n, t: 1 + 2 * np.log(n)),
    ("c * exp(-n / s) + e", {"c": 2.0, "s": 3.0}, lambda n, t: 2 * np.exp(-n / 3) + np.e),
    ("k * sqrt(n) * pi", {"k": 0.5}, lambda n, t: 0.5 * np.sqrt(n) * np.pi),
    (
        "-a * arctan(n) + tanh(b)",
        {"a": 1.5, "b": 0.2},
        lambda n, t: -1.5 * np.arctan(n) + np.tanh(0.2),
    ),
    (
        "maximum(a, log10(n)) + minimum(b, abs(sin(n) - cos(n)))",
        {"a": 1.0, "b": 0.3},
        lambda n, t: np.maximum(1.0, np.log10(n)) + np.minimum(0.3, np.abs(np.sin(n) - np.cos(n))),
    ),
    ("+a / (1 + 2.5e-1 * n)", {"a": 3.0}, lambda n, t: 3 / (1 + 0.25 * n)),
]


@pytest.mark.parametrize(("text", "theta", "ref"), ACCEPT)
def test_parse_law_evaluates_like_numpy(text, theta, ref):
    law = parse_law(text, starts={k: v for k, v in theta.items()})
    assert law.params == tuple(theta)
    n = np.array([1.0, 2.0, 5.0, 17.0])
    u = law.unconstrained(jnp.asarray([theta[p] for p in law.params]))
    got = np.asarray(law.predict(u, jnp.asarray(n)))
    np.testing.assert_allclose(got, ref(n, theta), rtol=1e-12)


REJECT = [
    ("S_inf - A * n^(-a)", "operator '^' at column 14"),
    ("a % n", "operator '%' at column 3"),
    ("a // n", "operator '//' at column 3"),
    ("~a + n", "operator '~' at column 1"),
    ("__import__('os').system('x') + n", "function \"__import__('os').system\" at column 1"),
    ("a * __import__('os')", "function '__import__' at column 5"),
    ("a.real * n", "attribute 'a.real' at column 1"),
    ("a[0] * n", "subscript 'a[0]' at column 1"),
    ("gamma(n) * a", "function 'gamma' at column 1"),
    ("exp * n", "function name used as a value 'exp' at column 1"),
    ("a * exp(n, 2)", "call with 2 arguments (needs 1) 'exp(n, 2)' at column 5"),
    ("a * maximum(n)", "call with 1 arguments (needs 2)"),
    ("a * exp(x=n)", "keyword argument 'x=n' at column 9"),
    ("a * 'n'", "constant \"'n'\" at column 5"),
    ("a * True + n", "constant 'True' at column 5"),
    ("a < n", "compare 'a < n' at column 1"),
    ("lambda: n", "lambda"),
    ("a if n else b", "ifexp"),
    ("a * (n", "syntax error at column"),
    ("n * 2", "has no parameters"),
]


@pytest.mark.parametrize(("text", "message"), REJECT)
def test_parse_law_rejects_with_token_and_column(text, message):
    with pytest.raises(ValueError, match="parse_law") as err:
        parse_law(text)
    assert message in str(err.value)


def test_parse_law_parameters_in_first_appearance_order_and_linear_detection():
    law = parse_law("S_inf - A * n**(-a)", starts={"a": 0.5})
    assert law.params == ("S_inf", "A", "a") and law.q == 2
    assert parse_law("A * B * n", starts={"A": 1, "B": 1}).q == 1  # bilinear: only A
    assert parse_law("c / (1 + s * n)", starts={"s": 1.0}).q == 1  # c
    assert parse_law("exp(-k * n) * c + d", starts={"k": 1.0}).q == 2  # c and d
    moved = parse_law("A * n**(-a) + c", starts={"a": 0.5})
    assert moved.params == ("A", "c", "a") and moved.q == 2  # linear first: u = (w, v)
    assert parse_law("b1*(1-exp(-b2*x))", predictor="x", linear=(), starts=[[1, 1]]).q == 0
    positive = parse_law("c * n", transforms={"c": "positive"}, starts={"c": 1.0})
    assert positive.q == 0 and positive.positive == (True,)
    with pytest.raises(ValueError, match="params"):
        parse_law("a * n + b", params=["a"])


def test_load_law_from_file_and_module(tmp_path):
    path = tmp_path / "mylaw.py"
    path.write_text("import jax.numpy as jnp\n\ndef law(n, t):\n    return t['c'] * n ** t['k']\n")
    fn = load_law(f"{path}:law")
    assert float(fn(jnp.asarray(4.0), {"c": 2.0, "k": 0.5})) == pytest.approx(4.0)
    assert load_law("numpy:hypot").__wrapped__ is np.hypot  # the function, behind guard_law
    with pytest.raises(ValueError, match=r"expected 'file\.py:function'"):
        load_law("no_colon")
    with pytest.raises(FileNotFoundError, match="load_law"):
        load_law(f"{tmp_path / 'missing.py'}:law")
    with pytest.raises(ValueError, match="has no function or Model 'nope'"):
        load_law(f"{path}:nope")


# ----------------------------------------------------------------------------- define_law


def _decay(x, t):
    return t["c"] + t["A"] * jnp.exp(-x / t["s"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": []}, "params must be distinct"),
        ({"params": ["c", "c", "s"]}, "params must be distinct"),
        ({"transforms": {"zz": "free"}}, "unknown parameters"),
        ({"linear": ["zz"]}, "unknown parameters"),
        ({"transforms": {"s": "log"}}, "transform of 's'"),
        ({"transforms": {"s": (2.0, 1.0)}}, "bounds of 's'"),
        ({"linear": ["s"], "transforms": {"s": "positive"}}, "linear parameter 's' must be 'free'"),
        ({"predictor": "c"}, "also a parameter"),
        ({"space": "sqrt"}, "space must be"),
        ({"starts": {"s": 1.0}, "grid": lambda a, b: {"s": 1.0}}, "starts or grid"),
        ({"starts": {"s": 1.0, "zz": 2.0}}, "starts for unknown parameters"),
        ({"starts": np.ones((2, 2))}, "needs 3 columns"),
        ({"starts": {"s": -1.0}, "transforms": {"s": "positive"}}, "inside their transforms"),
    ],
)
def test_define_law_validation(kwargs, message):
    base = {"params": ["c", "A", "s"], "linear": ["c", "A"]}
    base.update(kwargs)
    params = base.pop("params")
    with pytest.raises(ValueError, match="define_law") as err:
        define_law("decay", _decay, params, **base)
    assert message in str(err.value)


@pytest.mark.parametrize("spec", ["free", "positive", (-1.0, 3.0), (0.5, 0.9)])
def test_transforms_round_trip(spec):
    law = define_law(
        "one", lambda x, t: t["p"] * x, ["p"], transforms={"p": spec}, starts={"p": 0.6}
    )
    for value in (0.55, 0.6, 0.85):
        back = law.natural(law.unconstrained(jnp.asarray([value])))
        np.testing.assert_allclose(np.asarray(back), [value], rtol=1e-12)


def test_user_law_matches_scipy_estimates_and_standard_errors():
    """An exponential approach fitted by define_law vs scipy's curve_fit (independent LM)."""
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 12.0, 25)
    y = 2.0 + 3.0 * np.exp(-x / 4.0) + 0.05 * rng.standard_normal(x.size)
    law = define_law(
        "decay",
        _decay,
        ["c", "A", "s"],
        transforms={"s": "positive"},
        linear=["c", "A"],
        starts={"s": [0.5, 5.0, 50.0]},
        predictor="x",
    )
    res = fit_arrays(law, arrays(x, y), FitOptions(loss="linear"))
    popt, pcov = curve_fit(lambda x, c, a, s: c + a * np.exp(-x / s), x, y, p0=[1, 1, 1])
    assert res.converged[0]
    np.testing.assert_allclose(res.estimates[0], popt, rtol=1e-7)
    np.testing.assert_allclose(res.se[0], np.sqrt(np.diag(pcov)), rtol=1e-5)


def test_linear_loss_takes_any_real_x_and_y():
    """y crossing zero, negative x: a law with predictor x under the linear loss."""
    rng = np.random.default_rng(4)
    x = np.linspace(-3.0, 3.0, 31)
    y = 1.5 * np.tanh(0.8 * x) - 0.2 + 0.01 * rng.standard_normal(x.size)
    law = parse_law("a * tanh(k * x) + b", predictor="x", starts={"k": [0.1, 1.0]})
    assert law.q == 2 and law.params == ("a", "b", "k")
    res = fit_arrays(law, arrays(x, y), FitOptions(loss="linear"))
    popt, _ = curve_fit(lambda x, a, b, k: a * np.tanh(k * x) + b, x, y, p0=[1, 0, 1])
    assert res.converged[0]
    np.testing.assert_allclose(res.estimates[0], popt, rtol=1e-7)


def test_exact_fit_is_not_reported_converged():
    """Noise-free data: the residuals are rounding, so are the SEs: honest status, right values."""
    law = parse_law(
        "c + A * exp(-x / s)",
        predictor="x",
        transforms={"s": "positive"},
        starts={"s": [1.0, 10.0]},
    )
    x = np.arange(1.0, 11.0)
    res = fit_arrays(law, arrays(x, 2.0 + 3.0 * np.exp(-x / 4.0)), FitOptions(loss="linear"))
    np.testing.assert_allclose(res.estimates[0], [2.0, 3.0, 4.0], rtol=1e-9)
    assert not res.converged[0]


# ----------------------------------------------------------------------------- built-in laws

TRUTHS = {
    "saturating": [[80.0, 50.0, 0.5], [60.0, 20.0, 0.2], [90.0, 70.0, 1.1]],
    "loglinear": [[40.0, 3.0], [70.0, 1.5], [20.0, 6.0]],
    "logistic": [[25.0, 80.0, 30.0, 1.0], [10.0, 60.0, 200.0, 0.5], [30.0, 90.0, 8.0, 1.5]],
    "bnsl": [
        [80.0, -40.0, 0.1, 0.6, 50.0, 0.5],
        [70.0, -30.0, 0.0, 1.0, 200.0, 1.0],
        [90.0, -60.0, 0.3, 0.4, 20.0, 0.3],
    ],
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "bnsl" else n for n in TRUTHS]
)
def test_builtin_law_recovers_known_parameters(name):
    """Three truths per law fitted in one vmapped call (log loss, 1e-4 relative noise)."""
    law = get_model(name)
    assert law is LAWS[name]
    truth = np.array(TRUTHS[name])
    y = np.stack([np.asarray(law.predict(law.unconstrained(jnp.asarray(t)), N)) for t in truth])
    y *= 1 + 1e-4 * np.random.default_rng(5).standard_normal(y.shape)
    res = fit_arrays(law, arrays(N, y))
    assert res.converged.all()
    z = (res.estimates - truth) / res.se
    assert np.all(np.abs(z) < 5), z
    assert np.all(res.se < 0.05 * np.maximum(np.abs(truth), 0.1))  # the test has teeth
