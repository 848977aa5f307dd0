r"""Uncertainty and model choice: bootstrap, profile likelihood, alpha(n) bands, tied fits, LR test.

Every resampling scheme builds an array of resampled curves of shape (m, G, M) and fits all of
them in **one** vmapped call of :func:`tokenscale_sim.fit.engine.solve_batch` (the same pipeline
as the point fit: variable-projection starts, L-BFGS, boundary detection), so 1000+ resamples of
all curves of a dataset cost one compiled program.

- ``residual``: ``y* = fit (+) r*`` with ``r*`` drawn with replacement from the curve's residuals in
  the loss's space, rescaled by ``sqrt(m / (m - p))``;
- ``case``: points drawn with replacement (as integer weights, so duplicate ``n`` are fine);
- ``parametric``: ``r* ~ N(0, s^2)`` with ``s^2 = RSS / (m - p)`` (known SEs for ``weighted``).

Intervals are percentile intervals of the resampled estimates. "Is there a transition?"
(:func:`transition_test`) compares the power law with the alpha(n) law by AIC/BIC and by a
parametric-bootstrap likelihood ratio under the power law: the alpha(n) law nests the power law
only at its boundary (``n_b -> 0`` or ``inf``), so the chi-square reference is not valid.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data import CurveSet, check_curves
from tokenscale_sim.fit.engine import (
    CurveArrays,
    FitOptions,
    _data_span,
    _grid,
    _lbfgs,
    deviance,
    objective,
    residuals,
    solve_batch,
)
from tokenscale_sim.fit.estimate import (
    FitResult,
    fit_arrays,
    interval_from_profile,
    lr_threshold,
    nb_profile_intervals,
    profile_deviance,
)
from tokenscale_sim.fit.models import Model, alpha_curve, get_model

KINDS = ("residual", "case", "parametric")
"""Bootstrap schemes of :func:`bootstrap`."""


class BootstrapResult(NamedTuple):
    """Bootstrap of G fitted curves with m resamples (NumPy).

    Attributes:
        kind: the scheme; params: parameter names; level: interval level.
        estimates: (m, G, p) natural estimates per resample (n_b may be 0 or inf at a boundary).
        converged: (m, G) bool; boundary: (m, G) codes (see ``engine.BOUNDARY``).
        se: (G, p) standard deviation over converged resamples with finite estimates.
        ci_low, ci_high: (G, p) percentile intervals over converged resamples.
        boundary_fraction: (G,) share of resamples that landed on an ``n_b`` limit (-1: no n_b).
    """

    kind: str
    params: tuple[str, ...]
    level: float
    estimates: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    boundary_fraction: np.ndarray


class AlphaBand(NamedTuple):
    """Pointwise band of alpha(n): ``estimate``, ``low``, ``high`` have shape (G, K) over ``n``."""

    n: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


class ProfileInterval(NamedTuple):
    """Profile-likelihood interval of one parameter per curve (G,), in natural units.

    ``open_low`` / ``open_high`` mark ends the data do not bound (e.g. ``n_b`` down to 0 or up to
    inf; or beyond the searched range for other parameters, reported as +-inf).
    """

    param: str
    low: np.ndarray
    high: np.ndarray
    open_low: np.ndarray
    open_high: np.ndarray
    level: float


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


# ----------------------------------------------------------------------------- resampling


def _finite_u(model: Model, u, data: CurveArrays):
    """Replace +-inf ln n_b (boundary fits) by finite values for residual computations."""
    del model, data
    return jnp.where(jnp.isfinite(u), u, jnp.sign(u) * 60.0)


@partial(jax.jit, static_argnames=("model", "opts", "kind", "m"))
def resample(key, model: Model, opts: FitOptions, data: CurveArrays, u, kind: str, m: int):
    """``m`` resampled copies of every curve: CurveArrays of shape (m, G, M).

    ``u`` (G, p) are the fitted unconstrained parameters (+-inf allowed for ``n_b`` limits).
    """

    def per_curve(key, d, u):
        lp = model.log_predict(u, d.n, d.aux)
        r = residuals(model, opts.loss, u, d)
        ok = d.weight > 0
        count = jnp.sum(d.weight)
        p = model.n_params
        dof = jnp.maximum(count - p, 1.0)
        k1, k2 = jax.random.split(key)
        logits = jnp.where(ok, 0.0, -jnp.inf)
        if kind == "case":
            idx = jax.random.categorical(k1, logits, shape=(m, d.n.shape[0]))
            take = (jnp.arange(d.n.shape[0]) < count).astype(d.n.dtype)
            counts = jax.vmap(lambda i: jnp.zeros(d.n.shape[0], d.n.dtype).at[i].add(take))(idx)
            rep = [jnp.broadcast_to(x, (m, *x.shape)) for x in d]
            return CurveArrays(rep[0], rep[1], rep[2], counts.astype(d.n.dtype), rep[4])
        if kind == "residual":
            idx = jax.random.categorical(k1, logits, shape=(m, d.n.shape[0]))
            rstar = r[idx] * jnp.sqrt(count / dof)
        else:
            s = 1.0 if opts.loss == "weighted" else jnp.sqrt(jnp.sum(jnp.where(ok, r**2, 0)) / dof)
            rstar = s * jax.random.normal(k2, (m, d.n.shape[0]), dtype=d.n.dtype)
        if opts.loss in ("log", "huber"):
            ystar = jnp.exp(lp + rstar)
        elif opts.loss == "linear":
            scale = jnp.sum(d.weight * d.y) / count
            ystar = jnp.exp(lp) + scale * rstar
        else:
            ystar = jnp.exp(lp) + d.se * rstar
        ystar = jnp.where(ok, ystar, 1.0)
        rep = [jnp.broadcast_to(x, (m, *x.shape)) for x in d]
        return CurveArrays(rep[0], ystar, rep[2], rep[3], rep[4])

    keys = jax.random.split(key, data.n.shape[0])
    out = jax.vmap(per_curve)(keys, data, _finite_u(model, u, data))
    return CurveArrays(*(jnp.swapaxes(x, 0, 1) for x in out))


def _quantiles(x, mask, level):
    """Percentile interval and SD over axis 0 where ``mask``; (m, G, p) -> three (G, p)."""
    q = (0.5 - level / 2, 0.5 + level / 2)
    x = np.where(mask[..., None], x, np.nan)
    lo = np.nanquantile(x, q[0], axis=0, method="nearest")
    hi = np.nanquantile(x, q[1], axis=0, method="nearest")
    fin = np.where(np.isfinite(x), x, np.nan)
    sd = np.nanstd(fin, axis=0, ddof=1)
    return lo, hi, sd


def bootstrap(
    key,
    curves: CurveSet,
    result: FitResult,
    *,
    kind: str = "residual",
    m: int = 1000,
    opts: FitOptions | None = None,
    n_starts: int = 1,
) -> BootstrapResult:
    """Bootstrap every curve of ``curves`` around its fit ``result`` with ``m`` resamples.

    Args:
        key: ``jax.random`` key.
        curves: the fitted curves (G).
        result: their :class:`~tokenscale_sim.fit.estimate.FitResult`.
        kind: one of :data:`KINDS`.
        m: number of resamples (>= 1000 recommended for 95 % intervals).
        opts: the :class:`FitOptions` of the fit (its ``loss`` must match ``result.loss_name``).
        n_starts: optimizer starts per resample (the best variable-projection grid points; the
            ``n_b`` limits are always fitted too).

    Returns:
        :class:`BootstrapResult` with (m, G, p) estimates and (G, p) intervals.
    """
    if kind not in KINDS:
        raise ValueError(f"bootstrap: kind must be one of {KINDS}, got {kind!r}")
    if m < 2:
        raise ValueError(f"bootstrap: m must be >= 2, got {m}")
    opts = opts or FitOptions(loss=result.loss_name, level=result.level)
    if opts.loss != result.loss_name:
        raise ValueError(
            f"bootstrap: opts.loss {opts.loss!r} differs from the fit's {result.loss_name!r}"
        )
    model = get_model(result.model)
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    star = resample(key, model, opts, data, jnp.asarray(result.u), kind, m)
    sol = solve_batch(model, replace(opts, n_starts=n_starts), star, _grid(model, data))
    est = np.asarray(jax.vmap(jax.vmap(model.natural))(sol.u))
    conv = np.asarray(sol.converged)
    lo, hi, sd = _quantiles(est, conv, opts.level)
    bnd = np.asarray(sol.boundary)
    frac = np.where(bnd[0] < 0, -1.0, np.mean(bnd > 0, axis=0))
    return BootstrapResult(kind, model.params, opts.level, est, conv, bnd, sd, lo, hi, frac)


def alpha_band(model: str | Model, estimates, samples, converged, n, level: float = 0.95):
    """Pointwise percentile band of alpha(n) from bootstrap samples.

    Args:
        model: ``"powerlaw"`` or ``"alpha_n"``.
        estimates: (G, p) point estimates; samples: (m, G, p) bootstrap estimates;
        converged: (m, G) which samples to use; n: (K,) token counts.

    Returns:
        :class:`AlphaBand` with (G, K) arrays.

    >>> import numpy as np
    >>> s = np.array([[[1.0, 1.0, 2.0]], [[1.0, 1.2, 2.0]], [[1.0, 0.8, 2.0]]])
    >>> b = alpha_band("alpha_n", s[0], s, np.ones((3, 1), bool), np.array([2.46]), level=0.5)
    >>> round(float(b.estimate[0, 0]), 3)
    -0.72
    """
    samples = jnp.asarray(samples)
    n = jnp.asarray(n, dtype=samples.dtype)
    est = np.asarray(alpha_curve(model, jnp.asarray(estimates), n))
    curves = np.asarray(alpha_curve(model, samples.reshape(-1, samples.shape[-1]), n))
    curves = curves.reshape(*samples.shape[:2], -1)
    curves = np.where(np.asarray(converged)[..., None], curves, np.nan)
    q = (0.5 - level / 2, 0.5 + level / 2)
    low = np.nanquantile(curves, q[0], axis=0)
    high = np.nanquantile(curves, q[1], axis=0)
    return AlphaBand(np.asarray(n), est, low, high, level)


# ----------------------------------------------------------------------------- profile likelihood


def profile_interval(
    curves: CurveSet, result: FitResult, param: str, opts: FitOptions | None = None, width=8.0
) -> ProfileInterval:
    """Profile-likelihood interval of ``param`` for each curve (threshold :func:`lr_threshold`).

    ``n_b`` uses the limits-aware grid of
    :func:`~tokenscale_sim.fit.estimate.nb_profile_intervals`; other parameters are profiled on
    ``u_hat +- width * se_u`` (41 points) in their unconstrained scale, and an end that reaches
    the grid edge is reported as open (+-inf, or 0 for positive parameters).
    """
    model = get_model(result.model)
    opts = opts or FitOptions(loss=result.loss_name, level=result.level)
    if param not in model.params:
        raise ValueError(f"profile_interval: param must be one of {model.params}, got {param!r}")
    j = model.params.index(param)
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    if j == model.nb_index:
        low, high, ol, oh = nb_profile_intervals(model, opts, data, result.u)
        return ProfileInterval(param, np.exp(low), np.exp(high), ol, oh, opts.level)
    pos = model.positive[j]
    u_hat = np.asarray(result.u)[:, j]
    se_u = np.asarray(result.se)[:, j] / (np.abs(result.estimates[:, j]) if pos else 1.0)
    se_u = np.where(np.isfinite(se_u) & (se_u > 0), se_u, 1.0)
    t = np.linspace(-width, width, 41)
    grids = u_hat[:, None] + se_u[:, None] * t[None, :]
    dev = np.asarray(jax.vmap(partial(profile_deviance, model, opts, j))(data, jnp.asarray(grids)))
    dev_hat = np.asarray(jax.vmap(partial(deviance, model, opts))(jnp.asarray(result.u), data))
    out = []
    counts = np.asarray(curves.arrays.weight).sum(axis=-1)
    for g in range(grids.shape[0]):
        thr = lr_threshold(opts.loss, opts.level, float(counts[g]), model.n_params)
        lo, hi, ol, oh = interval_from_profile(
            grids[g], dev[g], min(dev_hat[g], np.nanmin(dev[g])), opts.level, thr
        )
        if ol:
            lo = -np.inf
        if oh:
            hi = np.inf
        out.append((lo, hi, ol, oh))
    lo, hi, ol, oh = (np.array(x) for x in zip(*out, strict=True))
    if pos:
        lo, hi = np.exp(lo), np.exp(hi)
    return ProfileInterval(param, lo, hi, ol, oh, opts.level)


# ----------------------------------------------------------------------------- model comparison


def transition_test(
    key, curves: CurveSet, *, m: int = 1000, opts: FitOptions | None = None
) -> TransitionTest:
    """Is there a transition? Power law vs the alpha(n) law for every curve.

    The statistic is ``LR = dev_powerlaw - dev_alpha_n``; its null distribution comes from ``m``
    parametric-bootstrap curves drawn from each fitted power law (Gaussian residuals in the
    loss's space) and refitted with both models, all in two vmapped calls. ``p = (1 + #{LR* >=
    LR}) / (m + 1)``.
    """
    opts = opts or FitOptions()
    pl, an = get_model("powerlaw"), get_model("alpha_n")
    check_curves(curves, an, opts.loss)
    data = CurveArrays(*(jnp.asarray(x) for x in curves.arrays))
    fit_pl = fit_arrays(pl, data, opts)
    fit_an = fit_arrays(an, data, opts)
    lr = _lr(pl, an, opts, data, jnp.asarray(fit_pl.u), jnp.asarray(fit_an.u))
    star = resample(key, pl, opts, data, jnp.asarray(fit_pl.u), "parametric", m)
    sol_pl = solve_batch(pl, opts, star, _grid(pl, data))
    sol_an = solve_batch(an, opts, star, _grid(an, data))
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
    joint Gaussian likelihood with one residual variance per curve; ``boundary`` (G,) holds the
    codes of ``engine.BOUNDARY`` per curve: an ``n_b`` (shared or not) that went beyond the
    widened data range is reported as its limit 0 or inf (-1: model without ``n_b``).
    """

    model: str
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


