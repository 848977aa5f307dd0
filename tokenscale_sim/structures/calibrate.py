r"""Calibrate a structure to measured psi(n): least squares on the family's exact psi's.

The family is :mod:`tokenscale_sim.structures.families` (shared, image, decaying and local terms);
its free parameters (any subset, the others fixed) are fitted to the measured mean curves
``psi_eq(n)``, ``psi_AABB(n)`` and ``psi_AB(n)`` for ``n <= n_fit``:

    minimise  sum_curves sum_{n <= n_fit} (psi_model(n; theta) - psi_measured(n))^2

with ``psi_model`` the exact expected sampled cosines at the measurement's width d
(:func:`~tokenscale_sim.structures.families.expected_cosine_psi`; population psi's without d).
Inside the optimiser the parameters are unconstrained: the free weights are ``budget * softmax(u,
0)`` (``budget`` = 1 minus the fixed weights, the last share the local term), ``length = exp(u)``,
couplings ``tanh(u)``. A fixed number of Marquardt-damped Gauss-Newton steps
(:func:`levenberg_marquardt`) runs from the best of a grid of starts; with a pair bootstrap the
resampled curves are fitted in the same vmapped call. Parameters that end on the edge of their
domain (a weight near 0, a coupling near +-1, a length near 0 or infinity) are reported in
``boundary``: their intervals are then not meaningful.

Intervals:

- ``"pairs"`` (per-pair curves given): percentile intervals over a bootstrap of the pairs (each
  resample's mean curves refitted, vmapped). This is the honest interval: the n points of one
  cumulative curve are strongly correlated.
- ``"points"`` (mean curves only, e.g. a ``tokenscale measure`` folder): Wald intervals from the
  Jacobian with ``sigma^2 = RSS / (m - p)``, as if the n points were independent. They are too
  narrow for cumulative curves and are labelled so.

Goodness of fit: RMSE and R^2 per curve over the fit range, and the RMSE over the n beyond it
(how the calibrated structure extrapolates the psi's).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from tokenscale_sim.runtime.validation import check_count, check_memory
from tokenscale_sim.structures import families
from tokenscale_sim.structures.terms import Structure

CURVES = ("psi_eq", "psi_aabb", "psi_ab")
"""The measured curves a calibration fits, in the order of :class:`PsiData` ``curves``."""

_WEIGHTS = ("shared", "image", "weight")
_STARTS_LENGTH = (1.0, 4.0, 16.0, 64.0)
_STARTS_COUPLING = (-0.3, 0.3)
_ITERATIONS = 100


class PsiData(NamedTuple):
    """Measured psi curves.

    Attributes:
        n: (N,) token counts 1..N.
        curves: (3, N) mean psi_eq, psi_AABB, psi_AB (NaN where missing, as psi_AB(1)).
        replicates: (P, 3, N) per-pair curves (for the pair bootstrap), or None.
        d: hidden width (the expected sampled cosines), or None for population psi's.
    """

    n: np.ndarray
    curves: np.ndarray
    replicates: np.ndarray | None = None
    d: int | None = None


class Calibration(NamedTuple):
    """A calibrated structure.

    Attributes:
        params: names of all six family parameters; free: the fitted ones.
        estimates: (6,) natural parameters (fixed ones as given).
        ci_low, ci_high: (6,) interval bounds (NaN for fixed parameters).
        interval: ``"pairs"`` or ``"points"`` (module docstring); level: its level.
        converged: the Levenberg-Marquardt test at the optimum.
        rss: residual sum of squares; points: residuals used.
        rmse, r2: (3,) per curve over the fit range; rmse_beyond: (3,) over n > n_fit.
        n_fit: the largest n fitted; kernel: the decaying term's kernel.
        fitted: (3, N) the calibrated structure's curves at every measured n.
        structure: the calibrated :class:`~tokenscale_sim.structures.terms.Structure`.
        bootstrap: (B, 6) refitted estimates of the pair bootstrap, or None.
        boundary: free parameters on the edge of their domain (module docstring).
    """

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
    kernel: str
    fitted: np.ndarray
    structure: Structure
    bootstrap: np.ndarray | None
    boundary: tuple[str, ...] = ()


def _edges(theta: np.ndarray, free: tuple[str, ...]) -> tuple[str, ...]:
    """Free parameters on the edge of the family's domain."""
    value = dict(zip(families.PARAMS, theta.tolist(), strict=True))
    edge = {
        "shared": value["shared"] < 1e-4,
        "image": value["image"] < 1e-4,
        "weight": value["weight"] < 1e-4,
        "length": not 1e-2 < value["length"] < 1e4,
        "coupling": abs(value["coupling"]) > 0.999,
        "local_coupling": abs(value["local_coupling"]) > 0.999,
    }
    return tuple(k for k in free if edge[k])


