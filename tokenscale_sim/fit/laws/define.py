r"""User-defined laws and the built-in laws made with them.

:func:`define_law` turns a JAX function of the predictor and named parameters (curve_fit's
``f(x, a, b)`` or ``f(x, theta)``) into a :class:`~tokenscale_sim.fit.laws.models.Model` that the
engine fits unchanged (multistart, vmap over curves and resamples, standard errors, intervals,
AIC/BIC); the law is checked by a trial evaluation (:mod:`~tokenscale_sim.fit.laws.lawcheck`) and
the same law defined again is the same model (:mod:`~tokenscale_sim.fit.laws.lawcache`). The law
predicts ``y`` itself (``space="linear"``, the default; residuals under the default ``"log"``
loss are then ``ln y - ln y_hat``) or ``ln y`` (``space="log"``). Parameters declared
``linear`` must enter the prediction linearly: variable projection then solves them exactly for
every start of the others.

Built-in laws (registered in :data:`~tokenscale_sim.fit.laws.models.MODELS` on import):

- ``SATURATING`` [S_inf, A, a]: ``S = S_inf - A n^(-a)``, a score approaching the ceiling
  ``S_inf``; the irreducible-loss form ``L = E + A n^(-a)`` of LLM scaling laws (Hestness et al.
  2017; Hoffmann et al. 2022) with the sign of ``A`` free.
- ``LOGLINEAR`` [a, b]: ``S = a + b ln n``, the first-order expansion of ``c n^b`` (baseline).
- ``LOGISTIC`` [floor, ceiling, n_mid, width]: ``S = floor + (ceiling - floor) / (1 +
  exp(-(ln n - ln n_mid) / width))``, accuracy between a chance floor and a ceiling, sigmoidal in
  ``ln n`` (Ruan, Maddison & Hashimoto 2024, "Observational scaling laws").
- ``BNSL`` [a, b, c0, c1, d1, f1]: the broken neural scaling law with one break (Caballero,
  Gupta, Rish & Krueger 2023, ICLR), ``y = a + b n^(-c0) (1 + (n / d1)^(1/f1))^(-c1 f1)``:
  slope ``c0`` before the break ``d1`` and ``c0 + c1`` after it, sharpness ``f1``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.laws.lawcache import cached_law, source_token
from tokenscale_sim.fit.laws.lawcheck import trial_evaluate
from tokenscale_sim.fit.laws.models import MODELS, Model, name_stably
from tokenscale_sim.fit.laws.starts import LawFn, Starts, Transform, start_table


def _bounds(spec, name: str) -> tuple[float, float]:
    """``(lo, hi)`` of a bounds transform, either end possibly infinite; else ``ValueError``."""
    lo, hi = (float(x) for x in spec)
    if np.isnan(lo) or np.isnan(hi) or not lo < hi or lo == np.inf or hi == -np.inf:
        raise ValueError(
            f"define_law: bounds of {name!r} must be (lo, hi) with lo < hi (either may be "
            f"infinite: (0, inf) is one-sided), got {spec!r}"
        )
    return lo, hi


def _transform(spec: Transform, name: str):
    """(to_natural, to_unconstrained, positive, to_unconstrained in NumPy) of one parameter's
    transform; the NumPy inverse turns starting values into ``v`` without touching a JAX
    backend (laws are built at import time, before ``jax.distributed.initialize``).

    Bounds ``(a, b)``: both finite, the scaled logistic ``a + (b - a) sigmoid(u)``; one-sided,
    ``a + exp(u)`` on ``(a, inf)`` and ``b - exp(u)`` on ``(-inf, b)``; ``(-inf, inf)`` is free.
    """
    if isinstance(spec, tuple | list) and len(spec) == 2:
        a, b = _bounds(spec, name)
        if np.isfinite(a) and np.isfinite(b):
            return (
                lambda u: a + (b - a) * jax.nn.sigmoid(u),
                lambda t: jnp.log(t - a) - jnp.log(b - t),
                a >= 0,
                lambda t: np.log(t - a) - np.log(b - t),
            )
        if np.isfinite(a):
            return (
                (lambda u: a + jnp.exp(u)),
                (lambda t: jnp.log(t - a)),
                a >= 0,
                (lambda t: np.log(np.asarray(t, float) - a)),
            )
        if np.isfinite(b):
            return (
                (lambda u: b - jnp.exp(u)),
                (lambda t: jnp.log(b - t)),
                False,
                (lambda t: np.log(b - np.asarray(t, float))),
            )
        spec = "free"
    if spec == "free":
        return (lambda u: u), (lambda t: t), False, (lambda t: np.asarray(t, float))
    if spec == "positive":
        return jnp.exp, jnp.log, True, np.log
    raise ValueError(
        f"define_law: transform of {name!r} must be 'free', 'positive' or bounds (lo, hi), "
        f"got {spec!r}"
    )


def _signature_names(fn: Callable) -> tuple[list[str], bool, int] | None:
    """Names of ``fn``'s positional parameters, whether it takes ``*args`` and how many of them
    have no default; None when its signature cannot be read (a builtin)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in sig.parameters.values() if p.kind in kinds]
    star = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values())
    required = sum(p.default is inspect.Parameter.empty for p in positional)
    return [p.name for p in positional], star, required


