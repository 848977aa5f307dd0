"""Figures of a Monte Carlo study (:class:`tokenscale_sim.montecarlo.simulation.SimulationResult`).

Draws what the result holds; computes nothing beyond ``mean -/+ k * std`` bands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tokenscale_sim.plots.style import axes, figure, log_axes, shade_regimes

__all__ = ["plot_divergence", "plot_psi", "plot_simulation"]

_PSI = (
    ("psi_eq", "psi_eq", "C0"),
    ("psi_aa", "psi_AA", "C1"),
    ("psi_bb", "psi_BB", "C2"),
    ("psi_ab", "psi_AB", "C3"),
)


def plot_divergence(
    result: Any,
    ax: Axes | None = None,
    *,
    fit: np.ndarray | None = None,
    fit_label: str = "fit",
    n_b: float | None = None,
) -> Figure:
    """Mean D(n) with +-1 and +-2 standard-deviation bands, the exact Gaussian E[D] and the
    bound sqrt(2 Upsilon), on log-log axes.

    Args:
        result: a ``SimulationResult``.
        ax: axes to draw into (default: a new figure).
        fit: optional fitted curve over ``result.n`` (e.g. ``lambda * sqrt(Upsilon)``).
        fit_label: legend label of ``fit``.
        n_b: optional transition point, marked with a vertical line.

    Returns:
        The figure.
    """
    fig, ax = axes(ax, loglog=True)
    n = np.asarray(result.n, dtype=float)
    mom = result.divergence
    mean, std = np.asarray(mom.mean), np.asarray(mom.std)
    for k, alpha in ((2, 0.15), (1, 0.3)):
        low = np.clip(mean - k * std, mean * 1e-3, None)  # keep the band on log axes
        ax.fill_between(n, low, mean + k * std, color="C0", alpha=alpha, lw=0, label=f"±{k} sd")
    ax.plot(n, mean, color="C0", lw=1.5, label=f"mean D(n), m = {result.m}")
    ax.plot(n, result.exact.gaussian_mean, color="k", ls="--", lw=1, label="exact Gaussian E[D]")
    ax.plot(n, result.exact.bound, color="C3", ls=":", lw=1.2, label="bound sqrt(2 Υ)")
    if fit is not None:
        ax.plot(n, np.asarray(fit), color="C2", lw=1.2, label=fit_label)
    if n_b is not None and np.isfinite(n_b) and n[0] <= n_b <= n[-1]:
        ax.axvline(n_b, color="0.3", lw=1, ls="--", label=f"n_b = {n_b:.3g}")
    ax.set_xlabel("n (tokens per branch)")
    ax.set_ylabel("D(n)")
    ax.legend(fontsize="small")
    return fig


def plot_psi(result: Any, ax: Axes | None = None) -> Figure:
    """Sampled psi(n) curves (mean with ±2 SE band) against their exact expectations.

    The x axis is logarithmic, psi linear (cosines can be negative). Pairwise psi's start at n=2.
    """
    fig, ax = axes(ax)
    log_axes(ax, "x")
    n = np.asarray(result.n, dtype=float)
    for field, label, color in _PSI:
        mom = getattr(result, field)
        if mom is None:
            continue
        mean, se = np.asarray(mom.mean), np.asarray(mom.se)
        ax.fill_between(n, mean - 2 * se, mean + 2 * se, color=color, alpha=0.25, lw=0)
        ax.plot(n, mean, color=color, lw=1.5, label=f"{label} sampled")
        exact = getattr(result.exact, field)
        if exact is not None:
            ax.plot(n, exact, color=color, ls="--", lw=1, label=f"{label} exact")
    ax.set_xlabel("n (tokens per branch)")
    ax.set_ylabel("psi(n) (mean cosine)")
    ax.legend(fontsize="small", ncol=2)
    return fig


def plot_simulation(
    result: Any,
    *,
    fit: np.ndarray | None = None,
    fit_label: str = "fit",
    n_b: float | None = None,
    regimes: bool = False,
    title: str | None = None,
) -> Figure:
    """Two panels: :func:`plot_divergence` and (when sampled) :func:`plot_psi`.

    Args:
        result: a ``SimulationResult``.
        fit, fit_label, n_b: as for :func:`plot_divergence`.
        regimes: shade the sublinear / transition / linear regimes around ``n_b``.
        title: prefix of the panel titles (e.g. the structure's name).
    """
    panels = 1 if result.psi_eq is None else 2
    fig = figure((5.5 * panels, 4.0))
    axs = fig.subplots(1, panels, squeeze=False)[0]
    shaded = False
    if regimes and n_b is not None:  # shade_regimes marks n_b itself
        shade_regimes(axs[0], n_b, float(result.n[0]), float(result.n[-1]))
        shaded = True
    plot_divergence(result, axs[0], fit=fit, fit_label=fit_label, n_b=None if shaded else n_b)
    if panels == 2:
        plot_psi(result, axs[1])
    if title:
        axs[0].set_title(f"{title}: D(n)")
        if panels == 2:
            axs[1].set_title(f"{title}: ψ(n), sampled vs exact")
    return fig
