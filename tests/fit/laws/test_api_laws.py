"""Writing laws and names in the Python API (issue 27): curve_fit-style laws, one-sided bounds,
starts per parameter, a clear line for NumPy in a law, the README's names, one key rule, and a
law defined twice that is neither rebuilt nor traced again."""

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import curve_fit

from tokenscale_sim import fit
from tokenscale_sim.fit import CurveArrays, FitOptions, define_law, fit_arrays, parse_law
from tokenscale_sim.fit.inference.coverage import synthetic_curves
from tokenscale_sim.runtime.validation import as_key

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "tokenscale_sim.fit."
X = np.linspace(0.0, 12.0, 25)
P0 = [0.5, 1.0, 2.0]


def one_curve(x, y) -> CurveArrays:
    one = np.ones((1, len(x)))
    return CurveArrays(np.asarray(x, float)[None], np.asarray(y, float)[None], one, one, one)


class TraceCounter:
    """Counts calls of the law (each one a trace): an object, so the law's source token holds
    it by identity and the count itself is not part of the law's source."""

    def __init__(self):
        self.calls = 0


TRACES = TraceCounter()


def decay_np(x, c, A, s):
    return c + A * np.exp(-x / s)


def make_decay_law():
    """A fresh function each call, the same source: a notebook cell run again."""

    def decay(x, c, A, s):
        TRACES.calls += 1
        return c + A * jnp.exp(-x / s)

    return define_law(decay, transforms={"c": (0.0, np.inf)}, starts=P0)


@pytest.fixture(scope="module")
def near_bound():
    """Noisy data whose least-squares ``c`` is 0.02, near its bound 0 (c in (0, inf))."""
    rng = np.random.default_rng(11)
    y = 0.02 + 3.0 * np.exp(-X / 4.0) + 0.01 * rng.standard_normal(X.size)
    law = make_decay_law()
    res = fit_arrays(law, one_curve(X, y), FitOptions(loss="linear"))
    return law, y, res


# ------------------------------------------------------------------ curve_fit-style laws


def test_curve_fit_style_law_agrees_with_scipy_near_a_one_sided_bound(near_bound):
    law, y, res = near_bound
    assert law.name == "decay" and law.params == ("c", "A", "s") and law.predictor == "x"
    tight = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15}
    popt, pcov = curve_fit(decay_np, X, y, p0=P0, **tight)
    assert 0 < popt[0] < 0.05  # the optimum lies near the bound
    assert res.converged[0]
    np.testing.assert_allclose(res.estimates[0], popt, rtol=1e-6)
    np.testing.assert_allclose(res.se[0], np.sqrt(np.diag(pcov)), rtol=1e-4)
    bounded, _ = curve_fit(decay_np, X, y, p0=P0, bounds=([0, -np.inf, 0], np.inf), **tight)
    np.testing.assert_allclose(res.estimates[0], bounded, rtol=1e-6)


def test_a_law_defined_again_is_the_same_model_and_its_fit_is_not_traced_again(near_bound):
    law, y, first = near_bound
    again = make_decay_law()
    assert again is law
    before = TRACES.calls
    res = fit_arrays(again, one_curve(X, y), FitOptions(loss="linear"))
    assert TRACES.calls == before  # nothing traced: the compiled fit was reused
    np.testing.assert_array_equal(res.estimates, first.estimates)


def test_a_changed_law_is_a_new_model():
    def law_with(scale):
        def f(x, a, b):
            return a * jnp.exp(-b * x) * scale

        return define_law(f)

    assert law_with(1.0) is law_with(1.0)
    assert law_with(1.0) is not law_with(2.0)  # closure value
    assert define_law(lambda x, a: a * x) is not define_law(lambda x, a: a * x + 1)
    assert define_law(lambda x, a: a * x) is not define_law(lambda x, a: a * x, predictor="n")
    text = "S_inf - A * n**(-a)"
    assert parse_law(text, starts={"a": 0.5}) is parse_law(text, starts={"a": 0.5})
    assert parse_law(text, starts={"a": 0.5}) is not parse_law(text, starts={"a": 0.7})