def law_call(
    name: str, fn: Callable, params: Sequence[str] | None, predictor: str | None
) -> tuple[LawFn, tuple[str, ...], str]:
    """``(call, params, predictor)``: the law as ``call(x, theta)`` whatever style ``fn`` has.

    - curve_fit style ``fn(x, a, b)``: its parameter names after the predictor are the law's
      parameters (``params``, if given, must name the same ones; they set the order), and
      ``fn(x, *p)`` takes ``params`` in that order. The predictor is named as ``fn``'s first
      argument.
    - ``fn(x, theta)`` with ``params`` naming other parameters: ``theta`` is a dict name ->
      value; the predictor is ``"n"`` unless given.
    """
    found = _signature_names(fn)
    names, star, required = found if found is not None else ([], False, 2)  # f(x, theta)
    after = names[1:]
    if params is None:
        if (star and not after) or found is None:
            raise TypeError(
                f"define_law: name the parameters of law {name!r} with params=[...] (it takes "
                "*args or its signature cannot be read)"
            )
        if not after:
            raise TypeError(
                f"define_law: law {name!r} must take the predictor and its parameters, "
                "f(x, a, b, ...) (or f(x, theta) with params=[...])"
            )
        params = after
    params = tuple(params)
    prefix = star and list(params[: len(after)]) == after
    if (after and sorted(after) == sorted(params)) or prefix:
        order = after + [p for p in params if p not in after]  # *args take the rest in order

        def call(x, theta):
            return fn(x, *[theta[p] for p in order])

        return call, params, predictor or (names[0] if names else "x")
    if required > 2 and not star:  # f(x, a, b) cannot be called as f(x, theta)
        raise ValueError(
            f"define_law: params {list(params)} must name the parameters {after} of law {name!r}"
        )
    return fn, params, predictor or "n"


