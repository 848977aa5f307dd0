r"""Which law? Every law fitted to every curve and compared by AICc, BIC, cross-validation and
extrapolation, with bootstrap selection shares and the shape test.

For each law, **one** vmapped :func:`~tokenscale_sim.fit.engine.solver.solve_batch` call fits every
row of one (rows, M) array built from the G curves (M points each):

- G rows: the curves themselves (AICc, BIC, Akaike weights);
- G rows: each curve without its ``holdout_last`` largest distinct n, all replicates at those n
  included (extrapolation: the held-out points are predicted from the fit on the smaller n, the
  standard evaluation of scaling laws; ``holdout_last = 0`` turns it off);
- G x M rows: each curve without one distinct n and all its replicates (leave-one-out
  cross-validation; rows for slots past the curve's distinct n are fitted but unused);
- B x G rows: the quadratic-smoother resamples of the shape test
  (:func:`tokenscale_sim.fit.selection.curvature.quadratic_resample`), refitted by every law: the
  share of resamples in which each law wins AICc (bootstrap model-selection frequencies, Buckland et
  al. 1997). The resampling world is the law-neutral quadratic in ln n, not one of the laws
  compared.

Points are removed by weight 0, exactly as :class:`~tokenscale_sim.fit.data.curves.CurveArrays`
pads. Every law is fitted by least squares of ln S (the paper's convention) and scored by the
Gaussian likelihood of ln S, so all laws are compared on one scale:

    -2 ln L = m ln(RSS/m) + m (ln 2 pi + 1),   k = p + 1 (the p law parameters and the noise
    variance), AIC = -2 ln L + 2k,  AICc = AIC + 2k(k+1)/(m-k-1),  BIC = -2 ln L + k ln m.

``p`` is the law's full parameter count even when a fit ends on a limit (``n_b`` 0 or inf):
the law searched over it. AICc is undefined (inf, status ``aicc_undefined``) when ``m <= k + 1``.
Akaike weights are ``exp(-Delta_i/2) / sum_j exp(-Delta_j/2)`` over the laws, Delta from AICc.

Mixed collections: a law is compared on a curve only when each fit it needs (full, hold-out,
every leave-one-out row) keeps more points than the law has parameters
(:func:`~tokenscale_sim.fit.data.curves.enough_points`); otherwise its status is ``too few points``
and its numbers are NaN. The run fails only when no law can be compared on any curve.

Pooled summaries treat curves as independent: AICc and BIC add up over the curves on which every
law has a finite AICc (``n_common`` of them; each curve with its own parameters and noise
variance) and the pooled weights come from those sums. Errors pool as medians over the curves a
law was compared on, with the count of non-finite ones beside them: one curve that blows up
cannot turn a mean into inf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from tokenscale_sim.fit.data.curves import (
    CurveArrays,
    CurveSet,
    check_curves,
    load_paper_scores,
)
from tokenscale_sim.fit.engine.options import FitOptions, check_options
from tokenscale_sim.fit.engine.precision import in_fit_precision
from tokenscale_sim.fit.inference.likelihood import akaike_weights, corrected_aic
from tokenscale_sim.fit.laws.models import MODELS, Model, get_model
from tokenscale_sim.fit.selection.curvature import CurvatureTest, curvature_arrays
from tokenscale_sim.fit.selection.packing import (
    announce,
    comparable_pairs,
    fit_packed,
    layout_rows,
    plan,
)
from tokenscale_sim.runtime.validation import as_key, check_count, check_real

DEFAULT_LAWS = ("powerlaw", "alpha_n", "broken", "saturating", "loglinear", "logistic")
"""Laws compared by default: those of this list that are registered in ``MODELS``."""

CRITERIA = ("aicc", "bic", "loo", "extrapolation")
"""The criteria a winner is picked by (lowest AICc, BIC, LOO RMSE, extrapolation RMSE)."""


def available_laws(names: Sequence[str] = DEFAULT_LAWS) -> tuple[str, ...]:
    """The names of ``names`` that are registered laws.

    >>> available_laws(("powerlaw", "no_such_law"))
    ('powerlaw',)
    """
    return tuple(x for x in names if x in MODELS)


class Winners(NamedTuple):
    """One entry per criterion of :data:`CRITERIA`: per curve the index of the winning law (-1:
    no finite value), or pooled the number of curves each law wins."""

    aicc: Any
    bic: Any
    loo: Any
    extrapolation: Any


class Pooled(NamedTuple):
    """Per-law (L,) summaries over curves.

    Attributes:
        aicc, bic: sums over the ``n_common`` curves where every law has a finite AICc.
        weight: Akaike weights of the summed AICc. wins: :class:`Winners` of counts.
        loo_rmse, extrap_rmse: medians over the curves each law was compared on of the RMSE of
        ln S (inf counts as large, NaN where none). extrap_rel: median relative absolute error
        of the extrapolated score. boot_share: mean AICc selection share over the curves with a
        shape test (NaN: no bootstrap). n_compared: curves each law was compared on;
        n_nonfinite: of those, curves with a non-finite RSS, LOO or extrapolation error.
    """

    aicc: np.ndarray
    bic: np.ndarray
    weight: np.ndarray
    wins: Winners
    loo_rmse: np.ndarray
    extrap_rmse: np.ndarray
    extrap_rel: np.ndarray
    boot_share: np.ndarray
    n_common: int
    n_compared: np.ndarray
    n_nonfinite: np.ndarray


class Comparison(NamedTuple):
    """Every law on every curve (NumPy; (G, L) arrays: curves x laws).

    Attributes:
        laws: (L,) law names; params: their parameter names; estimates: per law (G, p_l)
            natural estimates of the full fit.
        keys, group, source: the curves' keys, grouping columns and origin.
        holdout_last: largest distinct n held out per curve (0: no extrapolation); n_cut: (G,)
            largest n of the hold-out fit.
        bootstrap: resamples B; n_points: (G,).
        rss: residual sum of squares of ln S. aicc, bic, weight (Akaike weights by AICc).
        loo_rmse: leave-one-out RMSE of ln S. extrap_rmse: RMSE of ln S on the held-out points;
            extrap_abs: their mean absolute error in score units; extrap_rel: relative to S.
        boot_share: share of resamples in which the law wins AICc (NaN without bootstrap).
        converged: every fit of the curve and law converged (full, hold-out, LOO).
        status: ``ok``, ``not_converged``, ``runaway`` (not converged: a fit ran away to a limit
            the law has at infinity and was stopped, ``FitOptions.runaway``),
            ``aicc_undefined`` (m <= k + 1), ``non_finite``
            (a prediction failed, e.g. a law going negative) or ``too few points`` (the law was
            not fitted: NaN numbers); non-finite numbers say why here.
        winner: :class:`Winners` (G,); pooled: :class:`Pooled`; shape: the
            :class:`~tokenscale_sim.fit.selection.curvature.CurvatureTest` on the same resamples.
    """

    laws: tuple[str, ...]
    params: tuple[tuple[str, ...], ...]
    estimates: tuple[np.ndarray, ...]
    keys: tuple[tuple[str, ...], ...]
    group: tuple[str, ...]
    source: str
    holdout_last: int
    bootstrap: int
    n_points: np.ndarray
    n_cut: np.ndarray
    rss: np.ndarray
    aicc: np.ndarray
    bic: np.ndarray
    weight: np.ndarray
    loo_rmse: np.ndarray
    extrap_rmse: np.ndarray
    extrap_abs: np.ndarray
    extrap_rel: np.ndarray
    boot_share: np.ndarray
    converged: np.ndarray
    status: np.ndarray
    winner: Winners
    pooled: Pooled
    shape: CurvatureTest


def information_criteria(rss, m, p):
    """``(AICc, BIC)`` of least squares of ln S with ``p`` law parameters (module docstring).

    ``k = p + 1`` counts the noise variance; AICc is inf where ``m <= k + 1``; a non-finite or
    zero RSS gives non-finite criteria.

    >>> aicc, bic = information_criteria(0.02, 10, 2)
    >>> round(float(aicc), 4), round(float(bic), 4)
    (-23.7673, -26.8596)
    """
    rss = np.asarray(rss, float)
    m = np.asarray(m, float)
    k = np.asarray(p, float) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        m2ll = m * np.log(rss / m) + m * (np.log(2 * np.pi) + 1)
        aicc = corrected_aic(m2ll + 2 * k, k, m)
        bic = m2ll + k * np.log(m)
    return aicc, bic


def _argmin(x, axis: int = -1):
    """Index of the smallest finite value along ``axis``, -1 where none is finite."""
    x = np.asarray(x, float)
    finite = np.isfinite(x)
    idx = np.argmin(np.where(finite, x, np.inf), axis=axis)
    return np.where(np.any(finite, axis=axis), idx, -1)


def _validate(curves: CurveSet, models: tuple[Model, ...], holdout_last: int, bootstrap: int):
    if not isinstance(curves, CurveSet):
        raise TypeError(f"compare_laws: curves must be a CurveSet, got {type(curves).__name__}")
    if not models:
        raise ValueError("compare_laws: laws must name at least one law")
    names = [x.name for x in models]
    if len(set(names)) != len(names):
        raise ValueError(f"compare_laws: laws must be distinct, got {names}")
    if holdout_last < 0:
        raise ValueError(f"compare_laws: holdout_last must be >= 0, got {holdout_last}")
    if bootstrap < 0 or bootstrap == 1:
        raise ValueError(f"compare_laws: bootstrap must be 0 or >= 2 resamples, got {bootstrap}")
    for model in models:
        check_curves(curves, model, "log", counts=False)


def _pool(x, stat=np.median) -> np.ndarray:
    """Per column of ``x`` (G, L) ``stat`` of its non-NaN entries (inf counts as large); NaN for
    a column without any."""
    x = np.asarray(x, float)
    return np.array([stat(c[~np.isnan(c)]) if (~np.isnan(c)).any() else np.nan for c in x.T])


def skipped_summary(comparison: Comparison) -> str:
    """One line: per law, the curves (and their point counts) skipped with status ``too few
    points``, and the hold-out setting ("" when nothing was skipped)."""
    c = comparison
    skipped = c.status == "too few points"
    if not skipped.any():
        return ""
    parts = []
    for j, law in enumerate(c.laws):
        g = np.flatnonzero(skipped[:, j])
        if g.size:
            sizes = sorted({int(c.n_points[i]) for i in g})
            parts.append(
                f"{law} ({len(c.params[j])} parameters) on {g.size} curve(s) of "
                f"{'/'.join(map(str, sizes))} points"
            )
    hold = f"holding out the {c.holdout_last} largest n" if c.holdout_last else "no hold-out"
    return (
        f"skipped (too few points: each fit must keep more points than the law has parameters; "
        f"{hold}, leave-one-out): " + "; ".join(parts)
    )


@in_fit_precision
def compare_laws(
    key,
    curves: CurveSet,
    laws: Sequence[str | Model] | None = None,
    *,
    holdout_last: int = 2,
    bootstrap: int = 1000,
    opts: FitOptions | None = None,
    level: float = 0.95,
    direction: str = "theory",
    progress: bool = False,
) -> Comparison:
    """Fit every law to every curve and compare them (see the module docstring).

    Args:
        key: ``jax.random`` key or int seed (the resamples of the shape test and of the
            selection shares).
        curves: G curves (scores > 0; a law with too few points on a curve is skipped there with
            the status ``too few points``; replicates at one n are separate points).
        laws: law names or :class:`~tokenscale_sim.fit.laws.models.Model` objects (default:
            :func:`available_laws`).
        holdout_last: largest distinct n held out per curve for extrapolation (0: none).
        bootstrap: resamples B (0: no selection shares; the shape test then uses t p-values).
        opts: :class:`FitOptions` of every fit (loss must be ``"log"``); the run-away rule is
            always on (``runaway=True``: a law crawling to a limit at infinity is stopped).
        level, direction: of the shape test
        (:func:`tokenscale_sim.fit.selection.curvature.curvature_test`). progress: show a progress
        bar over the laws (stderr).

    Returns:
        :class:`Comparison` with (G, L) arrays.

    Raises:
        ValueError: bad settings or data, or no law can be compared on any curve.

    >>> import jax, numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> n = np.geomspace(1, 512, 10)
    >>> y = 2 * n**0.3 * np.exp(0.01 * np.sin(5 * np.log(n)))
    >>> c = compare_laws(jax.random.key(0), curves_from_arrays(n, y), ["powerlaw", "alpha_n"],
    ...                  bootstrap=0)
    >>> c.laws[int(c.winner.aicc[0])], bool(c.extrap_rmse[0, 0] < 0.05)
    ('powerlaw', True)
    """
    key = as_key("compare_laws", key)
    laws = (laws,) if isinstance(laws, str | Model) else laws  # one law, not its letters
    bootstrap = check_count("compare_laws", "bootstrap", bootstrap, 0)  # 1: refused below
    holdout_last = check_count("compare_laws", "holdout_last", holdout_last, 0)
    level = check_real("compare_laws", "level", level, 0.0, 1.0, open_lo=True, open_hi=True)
    models = tuple(get_model(x) for x in (laws if laws is not None else available_laws()))
    opts = replace(check_options("compare_laws", opts), runaway=True)
    if opts.loss != "log":
        raise ValueError(
            f"compare_laws: opts.loss must be 'log' (ln S compared), got {opts.loss!r}"
        )
    _validate(curves, models, holdout_last, bootstrap)
    a = curves.arrays
    g, m = np.shape(a.y)
    base, held, slot = layout_rows(a, holdout_last)
    comparable = comparable_pairs(slot, held, models)
    if not comparable.any():
        counts = sorted({int(x) for x in (slot >= 0).sum(axis=1)})
        raise ValueError(
            f"compare_laws: no curve can be compared: curves of {counts} points, laws with "
            f"{sorted({x.n_params for x in models})} parameters, holding out {holdout_last}; "
            "each fit must keep more points than the law has parameters (lower --holdout-last)"
        )
    shape, star = curvature_arrays(key, a, m=bootstrap, level=level, direction=direction)
    rows = CurveArrays(*(np.asarray(x, float) for x in base))
    if star is not None:
        rows = CurveArrays(
            *(np.concatenate([r, np.reshape(s, (-1, m))]) for r, s in zip(rows, star, strict=True))
        )
    valid = np.asarray(a.weight) > 0
    count = valid.sum(axis=1)
    per_held = np.maximum(held.sum(axis=1), 1)
    loo_used = np.arange(m)[None, :] < (slot.max(axis=1) + 1)[:, None]  # (G, M) slots fitted
    log_y = np.log(np.where(valid, a.y, 1.0))
    ly_star = None if star is None else np.log(np.asarray(star.y))
    n_valid = np.asarray(a.n)[valid]
    sources, total, line = plan(
        tuple(x.name for x in models), comparable, slot.max(axis=1) + 1,
        np.isfinite(shape.curvature), m, holdout_last, bootstrap,
    )  # fmt: skip
    announce(line, progress)
    cols = {k: [] for k in ("rss", "loo", "ext", "abs", "rel", "conv", "away", "est", "boot_rss")}
    bar = tqdm(total=total, desc="which law?", unit="fit", disable=not progress, smoothing=0.1)
    for j, model in enumerate(models):
        bar.set_description(f"which law? {model.name} ({j + 1}/{len(models)})")
        grid = model.grid(float(n_valid.min()), float(n_valid.max()))
        grid = jax.device_put(np.asarray(grid, rows.n.dtype))
        fits = fit_packed(model, opts, rows, sources[j], grid, bar.update)
        lp, conv = fits.log_predict, fits.converged
        full, hold = lp[:g], lp[g : 2 * g]
        loo = lp[2 * g : 2 * g + g * m].reshape(g, m, m)
        r2 = np.where(valid, (log_y - full) ** 2, 0.0)
        cols["rss"].append(np.where(np.isnan(r2).any(axis=1), np.inf, r2.sum(axis=1)))
        # point i is predicted by the row that left out its distinct n (slot[i])
        loo_at = np.take_along_axis(loo, np.maximum(slot, 0)[:, None, :], axis=1)[:, 0, :]
        e_loo = np.where(valid, log_y - loo_at, 0.0)
        cols["loo"].append(np.sqrt(np.sum(e_loo**2, axis=1) / count))
        e_ext = np.where(held, log_y - hold, 0.0)
        cols["ext"].append(np.sqrt(np.sum(e_ext**2, axis=1) / per_held))
        with np.errstate(over="ignore"):  # a law that explodes out of range: inf error
            diff = np.where(held, np.abs(np.exp(hold) - a.y), 0.0)
        cols["abs"].append(np.sum(diff, axis=1) / per_held)
        cols["rel"].append(np.sum(np.where(held, diff / a.y, 0.0), axis=1) / per_held)
        loo_conv = np.where(loo_used, conv[2 * g : 2 * g + g * m].reshape(g, m), True).all(axis=1)
        cols["conv"].append(conv[:g] & conv[g : 2 * g] & loo_conv)
        away = fits.runaway
        loo_away = np.where(loo_used, away[2 * g : 2 * g + g * m].reshape(g, m), False)
        cols["away"].append(away[:g] | away[g : 2 * g] | loo_away.any(axis=1))
        cols["est"].append(fits.natural[:g])  # NaN where the law was not fitted
        if star is not None:
            boot = lp[2 * g + g * m :].reshape(bootstrap, g, m)
            rb = np.where(valid, (ly_star - boot) ** 2, 0.0)
            cols["boot_rss"].append(np.where(np.isnan(rb).any(axis=2), np.inf, rb.sum(axis=2)))
    bar.close()
    stack = {k: np.stack(v, axis=-1) for k, v in cols.items() if k != "est" and v}
    n_par = np.array([x.n_params for x in models])
    aicc, bic = information_criteria(stack["rss"], count[:, None], n_par[None, :])
    for k in ("loo", "ext", "abs", "rel"):
        stack[k] = np.where(np.isfinite(stack[k]), stack[k], np.inf)
        if not holdout_last and k != "loo":
            stack[k] = np.full_like(stack[k], np.nan)
    share = np.full(aicc.shape, np.nan)
    if star is not None:
        boot_aicc, _ = information_criteria(stack["boot_rss"], count[None, :, None], n_par)
        boot_aicc = np.where(comparable[None], boot_aicc, np.nan)
        win = _argmin(boot_aicc)
        share = np.stack([np.mean(win == j, axis=0) for j in range(len(models))], axis=-1)
        share = np.where(comparable & np.isfinite(shape.curvature)[:, None], share, np.nan)
    status = np.where(stack["conv"], "ok", np.where(stack["away"], "runaway", "not_converged"))
    status = np.where(count[:, None] <= n_par[None, :] + 2, "aicc_undefined", status)
    bad = ~np.isfinite(stack["rss"]) | ~np.isfinite(stack["loo"])
    bad |= ~np.isfinite(stack["ext"]) & (holdout_last > 0)
    status = np.where(comparable, np.where(bad, "non_finite", status), "too few points")
    for k in ("rss", "loo", "ext", "abs", "rel"):
        stack[k] = np.where(comparable, stack[k], np.nan)
    aicc, bic = (np.where(comparable, x, np.nan) for x in (aicc, bic))
    stack["conv"] &= comparable
    weight = akaike_weights(aicc)
    winner = Winners(_argmin(aicc), _argmin(bic), _argmin(stack["loo"]), _argmin(stack["ext"]))
    common = np.all(np.isfinite(aicc), axis=1)
    pooled_aicc, pooled_bic = aicc[common].sum(axis=0), bic[common].sum(axis=0)
    if not common.any():
        pooled_aicc = pooled_bic = np.full(len(models), np.nan)
    nonfinite = comparable & bad
    pooled = Pooled(
        pooled_aicc,
        pooled_bic,
        akaike_weights(pooled_aicc),
        Winners(*(np.array([np.sum(w == j) for j in range(len(models))]) for w in winner)),
        _pool(stack["loo"]),
        _pool(stack["ext"]),
        _pool(stack["rel"]),
        _pool(share, np.mean),
        int(common.sum()),
        comparable.sum(axis=0),
        nonfinite.sum(axis=0),
    )
    n_cut = np.array([np.asarray(a.n)[i][valid[i] & ~held[i]].max() for i in range(g)])
    return Comparison(
        tuple(x.name for x in models), tuple(x.params for x in models), tuple(cols["est"]),
        tuple(curves.keys), tuple(curves.group), curves.source, holdout_last, bootstrap, count,
        n_cut, stack["rss"], aicc, bic, weight, stack["loo"], stack["ext"], stack["abs"],
        stack["rel"], share, stack["conv"], status, winner, pooled, shape,
    )  # fmt: skip


def describe(comparison: Comparison) -> str:
    """One paragraph of findings written from the numbers of ``comparison`` (for reports).

    Names the AICc winners and their counts, the law with the lowest median extrapolation
    error (against the power law's when that is compared), and the shape test's count.
    """
    c = comparison
    g = len(c.keys)
    counts = ", ".join(
        f"{law} on {int(k)}" for law, k in zip(c.laws, c.pooled.wins.aicc, strict=True) if k
    )
    best = int(_argmin(c.pooled.extrap_rmse))
    text = [f"AICc picks {counts or 'no law'} of {g} curves"]
    top = int(_argmin(c.pooled.aicc))
    if top >= 0:
        text.append(
            f" (pooled Akaike weight of {c.laws[top]}: {c.pooled.weight[top]:.2f} over the "
            f"{c.pooled.n_common} curves every law was compared on)"
        )
    text.append(".")
    if best >= 0:
        med = c.pooled.extrap_rmse
        text.append(
            f" Predicting the {c.holdout_last} largest n from the smaller ones, {c.laws[best]} "
            f"has the lowest median RMSE of ln S ({med[best]:.3g}"
        )
        if "powerlaw" in c.laws and c.laws[best] != "powerlaw":
            text.append(f" against {med[c.laws.index('powerlaw')]:.3g} for the power law")
        wins = int(c.pooled.wins.extrapolation[best])
        text.append(f") and extrapolates best on {wins} of {g} curves.")
    s = c.shape
    where = "convex for rising scores" if s.direction == "theory" else "convex"
    text.append(
        f" The theory's curvature sign ({where}) holds on {s.n_holds} of {s.n_curves} curves "
        f"(sign test p = {s.sign_test_p:.3g}; mean signed curvature {s.pooled:.3g}"
    )
    if np.isfinite(s.pooled_low):
        text.append(f", {round(100 * s.level)}% interval [{s.pooled_low:.3g}, {s.pooled_high:.3g}]")
    text.append(").")
    return "".join(text)


def paper_comparison(
    key,
    laws: Sequence[str | Model] | None = None,
    *,
    bootstrap: int = 200,
    holdout_last: int = 2,
    opts: FitOptions | None = None,
    progress: bool = False,
) -> Comparison:
    """The demo report's "which law?" section: :func:`compare_laws` on the paper's 54 curves
    (every model variant, benchmark and metric) with the registered laws by default."""
    key = as_key("paper_comparison", key)
    return compare_laws(
        key, load_paper_scores(), laws, holdout_last=holdout_last, bootstrap=bootstrap, opts=opts,
        progress=progress,
    )  # fmt: skip