def test_signature_styles():
    def f(x, a, b):
        return a + b * x

    assert define_law(f).params == ("a", "b")
    assert define_law("line", f).name == "line"
    assert define_law(f, params=["b", "a"]).params == ("b", "a")
    star = define_law("star", lambda x, *p: p[0] + p[1] * x, ["a", "b"])
    theta = define_law("theta", lambda x, t: t["a"] + t["b"] * x, ["a", "b"])
    u = jnp.asarray([1.0, 2.0])
    x = jnp.asarray([1.0, 3.0])
    for law in (define_law(f), star, theta):
        np.testing.assert_allclose(np.asarray(law.predict(u, x)), [3.0, 7.0])
    assert theta.predictor == "n" and star.predictor == "x"
    assert define_law(lambda n, a: a * n).predictor == "n"
    with_default = define_law("eps", lambda x, t, eps=0.0: t["a"] * x + eps, ["a"])
    np.testing.assert_allclose(np.asarray(with_default.predict(u[:1], x)), [1.0, 3.0])


def test_params_that_are_not_the_signature_are_refused():
    def f(x, a, b):
        return a + b * x

    with pytest.raises(ValueError, match=r"params \['a'\] must name the parameters \['a', 'b'\]"):
        define_law(f, params=["a"])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((lambda x, *p: p[0] * x,), {}, "name the parameters of law 'lambda' with params"),
        ((lambda x: x,), {}, "must take the predictor and its parameters"),
        ((lambda x, a: a, lambda x, a: a), {}, "give the law once"),
        (("name",), {}, "the law must be a function"),
        ((3,), {}, "name must be a string"),
    ],
)
def test_a_law_of_the_wrong_form_is_one_clear_type_error(args, kwargs, message):
    with pytest.raises(TypeError, match="define_law") as err:
        define_law(*args, **kwargs)
    assert message in str(err.value)


# ------------------------------------------------------------------ NumPy and tracing


def test_a_law_calling_numpy_names_the_law_and_the_jax_function():
    def g(x, a, b):
        return a * np.exp(-b * x)

    with pytest.raises(ValueError, match=r"define_law: law 'g' calls NumPy \(np\.exp at ") as err:
        define_law(g)
    assert "use jax.numpy (jnp.exp" in str(err.value)
    assert "test_api_laws.py line" in str(err.value)
    with pytest.raises(ValueError, match=r"law 'theta' calls NumPy \(np\.log"):
        define_law("theta", lambda n, t: t["a"] * np.log(n), ["a"])


def test_a_law_typed_in_a_notebook_cell_names_the_cell_line_not_a_temporary_file(monkeypatch):
    """IPython compiles each cell to /tmp/ipykernel_<pid>/<hash>.py (its lines kept in
    linecache): the message says "line 2 of its notebook cell" (the file's name changes on every
    run and means nothing)."""
    import linecache

    source = "def g(x, a, b):\n    return a * np.exp(-b * x)\n"
    cell = "/tmp/ipykernel_4242/3228049155.py"
    monkeypatch.setitem(linecache.cache, cell, (len(source), None, source.splitlines(True), cell))
    scope = {"np": np}
    exec(compile(source, cell, "exec"), scope)
    with pytest.raises(ValueError, match="calls NumPy") as err:
        define_law(scope["g"])
    assert "(np.exp at line 2 of its notebook cell);" in str(err.value)
    assert "ipykernel" not in str(err.value)


def test_other_untraceable_laws_are_one_line():
    with pytest.raises(ValueError, match=r"law 'lambda' needs a concrete number .*jnp\.where"):
        define_law(lambda x, a: float(a) * x)
    with pytest.raises(ValueError, match=r"law 'branch' needs a concrete number"):
        define_law("branch", lambda x, a: x if a > 0 else -x, ["a"])
    with pytest.raises(ValueError, match=r"law 'k' failed at .*KeyError: 'zz' \(a law f\(x, th"):
        define_law("k", lambda n, t: t["a"] * n ** t["zz"], ["a"])
    with pytest.raises(ValueError, match=r"law 'wide' must return a real array of shape \(5,\)"):
        define_law("wide", lambda x, a: jnp.stack([x, a * x]), ["a"])