def define_law(
    name: str | Callable,
    fn: Callable | None = None,
    params: Sequence[str] | None = None,
    *,
    transforms: Mapping[str, Transform] | None = None,
    linear: Sequence[str] = (),
    starts: Starts | None = None,
    grid: Callable[[float, float], Starts] | None = None,
    predictor: str | None = None,
    space: str = "linear",
    polish: bool = True,
) -> Model:
    """Turn a law into a :class:`~tokenscale_sim.fit.laws.models.Model`: ``define_law(f)``,
    ``define_law(f, params=[...])``, ``define_law("name", f)`` or ``define_law("name", f, params)``.

    The law is a JAX function (``jax.numpy``, not NumPy: it is traced, and a law that calls
    ``np.exp`` is one ``ValueError`` saying so) in one of two styles (:func:`law_call`):
    curve_fit's ``f(x, a, b)``, its parameters read from its signature, or ``f(x, theta)`` with
    ``theta`` a dict name -> value and ``params`` naming them. It is evaluated once abstractly
    here (:func:`~tokenscale_sim.fit.laws.lawcheck.trial_evaluate`): what would fail inside the fit
    fails now, in one line naming the law. Defining the same law again (same code, closure and
    globals it reads, same arguments) returns the same model
    (:mod:`~tokenscale_sim.fit.laws.lawcache`), so the fits compiled for it are reused.

    Args:
        name: the law's name (results and tables show it), or the law itself (its name is then
            the function's).
        fn: ``f(x, a, b, ...)`` or ``f(x, theta)``, ``x`` (m,) the predictor, returning (m,) or a
            scalar. With ``space="log"`` it returns ``ln y_hat`` instead.
        params: parameter names (read from ``f(x, a, b)``'s signature when not given; needed for
            ``f(x, theta)`` and ``f(x, *p)``). Estimates and standard errors come in this order
            with the ``linear`` ones moved first (the model's ``params``), as the engine's
            ``u = (w, v)``.
        transforms: per parameter ``"free"`` (default), ``"positive"`` (fitted as its log) or
            bounds ``(lo, hi)``: both finite, fitted through a scaled logistic; one-sided
            ``(lo, inf)`` / ``(-inf, hi)``, through ``lo + exp(u)`` / ``hi - exp(u)``.
        linear: parameters that ``fn`` is linear in (``"free"`` only); each start of the others
            then gets their exact least-squares values (variable projection), and the values
            given for them in ``starts`` are not used.
        starts: starting values of the other parameters: a dict name -> value or list of
            values (all combinations are tried; a parameter left out gets the defaults of its
            transform), or an array (K, p) of whole starting points (curve_fit's ``p0`` is one).
        grid: instead of ``starts``, ``(x_min, x_max) -> starts`` built from the data's range.
            Neither (or a parameter ``starts`` leaves out): values by transform scaled by the
            data's largest ``|x|`` (e.g. ``1/x, 0.1, 1, 10, x`` if positive; ``default_values``).
        predictor: the predictor's name; ``"n"`` (token counts, n >= 1) or any other (any x).
            Default: the first argument's name for ``f(x, a, b)``, ``"n"`` for ``f(x, theta)``.
        space: ``"linear"`` (``fn`` predicts y) or ``"log"`` (``fn`` predicts ln y).
        polish: finish with Levenberg-Marquardt (:mod:`tokenscale_sim.fit.engine.polish`), whose
        step
            test decides ``converged``; a fit exact to the rounding of y (noise-free data) is
            then *not* converged: its standard errors would be rounding noise.

    Returns:
        The model (``q`` linear and ``k`` other parameters; ``natural(u)`` in ``model.params``
        order, entry by entry).

    >>> import numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays, fit_arrays
    >>> law = define_law("exp_decay", lambda x, t: t["c"] + t["A"] * jnp.exp(-x / t["s"]),
    ...                  ["c", "A", "s"], transforms={"s": "positive"}, linear=["c", "A"],
    ...                  starts={"s": [1.0, 10.0]})
    >>> x = np.arange(1.0, 11.0)
    >>> y = 2.0 + 3.0 * np.exp(-x / 4.0) + 1e-4 * np.cos(7 * x)  # an exact fit is not converged
    >>> res = fit_arrays(law, curves_from_arrays(x, y).arrays)
    >>> [round(float(v), 2) for v in res.estimates[0]], bool(res.converged[0])
    ([2.0, 3.0, 4.0], True)
    >>> def decay(x, c, A, s):  # curve_fit style
    ...     return c + A * jnp.exp(-x / s)
    >>> define_law(decay, starts={"s": 5.0}).params
    ('c', 'A', 's')
    """
    if callable(name):
        if fn is not None:
            raise TypeError("define_law: give the law once: define_law(f) or define_law('name', f)")
        fn, name = name, getattr(name, "__name__", "law").replace("<lambda>", "lambda")
    if not isinstance(name, str):
        raise TypeError(f"define_law: name must be a string, got {type(name).__name__}")
    if fn is None or not callable(fn):
        raise TypeError(
            "define_law: the law must be a function f(x, a, b, ...) or f(x, theta), got "
            f"{type(fn).__name__}"
        )
    law_fn: Callable = fn
    options: dict[str, Any] = {
        "transforms": transforms,
        "linear": linear,
        "starts": starts,
        "grid": grid,
        "space": space,
        "polish": polish,
    }
    source = source_token(("define_law", law_fn, name, params, predictor, options))

    def build() -> Model:
        call, names, pred = law_call(name, law_fn, params, predictor)
        model = build_law(name, call, names, predictor=pred, **options)
        theta_style = call is law_fn
        hint = f" (a law f(x, theta) reads theta[name] for params {list(names)})"
        trial_evaluate(name, law_fn, call, names, hint if theta_style else "")
        return model

    return cached_law(source, build)


