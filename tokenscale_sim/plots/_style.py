"""Shared figure helpers: axes creation and slope guides on log-log axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

REGIME_COLORS = ("#dbe9f6", "#fdebd0", "#e8f6e0")  # sublinear, transition, linear


def axes(ax: Axes | None = None, *, loglog: bool = False, size=(5.0, 3.6)) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``: the given axes' figure, or a new single-panel figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
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