def test_a_law_from_a_file_calling_numpy_is_one_line(tmp_path):
    path = tmp_path / "mylaw.py"
    path.write_text("import numpy as np\n\ndef law(x, t):\n    return t['a'] * np.sqrt(x)\n")
    found = fit.load_law(f"{path}:law")
    with pytest.raises(ValueError, match=r"law '.*mylaw.py:law' calls NumPy \(np\.sqrt at .*"):
        define_law("mine", found, ["a"])


# ------------------------------------------------------------------ bounds and starts


@pytest.mark.parametrize(
    ("bounds", "values"),
    [((0.0, np.inf), [1e-6, 0.3, 50.0]), ((-np.inf, 2.0), [-40.0, 1.9, 2.0 - 1e-7]),
     ((-1.0, np.inf), [-0.999, 0.0, 7.0]), ((-np.inf, np.inf), [-3.0, 0.0, 3.0])],
)  # fmt: skip
def test_one_sided_and_infinite_bounds_round_trip_and_stay_inside(bounds, values):
    law = define_law("one", lambda x, t: t["p"] * x, ["p"], transforms={"p": bounds})
    for value in values:
        back = law.natural(law.unconstrained(jnp.asarray([value])))
        np.testing.assert_allclose(np.asarray(back), [value], rtol=1e-9)
    extremes = np.asarray(law.natural(jnp.asarray([-30.0])))[0], law.natural(jnp.asarray([30.0]))
    lo, hi = bounds
    assert all(lo <= float(np.ravel(v)[0]) <= hi for v in extremes)
    grid = law.grid(1.0, 10.0)
    natural = np.asarray(jax.vmap(law.natural)(jnp.asarray(grid)))
    assert np.all((natural > lo) & (natural < hi))  # default starts lie inside too


@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, 1.0), (np.inf, np.inf), (np.nan, 1.0)])
def test_empty_bounds_are_refused(bounds):
    with pytest.raises(ValueError, match=r"define_law: bounds of 'p' must be \(lo, hi\)"):
        define_law("one", lambda x, t: t["p"] * x, ["p"], transforms={"p": bounds})


def test_starts_default_per_parameter():
    law = define_law(
        lambda x, c, A, s, k: c + A * jnp.exp(-((x / s) ** k)),
        transforms={"s": "positive", "k": (0.0, 4.0)},
        starts={"s": [2.0, 20.0]},
    )
    assert law.params == ("c", "A", "s", "k")
    table = np.asarray(jax.vmap(law.natural)(jnp.asarray(law.grid(1.0, 10.0))))
    rows = {tuple(np.round(r, 9)) for r in table}
    c_a = {-1.0, -0.1, 0.1, 0.5, 2.0}  # free: its defaults and +-1/10 (the data's largest |x|)
    expected = {
        (c, a, s, k) for c in c_a for a in c_a for s in (2.0, 20.0) for k in (0.8, 2.0, 3.2)
    }
    assert rows == expected


# ------------------------------------------------------------------ names


def _readme_text() -> str:
    return (ROOT / "README.md").read_text()


def _readme_and_notebook_text() -> str:
    text = _readme_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        text += "\n".join("".join(c["source"]) for c in cells)
    return text


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def fit_names() -> list[str]:
    """Every ``fit.name`` (and ``fit.name.attr``) the README and the notebooks use."""
    text = _readme_and_notebook_text()
    return sorted(set(re.findall(r"(?<![\w.])fit\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", text)))