def build_law(
    name: str,
    fn: LawFn,
    params: Sequence[str],
    *,
    transforms: Mapping[str, Transform] | None = None,
    linear: Sequence[str] = (),
    starts: Starts | None = None,
    grid: Callable[[float, float], Starts] | None = None,
    predictor: str = "n",
    space: str = "linear",
    polish: bool = True,
) -> Model:
    """The model of ``fn(x, theta)`` (the arguments as in :func:`define_law`), unchecked and
    uncached: the built-in laws below are made with it at import, without tracing anything."""
    params = tuple(params)
    transforms = dict(transforms or {})
    fn_name = "define_law"
    if not params or len(set(params)) != len(params):
        raise ValueError(f"{fn_name}: params must be distinct names, got {params}")
    bad = sorted(set(transforms) - set(params)) + sorted(set(linear) - set(params))
    if bad:
        raise ValueError(f"{fn_name}: unknown parameters {bad} (params are {params})")
    if predictor in params:
        raise ValueError(f"{fn_name}: predictor {predictor!r} is also a parameter name")
    if space not in ("linear", "log"):
        raise ValueError(f"{fn_name}: space must be 'linear' or 'log', got {space!r}")
    if starts is not None and grid is not None:
        raise ValueError(f"{fn_name}: give starts or grid, not both")
    specs = {p: transforms.get(p, "free") for p in params}
    for p in linear:
        if specs[p] != "free":
            raise ValueError(f"{fn_name}: linear parameter {p!r} must be 'free', got {specs[p]!r}")
    lin = [p for p in params if p in linear]
    nonlin = [p for p in params if p not in linear]
    order = lin + nonlin  # u = (w, v): the model's parameter order (natural = u entry-wise)
    tr = {p: _transform(specs[p], p) for p in params}
    q, k = len(lin), len(nonlin)

    def theta_of(w, v):
        theta = {p: w[i] for i, p in enumerate(lin)}
        theta.update({p: tr[p][0](v[i]) for i, p in enumerate(nonlin)})
        return theta

    def evaluate(u, x, aux):
        del aux
        return jnp.broadcast_to(fn(x, theta_of(u[:q], u[q:])), x.shape).astype(x.dtype)

    def basis(v, x, aux):
        del aux

        def pred(w):
            return evaluate(jnp.concatenate([w, v]), x, None)

        w0 = jnp.zeros((q,), x.dtype)
        offset = pred(w0)
        cols = jax.jacfwd(pred)(w0) if q else jnp.zeros((*x.shape, 0), x.dtype)
        return offset, cols

    def natural(u):
        return jnp.stack([tr[p][0](u[i]) for i, p in enumerate(order)])

    def unconstrained(theta):
        return jnp.stack([tr[p][1](theta[i]) for i, p in enumerate(order)])

    def to_v(table: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = [np.asarray(tr[p][3](table[:, i]), float) for i, p in enumerate(nonlin)]
        v = np.stack(cols, axis=1) if cols else np.zeros((table.shape[0], 0))
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{fn_name}: starting values of {nonlin} must lie inside their transforms' "
                f"ranges (positive / inside (a, b)), got {table.tolist()}"
            )
        return v

    if starts is not None and not (
        isinstance(starts, Mapping) and any(p not in starts for p in nonlin)
    ):
        fixed = to_v(start_table(starts, params, nonlin, specs))

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            del x_min, x_max
            return fixed

    elif grid is not None:
        grid_fn = grid

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            return to_v(start_table(grid_fn(x_min, x_max), params, nonlin, specs))

    else:  # some or all without starts: defaults scaled by the data's largest |x|
        given = dict(starts or {})  # type: ignore[arg-type]
        to_v(start_table(given, params, nonlin, specs))  # bad starts fail here, not in a fit

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            scale = max(abs(float(x_min)), abs(float(x_max)))
            return to_v(start_table(given, params, nonlin, specs, scale))

    return Model(
        name,
        tuple(order),
        q,
        k,
        basis,
        natural,
        unconstrained,
        v_grid,
        positive=tuple(tr[p][2] for p in order),
        space=space,
        predictor=predictor,
        polish=polish,
        evaluate=evaluate,
    )