def fit_tied(
    curves: CurveSet,
    model: str | Model,
    shared: tuple[str, ...] = ("beta",),
    opts: FitOptions | None = None,
) -> TiedResult:
    """Fit all curves jointly with the parameters ``shared`` tied (e.g. one beta or one n_b).

    Starts from the independent fits (the shared entries at their median), plus a few starts of a
    shared ``n_b`` across the data range; L-BFGS on the joint unconstrained vector, vmapped over
    starts.

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
    single = fit_arrays(model, data, opts)
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

    span = np.asarray(jax.vmap(_data_span)(data)).T  # (G, 2) ln n range per curve
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
    solve = jax.jit(jax.vmap(lambda j0: _lbfgs(fun, j0, joint_opts)))
    js, values, gnorms, ks = solve(jnp.asarray(np.stack(starts)))
    best = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    joint = js[best]
    u = unpack(joint)

    def res(jv):
        uu = unpack(jv)
        return jax.vmap(lambda ug, d: residuals(model, opts.loss, ug, d) * jnp.sqrt(d.weight))(
            uu, data
        )

    r = np.asarray(res(joint))
    jac = np.asarray(jax.jacrev(lambda jv: res(jv).ravel())(joint))
    counts = np.asarray(data.weight).sum(axis=1)
    rss = (r**2).sum(axis=1)
    per_point_var = np.repeat(rss / np.maximum(counts - p, 1.0), r.shape[1])
    if opts.loss == "weighted":
        per_point_var = np.ones_like(per_point_var)
    jw = jac / np.sqrt(per_point_var)[:, None]
    with np.errstate(all="ignore"):
        cov_joint = np.linalg.pinv(jw.T @ jw)
    jnat = np.asarray(jax.jacfwd(lambda jv: jax.vmap(model.natural)(unpack(jv)).ravel())(joint))
    var = np.diag(jnat @ cov_joint @ jnat.T).reshape(g, p)
    se = np.sqrt(np.where(np.isfinite(var) & (var >= 0), var, np.inf))
    boundary = np.full(g, -1)
    est = np.array(jax.vmap(model.natural)(u))
    if model.nb_index is not None:
        j = model.nb_index
        ln_nb = np.asarray(u)[:, j]
        boundary = np.where(
            ln_nb <= np.asarray(nb_lo), 1, np.where(ln_nb >= np.asarray(nb_hi), 2, 0)
        )
        est[:, j] = np.where(boundary == 1, 0.0, np.where(boundary == 2, np.inf, est[:, j]))
        se[:, j] = np.where(boundary > 0, np.inf, se[:, j])
    k_par = len(joint) + (0 if opts.loss == "weighted" else g)
    m_tot = counts.sum()
    m2ll = float(np.sum(counts * (np.log(2 * np.pi * rss / counts) + 1)))
    return TiedResult(
        model.name,
        model.params,
        tuple(shared),
        est,
        se,
        float(values[best]),
        m2ll + 2 * k_par,
        m2ll + k_par * np.log(m_tot),
        bool(np.isfinite(values[best]) and gnorms[best] <= max(1e-6, 1e3 * opts.gtol)),
        int(ks[best]),
        boundary,
    )
