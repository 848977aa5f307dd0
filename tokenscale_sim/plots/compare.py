"""Figures of the law comparison ("which law?") and of the shape test.

Everything here draws a result it is given and computes nothing: a
:class:`tokenscale_sim.fit.selection.compare.Comparison` (per-curve winners, extrapolation errors)
and a :class:`tokenscale_sim.fit.selection.curvature.CurvatureTest` (curvature per curve with its
interval).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tokenscale_sim.plots.style import axes, figure

CRITERION_LABELS = ("AICc", "BIC", "LOO", "extrap.")


def _law_colors(count: int) -> list[str]:
    return [f"C{i % 10}" for i in range(count)]


def winner_grid(comparison, labels: Sequence[str], *, ax: Axes | None = None) -> Figure:
    """Curves (rows) x criteria (columns), each cell coloured by the winning law; the AICc
    cell shows the winner's Akaike weight (and its bootstrap selection share when there is one).

    Args:
        comparison: a :class:`~tokenscale_sim.fit.selection.compare.Comparison` with G curves, L
        laws. labels: (G,) row labels.
    """
    g = len(labels)
    fig, ax = axes(ax, size=(6.0, 1.2 + 0.17 * g))
    wins = np.stack([np.asarray(w) for w in comparison.winner], axis=1).astype(float)  # (G, 4)
    laws = comparison.laws
    grey = "#dddddd"
    cmap = ListedColormap([grey, *_law_colors(len(laws))])
    ax.imshow(wins + 1, cmap=cmap, vmin=-0.5, vmax=len(laws) + 0.5, aspect="auto")
    for i in range(g):
        j = int(wins[i, 0])
        if j < 0:
            continue
        text = f"{comparison.weight[i, j]:.2f}"
        share = comparison.boot_share[i, j]
        if np.isfinite(share):
            text += f" ({share:.2f})"
        ax.text(0, i, text, ha="center", va="center", fontsize=5.5, color="white")
    ax.set_xticks(range(len(CRITERION_LABELS)), CRITERION_LABELS, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks(range(g), labels, fontsize=5.5)
    # cell borders as two line collections (minor ticks would add G + 5 tick artists to lay out)
    ax.hlines(np.arange(-0.5, g), -0.5, len(CRITERION_LABELS) - 0.5, color="white", lw=0.6)
    ax.vlines(np.arange(-0.5, len(CRITERION_LABELS)), -0.5, g - 0.5, color="white", lw=0.6)
    handles = [
        Patch(color=c, label=name) for c, name in zip(_law_colors(len(laws)), laws, strict=True)
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=7,
        title="winner",
        title_fontsize=7,
    )
    shares = np.isfinite(np.asarray(comparison.boot_share, float)).any()
    ax.set_title(
        "Akaike weight of the AICc winner" + (" (bootstrap share)" if shares else ""), fontsize=7
    )
    return fig


def extrapolation_errors(comparison, *, ax: Axes | None = None) -> Figure:
    """Extrapolation RMSE of ln S per law: one dot per curve (jittered), the median as a bar.

    Errors beyond 100x the largest per-law median (a law that exploded) and infinite ones are
    drawn at that edge as triangles, with their count; NaN (the pair was not compared: too few
    points) is not drawn at all, and a law compared on no curve says so.
    """
    fig, ax = axes(ax, size=(4.0, 3.6))
    err = np.asarray(comparison.extrap_rmse, float)
    compared = ~np.isnan(err)
    with warnings.catch_warnings():  # a law compared on no curve: its median is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(np.where(compared, err, np.nan), axis=0)
    finite = err[np.isfinite(err) & (err > 0)]
    cap = 100 * float(np.max(medians[np.isfinite(medians)], initial=1e-3))
    cap = min(cap, float(finite.max())) if finite.size else 1.0
    rng = np.random.default_rng(0)  # jitter only
    for j, color in enumerate(_law_colors(err.shape[1])):
        e = err[:, j]
        ok = np.isfinite(e) & (e > 0) & (e <= cap)
        off = ~ok & ~(e <= 0) & ~np.isnan(e)
        if not compared[:, j].any():
            ax.annotate("not compared", (j, cap), fontsize=6, ha="center", rotation=90,
                        va="top")  # fmt: skip
        x = j + rng.uniform(-0.18, 0.18, e.shape)
        ax.plot(x[ok], e[ok], "o", ms=3, color=color, alpha=0.7, mec="none")
        if off.any():
            ax.plot(x[off], np.full(off.sum(), cap), "^", ms=4, color=color)
            ax.annotate(f"{off.sum()} off scale", (j, cap), fontsize=6, ha="center",
                        xytext=(0, 5), textcoords="offset points")  # fmt: skip
        if np.isfinite(medians[j]):
            ax.hlines(medians[j], j - 0.3, j + 0.3, color="k", lw=1.5)
            ax.annotate(f"{medians[j]:.3g}", (j + 0.32, medians[j]), fontsize=6, va="center")
    ax.set_yscale("log")
    ax.set_xticks(range(err.shape[1]), comparison.laws, fontsize=7, rotation=20)
    ax.set_ylabel(f"RMSE of ln S on the {comparison.holdout_last} largest n", fontsize=8)
    ax.set_title("extrapolation error per law (bar: median)", fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def comparison_figure(comparison, labels: Sequence[str], *, suptitle: str | None = None) -> Figure:
    """:func:`winner_grid` beside :func:`extrapolation_errors` in one figure."""
    g = len(labels)
    fig = figure((10.0, max(4.0, 1.4 + 0.17 * g)))
    left, right = fig.subplots(1, 2, width_ratios=(1.5, 1.0))
    winner_grid(comparison, labels, ax=left)
    extrapolation_errors(comparison, ax=right)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def curvature_plot(test, labels: Sequence[str], *, ax: Axes | None = None) -> Figure:
    """Per curve the curvature of ln S in ln n (times the expected sign, so right of zero is
    "the theory's sign holds") with its bootstrap interval.

    Args:
        test: a :class:`~tokenscale_sim.fit.selection.curvature.CurvatureTest` with G curves.
        labels: (G,) row labels.
    """
    g = len(labels)
    fig, ax = axes(ax, size=(6.0, 1.2 + 0.17 * g))
    sign = np.asarray(test.expected_sign, float)
    est = sign * np.asarray(test.curvature)
    lo, hi = np.sort(np.stack([sign * test.ci_low, sign * test.ci_high]), axis=0)
    y = np.arange(g)
    colors = ["C2" if h else "C3" for h in np.asarray(test.holds)]
    if np.all(np.isfinite(lo)):
        ax.hlines(y, lo, hi, colors=colors, lw=1.2)
    ax.scatter(est, y, c=colors, s=10, zorder=3)
    ax.axvline(0.0, color="0.4", lw=0.8)
    ax.set_yticks(y, labels, fontsize=5.5)
    ax.set_ylim(g - 0.5, -0.5)
    ax.set_xlabel("expected sign x curvature of ln S in ln n (> 0: theory's sign)", fontsize=8)
    ax.set_title(
        f"theory's sign holds on {test.n_holds} of {test.n_curves} curves\nsign test p = "
        f"{test.sign_test_p:.3g}, Fisher p = {test.fisher_p:.3g}",
        fontsize=8,
    )
    ax.tick_params(axis="x", labelsize=7)
    return fig
