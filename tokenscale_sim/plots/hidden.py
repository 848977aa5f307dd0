"""Figures of measurements on real hidden states (:mod:`tokenscale_sim.hidden.measure`).

Every function draws a :class:`~tokenscale_sim.hidden.measure.Measurement` (or a dict of them,
one per layer) and computes nothing: ``fn(result, ax=None) -> Figure``. Missing values (psi_AA(1),
psi_AB(1), Delta(1), n_b(1)) are NaN and simply not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tokenscale_sim.plots.style import axes, figure, log_axes, shade_regimes, slope_guide

if TYPE_CHECKING:
    from tokenscale_sim.hidden.measure import Measurement

PSI_LABELS = {
    "psi_eq": "psi_eq (same position, A vs B)",
    "psi_aabb": "psi_AABB (within branch)",
    "psi_ab": "psi_AB (across branches)",
    "delta": "Delta = psi_AABB - psi_AB",
}


def _band(ax: Axes, n, mean, half, *, label: str, band_label: str | None = None, **kw) -> None:
    """A line with a shaded +-``half`` band in the line's colour."""
    line = ax.plot(n, mean, label=label, **kw)
    ax.fill_between(
        n, mean - half, mean + half, color=line[0].get_color(), alpha=0.2, lw=0, label=band_label
    )


def _finish(ax: Axes, ylabel: str, title: str) -> None:
    ax.set_xlabel("tokens n")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def psi_curves(result, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """psi_eq(n), psi_AABB(n), psi_AB(n) and Delta(n), each with a +-1 standard-error band."""
    fig, ax = axes(ax)
    n = np.asarray(result.n)
    for name, label in PSI_LABELS.items():
        curve = result.curves[name]
        _band(ax, n, curve.mean, curve.se, label=label, lw=1.5, ls="--" if name == "delta" else "-")
    log_axes(ax, "x")
    ax.axhline(0.0, color="0.5", lw=0.8)
    _finish(ax, "mean cosine", title or f"psi(n) over {result.pairs} pairs (+-1 s.e.)")
    return fig


def divergence_fit(result, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Mean D(n) (+-1 std across pairs), the bound sqrt(2 Upsilon), the fit lambda sqrt(Upsilon)."""
    fig, ax = axes(ax, loglog=True)
    n = np.asarray(result.n)
    shade_regimes(ax, result.transition.n_b, float(n[0]), float(n[-1]))
    d = result.curves["divergence"]
    _band(ax, n, d.mean, d.std, label="mean D(n)", band_label="+-1 std across pairs", lw=2)
    ax.plot(n, result.bound, lw=1.2, ls="--", color="k", label="bound sqrt(2 Upsilon)")
    if result.fit is not None:
        lam = result.fit.estimates[0, 0]
        lo, hi = result.fit.ci_low[0, 0], result.fit.ci_high[0, 0]
        if result.lambda_pairs is not None:  # the pair bootstrap is the honest interval
            lo, hi = result.lambda_pairs.low, result.lambda_pairs.high
        ax.plot(
            n,
            result.law,
            lw=1.2,
            ls=":",
            color="C3",
            label=f"lambda sqrt(Upsilon), lambda = {lam:.4f} [{lo:.4f}, {hi:.4f}]",
        )
    slope_guide(ax, n, result.bound, 0.5, label="slope 1/2")
    _finish(ax, "branch divergence D(n)", title or f"D(n) over {result.pairs} pairs")
    return fig


def transition_curve(result, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """n_b(n) = (1 - psi_eq(n))/Delta(n) - 1 against the diagonal n; the fixed point marked."""
    fig, ax = axes(ax, loglog=True)
    n = np.asarray(result.n)
    positive = np.where(result.n_b_curve > 0, result.n_b_curve, np.nan)
    ax.plot(n, positive, lw=1.5, label="n_b(n)")
    ax.plot(n, n, lw=1, ls="--", color="0.5", label="n_b = n")
    tp = result.transition
    if tp.status == "crossing":
        ax.plot([tp.n_b], [tp.n_b], "o", color="C3", label=f"fixed point n_b = {tp.n_b:.3g}")
    _finish(
        ax, "transition point n_b(n)", title or f"Transition point ({tp.status.replace('_', ' ')})"
    )
    return fig


def overview(result, *, title: str | None = None) -> Figure:
    """Three panels: psi curves, divergence with bound and fit, n_b(n)."""
    fig = figure((15.0, 4.0))
    panels = fig.subplots(1, 3)
    psi_curves(result, panels[0])
    divergence_fit(result, panels[1])
    transition_curve(result, panels[2])
    if title:
        fig.suptitle(title)
    return fig


def layer_summary(
    results: Mapping[int, Measurement] | Mapping[int | None, Measurement],
    ax: Axes | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Per layer: lambda with its interval and mean D / bound at the largest n.

    Args:
        results: {layer: Measurement}, from
            :func:`~tokenscale_sim.hidden.measure.measure_layers`.
    """
    fig, ax = axes(ax)
    layers = np.array(list(results))
    items = list(results.values())
    ratio = np.array([m.ratio[-1] for m in items])
    ax.plot(layers, ratio, "s-", label="mean D / sqrt(2 Upsilon) at n = N")
    fits = [m.fit for m in items if m.fit is not None]
    if len(fits) == len(items):
        lam = np.array([f.estimates[0, 0] for f in fits])
        boots = [m.lambda_pairs for m in items if m.lambda_pairs is not None]
        if len(boots) == len(items):
            low, high = np.array([b.low for b in boots]), np.array([b.high for b in boots])
        else:
            low = np.array([f.ci_low[0, 0] for f in fits])
            high = np.array([f.ci_high[0, 0] for f in fits])
        ax.errorbar(
            layers,
            lam / np.sqrt(2.0),
            yerr=np.stack([lam - low, high - lam]) / np.sqrt(2.0),
            fmt="o-",
            capsize=3,
            label="lambda / sqrt(2) (fit, interval)",
        )
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="Jensen bound")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("fraction of the bound")
    ax.set_title(title or "Mean D(n) against its bound, per layer")
    ax.legend(fontsize=7)
    return fig
