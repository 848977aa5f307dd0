"""Sweep a structure family over a grid: the exact theory at every point, vmapped.

A grid is a product of axes over the parameters of :mod:`tokenscale_sim.structures.families`
(``shared``, ``image``, ``weight``, ``length``, ``coupling``, ``local_coupling``) and the sizes
``d`` and ``n_max``; parameters not on the grid keep fixed values. :func:`sweep` computes, at every
point and in one compiled, vmapped program (chunks of :data:`CHUNK` points, one shape):

- ``n_b`` and its status (:func:`tokenscale_sim.structures.families.transition_jax`, the rule of
  :func:`tokenscale_sim.structures.exact.transition`) over n <= n_max;
- at ``n = at`` (default n_max): psi_eq, Delta, the slope of sqrt(Upsilon) and its regime
  (the rule of :func:`tokenscale_sim.structures.exact.theory_table`), the exact Gaussian E[D] at
  width d, the bound sqrt(2 Upsilon) and their ratio;
- the average log-log slope of the bound over [1, n_max], ``ln(v_N / v_1) / (2 ln N)``.

Points outside the family's domain (e.g. ``shared + weight > 1``) are kept, marked
``valid = False`` with NaN numbers. :func:`parse_axis` reads an axis from text.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.runtime.validation import as_key
from tokenscale_sim.structures import families
from tokenscale_sim.structures.params import ParamFile
from tokenscale_sim.theory import closed_forms as theory

SIZES = ("d", "n_max")
AXES = (*families.PARAMS, *SIZES)
"""Names a grid axis may take."""

CHUNK = 4096
"""Grid points per compiled call (the last chunk is padded to this shape)."""

MAX_POINTS = 1_000_000


def parse_axis(text: str, names: tuple[str, ...] = AXES) -> tuple[str, np.ndarray]:
    """``"name=lo:hi:count[:log]"`` (evenly or log-spaced) or ``"name=v1,v2,..."`` -> (name,
    values).

    >>> parse_axis("length=1:8:4:log")
    ('length', array([1., 2., 4., 8.]))
    >>> parse_axis("d=64,256")
    ('d', array([ 64., 256.]))
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or name not in names:
        raise ValueError(
            f"grid axis must be NAME=SPEC with NAME one of {list(names)}, got {text!r}"
        )
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "log"):
                raise ValueError
            lo, hi, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1 or not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError
            if count > MAX_POINTS:  # before the values are made (1e9 of them fill memory)
                raise OverflowError
            if len(parts) == 4:
                if lo <= 0 or hi <= 0:
                    raise ValueError
                values = np.geomspace(lo, hi, count)
            else:
                values = np.linspace(lo, hi, count)
        else:
            values = np.array([float(v) for v in spec.split(",")])
    except OverflowError:
        raise ValueError(f"grid axis {name}: at most {MAX_POINTS:,} values, got {spec!r}") from None
    except ValueError:
        raise ValueError(
            f"grid axis {name}: expected lo:hi:count, lo:hi:count:log (lo, hi > 0) or "
            f"v1,v2,..., got {spec!r}"
        ) from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"grid axis {name}: values must be finite, got {spec!r}")
    if name in SIZES and (np.any(values < 1) or np.any(values != np.round(values))):
        raise ValueError(f"grid axis {name}: values must be integers >= 1, got {spec!r}")
    return name, values


class Grid(NamedTuple):
    """The points of a sweep: ``theta`` (P, 6) family parameters, ``d`` and ``n_max`` (P,) ints,
    ``axes`` the varied names with their values (in the order given)."""

    theta: np.ndarray
    d: np.ndarray
    n_max: np.ndarray
    axes: dict[str, np.ndarray]


