"""Figures of the structures workbench: sweep phase diagrams and calibrations."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from tokenscale_sim.plots.style import REGIME_COLORS, figure, log_axes

_REGIME_NAMES = ("sublinear", "transition", "linear", "decreasing")


def phase_diagram(columns: dict[str, np.ndarray], axes: dict[str, np.ndarray], at_label: str):
    """Phase diagram of a sweep: log10 n_b (left) and the regime at n = at (right) over the
    first two grid axes with more than one value (one axis: n_b and the slope as lines).

    Args:
        columns: :class:`tokenscale_sim.montecarlo.sweep.SweepResult` columns (product grid, last
        axis
            fastest). axes: the grid axes ``{name: values}``. at_label: the n of the regime.
    """
    varied = [k for k, v in axes.items() if len(v) > 1]
    shape = tuple(len(v) for v in axes.values())
    n_b = np.asarray(columns["n_b"], dtype=float).reshape(shape)
    regime = np.array([_REGIME_NAMES.index(r) if r else -1 for r in columns["regime_at"]])
    regime = regime.reshape(shape)
    slope = np.asarray(columns["slope_at"], dtype=float).reshape(shape)
    take = tuple(slice(None) if k in varied[:2] else 0 for k in axes)  # other axes: first value
    n_b, regime, slope = n_b[take], regime[take], slope[take]
    fig = figure((10.0, 3.8))
    left, right = fig.subplots(1, 2)
    if len(varied) < 2:
        x = axes[varied[0]] if varied else np.zeros(1)
        left.plot(x, n_b.reshape(-1), marker=".")
        left.set_yscale("log")
        left.set_ylabel("n_b")
        right.plot(x, slope.reshape(-1), marker=".")
        for cut in (0.625, 0.875):
            right.axhline(cut, color="0.6", lw=0.8, ls=":")
        right.set_ylabel(f"slope of sqrt(Upsilon) at n = {at_label}")
        for ax in (left, right):
            ax.set_xlabel(varied[0] if varied else "")
        return fig
    a, b = varied[:2]
    if list(axes).index(a) > list(axes).index(b):
        a, b = b, a
    xa, xb = axes[a], axes[b]  # arrays indexed [a, b]: x = b, y = a
    level = np.log10(np.where(n_b > 0, n_b, np.nan))
    mesh = left.pcolormesh(xb, xa, np.ma.masked_invalid(level), shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=left, label="log10 n_b")
    statuses = sorted({str(x) for x in columns["n_b_status"] if x})
    left.set_title(
        "transition point n_b (blank: no crossing / out of domain)"
        if np.isfinite(level).any()
        else f"no crossing n_b(n) = n on this grid ({', '.join(statuses)})",
        fontsize=9,
    )
    cmap = ListedColormap([*REGIME_COLORS, "#f4cccc"])
    right.pcolormesh(
        xb, xa, np.ma.masked_less(regime, 0), shading="auto", cmap=cmap, vmin=-0.5, vmax=3.5
    )
    cs = right.contour(xb, xa, np.ma.masked_invalid(slope), levels=[0.625, 0.75, 0.875],
                       colors="k", linewidths=0.7)  # fmt: skip
    right.clabel(cs, fmt=lambda v: f"{v:g}", fontsize=7)
    right.set_title(
        f"regime at n = {at_label}: blue sublinear, orange transition, green linear", fontsize=8
    )
    for ax in (left, right):
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        for name, which in ((b, "x"), (a, "y")):
            v = np.asarray(axes[name], dtype=float)
            if (
                len(v) > 2
                and np.all(v > 0)
                and np.allclose(np.diff(np.log(v)), np.log(v[1] / v[0]))
            ):
                log_axes(ax, which)  # a log-spaced axis
    return fig


def calibration_figure(n, measured: dict, fitted: dict, n_fit: int, divergence=None):
    """Measured psi curves (points) against the calibrated structure's exact ones (lines), the
    fit range shaded; with ``divergence`` = ``(n, measured D, {label: predicted D})`` a second
    panel of mean D(n) and its predictions.

    Args:
        n: (N,) token counts. measured, fitted: ``{name: (N,) curve}`` (psi_eq, psi_aabb,
            psi_ab). n_fit: the largest n used by the calibration.
    """
    fig = figure((10.0, 3.8) if divergence is not None else (5.2, 3.8))
    axs = fig.subplots(1, 2 if divergence is not None else 1)
    ax = axs[0] if divergence is not None else axs
    for k, (name, y) in enumerate(measured.items()):
        color = f"C{k}"
        ax.plot(n, y, ".", ms=3, color=color, label=f"{name} measured")
        ax.plot(n, fitted[name], "-", color=color, lw=1.2, label=f"{name} calibrated")
    ax.axvspan(1, n_fit, color="0.92", zorder=0, label="calibration range")
    ax.set_xscale("log")
    ax.set_xlabel("tokens n")
    ax.set_ylabel("psi(n)")
    ax.legend(fontsize=6, ncol=2)
    if divergence is not None:
        nd, d, predictions = divergence
        right = axs[1]
        right.plot(nd, d, "k.", ms=3, label="measured mean D(n)")
        for label, y in predictions.items():
            right.plot(nd, y, lw=1.2, label=label)
        right.axvspan(1, n_fit, color="0.92", zorder=0)
        log_axes(right)
        right.set_xlabel("tokens n")
        right.set_ylabel("mean D(n)")
        right.legend(fontsize=7)
    return fig


def calibration_study_figure(study):
    """:func:`calibration_figure` of a :class:`tokenscale_sim.study.CalibrationStudy`."""
    cal, pred = study.calibration, study.prediction
    names = ("psi_eq", "psi_aabb", "psi_ab")
    predictions = {"exact E[D] (calibrated)": pred.exact}
    if pred.monte_carlo is not None:
        predictions[f"Monte Carlo, {study.m} unit pairs"] = pred.monte_carlo
    return calibration_figure(
        pred.n,
        dict(zip(names, study.curves, strict=True)),
        dict(zip(names, cal.fitted, strict=True)),
        cal.n_fit,
        (pred.n, pred.measured, predictions),
    )


def which_figure(n, measured: dict, candidates: dict, n_fit: int):
    """ "Which structure?": the measured psi curves (points, one panel per curve) with each
    candidate's calibrated curves (lines), the fit range shaded.

    Args:
        n: (N,) token counts. measured: ``{curve: (N,)}`` (psi_eq, psi_aabb, psi_ab).
        candidates: ``{name: {curve: (N,)}}`` in rank order. n_fit: the largest n fitted.
    """
    fig = figure((12.0, 3.6))
    axs = fig.subplots(1, len(measured))
    for ax, (curve, y) in zip(axs, measured.items(), strict=True):
        ax.plot(n, y, "k.", ms=3, label="measured")
        for k, (name, fitted) in enumerate(candidates.items()):
            ax.plot(n, fitted[curve], "-", color=f"C{k}", lw=1.1, label=name)
        ax.axvspan(1, n_fit, color="0.92", zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("tokens n")
        ax.set_title(curve, fontsize=9)
    axs[0].set_ylabel("psi(n)")
    axs[0].legend(fontsize=6)
    return fig
