r"""Model comparison: "is there a transition?" and joint fits with tied parameters.

:func:`transition_test` compares the power law with the alpha(n) law by AIC/BIC and by a
parametric-bootstrap likelihood ratio under the power law: the alpha(n) law nests the power law
only at its boundary (``n_b -> 0`` or ``inf``), so the chi-square reference is not valid.
:func:`fit_tied` fits many curves at once with some parameters shared. Both accept fits already
made (and refit only what is not given); AIC/BIC come from
:mod:`tokenscale_sim.fit.inference.likelihood`, the same code as single fits.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays, CurveSet, check_curves
from tokenscale_sim.fit.data.frames import as_curves
from tokenscale_sim.fit.engine.options import Boundary, FitOptions, check_options
from tokenscale_sim.fit.engine.precision import in_fit_precision
from tokenscale_sim.fit.engine.solver import (
    data_span,
    lbfgs,
    objective,
    residuals,
    solve_batch,
    start_grid,
)
from tokenscale_sim.fit.inference.estimate import FitResult, fit_arrays, resampling_memory
from tokenscale_sim.fit.inference.likelihood import (
    delta_method_se,
    deviance,
    information_criteria,
    neg2_loglik,
    variance_params,
)
from tokenscale_sim.fit.inference.uncertainty import resample
from tokenscale_sim.fit.laws.models import Model, get_model
from tokenscale_sim.runtime.validation import as_key, check_count, check_memory


class TransitionTest(NamedTuple):
    """Power law vs alpha(n) per curve (G,): "is there a transition?".

    ``lr`` = deviance(power law) - deviance(alpha(n)) >= 0; ``p_value`` from ``m`` parametric
    bootstrap replicates under the fitted power law; ``delta_aic`` / ``delta_bic`` are
    alpha(n) minus power law (negative favours a transition); ``boundary`` is the alpha(n) fit's.
    """

    lr: np.ndarray
    p_value: np.ndarray
    delta_aic: np.ndarray
    delta_bic: np.ndarray
    boundary: np.ndarray
    m: int


# ----------------------------------------------------------------------------- model comparison


def _given_or_fit(name: str, fit: FitResult | None, default: str, data, opts: FitOptions):
    """``fit`` checked against ``data``/``opts``, or a new fit of the model ``default``."""
    if fit is None:
        return fit_arrays(get_model(default), data, opts)
    if fit.loss_name != opts.loss or fit.u.shape[0] != data.n.shape[0]:
        raise ValueError(
            f"transition_test: {name} must be a fit of the same {data.n.shape[0]} curves with "
            f"loss {opts.loss!r}, got {fit.u.shape[0]} curves with loss {fit.loss_name!r}"
        )
    return fit


@in_fit_precision
def transition_test(
    key,
    curves: CurveSet,
    *,
    m: int = 1000,
    opts: FitOptions | None = None,
    powerlaw_fit: FitResult | None = None,
    alpha_fit: FitResult | None = None,
) -> TransitionTest:
    """Is there a transition? The power law vs the alpha(n) law for every curve.

    The statistic is ``LR = dev_null - dev_alt >= 0`` (deviances of
    :func:`~tokenscale_sim.fit.inference.likelihood.deviance`); its null distribution comes from
    ``m`` parametric-bootstrap curves drawn from each fitted null law (Gaussian residuals in the
    loss's space) and refitted with both laws, all in two vmapped calls;
    ``p = (1 + #{LR* >= LR}) / (m + 1)``.

    Args:
        key: ``jax.random`` key; curves: G curves; m: bootstrap replicates.
        opts: fit options (default: the given fits' loss and level, else :class:`FitOptions`).
        powerlaw_fit, alpha_fit: fits of ``curves`` already made (refitted only when absent).
            Their models are the null and the alternative (default ``powerlaw`` and
            ``alpha_n``), so any nested pair of laws, also user-defined ones, can be tested.

    Returns:
        :class:`TransitionTest` with (G,) arrays.
    """
    key = as_key("transition_test", key)
    m = check_count("transition_test", "m", m, 2)
    given = powerlaw_fit or alpha_fit
    default = FitOptions(loss=given.loss_name, level=given.level) if given else FitOptions()
    opts = check_options("transition_test", opts, default)
    curves = as_curves(curves, fn="transition_test")
    g, points = curves.arrays.n.shape
    check_memory("transition_test", f"{m} resamples of {g} curves of up to {points} points",
                 resampling_memory("alpha_n", g, points, m, opts),
                 "lower m, or test fewer curves at once")  # fmt: skip
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    fit_pl = _given_or_fit("powerlaw_fit", powerlaw_fit, "powerlaw", data, opts)
    fit_an = _given_or_fit("alpha_fit", alpha_fit, "alpha_n", data, opts)
    pl, an = fit_pl.model, fit_an.model
    check_curves(curves, an, opts.loss)
    lr = _lr(pl, an, opts, data, jnp.asarray(fit_pl.u), jnp.asarray(fit_an.u))
    star = resample(key, pl, opts, data, jnp.asarray(fit_pl.u), "parametric", m)
    sol_pl = solve_batch(pl, opts, star, start_grid(pl, data))
    sol_an = solve_batch(an, opts, star, start_grid(an, data))
    lr_star = jax.vmap(partial(_lr, pl, an, opts))(star, sol_pl.u, sol_an.u)
    lr, lr_star = np.asarray(lr), np.asarray(lr_star)
    p = (1 + np.sum(lr_star >= lr[None, :] - 1e-9 * np.abs(lr[None, :]), axis=0)) / (m + 1)
    return TransitionTest(
        lr, p, fit_an.aic - fit_pl.aic, fit_an.bic - fit_pl.bic, fit_an.boundary, m
    )


def _lr(pl: Model, an: Model, opts: FitOptions, data: CurveArrays, u_pl, u_an):
    dev = jax.vmap(partial(deviance, pl, opts))(u_pl, data)
    dev_an = jax.vmap(partial(deviance, an, opts))(u_an, data)
    return jnp.maximum(dev - dev_an, 0.0)


# ----------------------------------------------------------------------------- tied parameters


class TiedResult(NamedTuple):
    """Joint fit of G curves with some parameters shared (NumPy).

    ``estimates``/``se`` are (G, p) (shared columns repeat); ``shared`` names the tied ones;
    ``loss`` is the joint objective (sum over curves of each curve's loss); ``aic``/``bic`` of the
    joint Gaussian likelihood (one residual variance per curve unless ``weighted``); ``boundary``
    (G,) holds :class:`~tokenscale_sim.fit.engine.options.Boundary` codes per curve: an ``n_b``
    (shared or not) beyond the widened data range is reported as its limit 0 or inf.
    """

    model: Model
    params: tuple[str, ...]
    shared: tuple[str, ...]
    estimates: np.ndarray
    se: np.ndarray
    loss: float
    aic: float
    bic: float
    converged: bool
    iterations: int
    boundary: np.ndarray


@in_fit_precision
def fit_tied(
    curves: CurveSet,
    model: str | Model,
    shared: tuple[str, ...] = ("beta",),
    opts: FitOptions | None = None,
    *,
    single_fit: FitResult | None = None,
) -> TiedResult:
    """Fit all curves jointly with the parameters ``shared`` tied (e.g. one beta or one n_b).

    Starts from the independent fits (the shared entries at their median), plus a few starts of a
    shared ``n_b`` across the data range; L-BFGS on the joint unconstrained vector, vmapped over
    starts. ``single_fit``: the independent fits of ``curves`` with ``model`` if already made
    (refitted only when absent). AIC/BIC count one residual variance per curve (none under the
    ``weighted`` loss, whose likelihood uses the given standard errors), as single fits do.

    >>> import numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> n = np.array([1.0, 2, 4, 8, 16])
    >>> cs = curves_from_arrays(n, np.stack([2 * n**0.3, 5 * n**0.3]))
    >>> r = fit_tied(cs, "powerlaw", shared=("alpha",))
    >>> np.round(r.estimates, 6).tolist()
    [[2.0, -0.3], [5.0, -0.3]]
    """
    model = get_model(model)
    opts = opts or FitOptions()
    bad = [s for s in shared if s not in model.params]
    if bad or not shared:
        raise ValueError(f"fit_tied: shared must name parameters of {model.params}, got {shared}")
    check_curves(curves, model, opts.loss)
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    if single_fit is None:
        single = fit_arrays(model, data, opts)
    elif single_fit.model != model or single_fit.loss_name != opts.loss:
        raise ValueError(
            f"fit_tied: single_fit must be a {model.name!r} fit with loss {opts.loss!r}, got "
            f"{single_fit.model.name!r} with {single_fit.loss_name!r}"
        )
    else:
        single = single_fit
    tied = np.array([p in shared for p in model.params])
    u0 = np.clip(np.asarray(single.u), -40.0, 40.0)
    joint0 = np.concatenate([np.median(u0[:, tied], axis=0), u0[:, ~tied].ravel()])
    starts = [joint0]
    if model.nb_index is not None and tied[model.nb_index]:
        pos = int(np.sum(tied[: model.nb_index]))
        n = curves.arrays.n[curves.arrays.weight > 0]
        for v in np.linspace(np.log(n.min()), np.log(n.max()), 4):
            s = joint0.copy()
            s[pos] = v
            starts.append(s)
    g, p = u0.shape

    span = np.asarray(jax.vmap(data_span)(data)).T  # (G, 2) ln n range per curve
    nb_lo = jnp.asarray(span[:, 0] - opts.boundary_span)
    nb_hi = jnp.asarray(span[:, 1] + opts.boundary_span)

    def unpack(joint):
        free = joint[int(tied.sum()) :].reshape(g, p - int(tied.sum()))
        full = jnp.zeros((g, p), joint.dtype)
        full = full.at[:, np.flatnonzero(tied)].set(joint[: int(tied.sum())])
        full = full.at[:, np.flatnonzero(~tied)].set(free)
        if model.nb_index is None:
            return full
        # ln n_b beyond the widened data range is a limit: clip it (flat loss, zero gradient)
        j = model.nb_index
        return full.at[:, j].set(jnp.clip(full[:, j], nb_lo, nb_hi))

    def fun(joint):
        return jnp.sum(jax.vmap(partial(objective, model, opts))(unpack(joint), data))

    # one large, ill-conditioned problem (flat n_b directions): strong-Wolfe zoom line search and
    # a longer history converge where the cheap vmapped backtracking default stalls
    joint_opts = replace(
        opts,
        linesearch="zoom",
        memory_size=max(opts.memory_size, 30),
        max_iter=max(opts.max_iter, 2000),
    )
    solve = jax.jit(jax.vmap(lambda j0: lbfgs(fun, j0, joint_opts)))
    js, values, gnorms, ks = solve(jnp.asarray(np.stack(starts)))
    best = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    joint = js[best]
    u = unpack(joint)

    def res(jv):
        uu = unpack(jv)
        return jax.vmap(lambda ug, d: residuals(model, opts.loss, ug, d) * jnp.sqrt(d.weight))(
            uu, data
        )

    counts = np.asarray(data.weight).sum(axis=1)
    rss = np.sum(np.asarray(res(joint)) ** 2, axis=1)
    point_var = np.repeat(rss / np.maximum(counts - p, 1.0), data.n.shape[1])
    if opts.loss == "weighted":
        point_var = np.ones_like(point_var)
    se = np.array(
        delta_method_se(
            lambda jv: res(jv).ravel(),
            lambda jv: jax.vmap(model.natural)(unpack(jv)).ravel(),
            joint,
            jnp.zeros(joint.shape[0], bool),
            jnp.asarray(point_var),
        )
    ).reshape(g, p)
    boundary = np.full(g, int(Boundary.NONE))
    est = np.array(jax.vmap(model.natural)(u))
    if model.nb_index is not None:
        j = model.nb_index
        ln_nb = np.asarray(u)[:, j]
        boundary = np.where(
            ln_nb <= np.asarray(nb_lo),
            Boundary.ZERO,
            np.where(ln_nb >= np.asarray(nb_hi), Boundary.INF, Boundary.INTERIOR),
        )
        est[:, j] = np.where(
            boundary == Boundary.ZERO, 0.0, np.where(boundary == Boundary.INF, np.inf, est[:, j])
        )
        se[:, j] = np.where(boundary > Boundary.INTERIOR, np.inf, se[:, j])
    m2ll = float(np.sum(jax.vmap(partial(neg2_loglik, model, opts))(u, data)))
    k_par = len(joint) + g * variance_params(opts.loss)
    aic, bic = (float(x) for x in information_criteria(m2ll, k_par, counts.sum()))
    return TiedResult(
        model,
        model.params,
        tuple(shared),
        est,
        se,
        float(values[best]),
        aic,
        bic,
        bool(np.isfinite(values[best]) and gnorms[best] <= max(1e-6, 1e3 * opts.gtol)),
        int(ks[best]),
        boundary,
    )