def bound_by_fit_init() -> set[str]:
    """Names ``tokenscale_sim/fit/__init__.py`` itself binds (so ``fit.name`` exists right
    after ``from tokenscale_sim import fit``, whatever else was imported)."""
    tree = ast.parse((ROOT / "tokenscale_sim" / "fit" / "__init__.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            names.add(node.module.removeprefix(PACKAGE).split(".")[0])  # binds the submodule
    return names


def test_the_readme_python_blocks_use_fit_names_that_exist():
    names = re.findall(r"\bfit\.([A-Za-z_]\w*)", "\n".join(_python_blocks(_readme_text())))
    assert names  # the README shows the Python API
    assert not sorted(set(names) - set(dir(fit)))


@pytest.mark.parametrize("name", fit_names())
def test_every_fit_name_in_the_readme_and_notebooks_resolves(name):
    head, *rest = name.split(".")
    assert head in bound_by_fit_init(), f"fit/__init__.py does not bind {head!r}"
    obj = fit
    for part in [head, *rest]:
        obj = getattr(obj, part)
    assert obj is not None


def test_parse_law_and_compare_are_fit_attributes():
    assert fit.parse_law is parse_law
    assert fit.compare.compare_laws is fit.compare_laws
    assert "parse_law" in fit.__all__ and "compare" in fit.__all__


# ------------------------------------------------------------------ one key rule


def _public_key_functions():
    """Module-level public functions of every module of the package (every stage folder)
    whose first argument is ``key``."""
    import tokenscale_sim

    found = []
    for info in pkgutil.walk_packages(tokenscale_sim.__path__, "tokenscale_sim."):
        if info.name.endswith((".vit", ".__main__")):  # the vision extra; running the CLI
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != module.__name__:
                continue
            params = list(inspect.signature(obj).parameters)
            if params[:1] == ["key"]:
                found.append(obj)
    return found


def test_every_public_function_taking_a_key_uses_as_key():
    functions = _public_key_functions()
    names = {f.__name__ for f in functions}
    assert {"bootstrap", "compare_laws", "simulate", "design_study"} <= names
    missing = [f"{f.__module__}.{f.__name__}" for f in functions if "as_key(" not in
               inspect.getsource(f)]  # fmt: skip
    assert not missing


def test_as_key_takes_a_seed_or_a_key():
    same = jax.random.key_data(as_key("f", 7)), jax.random.key_data(jax.random.key(7))
    np.testing.assert_array_equal(*same)
    key = jax.random.key(3)
    assert as_key("f", key) is key
    with pytest.raises(TypeError, match=r"f: key must be a JAX PRNG key or an int seed, got s"):
        as_key("f", "7")
    with pytest.raises(ValueError, match=r"f: seed must be in \[0, 2\*\*63 - 1\]"):
        as_key("f", -1)


def test_a_seed_and_its_key_draw_the_same_curves():
    args = ("powerlaw", [2.0, -0.3], [1.0, 2.0, 4.0, 8.0], 0.05, 3)
    by_seed = synthetic_curves(5, *args)
    by_key = synthetic_curves(jax.random.key(5), *args)
    np.testing.assert_array_equal(by_seed.arrays.y, by_key.arrays.y)


@pytest.mark.slow
def test_bootstrap_takes_an_int_seed_as_its_key():
    """The issue's case (``bootstrap(0, ...)`` raised JAX's "invalid PRNG key data").
    Twelve points, so the calibrated bootstrap intervals are used rather than the fit's own."""
    n = 2.0 ** np.arange(12)
    y = 2.0 * n**-0.3 * np.exp(0.01 * np.cos(3 * n))
    curves = fit.curves_from_arrays(n, y)
    res = fit.fit_curves(curves, "powerlaw")
    by_seed = fit.bootstrap(0, curves, res, m=16)
    by_key = fit.bootstrap(jax.random.key(0), curves, res, m=16)
    np.testing.assert_array_equal(by_seed.estimates, by_key.estimates)


@pytest.mark.slow
def test_the_readme_law_snippet_runs_and_prints_what_it_says(capsys):
    """The README's law-writing snippet, run as written; it prints what its comment shows.
    (Fast siblings: the fit names it uses resolve; the curve_fit-style fit above.)"""
    block = next(b for b in _python_blocks(_readme_text()) if "def saturating(n, S_inf" in b)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    shown = next(line for line in block.splitlines() if line.startswith("print("))
    assert shown.split("#", 1)[1].strip().startswith("-> ")  # the README's '# ->' convention
    assert printed == shown.split("# -> ", 1)[1].strip()
