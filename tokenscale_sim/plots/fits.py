"""Figures of fitted scaling laws: data with fitted laws and their bands, alpha(n) bands.

Everything here draws what it is given (computed by :mod:`tokenscale_sim.fit`) and computes
nothing: the fitted curves come from :func:`tokenscale_sim.fit.inference.estimate.predict`, the
bands of a law from :func:`tokenscale_sim.fit.inference.uncertainty.prediction_band` and those of
alpha(n) from :func:`tokenscale_sim.fit.inference.uncertainty.alpha_band`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tokenscale_sim.plots.style import axes, figure, log_axes

FIT_STYLES = (("C0", "-"), ("C3", "--"), ("C2", ":"))


def fit_panel(
    n,
    y,
    n_grid,
    fits: Mapping[str, np.ndarray],
    *,
    bands: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One curve: data points and fitted curves on log-log axes.

    Args:
        n, y: (m,) the data. n_grid: (K,) where the fits were evaluated.
        fits: ``{label: (K,) fitted values}``, e.g. power law and alpha(n).
        bands: ``{label: ((K,) low, (K,) high)}``, shaded in the colour of that fit within the
            range the data and fits span (non-finite ends, e.g. a law that is not identified,
            are left out).
    """
    fig, ax = axes(ax, loglog=True)
    ax.plot(np.asarray(n), np.asarray(y), "o", ms=3.5, color="k", label="data", zorder=3)
    grid = np.asarray(n_grid)
    styled = list(zip(fits.items(), FIT_STYLES, strict=False))
    for (label, values), (color, ls) in styled:
        ax.plot(grid, np.asarray(values), lw=1.3, label=label, color=color, ls=ls)
    limits = ax.get_ylim()  # data and fits set the scale; a wide or unbounded band is cut off
    for (label, _), (color, _) in styled:
        if bands and label in bands:
            low, high = (np.asarray(b, float) for b in bands[label])
            shown = np.isfinite(low) & np.isfinite(high)
            ax.fill_between(grid, low, high, where=shown, color=color, alpha=0.2, lw=0)
    ax.set_ylim(limits)
    if title:
        ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def _panel_grid(count: int, ncols: int) -> tuple[Figure, np.ndarray]:
    """A constrained-layout grid with at least ``count`` panels; unused panels switched off."""
    nrows = max(1, math.ceil(count / ncols))
    fig = figure((2.4 * ncols, 2.1 * nrows))
    axs = fig.subplots(nrows, ncols, squeeze=False)
    flat = axs.ravel()
    for ax in flat[count:]:
        ax.set_axis_off()
    return fig, flat


def fit_grid(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    n_grid,
    fits: Mapping[str, np.ndarray],
    *,
    bands: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ncols: int = 6,
    suptitle: str | None = None,
) -> Figure:
    """A grid of :func:`fit_panel` (the paper's 18-panel figure for one model variant).

    Args:
        panels: G tuples ``(title, n (m,), y (m,))``.
        n_grid: (K,) evaluation points of the fits.
        fits: ``{label: (G, K) fitted values}``.
        bands: ``{label: ((G, K) low, (G, K) high)}`` (see :func:`fit_panel`).
        ncols: panels per row.
    """
    fig, flat = _panel_grid(len(panels), ncols)
    bands = bands or {}
    for i, (title, n, y) in enumerate(panels):
        fit_panel(
            n, y, n_grid, {k: v[i] for k, v in fits.items()},
            bands={k: (lo[i], hi[i]) for k, (lo, hi) in bands.items()}, title=title, ax=flat[i],
        )  # fmt: skip
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def alpha_band_plot(band, labels: Sequence[str] | None = None, *, ax: Axes | None = None) -> Figure:
    """alpha(n) estimates with their bootstrap bands, one line per curve.

    Args:
        band: :class:`tokenscale_sim.fit.inference.uncertainty.AlphaBand` ((G, K) arrays over
        ``band.n``). labels: (G,) curve names.
    """
    fig, ax = axes(ax)
    n = np.asarray(band.n)
    for g in range(np.asarray(band.estimate).shape[0]):
        color = f"C{g % 10}"
        label = labels[g] if labels is not None else None
        ax.plot(n, band.estimate[g], color=color, lw=1.5, label=label)
        ax.fill_between(n, band.low[g], band.high[g], color=color, alpha=0.2, lw=0)
    log_axes(ax, "x")
    ax.set_xlabel("n (vision tokens)")
    ax.set_ylabel(f"alpha(n), {round(100 * band.level)}% band")
    ax.axhline(0.0, color="0.6", lw=0.8)
    if labels is not None and len(labels) <= 12:
        ax.legend(fontsize=7)
    return fig


def alpha_band_grid(
    band, labels: Sequence[str], *, ncols: int = 6, suptitle: str | None = None
) -> Figure:
    """One small :func:`alpha_band_plot` panel per curve (readable for the paper's 18 x 3 curves).

    Args:
        band: :class:`tokenscale_sim.fit.inference.uncertainty.AlphaBand` with G curves.
        labels: (G,) panel titles.
    """
    g = np.asarray(band.estimate).shape[0]
    fig, flat = _panel_grid(g, ncols)
    for i in range(g):
        one = type(band)(
            band.n, band.estimate[i : i + 1], band.low[i : i + 1], band.high[i : i + 1], band.level
        )
        alpha_band_plot(one, ax=flat[i])
        flat[i].set_title(labels[i], fontsize=8)
        flat[i].tick_params(labelsize=7)
        flat[i].set_xlabel("")
        flat[i].set_ylabel("")
    fig.supylabel(f"alpha(n), {round(100 * band.level)}% band", fontsize=9)
    fig.supxlabel("n (vision tokens)", fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
