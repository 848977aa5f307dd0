"""The design study's only contact with the fit package (one place to adapt when its API moves).

Uses, all public: :class:`tokenscale_sim.fit.CurveArrays`, :class:`tokenscale_sim.fit.FitOptions`,
:func:`tokenscale_sim.fit.get_model` (``Model.grid``), :func:`tokenscale_sim.fit.fit_arrays`,
:func:`tokenscale_sim.fit.engine.solver.solve_batch` and
:func:`tokenscale_sim.fit.inference.likelihood.deviance`.

Synthetic experiments are fitted exactly as the package fits real curves: log-space least
squares (optionally weighted by each point's inverse variance, estimated from the experiment's own
scores), variable projection + L-BFGS, exact ``n_b`` limits, profile intervals for ``n_b`` and
Wald intervals for the other parameters.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim import fit
from tokenscale_sim.design.core import Noise, log_score_variance
from tokenscale_sim.fit.engine import solver as engine
from tokenscale_sim.fit.inference import likelihood

WEIGHTINGS = ("inverse_variance", "none")
"""How synthetic experiments are weighted in the log-space fit (``none``: the paper's OLS)."""


class ExperimentFits(NamedTuple):
    """Fits of m synthetic experiments (NumPy arrays with leading axis m).

    ``lr``: deviance(power law) - deviance(alpha(n)) >= 0; ``estimates`` (m, 3) natural alpha(n)
    parameters (``n_b`` 0 or inf at a boundary); ``boundary`` codes of the alpha(n) fit;
    ``converged``; ``ci_low``/``ci_high``/``ci_open`` (m, 3[, 2]) intervals at the options' level,
    or None when intervals were not asked for.
    """

    lr: np.ndarray
    estimates: np.ndarray
    boundary: np.ndarray
    converged: np.ndarray
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    ci_open: np.ndarray | None


def fit_weights(scores, questions, noise: Noise, weighting: str):
    """Per-point weights (m, K) of the log-space fit, each row with mean 1.

    ``inverse_variance``: ``1 / Var(ln S_hat)`` at the experiment's *observed* scores (what an
    experimenter can compute; constant for log-normal noise); ``none``: ones.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"fit_weights: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    scores = jnp.asarray(scores)
    if weighting == "none" or noise.kind == "lognormal":
        return jnp.ones_like(scores)
    w = 1.0 / log_score_variance(jnp.log(scores), questions, noise)
    return w / jnp.mean(w, axis=-1, keepdims=True)


PAD = 8
"""Designs are padded (weight 0) to a multiple of this many points, so that designs of different
sizes share one compiled fitter."""


def experiment_arrays(n, scores, weights) -> fit.CurveArrays:
    """Synthetic experiments as the fitter's padded arrays: scores (m, K) at token counts ``n``.

    Padded to a multiple of :data:`PAD` points with weight 0 (the fitter ignores them).
    """
    scores = jnp.asarray(scores)
    m, k = scores.shape
    pad = -k % PAD
    n = jnp.asarray(n, scores.dtype)
    n = jnp.concatenate([n, jnp.full(pad, n[-1], scores.dtype)])
    fill = jnp.ones((m, pad), scores.dtype)
    y = jnp.concatenate([scores, fill], axis=1)
    w = jnp.concatenate([jnp.asarray(weights, scores.dtype), 0 * fill], axis=1)
    ones = jnp.ones_like(y)
    return fit.CurveArrays(jnp.broadcast_to(n, y.shape), y, ones, w, ones)


def start_grid(model: fit.Model, n) -> jnp.ndarray:
    """The model's variable-projection starts for token counts ``n`` (its public ``grid``)."""
    n = np.asarray(n, float)
    return jnp.asarray(model.grid(float(n.min()), float(n.max())), dtype=float)


@partial(jax.jit, static_argnames=("opts",))
def _deviances(opts: fit.FitOptions, data: fit.CurveArrays, u_pl, u_an):
    pl, an = fit.get_model("powerlaw"), fit.get_model("alpha_n")
    dev_pl = jax.vmap(partial(likelihood.deviance, pl, opts))(u_pl, data)
    dev_an = jax.vmap(partial(likelihood.deviance, an, opts))(u_an, data)
    return jnp.maximum(dev_pl - dev_an, 0.0)


def fit_experiments(
    data: fit.CurveArrays, opts: fit.FitOptions, intervals: bool = True
) -> ExperimentFits:
    """Fit the power law and the alpha(n) law to every experiment of ``data`` (m, K).

    With ``intervals`` the alpha(n) fit is :func:`tokenscale_sim.fit.fit_arrays` (profile interval
    for ``n_b``, Wald for ``c`` and ``beta``); without, only the optima (faster: power studies).
    """
    pl, an = fit.get_model("powerlaw"), fit.get_model("alpha_n")
    n = np.asarray(data.n[0])[np.asarray(data.weight[0]) > 0]
    sol_pl = engine.solve_batch(pl, opts, data, start_grid(pl, n))
    if intervals:
        res = fit.fit_arrays(an, data, opts)
        u_an, boundary, converged = jnp.asarray(res.u), res.boundary, res.converged
        estimates = res.estimates
        ci = (res.ci_low, res.ci_high, res.ci_open)
    else:
        sol = engine.solve_batch(an, opts, data, start_grid(an, n))
        u_an, boundary, converged = sol.u, np.asarray(sol.boundary), np.asarray(sol.converged)
        estimates = np.asarray(jax.vmap(an.natural)(sol.u))
        ci = (None, None, None)
    lr = np.asarray(_deviances(opts, data, sol_pl.u, u_an))
    converged = np.asarray(converged) & np.asarray(sol_pl.converged)
    return ExperimentFits(lr, np.asarray(estimates), np.asarray(boundary), converged, *ci)


def power_law_projection(log_s, n, weights) -> tuple[float, float]:
    """The power law nearest ``log_s`` (K,) in weighted log least squares -> (c, alpha).

    >>> n = np.array([1.0, 2.0, 4.0, 8.0])
    >>> [round(x, 6) for x in power_law_projection(np.log(3.0 * n**0.25), n, np.ones(4))]
    [3.0, -0.25]
    """
    pl = fit.get_model("powerlaw")
    data = experiment_arrays(n, np.exp(np.asarray(log_s, float))[None], np.asarray(weights)[None])
    sol = engine.solve_batch(pl, fit.FitOptions(), data, start_grid(pl, n))
    c, alpha = np.asarray(pl.natural(sol.u[0]))
    return float(c), float(alpha)