def _natural(u, free_idx: tuple[int, ...], fixed):
    """Unconstrained ``u`` (free,) -> natural ``theta`` (6,) (module docstring)."""
    theta = jnp.asarray(fixed, dtype=u.dtype)
    weights = [i for i in free_idx if families.PARAMS[i] in _WEIGHTS]
    budget = 1.0 - sum(fixed[i] for i in range(3) if i not in weights)
    if weights:
        logits = jnp.concatenate([u[jnp.array([free_idx.index(i) for i in weights])], jnp.zeros(1)])
        share = budget * jax.nn.softmax(logits)[:-1]
        theta = theta.at[jnp.array(weights)].set(share)
    for i in free_idx:
        name = families.PARAMS[i]
        if name == "length":
            theta = theta.at[i].set(jnp.exp(u[free_idx.index(i)]))
        elif name in ("coupling", "local_coupling"):
            theta = theta.at[i].set(jnp.tanh(u[free_idx.index(i)]))
    return theta


def _model(theta, n_max: int, d: int | None, kernel: str):
    c = (
        families.exact_psi(theta, n_max, kernel)
        if d is None
        else families.expected_cosine_psi(theta, n_max, d, kernel)
    )
    return jnp.stack([c.psi_eq, c.psi_aa, c.psi_ab])


class _Solution(NamedTuple):
    u: jnp.ndarray
    rss: jnp.ndarray
    converged: jnp.ndarray


def levenberg_marquardt(res, u0, iterations: int = _ITERATIONS) -> _Solution:
    """Marquardt-damped Gauss-Newton steps (a fixed number: one small compiled loop, vmapped
    over starts and resamples), ``lam`` divided by 3 after a step that lowers the RSS and
    multiplied by 10 otherwise. Converged: finite, and the undamped Gauss-Newton step at the
    end below ``1e-6 (1 + |u|)`` in every coordinate."""
    p = u0.shape[0]

    def parts(u):
        r = res(u)
        jac = jax.jacfwd(res)(u)
        return r, jac, jac.T @ jac, jac.T @ r

    def step(_, carry):
        u, lam = carry
        r, _, a, g = parts(u)
        damped = a + lam * jnp.diag(jnp.diagonal(a) + 1e-12)
        u_new = u + jnp.linalg.solve(damped, -g)
        better = jnp.sum(res(u_new) ** 2) < jnp.sum(r**2)
        better = better & jnp.all(jnp.isfinite(u_new))
        return jnp.where(better, u_new, u), jnp.where(better, lam / 3, lam * 10)

    u, _ = jax.lax.fori_loop(0, iterations, step, (u0, jnp.asarray(1e-2, u0.dtype)))
    r, _, a, g = parts(u)
    gn = jnp.linalg.solve(a + 1e-12 * jnp.eye(p, dtype=a.dtype), -g)
    ok = jnp.all(jnp.isfinite(gn)) & jnp.all(jnp.abs(gn) <= 1e-6 * (1 + jnp.abs(u)))
    return _Solution(u, jnp.sum(r**2), ok)


def _residuals(u, target, mask, free_idx, fixed, n_max, d, kernel):
    model = _model(_natural(u, free_idx, fixed), n_max, d, kernel)
    return jnp.where(mask, model - jnp.where(mask, target, 0.0), 0.0).ravel()


_STATIC = ("free_idx", "fixed", "n_max", "d", "kernel")


@partial(jax.jit, static_argnames=_STATIC)
def _start_rss(starts, target, mask, **static):
    """RSS at every start (S, p): the LM starts from the best (one compiled LM per run)."""
    return jax.vmap(lambda u: jnp.sum(_residuals(u, target, mask, **static) ** 2))(starts)


