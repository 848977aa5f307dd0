r"""Which structure? Several structure files calibrated to the same psi curves, ranked.

Each candidate (a parametrised structure file, :mod:`tokenscale_sim.structures.params`; the
shipped ones in :data:`CANDIDATES`) is fitted by
:func:`~tokenscale_sim.structures.calibrate_file.calibrate_file` to the measured mean psi's for
n <= n_fit, then ranked as ``compare`` ranks laws:

- AICc of the psi fit: ``m ln(RSS/m) + m (ln 2 pi + 1) + 2k + 2k(k+1)/(m-k-1)`` with m fitted
  points and k = free parameters + 1 (:func:`tokenscale_sim.fit.selection.compare.
  information_criteria`), its difference to the best and the Akaike weight;
- leave-out prediction: the RMSE of the three psi curves over the measured n > n_fit, and the
  relative error of the predicted mean D(n) (exact Gaussian E[D] at the measured width) against
  the measured mean D over n > n_fit (rms, and at the largest n);
- the implied n_b with its interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokenscale_sim.fit.inference.likelihood import akaike_weights
from tokenscale_sim.fit.selection.compare import information_criteria
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures.calibrate_file import FileCalibration

CANDIDATE_DIR = Path(__file__).with_name("candidates")
CANDIDATES = ("exchangeable", "sequence-decay", "patch-grid", "grid-decay", "powerlaw")
"""The shipped candidate files (``candidates/NAME.toml``); ``sequence-decay`` is the family of
:mod:`tokenscale_sim.structures.families` (exponential kernel), ``powerlaw`` its power-law twin."""

COLUMNS = ("rank", "name", "free", "points", "rss", "aicc", "delta_aicc", "weight",
           "psi_rmse_beyond", "d_rms_rel_beyond", "d_rel_at_n_max", "n_b", "n_b_low",
           "n_b_high", "n_b_status", "converged", "boundary")  # fmt: skip
"""Columns of :func:`rank`, in order."""


def candidate_paths(names: tuple[str, ...] = CANDIDATES) -> list[Path]:
    """Paths of shipped candidate files by name."""
    unknown = [k for k in names if k not in CANDIDATES]
    if unknown:
        raise ValueError(f"candidates: unknown {unknown}; shipped: {list(CANDIDATES)}")
    return [CANDIDATE_DIR / f"{k}.toml" for k in names]


def rank(cals: list[FileCalibration], measured_d: np.ndarray, d: int) -> list[dict]:
    """One row per calibration (:data:`COLUMNS`), best AICc first (module docstring)."""
    rows = []
    for cal in cals:
        pred = cb.predict_divergence(cal, measured_d, d)  # type: ignore[arg-type]
        aicc, _ = information_criteria(cal.rss, cal.points, len(cal.free))
        err = pred.errors.get("exact", {})
        beyond = cal.rmse_beyond[np.isfinite(cal.rmse_beyond)]
        rows.append({
            "name": cal.name, "free": len(cal.free), "points": cal.points, "rss": cal.rss,
            "aicc": float(aicc),
            "psi_rmse_beyond": float(np.sqrt(np.mean(beyond**2))) if beyond.size else np.nan,
            "d_rms_rel_beyond": err.get("rms_rel", np.nan),
            "d_rel_at_n_max": err.get("at_n_max_rel", np.nan),
            "n_b": cal.n_b, "n_b_low": cal.n_b_low, "n_b_high": cal.n_b_high,
            "n_b_status": cal.n_b_status, "converged": cal.converged,
            "boundary": " ".join(cal.boundary),
        })  # fmt: skip
    aiccs = np.array([r["aicc"] for r in rows])
    weights = np.asarray(akaike_weights(aiccs))
    best = np.nanmin(np.where(np.isfinite(aiccs), aiccs, np.nan)) if rows else np.nan
    for r, w in zip(rows, weights, strict=True):
        r["delta_aicc"] = r["aicc"] - best
        r["weight"] = float(w)
    order = np.argsort(np.where(np.isfinite(aiccs), aiccs, np.inf), kind="stable")
    ranked = [rows[i] for i in order]
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return [{k: r[k] for k in COLUMNS} for r in ranked]


def table_lines(rows: list[dict]) -> list[str]:
    """The ranking as aligned text lines (the CLI's printout)."""
    head = (f"{'rank':>4} {'structure':<16} {'k':>2} {'dAICc':>9} {'weight':>6} "
            f"{'psi RMSE>fit':>12} {'D rms rel>fit':>13} {'n_b [interval]':<28}")  # fmt: skip
    lines = [head]
    for r in rows:
        nb = "-" if not np.isfinite(r["n_b"]) else f"{r['n_b']:.3g}"
        iv = ("" if not np.isfinite(r["n_b_low"])
              else f" [{r['n_b_low']:.3g}, {r['n_b_high']:.3g}]")  # fmt: skip
        lines.append(f"{r['rank']:>4} {r['name']:<16} {r['free']:>2} {r['delta_aicc']:>9.1f} "
                     f"{r['weight']:>6.3f} {r['psi_rmse_beyond']:>12.4f} "
                     f"{r['d_rms_rel_beyond']:>13.4f} {nb + iv} ({r['n_b_status']})")  # fmt: skip
    return lines
