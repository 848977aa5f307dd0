"""Shared figure helpers: figures without pyplot, readable log axes, slope guides, saving.

Figures are made with the object-oriented API (``matplotlib.figure.Figure``): no global backend
is chosen and nothing is registered with pyplot, so the package runs headless and a figure is
freed when it is no longer referenced. Figures are written by
:func:`tokenscale_sim.runtime.outputs.save_figure` (the one checked, atomic writer of every output).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

REGIME_COLORS = ("#dbe9f6", "#fdebd0", "#e8f6e0")  # sublinear, transition, linear


def figure(size: tuple[float, float] = (5.0, 3.6)) -> Figure:
    """A new figure with constrained layout (object-oriented API, no pyplot)."""
    return Figure(figsize=size, layout="constrained")


def log_axes(ax: Axes, which: str = "xy") -> None:
    """Log scale on the axes named in ``which`` with plain-number tick labels (``20``, ``30``,
    ``0.5``), also on the minor ticks matplotlib labels when the range spans less than a decade
    (instead of a stack of ``2.6x10^1``, ``2.8x10^1``...)."""
    pairs = {"x": (ax.set_xscale, ax.xaxis), "y": (ax.set_yscale, ax.yaxis)}
    for name in which:
        set_scale, axis = pairs[name]
        set_scale("log")
        axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def axes(ax: Axes | None = None, *, loglog: bool = False, size=(5.0, 3.6)) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``: the given axes' figure, or a new single-panel figure."""
    if ax is None:
        ax = figure(size).subplots()
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    if loglog:
        log_axes(ax)
    return fig, ax


def slope_guide(
    ax: Axes, x: np.ndarray, y: np.ndarray, slope: float, *, label: str | None = None, **kw
) -> None:
    """Draw a dashed line of the given log-log slope through the point (x[0], y[0])."""
    x = np.asarray(x, dtype=float)
    ax.plot(
        x,
        y[0] * (x / x[0]) ** slope,
        ls=":",
        color="0.4",
        lw=1,
        label=label or f"slope {slope:g}",
        **kw,
    )


def shade_regimes(ax: Axes, n_b: float, n_lo: float, n_hi: float) -> None:
    """Shade n < n_b/3 (sublinear), n_b/3..3 n_b (transition), n > 3 n_b (linear); mark n_b."""
    if not np.isfinite(n_b) or n_b <= 0:
        return
    edges = [n_lo, max(n_lo, n_b / 3), min(n_hi, 3 * n_b), n_hi]
    for color, lo, hi in zip(REGIME_COLORS, edges[:-1], edges[1:], strict=True):
        if hi > lo:
            ax.axvspan(lo, hi, color=color, lw=0, zorder=0)
    if n_lo <= n_b <= n_hi:
        ax.axvline(n_b, color="0.3", lw=1, ls="--", label=f"n_b = {n_b:.3g}")