@partial(jax.jit, static_argnames=_STATIC)
def _solve(u0, targets, mask, **static):
    """LM from ``u0`` (p,) for every target (T, 3, N), vmapped -> (T,) solutions."""
    return jax.vmap(lambda t: levenberg_marquardt(lambda u: _residuals(u, t, mask, **static), u0))(
        targets
    )


def _starts(free: tuple[str, ...]) -> np.ndarray:
    """A grid of unconstrained starts: lengths x couplings x weight logits, local coupling 0."""
    rows = []
    for length, c, w in itertools.product(_STARTS_LENGTH, _STARTS_COUPLING, (-1.0, 0.0, 1.0)):
        value = {"length": np.log(length), "coupling": np.arctanh(c), "local_coupling": 0.0}
        value["weight"] = w
        rows.append([value.get(name, 0.0) for name in free])
    return np.unique(np.array(rows, dtype=float), axis=0)


def check_pair_bootstrap(bootstrap, data: PsiData) -> int:
    """``bootstrap`` as an int >= 0, the memory of its resampled curves (B, P, 3, N) checked
    before any work (``--bootstrap`` of hundreds of digits is one line, not NumPy's error).

    >>> data = PsiData(np.arange(1.0, 5.0), np.zeros((3, 4)), np.zeros((5, 3, 4)))
    >>> check_pair_bootstrap(10**400, data)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: calibrate: 1000...0 pair-bootstrap resamples of 5 pairs needs about ...
    """
    bootstrap = check_count("calibrate", "bootstrap", bootstrap, 0)
    if data.replicates is not None and bootstrap >= 2:
        pairs, n = len(data.replicates), np.shape(data.curves)[-1]
        check_memory("calibrate", f"{bootstrap} pair-bootstrap resamples of {pairs} pairs",
                     16 * bootstrap * 3 * n * (pairs + 1), "lower --bootstrap")  # fmt: skip
    return bootstrap


