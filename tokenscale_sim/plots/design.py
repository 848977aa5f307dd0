"""Figures of design studies: power against n_b per design and budget; n_b interval width
against the number of token counts K. Draws rows computed by :mod:`tokenscale_sim.design`
(plain dicts as written to ``design.csv``); computes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tokenscale_sim.plots.style import axes, log_axes


def power_vs_nb(
    rows: Sequence[dict], *, level: float = 0.05, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Power of the transition test against the true n_b, one line per (design, budget).

    ``rows``: dicts with ``design``, ``questions_per_point`` (None: not binomial), ``n_b_true``
    (or ``n_b``), ``power`` and ``power_se`` (one per simulated design). Designs simulated at
    one n_b only are markers.
    """
    fig, ax = axes(ax, size=(6.0, 4.0))
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((str(r["design"]), r["questions_per_point"]), []).append(r)
    for (label, budget), rs in groups.items():
        rs = sorted(rs, key=lambda r: float(r.get("n_b_true", r.get("n_b", np.nan))))
        x = np.array([float(r.get("n_b_true", r.get("n_b", np.nan))) for r in rs])
        y = np.array([r["power"] for r in rs], float)
        se = np.array([r["power_se"] for r in rs], float)
        style = "-o" if len(rs) > 1 else "s"
        ax.errorbar(x, y, yerr=2 * se, fmt=style, ms=4, lw=1.2, capsize=2,
                    label=label if budget is None else f"{label}, {budget:,} q/point")  # fmt: skip
    ax.axhline(level, color="0.5", ls=":", lw=1, label=f"level {level:g}")
    ax.axhline(0.8, color="0.5", ls="--", lw=1, label="80 % power")
    log_axes(ax, "x")
    ax.set_xlabel("true transition point n_b")
    ax.set_ylabel("power of the transition test")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6.5, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def width_vs_k(rows: Sequence[dict], *, ax: Axes | None = None) -> Figure:
    """Median width of the ln n_b interval against K: simulated (markers) and Fisher screen
    (dashed), one colour per design kind (``kind`` of each row: screen-optimal, log-spaced)."""
    fig, ax = axes(ax, size=(5.0, 3.6))
    kinds = list(dict.fromkeys(str(r["kind"]) for r in rows))
    for i, kind in enumerate(kinds):
        rs = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["k"])
        k = np.array([r["k"] for r in rs], float)
        sim = np.array([r["ln_n_b_width"] for r in rs], float)
        scr = np.array([r["ln_n_b_width_screen"] for r in rs], float)
        ax.plot(k, np.where(np.isfinite(sim), sim, np.nan), "o-", color=f"C{i}",
                label=f"{kind}: simulated median")  # fmt: skip
        ax.plot(k, scr, "--", color=f"C{i}", label=f"{kind}: Fisher screen")
    ax.set_xlabel("token counts K")
    ax.set_ylabel("95 % interval width of ln n_b")
    ax.legend(fontsize=7)
    return fig


def report_power(section, *, ax: Axes | None = None) -> Figure:
    """The demo report's design figure: power against n_b at the median effect size, for the
    paper's design and the power-optimal one at the smallest budget, and for the paper's design
    under the scatter seen in its curves (``section``: a ``design.report.DesignSection``)."""
    beta = section.betas[0]
    first = min(r["questions_per_point"] or np.inf for r in section.rows)
    rows = [r for r in section.rows if r["beta"] == beta
            and r["questions_per_point"] in (first, None)]  # fmt: skip
    return power_vs_nb(rows, ax=ax, title=f"β = {beta:g}, S(768) = 70 %")
