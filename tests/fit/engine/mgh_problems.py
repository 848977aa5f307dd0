r"""The More, Garbow & Hillstrom (1981) least-squares test functions, coded from the paper's
formulas ("Testing unconstrained optimization software", ACM TOMS 7(1), 17-41; section 3, the
problems given as sums of squares ``f(x) = sum_i f_i(x)^2``).

Test data, not package code: each :class:`MGHProblem` gives the residuals ``f_i(x)`` (m,) as a
``jax.numpy`` function of the parameters (n,), the paper's standard start ``x0`` and, where the
paper quotes it, the minimum ``f*``. :func:`start` scales ``x0`` by 1, 10 or 100 as the paper
prescribes (MINPACK's test drivers: a zero ``x0`` becomes ``factor`` in every entry).
:func:`as_law` turns a problem into a law a user of the package would write: ``y_i = 0``
predicted by ``f_i`` at the predictor ``x = i`` (1 ... m), every parameter nonlinear and free,
fitted with ``--loss linear``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import leastsq

from tokenscale_sim.fit import CurveArrays, FitOptions, Model, define_law, fit_arrays


class MGHProblem(NamedTuple):
    """One test function: ``name``, ``residuals`` ``x (n,) -> f (m,)``, ``x0`` (n,), ``m``,
    ``f_star`` (the paper's minimum of ``sum f_i^2`` or None)."""

    name: str
    residuals: Callable
    x0: tuple
    m: int
    f_star: float | None


def _rosenbrock(x):
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def _freudenstein_roth(x):
    return jnp.stack(
        [
            -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1],
            -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1],
        ]
    )


def _powell_badly_scaled(x):
    return jnp.stack([1e4 * x[0] * x[1] - 1.0, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def _brown_badly_scaled(x):
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])


def _beale(x):
    y = jnp.array([1.5, 2.25, 2.625])
    i = jnp.arange(1.0, 4.0)
    return y - x[0] * (1.0 - x[1] ** i)


def _jennrich_sampson(x):
    i = jnp.arange(1.0, 11.0)
    return 2.0 + 2.0 * i - (jnp.exp(i * x[0]) + jnp.exp(i * x[1]))


def _helical_valley(x):
    theta = jnp.arctan(x[1] / x[0]) / (2.0 * jnp.pi) + jnp.where(x[0] < 0, 0.5, 0.0)
    return jnp.stack(
        [10.0 * (x[2] - 10.0 * theta), 10.0 * (jnp.sqrt(x[0] ** 2 + x[1] ** 2) - 1.0), x[2]]
    )


_BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39)


def _bard(x):
    u = jnp.arange(1.0, 16.0)
    v = 16.0 - u
    w = jnp.minimum(u, v)
    return jnp.array(_BARD_Y) - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSSIAN_Y = (0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989)


def _gaussian(x):
    y = jnp.array(_GAUSSIAN_Y + _GAUSSIAN_Y[-2::-1])
    t = (8.0 - jnp.arange(1.0, 16.0)) / 2.0
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2.0) - y


_MEYER_Y = (34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0, 8261.0,
            7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0)  # fmt: skip


def _meyer(x):
    t = 45.0 + 5.0 * jnp.arange(1.0, 17.0)
    return x[0] * jnp.exp(x[1] / (t + x[2])) - jnp.array(_MEYER_Y)


def _gulf(x, m=10):
    t = jnp.arange(1.0, m + 1.0) / 100.0
    y = 25.0 + (-50.0 * jnp.log(t)) ** (2.0 / 3.0)
    return jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t


def _box3d(x):
    t = 0.1 * jnp.arange(1.0, 11.0)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10.0 * t))


def _powell_singular(x):
    return jnp.stack(
        [
            x[0] + 10.0 * x[1],
            jnp.sqrt(5.0) * (x[2] - x[3]),
            (x[1] - 2.0 * x[2]) ** 2,
            jnp.sqrt(10.0) * (x[0] - x[3]) ** 2,
        ]
    )