def calibrate(
    data: PsiData,
    *,
    n_fit: int,
    free: tuple[str, ...] = families.PARAMS,
    fixed: dict[str, float] | None = None,
    kernel: str = "exponential",
    bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
    on_start: Callable[[], object] = lambda: None,
) -> Calibration:
    """Fit the family's ``free`` parameters to ``data`` over ``n <= n_fit`` (module docstring).

    Args:
        data: :class:`PsiData`. n_fit: the largest n used (>= 3).
        free: parameters to fit (names of :data:`~tokenscale_sim.structures.families.PARAMS`); the
            others take ``fixed`` or :data:`~tokenscale_sim.structures.families.DEFAULTS`.
        kernel: the decaying term's kernel. bootstrap: pair-bootstrap resamples (used when
            ``data.replicates`` is given; 0: Wald intervals). level: interval level.
        seed: seed of the pair resampling. on_start: called once every argument is checked,
            as the work starts (the CLI's work line: a refused input stays one line).

    Returns:
        :class:`Calibration`.

    Raises:
        ValueError: unknown or repeated parameters, fixed values outside the family's domain,
            an ``n_fit`` outside [3, N], or too few finite points.
    """
    free = tuple(free)
    unknown = [k for k in [*free, *(fixed or {})] if k not in families.PARAMS]
    if unknown or len(set(free)) != len(free) or not free:
        raise ValueError(
            f"calibrate: free must be distinct names among {list(families.PARAMS)}, got "
            f"{list(free)} (fixed {sorted(fixed or {})})"
        )
    if set(free) & set(fixed or {}):
        raise ValueError(f"calibrate: {sorted(set(free) & set(fixed or {}))} both free and fixed")
    if not 0 < level < 1:
        raise ValueError(f"calibrate: level must be in (0, 1), got {level}")
    curves = np.asarray(data.curves, dtype=float)
    n_max = curves.shape[-1]
    if curves.shape != (3, n_max) or not 3 <= n_fit <= n_max:
        raise ValueError(
            f"calibrate: curves must be (3, N) and 3 <= n_fit <= N, got shape {curves.shape} "
            f"and n_fit {n_fit}"
        )
    base = {**families.DEFAULTS, **(fixed or {})}
    if "weight" not in free and "weight" not in (fixed or {}):
        base["weight"] = 0.0  # an unset, unfitted weight: no decaying term
    for k in free:
        if k in _WEIGHTS:
            base[k] = 0.0  # a free weight's share comes from the optimiser
    fixed_theta = tuple(float(base[k]) for k in families.PARAMS)
    families.check_params(np.array(fixed_theta), "calibrate")
    free_idx = tuple(families.PARAMS.index(k) for k in families.PARAMS if k in free)
    free = tuple(families.PARAMS[i] for i in free_idx)
    n = np.arange(1, n_max + 1)
    mask = (n <= n_fit)[None, :] & np.isfinite(curves)
    points = int(mask.sum())
    if points <= len(free):
        raise ValueError(f"calibrate: {points} finite points for {len(free)} free parameters")
    bootstrap = check_pair_bootstrap(bootstrap, data)
    on_start()
    static = dict(free_idx=free_idx, fixed=fixed_theta, n_max=n_max, d=data.d, kernel=kernel)
    starts = jnp.asarray(_starts(free))
    rss0 = np.asarray(_start_rss(starts, jnp.asarray(curves), jnp.asarray(mask), **static))
    u0 = starts[int(np.nanargmin(np.where(np.isfinite(rss0), rss0, np.inf)))]
    targets = [curves]
    reps = None if data.replicates is None or bootstrap < 2 else np.asarray(data.replicates, float)
    if reps is not None:  # the pair bootstrap's resampled mean curves, fitted in the same call
        picks = np.random.default_rng(seed).integers(0, len(reps), size=(bootstrap, len(reps)))
        means = nan_mean(reps[picks], axis=1)
        targets.extend(np.where(np.isfinite(means), means, curves))
    sol = _solve(u0, jnp.asarray(np.stack(targets)), jnp.asarray(mask), **static)
    us, conv = np.asarray(sol.u), np.asarray(sol.converged)
    u, converged = us[0], bool(conv[0])

    def natural(uu):
        return _natural(uu, free_idx, fixed_theta)

    theta = np.asarray(natural(jnp.asarray(u)))
    model = np.asarray(_model(jnp.asarray(theta), n_max, data.d, kernel))
    resid = np.where(mask, model - np.where(mask, curves, 0.0), 0.0)
    rss = float(np.sum(resid**2))
    boot = None
    if reps is not None:
        boot = np.asarray(jax.vmap(natural)(jnp.asarray(us[1:])))
        tail = 100 * (1 - level) / 2
        with np.errstate(invalid="ignore"):  # inf - inf of refits at a limit: NaN, said below
            low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
        interval = "pairs"
    else:
        jac = np.asarray(jax.jacfwd(natural)(jnp.asarray(u)))  # (6, p)

        j = np.asarray(
            jax.jacfwd(_residuals)(jnp.asarray(u), jnp.asarray(curves), jnp.asarray(mask), **static)
        )
        cov_u = rss / (points - len(free)) * np.linalg.pinv(j.T @ j)
        se = np.sqrt(np.clip(np.diag(jac @ cov_u @ jac.T), 0, None))
        z = stats.norm.ppf(0.5 + level / 2)
        low, high = theta - z * se, theta + z * se
        interval = "points"
    is_free = np.array([k in free for k in families.PARAMS])
    low, high = np.where(is_free, low, np.nan), np.where(is_free, high, np.nan)
    rmse, r2, beyond = fit_quality(model, curves, mask, n_fit)
    structure = families.to_structure(theta, kernel, name=f"calibrated ({kernel})")
    return Calibration(families.PARAMS, free, theta, low, high, interval, level, converged, rss,
                       points, rmse, r2, beyond, n_fit, kernel, model, structure, boot,
                       _edges(theta, free))  # fmt: skip


def fit_quality(model: np.ndarray, curves: np.ndarray, mask: np.ndarray, n_fit: int):
    """``(rmse, r2, rmse_beyond)``, each (3,): per curve over the fitted points ``mask`` (3, N)
    and over the finite points with n > n_fit."""
    n = np.arange(1, curves.shape[-1] + 1)
    rmse, r2, beyond = (np.full(3, np.nan) for _ in range(3))
    for k in range(3):
        inside, outside = mask[k], (n > n_fit) & np.isfinite(curves[k])
        err = model[k] - curves[k]
        rmse[k] = np.sqrt(np.mean(err[inside] ** 2))
        spread = np.sum((curves[k][inside] - curves[k][inside].mean()) ** 2)
        r2[k] = 1 - np.sum(err[inside] ** 2) / spread if spread > 0 else np.nan
        beyond[k] = np.sqrt(np.mean(err[outside] ** 2)) if outside.any() else np.nan
    return rmse, r2, beyond


