"""Figures of the closed forms: divergence curves with regimes, alpha(n) families, regime maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tokenscale_sim.plots.style import axes, log_axes, shade_regimes, slope_guide


def divergence_curves(curves, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """sqrt(2 Upsilon(n)) and the exact Gaussian E[D(n)] on log-log axes, regimes shaded.

    Args:
        curves: a :class:`tokenscale_sim.theory.closed_forms.TheoryCurves` (scalar ``n_b``).
    """
    fig, ax = axes(ax, loglog=True)
    n = np.asarray(curves.n)
    valid = np.asarray(curves.valid)
    n_b = float(np.asarray(curves.n_b).reshape(-1)[0])
    shade_regimes(ax, n_b, float(n[0]), float(n[-1]))
    ax.plot(n[valid], np.asarray(curves.bound)[valid], lw=2, label="bound sqrt(2 Upsilon)")
    ax.plot(
        n[valid],
        np.asarray(curves.gaussian_mean)[valid],
        lw=1.5,
        ls="--",
        label="exact Gaussian E[D]",
    )
    bound = np.asarray(curves.bound)[valid]
    slope_guide(ax, n[valid], bound, 0.5, label="slope 1/2")
    slope_guide(
        ax,
        n[valid][-1:] * np.array([1.0, 0.1]),
        bound[-1:] * np.array([1.0, 1.0]),
        1.0,
        label="slope 1",
    )
    ax.set_xlabel("tokens n")
    ax.set_ylabel("branch divergence")
    ax.set_title(title or "Divergence bound and regimes")
    ax.legend(fontsize=7)
    return fig


def alpha_family(
    n: np.ndarray,
    alphas: np.ndarray,
    n_bs: Sequence[float],
    *,
    beta: float = 1.0,
    ax: Axes | None = None,
) -> Figure:
    """alpha(n) curves, one per n_b (the paper's figure).

    Args:
        n: (N,) token counts. alphas: (len(n_bs), N) values of alpha(n; beta, n_b).
    """
    fig, ax = axes(ax)
    for a, nb in zip(np.asarray(alphas), n_bs, strict=True):
        ax.plot(n, a, label=f"n_b = {nb:g}")
    ax.axhline(-beta / 2, color="0.5", lw=0.8, ls=":")
    ax.axhline(-beta, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("tokens n")
    ax.set_ylabel("alpha(n)")
    ax.set_title(f"alpha(n), beta = {beta:g}: from -beta/2 towards -beta")
    ax.legend(fontsize=7, ncol=2)
    return fig


def regime_map(
    psi_eq: np.ndarray, delta: np.ndarray, n_b: np.ndarray, *, ax: Axes | None = None
) -> Figure:
    """log10 n_b over a (psi_eq, Delta) grid; n_b(psi_eq, Delta) computed by the caller.

    Args:
        psi_eq: (P,), delta: (Q,), n_b: (Q, P).
    """
    fig, ax = axes(ax)
    level = np.log10(np.where(np.asarray(n_b) > 0, n_b, np.nan))  # n_b <= 0: linear from n = 1
    mesh = ax.pcolormesh(
        psi_eq, delta, np.ma.masked_invalid(level), shading="auto", cmap="viridis", vmin=-1.0
    )
    cs = ax.contour(
        psi_eq, delta, np.ma.masked_invalid(level), levels=[0, 1, 2, 3], colors="w", linewidths=0.8
    )
    ax.clabel(cs, fmt=lambda v: f"n_b=1e{v:.0f}", fontsize=7)
    ax.text(
        0.98,
        0.98,
        "blank: n_b <= 0\n(linear from n = 1)",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=7,
    )
    fig.colorbar(mesh, ax=ax, label="log10 n_b")
    log_axes(ax, "y")
    ax.set_xlabel("psi_eq")
    ax.set_ylabel("Delta = psi_AABB - psi_AB")
    ax.set_title("Regime map: where the linear regime starts")
    return fig