def _wood(x):
    return jnp.stack(
        [
            10.0 * (x[1] - x[0] ** 2),
            1.0 - x[0],
            jnp.sqrt(90.0) * (x[3] - x[2] ** 2),
            1.0 - x[2],
            jnp.sqrt(10.0) * (x[1] + x[3] - 2.0),
            (x[1] - x[3]) / jnp.sqrt(10.0),
        ]
    )


_KO_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246)
_KO_U = (4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625)


def _kowalik_osborne(x):
    u = jnp.array(_KO_U)
    return jnp.array(_KO_Y) - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def _brown_dennis(x):
    t = jnp.arange(1.0, 21.0) / 5.0
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


_OSBORNE1_Y = (0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
               0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
               0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411,
               0.406)  # fmt: skip


def _osborne1(x):
    t = 10.0 * jnp.arange(33.0)
    model = x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4])
    return jnp.array(_OSBORNE1_Y) - model


def _biggs_exp6(x):
    t = 0.1 * jnp.arange(1.0, 14.0)
    y = jnp.exp(-t) - 5.0 * jnp.exp(-10.0 * t) + 3.0 * jnp.exp(-4.0 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


_OSBORNE2_Y = (1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746,
               0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649,
               0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395,
               0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653,
               0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739,
               0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054)  # fmt: skip


def _osborne2(x):
    t = jnp.arange(65.0) / 10.0
    model = (
        x[0] * jnp.exp(-t * x[4])
        + x[1] * jnp.exp(-((t - x[8]) ** 2) * x[5])
        + x[2] * jnp.exp(-((t - x[9]) ** 2) * x[6])
        + x[3] * jnp.exp(-((t - x[10]) ** 2) * x[7])
    )
    return jnp.array(_OSBORNE2_Y) - model


def _watson(x):
    n = x.shape[0]
    t = jnp.arange(1.0, 30.0) / 29.0
    j = jnp.arange(n)
    powers = t[:, None] ** j[None, :]  # t^(j-1), j = 1..n
    deriv = jnp.sum(j[None, 1:] * x[None, 1:] * powers[:, :-1], axis=1)
    value = powers @ x
    return jnp.concatenate([deriv - value**2 - 1.0, jnp.stack([x[0], x[1] - x[0] ** 2 - 1.0])])


def _extended_rosenbrock(x):
    odd, even = x[0::2], x[1::2]
    return jnp.stack([10.0 * (even - odd**2), 1.0 - odd], axis=1).reshape(-1)


def _extended_powell(x):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return jnp.stack(
        [a + 10.0 * b, jnp.sqrt(5.0) * (c - d), (b - 2.0 * c) ** 2, jnp.sqrt(10.0) * (a - d) ** 2],
        axis=1,
    ).reshape(-1)


def _penalty1(x):
    return jnp.concatenate([jnp.sqrt(1e-5) * (x - 1.0), jnp.stack([jnp.sum(x**2) - 0.25])])


def _penalty2(x):
    n = x.shape[0]
    a = jnp.sqrt(1e-5)
    i = jnp.arange(2.0, n + 1.0)
    y = jnp.exp(i / 10.0) + jnp.exp((i - 1.0) / 10.0)
    mid = a * (jnp.exp(x[1:] / 10.0) + jnp.exp(x[:-1] / 10.0) - y)
    tail = a * (jnp.exp(x[1:] / 10.0) - jnp.exp(-0.1))
    last = jnp.sum((n - jnp.arange(n)) * x**2) - 1.0
    return jnp.concatenate([jnp.stack([x[0] - 0.2]), mid, tail, jnp.stack([last])])


def _variably_dimensioned(x):
    j = jnp.arange(1.0, x.shape[0] + 1.0)
    s = jnp.sum(j * (x - 1.0))
    return jnp.concatenate([x - 1.0, jnp.stack([s, s**2])])


def _trigonometric(x):
    n = x.shape[0]
    i = jnp.arange(1.0, n + 1.0)
    return n - jnp.sum(jnp.cos(x)) + i * (1.0 - jnp.cos(x)) - jnp.sin(x)


def _brown_almost_linear(x):
    n = x.shape[0]
    head = x[:-1] + jnp.sum(x) - (n + 1.0)
    return jnp.concatenate([head, jnp.stack([jnp.prod(x) - 1.0])])


def _grid(n):
    h = 1.0 / (n + 1.0)
    return h, h * jnp.arange(1.0, n + 1.0)


def _boundary_value(x):
    h, t = _grid(x.shape[0])
    padded = jnp.concatenate([jnp.zeros(1), x, jnp.zeros(1)])
    return 2.0 * x - padded[:-2] - padded[2:] + h**2 * (x + t + 1.0) ** 3 / 2.0


def _integral_equation(x):
    h, t = _grid(x.shape[0])
    cube = (x + t + 1.0) ** 3
    lower = jnp.cumsum(t * cube)  # sum_{j <= i} t_j (x_j + t_j + 1)^3
    upper = jnp.sum((1.0 - t) * cube) - jnp.cumsum((1.0 - t) * cube)  # sum_{j > i}
    return x + h * ((1.0 - t) * lower + t * upper) / 2.0


def _broyden_tridiagonal(x):
    padded = jnp.concatenate([jnp.zeros(1), x, jnp.zeros(1)])
    return (3.0 - 2.0 * x) * x - padded[:-2] - 2.0 * padded[2:] + 1.0


def _broyden_banded(x):
    n = x.shape[0]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    band = jnp.asarray(((j >= i - 5) & (j <= i + 1) & (j != i)).astype(float))
    return x * (2.0 + 5.0 * x**2) + 1.0 - band @ (x * (1.0 + x))


def _linear_full_rank(x, m=10):
    total = jnp.sum(x)
    head = x - 2.0 / m * total - 1.0
    return jnp.concatenate([head, jnp.full(m - x.shape[0], -2.0 / m * total - 1.0)])


def _linear_rank1(x, m=10):
    j = jnp.arange(1.0, x.shape[0] + 1.0)
    return jnp.arange(1.0, m + 1.0) * jnp.sum(j * x) - 1.0


def _linear_rank1_zero(x, m=10):
    n = x.shape[0]
    j = jnp.arange(2.0, n)
    inner = jnp.sum(j * x[1:-1])
    return jnp.concatenate(
        [jnp.array([-1.0]), jnp.arange(1.0, m - 1.0) * inner - 1.0, jnp.array([-1.0])]
    )


def _chebyquad(x):
    n = x.shape[0]
    m = n
    z = 2.0 * x - 1.0  # shifted Chebyshev polynomials T_i(2x - 1) by the recurrence
    t_prev, t_cur = jnp.ones_like(z), z
    rows = []
    for i in range(1, m + 1):
        exact = 0.0 if i % 2 else -1.0 / (i * i - 1.0)
        rows.append(jnp.mean(t_cur) - exact)
        t_prev, t_cur = t_cur, 2.0 * z * t_cur - t_prev
    return jnp.stack(rows)


_OSBORNE2_X0 = (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5)


def _falling(n):
    return tuple(1.0 - j / n for j in range(1, n + 1))


def _range(n):
    return tuple(float(j) for j in range(1, n + 1))


def _between(n):
    h = 1.0 / (n + 1.0)
    return tuple(float(h * j * (h * j - 1.0)) for j in range(1, n + 1))


PROBLEMS: tuple[MGHProblem, ...] = (
    MGHProblem("rosenbrock", _rosenbrock, (-1.2, 1.0), 2, 0.0),
    MGHProblem("freudenstein_roth", _freudenstein_roth, (0.5, -2.0), 2, 0.0),
    MGHProblem("powell_badly_scaled", _powell_badly_scaled, (0.0, 1.0), 2, 0.0),
    MGHProblem("brown_badly_scaled", _brown_badly_scaled, (1.0, 1.0), 3, 0.0),
    MGHProblem("beale", _beale, (1.0, 1.0), 3, 0.0),
    MGHProblem("jennrich_sampson", _jennrich_sampson, (0.3, 0.4), 10, 124.362),
    MGHProblem("helical_valley", _helical_valley, (-1.0, 0.0, 0.0), 3, 0.0),
    MGHProblem("bard", _bard, (1.0, 1.0, 1.0), 15, 8.21487e-3),
    MGHProblem("gaussian", _gaussian, (0.4, 1.0, 0.0), 15, 1.12793e-8),
    MGHProblem("meyer", _meyer, (0.02, 4000.0, 250.0), 16, 87.9458),
    MGHProblem("gulf", _gulf, (5.0, 2.5, 0.15), 10, 0.0),
    MGHProblem("box3d", _box3d, (0.0, 10.0, 20.0), 10, 0.0),
    MGHProblem("powell_singular", _powell_singular, (3.0, -1.0, 0.0, 1.0), 4, 0.0),
    MGHProblem("wood", _wood, (-3.0, -1.0, -3.0, -1.0), 6, 0.0),
    MGHProblem("kowalik_osborne", _kowalik_osborne, (0.25, 0.39, 0.415, 0.39), 11, 3.07505e-4),
    MGHProblem("brown_dennis", _brown_dennis, (25.0, 5.0, -5.0, -1.0), 20, 85822.2),
    MGHProblem("osborne1", _osborne1, (0.5, 1.5, -1.0, 0.01, 0.02), 33, 5.46489e-5),
    MGHProblem("biggs_exp6", _biggs_exp6, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 13, 0.0),
    MGHProblem("osborne2", _osborne2, _OSBORNE2_X0, 65, 4.01377e-2),
    MGHProblem("watson6", _watson, (0.0,) * 6, 31, 2.28767e-3),
    MGHProblem("watson9", _watson, (0.0,) * 9, 31, 1.39976e-6),
    MGHProblem("extended_rosenbrock10", _extended_rosenbrock, (-1.2, 1.0) * 5, 10, 0.0),
    MGHProblem("extended_powell8", _extended_powell, (3.0, -1.0, 0.0, 1.0) * 2, 8, 0.0),
    MGHProblem("penalty1_4", _penalty1, _range(4), 5, 2.24997e-5),
    MGHProblem("penalty1_10", _penalty1, _range(10), 11, 7.08765e-5),
    MGHProblem("penalty2_4", _penalty2, (0.5,) * 4, 8, 9.37629e-6),
    MGHProblem("penalty2_10", _penalty2, (0.5,) * 10, 20, 2.93660e-4),
    MGHProblem("variably_dimensioned10", _variably_dimensioned, _falling(10), 12, 0.0),
    MGHProblem("trigonometric10", _trigonometric, (0.1,) * 10, 10, 0.0),
    MGHProblem("brown_almost_linear10", _brown_almost_linear, (0.5,) * 10, 10, 0.0),
    MGHProblem("boundary_value10", _boundary_value, _between(10), 10, 0.0),
    MGHProblem("integral_equation10", _integral_equation, _between(10), 10, 0.0),
    MGHProblem("broyden_tridiagonal10", _broyden_tridiagonal, (-1.0,) * 10, 10, 0.0),
    MGHProblem("broyden_banded10", _broyden_banded, (-1.0,) * 10, 10, 0.0),
    MGHProblem("linear_full_rank", _linear_full_rank, (1.0,) * 5, 10, 5.0),
    MGHProblem("linear_rank1", _linear_rank1, (1.0,) * 5, 10, 10 * 9 / (2 * 21)),
    MGHProblem("linear_rank1_zero", _linear_rank1_zero, (1.0,) * 5, 10, (100 + 30 - 6) / (2 * 17)),
    MGHProblem("chebyquad8", _chebyquad, tuple(j / 9.0 for j in range(1, 9)), 8, 3.51687e-3),
)
"""The test set (name, residuals, x0, m, f*): the 18 fixed-size problems with a residual form
and the variable-size ones at the sizes the paper tabulates (f* of Watson n = 6, 9, Penalty I/II
n = 4, 10, Chebyquad n = 8; the linear functions at n = 5, m = 10)."""

FACTORS = (1.0, 10.0, 100.0)
"""The paper's starts: ``x0``, ``10 x0``, ``100 x0``."""


def start(problem: MGHProblem, factor: float) -> np.ndarray:
    """The start ``factor x0`` (n,); a zero ``x0`` becomes ``factor`` everywhere (MINPACK's
    test drivers), so that ``10 x0`` differs from ``x0``."""
    x0 = np.asarray(problem.x0, float)
    if factor != 1.0 and not np.any(x0):
        return np.full_like(x0, factor)
    return factor * x0


def as_law(problem: MGHProblem) -> Model:
    """The problem as a user's law: ``y_i = f_i(theta)`` at the predictor ``x = i`` (1 ... m),
    the parameters ``x1 ... xn`` all nonlinear and free (one start: give it as ``v_grid``)."""
    names = [f"x{j + 1}" for j in range(len(problem.x0))]

    def law(x, theta):
        values = problem.residuals(jnp.stack([theta[p] for p in names]))
        return jnp.take(values, x.astype(int) - 1)

    return define_law(
        f"mgh_{problem.name}", law, names, predictor="x", starts=np.array([problem.x0])
    )


def as_curve(problem: MGHProblem) -> CurveArrays:
    """The data of :func:`as_law`: ``x = 1 ... m``, ``y = 0`` (one curve (1, m))."""
    x = np.arange(1.0, problem.m + 1.0)[None]
    one = np.ones_like(x)
    return CurveArrays(x, np.zeros_like(x), one, one, one)


def rss(problem: MGHProblem, x) -> float:
    """``sum f_i(x)^2`` in float64 (x (n,)); inf where it overflows."""
    r = np.asarray(problem.residuals(jnp.asarray(x, jnp.float64)), float)
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(np.sum(r**2))
    return value if np.isfinite(value) else np.inf


class Run(NamedTuple):
    """One method from one start: ``rss`` at its answer, ``converged`` (the engine's flag;
    MINPACK: ``ier`` in 1..4), ``evaluations`` (MINPACK's ``nfev``; the engine's trial steps)."""

    rss: float
    converged: bool
    evaluations: int


def engine_run(problem: MGHProblem, factor: float, opts: FitOptions | None = None) -> Run:
    """The package's fit, as a user runs it: :func:`as_law`, ``y = 0``, the ``linear`` loss,
    the start ``factor x0`` as the law's only start."""
    opts = opts or FitOptions(loss="linear")
    x0 = start(problem, factor)
    res = fit_arrays(as_law(problem), as_curve(problem), opts, v_grid=x0[None])
    return Run(rss(problem, res.estimates[0]), bool(res.converged[0]), int(res.iterations[0]))


def minpack_run(problem: MGHProblem, factor: float, tol: float | None = None) -> Run:
    """SciPy's MINPACK ``lmder`` (``scipy.optimize.leastsq`` with the exact Jacobian) from
    ``factor x0``, its defaults (``ftol = xtol = 1.49e-8``, ``gtol = 0``, ``maxfev =
    100 (n + 1)``), or ``ftol = xtol = tol``."""
    fun, jac = _compiled(problem.residuals)
    kwargs = {} if tol is None else {"ftol": tol, "xtol": tol}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, _, info, _, ier = leastsq(
            lambda x: np.asarray(fun(x)),
            start(problem, factor),
            Dfun=lambda x: np.asarray(jac(x)),
            full_output=True,
            **kwargs,
        )
    return Run(rss(problem, x), ier in (1, 2, 3, 4), int(info["nfev"]))


@cache
def _compiled(residuals: Callable):
    """``(f, J)`` of ``residuals``, jit-compiled once per problem."""
    return jax.jit(residuals), jax.jit(jax.jacfwd(residuals))


RTOL = 1e-8
"""Two answers reach the same minimum when their RSS agree within this, relative."""


def reached(problem: MGHProblem, value: float, best: float) -> bool:
    """Whether an answer of RSS ``value`` reaches the minimum: within :data:`RTOL` (relative) of
    ``best``, the lowest RSS any method found from that start, and no higher than the paper's
    minimum ``f*`` (quoted to 6 digits: within 1e-5 of it), so a local minimum or a stop short of
    the minimum is a miss. Absolute slack: ``1e-20 max(1, f(x0))`` (zero-residual problems)."""
    slack = 1e-20 * max(1.0, rss(problem, start(problem, 1.0)))
    if not np.isfinite(value):
        return False
    near_best = value <= best + RTOL * best + slack
    global_min = problem.f_star is None or value <= problem.f_star * (1 + 1e-5) + slack
    return bool(near_best and global_min)