def summary(cal: Calibration) -> dict:
    """Plain data of a calibration (for JSON): estimates with intervals, fit quality."""
    return {
        "kernel": cal.kernel,
        "free": list(cal.free),
        "n_fit": cal.n_fit,
        "estimates": dict(zip(cal.params, cal.estimates.tolist(), strict=True)),
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
        "rmse": dict(zip(CURVES, cal.rmse.tolist(), strict=True)),
        "r2": dict(zip(CURVES, cal.r2.tolist(), strict=True)),
        "rmse_beyond_fit": dict(zip(CURVES, cal.rmse_beyond.tolist(), strict=True)),
        "structure": cal.structure.describe(),
    }


def fit_line(cal: Calibration) -> str:
    """One line on the goodness of fit: RMSE per curve inside and beyond the fit range."""
    inside = ", ".join(f"{k} {v:.3g}" for k, v in zip(CURVES, cal.rmse, strict=True))
    beyond = ", ".join(f"{k} {v:.3g}" for k, v in zip(CURVES, cal.rmse_beyond, strict=True))
    return (
        f"fit (n <= {cal.n_fit}, {cal.points} points, "
        f"{'converged' if cal.converged else 'NOT converged'}"
        + (f"; on the boundary: {', '.join(cal.boundary)}" if cal.boundary else "")
        + f"): RMSE {inside}; beyond n_fit: {beyond}"
    )


def replicate_curves(psi_eq, psi_aa, psi_bb, psi_ab) -> np.ndarray:
    """Per-pair curves ``(P, 3, N)`` in the order of :data:`CURVES` from per-pair psi's (P, N)
    (e.g. :func:`tokenscale_sim.theory.divergence.branch_statistics` of P pairs)."""
    eq, aa, bb, ab = (np.asarray(x, dtype=float) for x in (psi_eq, psi_aa, psi_bb, psi_ab))
    return np.stack([eq, (aa + bb) / 2, ab], axis=1)


def nan_mean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the finite entries; NaN where there are none (no warning)."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class Prediction(NamedTuple):
    """Mean D(n) predicted by a calibrated structure next to the measured one.

    Attributes:
        n: (N,). measured: (N,) measured mean D(n). exact: (N,) exact Gaussian E[D(n)] at width
            d. bound: (N,) the structure's sqrt(2 Upsilon(n)). monte_carlo: (N,) Monte Carlo
            mean D(n) of unit-normalised tokens at width d, or None.
        errors: ``{name: {"max_rel": .., "rms_rel": ..}}`` of each prediction against the
            measured mean D over n > n_fit.
    """

    n: np.ndarray
    measured: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    monte_carlo: np.ndarray | None
    errors: dict


def predict_divergence(
    cal: Calibration, measured: np.ndarray, d: int, monte_carlo: np.ndarray | None = None
) -> Prediction:
    """Predict mean D(n) for every measured n from the calibrated structure (exact Gaussian
    E[D] at width d, the bound, and a given Monte Carlo curve) and the relative errors against
    ``measured`` (N,) beyond the fit range."""
    from tokenscale_sim.theory import closed_forms as theory

    measured = np.asarray(measured, dtype=float)
    n_max = len(measured)
    v = cal.structure.v(n_max)
    exact = np.asarray(theory.gaussian_mean_divergence(v, d), dtype=float)
    bound = np.sqrt(np.clip(v, 0, None))
    beyond = np.arange(1, n_max + 1) > cal.n_fit
    errors = {}
    for name, curve in (("exact", exact), ("bound", bound), ("monte_carlo", monte_carlo)):
        if curve is None or not beyond.any():
            continue
        rel = (np.asarray(curve)[beyond] - measured[beyond]) / measured[beyond]
        errors[name] = {
            "max_rel": float(np.max(np.abs(rel))),
            "rms_rel": float(np.sqrt(np.mean(rel**2))),
            "at_n_max_rel": float(rel[-1]),
        }
    return Prediction(np.arange(1, n_max + 1), measured, exact, bound, monte_carlo, errors)