# ----------------------------------------------------------------------------- built-in laws


def _saturating(n, t):
    return t["S_inf"] - t["A"] * n ** (-t["a"])


def _loglinear(n, t):
    return t["a"] + t["b"] * jnp.log(n)


def _logistic(n, t):
    s = jax.nn.sigmoid((jnp.log(n) - jnp.log(t["n_mid"])) / t["width"])
    return t["floor"] * (1 - s) + t["ceiling"] * s


def _bnsl(n, t):
    soft = jnp.logaddexp(0.0, (jnp.log(n) - jnp.log(t["d1"])) / t["f1"])
    return t["a"] + t["b"] * jnp.exp(-t["c0"] * jnp.log(n) - t["c1"] * t["f1"] * soft)


def _log_span(n_min: float, n_max: float, size: int) -> np.ndarray:
    return np.geomspace(max(n_min, 1.0), max(n_max, 2.0), size + 2)[1:-1]


SATURATING = build_law(
    "saturating",
    _saturating,
    ("S_inf", "A", "a"),
    transforms={"a": "positive"},
    linear=("S_inf", "A"),
    starts={"a": np.geomspace(0.03, 3.0, 9)},
)
"""Saturating power law ``S = S_inf - A n^(-a)`` (a > 0): the irreducible-loss form of LLM
scaling laws (Hestness et al. 2017, arXiv 1712.00409; Hoffmann et al. 2022, arXiv 2203.15556)."""
LOGLINEAR = build_law("loglinear", _loglinear, ("a", "b"), linear=("a", "b"))
"""Log-linear law ``S = a + b ln n`` (ordinary least squares): the first-order expansion of the
power law ``c n^b`` in ``b ln n``, the usual baseline of scores against log scale."""
LOGISTIC = build_law(
    "logistic",
    _logistic,
    ("floor", "ceiling", "n_mid", "width"),
    transforms={"n_mid": "positive", "width": "positive"},
    linear=("floor", "ceiling"),
    grid=lambda n_min, n_max: {"n_mid": _log_span(n_min, n_max, 7), "width": [0.3, 1.0, 3.0]},
)
"""Logistic in ln n, ``S = floor + (ceiling - floor) / (1 + exp(-(ln n - ln n_mid) / width))``:
accuracy between a floor and a ceiling (Ruan, Maddison & Hashimoto 2024, arXiv 2405.10938)."""
BNSL = build_law(
    "bnsl",
    _bnsl,
    ("a", "b", "c0", "c1", "d1", "f1"),
    transforms={"d1": "positive", "f1": "positive"},
    linear=("a", "b"),
    grid=lambda n_min, n_max: {
        "c0": [0.0, 0.5],
        "c1": [0.25, 1.0],
        "d1": _log_span(n_min, n_max, 5),
        "f1": [0.3, 1.0],
    },
)
"""Broken neural scaling law with one break, ``y = a + b n^(-c0) (1 + (n/d1)^(1/f1))^(-c1 f1)``
(Caballero, Gupta, Rish & Krueger 2023, ICLR, arXiv 2210.14891)."""

LAWS: dict[str, Model] = {m.name: m for m in (SATURATING, LOGLINEAR, LOGISTIC, BNSL)}
"""The built-in laws of this module by name (also in
:data:`~tokenscale_sim.fit.laws.models.MODELS`)."""

MODELS.update(LAWS)
for _law in LAWS.values():
    name_stably(_law, f"builtin:{_law.name}")