def make_grid(
    axes: dict[str, np.ndarray], fixed: dict[str, float] | None = None, *, d: int = 256,
    n_max: int = 256, file: ParamFile | None = None,
) -> Grid:  # fmt: skip
    """The product grid of ``axes`` (last axis fastest); names not on the grid take ``fixed``,
    then :data:`tokenscale_sim.structures.families.DEFAULTS` (``d``, ``n_max`` for the sizes),
    except an unset ``weight``, which is the rest ``1 - shared - image`` (no local term: the
    built-in ``decaying --shared S``). With ``file`` (a structure file with named parameters)
    the names are the file's parameters, their defaults its values, and every value is checked
    against its bounds before any work."""
    fixed = dict(fixed or {})
    names_ok = AXES if file is None else (*file.names, *SIZES)
    for name in [*axes, *fixed]:
        if name not in names_ok:
            raise ValueError(f"sweep: unknown parameter {name!r}; expected one of {list(names_ok)}")
    both = set(axes) & set(fixed)
    if both:
        raise ValueError(f"sweep: {sorted(both)} both on the grid and fixed")
    for k, v in [*axes.items(), *fixed.items()]:
        if not np.all(np.isfinite(np.asarray(v, dtype=float))):
            raise ValueError(f"sweep: {k} must be finite, got {v!r}")
    if file is not None:
        file.check_values({k: v for k, v in [*axes.items(), *fixed.items()] if k not in SIZES})
    count = math.prod(len(v) for v in axes.values())
    if count > MAX_POINTS:
        raise ValueError(f"sweep: at most {MAX_POINTS:,} grid points, got {count:,}")
    params = families.PARAMS if file is None else file.names
    defaults = (
        families.DEFAULTS
        if file is None
        else dict(zip(file.names, file.values.tolist(), strict=True))
    )
    base = {**defaults, "d": d, "n_max": n_max, **fixed}
    names = list(axes)
    rows = itertools.product(*(np.asarray(axes[k], dtype=float) for k in names))
    table = np.array(list(rows), dtype=float).reshape(count, len(names))
    column = {k: np.full(count, float(base[k])) for k in (*params, *SIZES)}
    column.update({k: table[:, j] for j, k in enumerate(names)})
    for k in SIZES:
        if np.any(column[k] < 1) or np.any(column[k] != np.round(column[k])):
            raise ValueError(f"sweep: {k} must be an integer >= 1, got {base[k]!r}")
    if file is None and "weight" not in axes and "weight" not in fixed:
        column["weight"] = 1 - column["shared"] - column["image"]  # the rest: decaying --shared S
    theta = np.stack([column[k] for k in params], axis=1)
    return Grid(theta, column["d"].astype(int), column["n_max"].astype(int), dict(axes))


def point_columns(c: families.FamilyCurves, nv, ne, dd):
    """The per-point numbers of a sweep from one point's exact curves (module docstring)."""
    n_b, status = families.transition_jax(c, nv)
    slope = families.slope_at(c, n_b, status, ne, nv)
    i = ne - 1
    v = c.v[i]
    mean = theory.gaussian_mean_divergence(v, dd)
    bound = jnp.sqrt(v)
    delta = c.psi_aa[i] - c.psi_ab[i]
    avg = jnp.where(nv > 1, jnp.log(c.v[nv - 1] / c.v[0]) / (2 * jnp.log(nv)), 0.5)
    regime = theory.regime_of_slope(slope)
    return n_b, status, slope, regime, mean, bound, c.psi_eq[i], delta, avg


@partial(jax.jit, static_argnames=("n_top", "kernel"))
def _chunk(theta, n_valid, n_eval, d, *, n_top: int, kernel: str):
    def one(th, nv, ne, dd):
        return point_columns(families.exact_psi(th, n_top, kernel), nv, ne, dd)

    return jax.vmap(one)(theta, n_valid, n_eval, d)


@partial(jax.jit, static_argnames=("n_top", "file"))
def _file_chunk(theta, n_valid, n_eval, d, *, n_top: int, file):
    def one(th, nv, ne, dd):
        return point_columns(families.FamilyCurves(*file.curves(th, n_top)), nv, ne, dd)

    return jax.vmap(one)(theta, n_valid, n_eval, d)


class SweepResult(NamedTuple):
    """One row per grid point; ``columns`` holds every CSV column ((P,) arrays; ``status`` and
    ``regime`` as names), ``grid`` the :class:`Grid`, ``seconds`` the compute time."""

    columns: dict[str, np.ndarray]
    grid: Grid
    seconds: float


