r"""Calibrate any structure file with named parameters to measured psi(n).

The file's free parameters (:mod:`tokenscale_sim.structures.params`; any subset, the others at
their values) are fitted as :mod:`tokenscale_sim.structures.calibrate` fits its family: least
squares of the exact population psi's on the measured mean ``psi_eq(n)``, ``psi_AABB(n)``,
``psi_AB(n)`` for n <= n_fit, Levenberg-Marquardt (:func:`~tokenscale_sim.structures.calibrate.
levenberg_marquardt`) from the best of a grid of starts, pair-bootstrap or Wald ("points")
intervals (the same rules).

Unconstrained coordinates: a parameter with bounds [lo, hi] is ``lo + (hi - lo) sigmoid(u)``,
with only ``lo`` ``lo + exp(u)`` (only ``hi``: ``hi - exp(u)``), unbounded ``u``. When the file
has a ``weight = "rest"`` term, the free parameters that are whole term weights of unit-diagonal
terms share ``budget * softmax(u, 0)`` (budget: 1 minus the fixed terms' diagonal), so the rest
stays >= 0 and every point is a valid structure (their own bounds are then only reported).

Besides the parameters: the implied transition point n_b (:func:`tokenscale_sim.structures.exact.
transition` of the calibrated population psi's) with an interval from the same resamples
(bootstrap refits, or 400 draws of the Wald normal in the unconstrained coordinates).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures.exact import transition
from tokenscale_sim.structures.families import FamilyCurves, transition_jax
from tokenscale_sim.structures.params import ParamFile
from tokenscale_sim.structures.terms import Structure

MAX_STARTS = 2048
"""Starts scored at most (a seeded subset of the product grid beyond this)."""


class FileCalibration(NamedTuple):
    """A calibrated structure file (fields as :class:`~tokenscale_sim.structures.calibrate.
    Calibration`, over the file's parameters ``params``), plus ``name`` (the file's),
    ``values`` ({name: estimate}), ``n_b`` with ``n_b_low``/``n_b_high`` and ``n_b_status``,
    and ``file`` (the :class:`~tokenscale_sim.structures.params.ParamFile`)."""

    name: str
    params: tuple[str, ...]
    free: tuple[str, ...]
    estimates: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    interval: str
    level: float
    converged: bool
    rss: float
    points: int
    rmse: np.ndarray
    r2: np.ndarray
    rmse_beyond: np.ndarray
    n_fit: int
    fitted: np.ndarray
    structure: Structure
    bootstrap: np.ndarray | None
    boundary: tuple[str, ...]
    n_b: float
    n_b_low: float
    n_b_high: float
    n_b_status: str
    file: ParamFile

    @property
    def values(self) -> dict[str, float]:
        return dict(zip(self.params, self.estimates.tolist(), strict=True))


def _simplex(pf: ParamFile, free: tuple[str, ...]) -> tuple[str, ...]:
    """Free parameters that are whole weights of unit-diagonal terms (module docstring)."""
    if pf.rest is None:
        return ()
    uses: dict[str, list[tuple]] = {}
    for path, name in pf.slots:
        uses.setdefault(name, []).append(path)
    terms = pf.with_values({})["terms"]
    out = []
    for name in free:
        paths = uses.get(name, [])
        ok = bool(paths)
        for path in paths:
            ok &= len(path) == 3 and path[0] == "terms" and path[2] == "weight"
            if ok:
                spec = terms[path[1]]
                ok &= "coupling" in spec or (spec["branch"][0][0] == spec["branch"][1][1] == 1)
        if ok:
            out.append(name)
    return tuple(out)


class _Map(NamedTuple):
    """Unconstrained ``u`` (p,) <-> the parameter vector theta (P,)."""

    base: tuple[float, ...]
    free_idx: tuple[int, ...]
    kinds: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    simplex: tuple[int, ...]  # positions in free_idx
    budget: float

    def natural(self, u):
        theta = jnp.asarray(self.base, dtype=u.dtype)
        if self.simplex:
            logits = jnp.concatenate([u[jnp.array(self.simplex)], jnp.zeros(1, u.dtype)])
            share = self.budget * jax.nn.softmax(logits)[:-1]
            theta = theta.at[jnp.array([self.free_idx[j] for j in self.simplex])].set(share)
        for j, (i, kind, (lo, hi)) in enumerate(zip(self.free_idx, self.kinds, self.bounds,
                                                     strict=True)):  # fmt: skip
            if kind == "sigmoid":
                theta = theta.at[i].set(lo + (hi - lo) * jax.nn.sigmoid(u[j]))
            elif kind == "exp":
                theta = theta.at[i].set(lo + jnp.exp(u[j]))
            elif kind == "negexp":
                theta = theta.at[i].set(hi - jnp.exp(u[j]))
            elif kind == "id":
                theta = theta.at[i].set(u[j])
        return theta

    def start(self, theta: np.ndarray) -> np.ndarray:
        """The unconstrained coordinates of ``theta`` (edges pulled inside)."""
        u = np.zeros(len(self.free_idx))
        for j, (i, kind, (lo, hi)) in enumerate(zip(self.free_idx, self.kinds, self.bounds,
                                                     strict=True)):  # fmt: skip
            x = theta[i]
            if kind == "sigmoid":
                f = np.clip((x - lo) / (hi - lo), 1e-3, 1 - 1e-3)
                u[j] = math.log(f / (1 - f))
            elif kind == "exp":
                u[j] = math.log(max(x - lo, 1e-6 * (1 + abs(lo))))
            elif kind == "negexp":
                u[j] = math.log(max(hi - x, 1e-6 * (1 + abs(hi))))
            elif kind == "id":
                u[j] = x
        if self.simplex:
            share = np.array([theta[self.free_idx[j]] for j in self.simplex]) / self.budget
            share = np.clip(share, 1e-3, None)
            last = max(1 - share.sum(), 1e-3)
            u[list(self.simplex)] = np.log(share / last)
        return u


def _make_map(pf: ParamFile, free: tuple[str, ...], base: np.ndarray) -> _Map:
    names = pf.names
    simplex = _simplex(pf, free)
    free_idx = tuple(names.index(k) for k in free)
    kinds, bounds = [], []
    for k in free:
        p = pf.params[k]
        kind = "simplex" if k in simplex else (
            "sigmoid" if math.isfinite(p.lo) and math.isfinite(p.hi) and p.hi > p.lo
            else "exp" if math.isfinite(p.lo) else "negexp" if math.isfinite(p.hi) else "id"
        )  # fmt: skip
        kinds.append(kind)
        bounds.append((p.lo, p.hi))
    budget = 1.0
    if simplex:
        at = base.copy()
        at[[names.index(k) for k in simplex]] = 0.0
        budget = float(np.asarray(pf.rest_weight(at)))
        if not budget > 0:
            raise ValueError(f"calibrate: {pf.source}: the fixed weights leave no room for the "
                             f"free weights {list(simplex)} (budget {budget:g})")  # fmt: skip
    pos = tuple(j for j, k in enumerate(free) if k in simplex)
    return _Map(tuple(base.tolist()), free_idx, tuple(kinds), tuple(bounds), pos, budget)


def _starts(mp: _Map, theta: np.ndarray, seed: int) -> np.ndarray:
    """The file's values and, per coordinate, -2, 0, +2 around them (simplex logits -1, 0, 1);
    a seeded subset of :data:`MAX_STARTS` when the product is larger."""
    u0 = mp.start(theta)
    axes = [(-1.0, 0.0, 1.0) if j in mp.simplex else (u0[j] - 2, u0[j], u0[j] + 2)
            for j in range(len(u0))]  # fmt: skip
    count = 3 ** len(axes)
    if count <= MAX_STARTS:
        rows = np.array(list(itertools.product(*axes)), dtype=float)
    else:
        rng = np.random.default_rng(seed)
        rows = np.array(axes)[np.arange(len(axes)), rng.integers(0, 3, (MAX_STARTS, len(axes)))]
    return np.vstack([u0[None, :], rows])


def _model(pf: ParamFile, theta, n_max: int):
    _, eq, aabb, ab = pf.curves(theta, n_max)
    return jnp.stack([eq, aabb, ab])


def calibrate_file(
    pf: ParamFile,
    data: cb.PsiData,
    *,
    n_fit: int,
    free: tuple[str, ...] | None = None,
    fixed: dict[str, float] | None = None,
    bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> FileCalibration:
    """Fit ``free`` parameters of ``pf`` (default all) to ``data`` over n <= ``n_fit``.

    Raises:
        ValueError: unknown, repeated or fixed-and-free names, values outside their bounds,
            a file without parameters, an ``n_fit`` outside [3, N], too few finite points.
    """
    free = pf.names if free is None else tuple(free)
    fixed = dict(fixed or {})
    if not free or len(set(free)) != len(free) or set(free) & set(fixed):
        raise ValueError(f"calibrate: free must be distinct names among {list(pf.names)} not "
                         f"also fixed, got free {list(free)}, fixed {sorted(fixed)}")  # fmt: skip
    unknown = [k for k in free if k not in pf.params]
    if unknown:
        raise ValueError(f"calibrate: {pf.source}: unknown parameters {unknown}; the file's "
                         f"parameters are {list(pf.names) or 'none'}")  # fmt: skip
    pf.check_values(fixed)
    if not 0 < level < 1:
        raise ValueError(f"calibrate: level must be in (0, 1), got {level}")
    curves = np.asarray(data.curves, dtype=float)
    n_max = curves.shape[-1]
    if curves.shape != (3, n_max) or not 3 <= n_fit <= n_max:
        raise ValueError(f"calibrate: curves must be (3, N) and 3 <= n_fit <= N, got shape "
                         f"{curves.shape} and n_fit {n_fit}")  # fmt: skip
    names = pf.names
    base = pf.values.copy()
    for k, v in fixed.items():
        base[names.index(k)] = float(v)
    pf.structure(dict(zip(names, base.tolist(), strict=True)))  # the fixed point is valid
    free = tuple(k for k in names if k in free)
    mp = _make_map(pf, free, base)
    n = np.arange(1, n_max + 1)
    mask = (n <= n_fit)[None, :] & np.isfinite(curves)
    points = int(mask.sum())
    if points <= len(free):
        raise ValueError(f"calibrate: {points} finite points for {len(free)} free parameters")
    bootstrap = cb.check_pair_bootstrap(bootstrap, data)

    def residuals(u, target):
        model = _model(pf, mp.natural(u), n_max)
        return jnp.where(mask, model - jnp.where(mask, target, 0.0), 0.0).ravel()

    starts = jnp.asarray(_starts(mp, base, seed))
    target0 = jnp.asarray(curves)
    rss0 = np.asarray(jax.jit(jax.vmap(lambda u: jnp.sum(residuals(u, target0) ** 2)))(starts))
    u0 = starts[int(np.argmin(np.where(np.isfinite(rss0), rss0, np.inf)))]
    targets = [curves]
    reps = None if data.replicates is None or bootstrap < 2 else np.asarray(data.replicates, float)
    if reps is not None:
        picks = np.random.default_rng(seed).integers(0, len(reps), size=(bootstrap, len(reps)))
        means = cb.nan_mean(reps[picks], axis=1)
        targets.extend(np.where(np.isfinite(means), means, curves))
    solve = jax.jit(jax.vmap(lambda t: cb.levenberg_marquardt(lambda u: residuals(u, t), u0)))
    sol = solve(jnp.asarray(np.stack(targets)))
    us = np.asarray(sol.u)
    u, converged = us[0], bool(np.asarray(sol.converged)[0])
    natural = jax.jit(jax.vmap(mp.natural))
    theta = np.asarray(mp.natural(jnp.asarray(u)))
    model = np.asarray(_model(pf, jnp.asarray(theta), n_max))
    rss = float(np.sum(np.where(mask, model - np.where(mask, curves, 0.0), 0.0) ** 2))
    if reps is not None:
        draws = us[1:]
        boot = np.asarray(natural(jnp.asarray(draws)))
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
        interval = "pairs"
    else:
        boot = None
        j = np.asarray(jax.jacfwd(residuals)(jnp.asarray(u), target0))
        cov_u = rss / (points - len(free)) * np.linalg.pinv(j.T @ j)
        jac = np.asarray(jax.jacfwd(mp.natural)(jnp.asarray(u)))
        se = np.sqrt(np.clip(np.diag(jac @ cov_u @ jac.T), 0, None))
        z = stats.norm.ppf(0.5 + level / 2)
        low, high = theta - z * se, theta + z * se
        interval = "points"
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(u, (cov_u + cov_u.T) / 2, size=400, method="eigh")
    is_free = np.array([k in free for k in names])
    low, high = np.where(is_free, low, np.nan), np.where(is_free, high, np.nan)
    rmse, r2, beyond = cb.fit_quality(model, curves, mask, n_fit)
    values = dict(zip(names, theta.tolist(), strict=True))
    structure = pf.structure(values)
    tp = transition(structure.psi(n_max))
    nb_draws = _n_b(pf, np.asarray(natural(jnp.asarray(draws))), n_max)
    finite = nb_draws[np.isfinite(nb_draws)]
    tail = 100 * (1 - level) / 2
    nb_lo, nb_hi = (np.percentile(finite, [tail, 100 - tail]) if finite.size >= 0.5 * len(nb_draws)
                    else (np.nan, np.nan))  # fmt: skip
    edges = tuple(k for k in free if np.isclose(values[k], pf.params[k].lo, atol=1e-4)
                  or np.isclose(values[k], pf.params[k].hi, atol=1e-4))  # fmt: skip
    return FileCalibration(pf.name, names, free, theta, low, high, interval, level, converged,
                           rss, points, rmse, r2, beyond, n_fit, model, structure, boot, edges,
                           float(tp.n_b), float(nb_lo), float(nb_hi), tp.status, pf)  # fmt: skip


def _n_b(pf: ParamFile, thetas: np.ndarray, n_max: int) -> np.ndarray:
    """n_b (:func:`~tokenscale_sim.structures.families.transition_jax`) at each row of
    ``thetas`` (R, P); NaN where there is no crossing."""

    def one(t):
        v, eq, aabb, ab = pf.curves(t, n_max)
        n_b, _ = transition_jax(FamilyCurves(v, eq, aabb, ab), n_max)
        return n_b

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(thetas)))


def file_summary(cal: FileCalibration) -> dict:
    """Plain data of a file calibration (for JSON)."""
    return {
        "name": cal.name,
        "file": cal.file.source,
        "free": list(cal.free),
        "n_fit": cal.n_fit,
        "estimates": cal.values,
        "intervals": {
            k: [lo, hi]
            for k, lo, hi in zip(cal.params, cal.ci_low.tolist(), cal.ci_high.tolist(), strict=True)
            if k in cal.free
        },
        "interval_method": cal.interval,
        "level": cal.level,
        "converged": cal.converged,
        "boundary": list(cal.boundary),
        "rss": cal.rss,
        "points": cal.points,
        "rmse": dict(zip(cb.CURVES, cal.rmse.tolist(), strict=True)),
        "rmse_beyond_fit": dict(zip(cb.CURVES, cal.rmse_beyond.tolist(), strict=True)),
        "n_b": cal.n_b,
        "n_b_interval": [cal.n_b_low, cal.n_b_high],
        "n_b_status": cal.n_b_status,
    }
