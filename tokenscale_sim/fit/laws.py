r"""User-defined laws and the built-in laws made with them.

:func:`define_law` turns a JAX function of the predictor and named parameters into a
:class:`~tokenscale_sim.fit.models.Model` that the engine fits unchanged (multistart, vmap over
curves and resamples, standard errors, intervals, AIC/BIC). The law predicts ``y`` itself
(``space="linear"``, the default; residuals under the default ``"log"`` loss are then
``ln y - ln y_hat``) or ``ln y`` (``space="log"``). Parameters declared ``linear`` must enter the
prediction linearly: variable projection then solves them exactly for every start of the others.

Built-in laws (registered in :data:`~tokenscale_sim.fit.models.MODELS` on import):

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

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.models import MODELS, Model

Transform = str | tuple[float, float]
"""A parameter transform: ``"free"``, ``"positive"`` or a bounded interval ``(a, b)``."""

LawFn = Callable[[Any, Mapping[str, Any]], Any]
"""A law ``fn(x, theta) -> y_hat``: ``x`` (m,) predictor, ``theta`` a dict name -> scalar."""

Starts = Mapping[str, Any] | np.ndarray
"""Starting values: a dict name -> value or values, or an array (K, p) of starting points."""


def _transform(spec: Transform, name: str):
    """(to_natural, to_unconstrained, positive, to_unconstrained in NumPy) of one parameter's
    transform; the NumPy inverse turns starting values into ``v`` without touching a JAX
    backend (laws are built at import time, before ``jax.distributed.initialize``)."""
    if spec == "free":
        return (lambda u: u), (lambda t: t), False, (lambda t: np.asarray(t, float))
    if spec == "positive":
        return jnp.exp, jnp.log, True, np.log
    if isinstance(spec, tuple) and len(spec) == 2:
        a, b = (float(x) for x in spec)
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise ValueError(
                f"define_law: bounds of {name!r} must be finite with a < b, got {spec!r}"
            )
        return (
            lambda u: a + (b - a) * jax.nn.sigmoid(u),
            lambda t: jnp.log(t - a) - jnp.log(b - t),
            a >= 0,
            lambda t: np.log(t - a) - np.log(b - t),
        )
    raise ValueError(
        f"define_law: transform of {name!r} must be 'free', 'positive' or (a, b), got {spec!r}"
    )


def _default_values(spec: Transform) -> list[float]:
    if spec == "positive":
        return [0.1, 1.0, 10.0]
    if isinstance(spec, tuple):
        a, b = spec
        return [a + (b - a) * t for t in (0.2, 0.5, 0.8)]
    return [-1.0, 0.5, 2.0]


def _start_table(starts: Starts, params: tuple[str, ...], nonlin: list[str]) -> np.ndarray:
    """Natural starting values of the nonlinear parameters (K, k) from a dict or (K, p) array."""
    if isinstance(starts, Mapping):
        unknown = sorted(set(starts) - set(params))
        if unknown:
            raise ValueError(f"define_law: starts for unknown parameters {unknown}")
        missing = [p for p in nonlin if p not in starts]
        if missing:
            raise ValueError(f"define_law: starts needed for the nonlinear parameters {missing}")
        values = [np.atleast_1d(np.asarray(starts[p], float)) for p in nonlin]
        rows = list(itertools.product(*values))
        return np.array(rows, float).reshape(len(rows), len(nonlin))
    arr = np.atleast_2d(np.asarray(starts, float))
    if arr.shape[1] != len(params):
        raise ValueError(
            f"define_law: a starts array needs {len(params)} columns {params}, got {arr.shape}"
        )
    return arr[:, [params.index(p) for p in nonlin]]


def define_law(
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
    """Turn ``fn(x, theta)`` into a :class:`~tokenscale_sim.fit.models.Model`.

    Args:
        name: the law's name (results and tables show it).
        fn: ``fn(x, theta) -> y_hat`` with ``x`` (m,) the predictor and ``theta`` a dict from
            parameter name to a scalar; JAX-traceable (``jnp`` functions), returning (m,) or a
            scalar. With ``space="log"`` it returns ``ln y_hat`` instead.
        params: parameter names. Estimates and standard errors come in this order with the
            ``linear`` ones moved first (the model's ``params``), as the engine's ``u = (w, v)``.
        transforms: per parameter ``"free"`` (default), ``"positive"`` (fitted as its log) or
            ``(a, b)`` (fitted through a scaled logistic).
        linear: parameters that ``fn`` is linear in (``"free"`` only); each start of the others
            then gets their exact least-squares values (variable projection), and the values
            given for them in ``starts`` are not used.
        starts: starting values of the other parameters: a dict name -> value or list of
            values (all combinations are tried), or an array (K, p) of whole starting points.
        grid: instead of ``starts``, ``(x_min, x_max) -> starts`` built from the data's range.
            Neither: three values per parameter by transform (e.g. 0.1, 1, 10 if positive).
        predictor: the predictor's name; ``"n"`` (token counts, n >= 1) or any other (any x).
        space: ``"linear"`` (``fn`` predicts y) or ``"log"`` (``fn`` predicts ln y).
        polish: finish with Levenberg-Marquardt (:mod:`tokenscale_sim.fit.polish`), whose step
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
    """
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

    if starts is not None:
        fixed = to_v(_start_table(starts, params, nonlin))

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            del x_min, x_max
            return fixed

    elif grid is not None:
        grid_fn = grid

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            return to_v(_start_table(grid_fn(x_min, x_max), params, nonlin))

    else:
        default = to_v(_start_table({p: _default_values(specs[p]) for p in nonlin}, params, nonlin))

        def v_grid(x_min: float, x_max: float) -> np.ndarray:
            del x_min, x_max
            return default

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


SATURATING = define_law(
    "saturating",
    _saturating,
    ("S_inf", "A", "a"),
    transforms={"a": "positive"},
    linear=("S_inf", "A"),
    starts={"a": np.geomspace(0.03, 3.0, 9)},
)
"""Saturating power law ``S = S_inf - A n^(-a)`` (a > 0): the irreducible-loss form of LLM
scaling laws (Hestness et al. 2017, arXiv 1712.00409; Hoffmann et al. 2022, arXiv 2203.15556)."""
LOGLINEAR = define_law("loglinear", _loglinear, ("a", "b"), linear=("a", "b"))
"""Log-linear law ``S = a + b ln n`` (ordinary least squares): the first-order expansion of the
power law ``c n^b`` in ``b ln n``, the usual baseline of scores against log scale."""
LOGISTIC = define_law(
    "logistic",
    _logistic,
    ("floor", "ceiling", "n_mid", "width"),
    transforms={"n_mid": "positive", "width": "positive"},
    linear=("floor", "ceiling"),
    grid=lambda n_min, n_max: {"n_mid": _log_span(n_min, n_max, 7), "width": [0.3, 1.0, 3.0]},
)
"""Logistic in ln n, ``S = floor + (ceiling - floor) / (1 + exp(-(ln n - ln n_mid) / width))``:
accuracy between a floor and a ceiling (Ruan, Maddison & Hashimoto 2024, arXiv 2405.10938)."""
BNSL = define_law(
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
"""The built-in laws of this module by name (also in :data:`~tokenscale_sim.fit.models.MODELS`)."""

MODELS.update(LAWS)