def sweep(
    grid: Grid,
    *,
    at: int | None = None,
    kernel: str = "exponential",
    file: ParamFile | None = None,
    tick: Callable[[int], object] = lambda k: None,
) -> SweepResult:
    """The exact theory at every point of ``grid`` (module docstring); ``at`` is the n of the
    per-n columns (clipped to each point's n_max; default n_max). ``file``: the grid is over the
    named parameters of that structure file (:func:`make_grid`); points where it is not a valid
    structure (:meth:`~tokenscale_sim.structures.params.ParamFile.check`) are marked invalid.
    ``tick(k)`` is called as each chunk of k points is done (a progress bar's update)."""
    import time

    if kernel not in families.KERNEL_KINDS:
        raise ValueError(f"sweep: kernel must be one of {families.KERNEL_KINDS}, got {kernel!r}")
    if at is not None and (isinstance(at, bool) or int(at) != at or at < 1):
        raise ValueError(f"sweep: at must be an integer >= 1, got {at!r}")
    start = time.perf_counter()
    if file is None:
        valid = families.valid_mask(grid.theta)
        default = np.array(list(families.DEFAULTS.values()))
        params = families.PARAMS
    else:
        valid = file.check(grid.theta)
        default, params = file.values, file.names
        if not valid.any():
            raise ValueError(f"sweep: no grid point is a valid structure of {file.source} "
                             "(unit diagonal, PSD branch matrices, rest weight >= 0)")  # fmt: skip
    theta = np.where(valid[:, None], grid.theta, default)
    n_eval = np.minimum(grid.n_max, int(grid.n_max.max()) if at is None else int(at))
    # a grid kernel without a width takes it from n_max: one program per n_max then
    by_size = file is not None and any(p.kind == "grid" and p.width is None and p.fixed is None
                                       for p in file.programs)  # fmt: skip
    groups = [grid.n_max == m for m in np.unique(grid.n_max)] if by_size else [valid | ~valid]
    cols = [np.zeros(len(theta)) for _ in range(9)]
    for group in groups:
        idx = np.flatnonzero(group)
        n_top = int(grid.n_max[idx].max())
        size = min(CHUNK, len(idx))
        for lo in range(0, len(idx), size):
            sl = idx[lo : lo + size]
            pad = size - len(sl)
            args = [np.concatenate([a[sl], np.repeat(a[sl][-1:], pad, axis=0)]) for a in
                    (theta, grid.n_max, n_eval, grid.d.astype(float))]  # fmt: skip
            if file is None:
                part = _chunk(*args, n_top=n_top, kernel=kernel)
            else:
                part = _file_chunk(*args, n_top=n_top, file=file)
            for col, x in zip(cols, part, strict=True):
                col[sl] = np.asarray(x)[: size - pad]
            tick(len(sl))
    n_b, slope, mean, bound, psi_eq, delta, avg = (cols[i] for i in (0, 2, 4, 5, 6, 7, 8))
    status, regime = cols[1].astype(int), cols[3].astype(int)
    nan = np.where(valid, 1.0, np.nan)
    columns: dict[str, np.ndarray] = {k: grid.theta[:, j] for j, k in enumerate(params)}
    columns.update(
        {
            "d": grid.d,
            "n_max": grid.n_max,
            "valid": valid,
            "n_b": n_b * nan,
            "n_b_status": np.where(valid, np.array(families.STATUSES)[status], ""),
            "at": n_eval,
            "psi_eq_at": psi_eq * nan,
            "delta_at": delta * nan,
            "slope_at": slope * nan,
            "regime_at": np.where(valid, np.array(theory.REGIMES)[regime], ""),
            "mean_d_at": mean * nan,
            "bound_at": bound * nan,
            "mean_over_bound_at": mean / bound * nan,
            "bound_slope": avg * nan,
        }
    )
    return SweepResult(columns, grid, time.perf_counter() - start)


def monte_carlo_column(
    key,
    result: SweepResult,
    m: int,
    *,
    kernel: str = "exponential",
    tick: Callable[[int], object] = lambda k: None,
):
    """Monte Carlo mean D(at) per valid grid point (``m`` Gaussian replicates each, key
    ``fold_in(key, point)``): columns ``mc_mean_d_at``, ``mc_se_at``, ``mc_z_at`` (z against the
    exact ``mean_d_at``). One simulation per point: meant for small grids; ``tick(1)`` after
    each."""
    key = as_key("monte_carlo_column", key)
    from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate

    cols = result.columns
    points = len(cols["valid"])
    mean, se = np.full(points, np.nan), np.full(points, np.nan)
    for p in np.flatnonzero(cols["valid"]):
        structure = families.to_structure(result.grid.theta[p], kernel)
        config = SimulationConfig(
            n_max=int(cols["at"][p]), d=int(cols["d"][p]), m=m, divergence_only=True
        )
        r = simulate(jax.random.fold_in(key, int(p)), structure, config, progress=False)
        mean[p], se[p] = r.divergence.mean[-1], r.divergence.se[-1]
        tick(1)
    return {"mc_mean_d_at": mean, "mc_se_at": se, "mc_z_at": (mean - cols["mean_d_at"]) / se}
