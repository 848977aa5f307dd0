r"""Fit only what is compared: the rows of
:func:`~tokenscale_sim.fit.selection.compare.compare_laws` that a law needs, packed into
bucketed blocks, with a progress bar over the fits.

``compare_laws`` lays out R = 2G + GM + BG rows (full, hold-out, leave-one-out, resamples) for
every law. A law uses on curve g only

- nothing at all when the pair is skipped (``too few points``: every number NaN);
- the full row and, with ``holdout_last > 0``, the hold-out row (with ``holdout_last = 0`` the
  hold-out row *is* the full row: its values are copied, not refitted);
- the leave-one-out rows of the curve's distinct n (slots past them are copies of the full row
  and never read);
- the B resamples when the curve has a shape test (finite curvature; otherwise its selection
  share is NaN and the resamples are never read).

:func:`row_sources` maps each of the R rows to the packed row that supplies it (-1: not needed),
and :func:`fit_packed` fits the packed rows in the fewest blocks of at most :data:`BLOCK` rows,
all padded to one :func:`~tokenscale_sim.fit.engine.buckets.bucket_size` (copies of the last
row): one compiled program per law and run, shared by data sets of similar size. Every row is
fitted independently (``vmap``): a needed row's optimum is the one fitting every row gives, up to
XLA's rounding of batched operations, which a few Levenberg-Marquardt fits ending on a flat
plateau (the logistic law's leave-one-out fits of some short curves) carry to the 1e-8 level;
those fits move as much in the unpacked layout when the collection changes (a subset of the
curves), so the packed numbers are as reproducible as the unpacked ones were.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays, distinct_slots, enough_points
from tokenscale_sim.fit.engine.buckets import bucket_size
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import solve_batch
from tokenscale_sim.fit.laws.models import Model

BLOCK = 8192
"""Most rows per ``solve_batch`` call (a bucket size): larger work is split evenly into blocks,
for a progress bar that moves and bounded memory."""


def layout_rows(
    arrays: CurveArrays, holdout_last: int
) -> tuple[CurveArrays, np.ndarray, np.ndarray]:
    """Full, hold-out and leave-one-out rows (G (2 + M), M), the (G, M) held-out mask and the
    (G, M) distinct-n slot of every point (:func:`distinct_slots`)."""
    w = np.asarray(arrays.weight, float)
    g, m = w.shape
    slot, distinct = distinct_slots(np.asarray(arrays.n), w)
    held = (slot >= (distinct - holdout_last)[:, None]) & (slot >= 0) & (holdout_last > 0)
    loo = np.where(slot[:, None, :] == np.arange(m)[None, :, None], 0.0, w[:, None, :])
    weight = np.concatenate([w, np.where(held, 0.0, w), loo.reshape(g * m, m)])
    reps = np.r_[np.arange(g), np.arange(g), np.repeat(np.arange(g), m)]
    fields = [np.asarray(x, float)[reps] for x in arrays]
    fields[3] = weight
    return CurveArrays(*fields), held, slot


def comparable_pairs(slot: np.ndarray, held: np.ndarray, models: tuple[Model, ...]) -> np.ndarray:
    """(G, L) whether every fit of law l on curve g keeps enough points (:func:`enough_points`):
    the full curve, the hold-out fit and the leave-one-out fit of the most replicated n."""
    valid = slot >= 0
    count, distinct = valid.sum(axis=1), slot.max(axis=1) + 1
    left = (valid & ~held).sum(axis=1)
    left_distinct = np.array(
        [np.unique(s[(s >= 0) & ~h]).size for s, h in zip(slot, held, strict=True)]
    )
    most = np.array([np.bincount(s[s >= 0]).max() if (s >= 0).any() else 0 for s in slot])
    p = np.array([x.n_params for x in models])[None, :]
    return (
        enough_points(count[:, None], distinct[:, None], p)
        & enough_points(left[:, None], left_distinct[:, None], p)
        & enough_points((count - most)[:, None], (distinct - 1)[:, None], p)
    )


class PackedFits(NamedTuple):
    """Per law, the fits of every row of the layout (NumPy; rows not fitted are NaN / True).

    Attributes:
        log_predict: (R, M) ln S predicted by each row's fit at its own n (NaN where a
            prediction is not finite, and on rows not needed).
        converged: (R,) the row's fit converged (True on rows not needed: they do not count).
        natural: (R, p) natural estimates (``model.natural``; NaN on rows not needed).
        fitted: (R,) whether the row (or the row it copies) was fitted.
        runaway: (R,) the row's fit was ended by the run-away rule (a parameter heading to a
            limit at infinity; ``FitOptions.runaway``); False on rows not needed.
    """

    log_predict: np.ndarray
    converged: np.ndarray
    natural: np.ndarray
    fitted: np.ndarray
    runaway: np.ndarray


def row_sources(
    comparable: np.ndarray,
    distinct: np.ndarray,
    testable: np.ndarray,
    m: int,
    holdout_last: int,
    bootstrap: int,
) -> np.ndarray:
    """For one law, the row of the layout each of the R rows copies (-1: not needed).

    Args:
        comparable: (G,) the law is compared on curve g. distinct: (G,) distinct n per curve.
        testable: (G,) the curve has a shape test (its resamples are read).
        m: points per row M (leave-one-out slots per curve). holdout_last, bootstrap: as
            :func:`~tokenscale_sim.fit.selection.compare.compare_laws`.

    Returns:
        (R,) int: ``r`` where row r is fitted itself, another row's index where it copies that
        row (the hold-out rows with ``holdout_last = 0``), -1 where it is never read.

    >>> row_sources(np.array([True, False]), np.array([2, 3]), np.array([True, True]), 3, 1, 2)
    array([ 0, -1,  2, -1,  4,  5, -1, -1, -1, -1, 10, -1, 12, -1])
    """
    g = comparable.shape[0]
    full = np.where(comparable, np.arange(g), -1)
    hold = np.where(comparable, np.arange(g) + (g if holdout_last else 0), -1)
    slots = np.arange(m)[None, :] < distinct[:, None]
    loo = np.where(comparable[:, None] & slots, 2 * g + np.arange(g * m).reshape(g, m), -1)
    boot = np.where(
        (comparable & testable)[None, :],
        2 * g + g * m + np.arange(bootstrap * g).reshape(bootstrap, g),
        -1,
    )
    return np.concatenate([full, hold, loo.ravel(), boot.ravel()])


def fit_packed(
    model: Model,
    opts: FitOptions,
    rows: CurveArrays,
    sources: np.ndarray,
    grid,
    tick: Callable[[int], object] = lambda k: None,
) -> PackedFits:
    """Fit the rows of ``rows`` (NumPy (R, M)) that ``sources`` (:func:`row_sources`) needs.

    The rows fitted (``sources[r] == r``) are taken in order, split evenly into the fewest
    blocks of at most :data:`BLOCK` rows, all padded to the bucket of the largest (a law's
    blocks share one compiled program: 54,648 rows run as 7 blocks of 7,807 padded to 8,192);
    ``tick(k)`` is called after each block with its k real rows. Rows copying another get its
    results.
    """
    r, m = rows.n.shape
    own = np.flatnonzero(sources == np.arange(r))
    lp = np.full((r, m), np.nan)
    conv = np.ones(r, bool)
    natural = np.full((r, model.n_params), np.nan)
    away = np.zeros(r, bool)
    parts = np.array_split(own, -(-own.size // BLOCK)) if own.size else []
    size = bucket_size(parts[0].size) if parts else 0  # the first part is the largest
    for part in parts:
        take = np.pad(part, (0, size - part.size), mode="edge")  # copies of the last row
        data = CurveArrays(*(jax.device_put(x[take]) for x in rows))  # device_put: no compile
        sol = solve_batch(model, opts, data, grid)
        pred = np.asarray(jax.vmap(model.log_predict)(sol.u, data.n, data.aux))[: part.size]
        lp[part] = np.where(np.isfinite(pred), pred, np.nan)
        conv[part] = np.asarray(sol.converged)[: part.size]
        natural[part] = np.asarray(jax.vmap(model.natural)(sol.u))[: part.size]
        away[part] = np.asarray(sol.runaway)[: part.size]
        tick(part.size)
    copies = np.flatnonzero((sources >= 0) & (sources != np.arange(r)))
    for x in (lp, conv, natural, away):
        x[copies] = x[sources[copies]]
    return PackedFits(lp, conv, natural, sources >= 0, away)


def plan(
    laws: tuple[str, ...],
    comparable: np.ndarray,
    distinct: np.ndarray,
    testable: np.ndarray,
    m: int,
    holdout_last: int,
    bootstrap: int,
) -> tuple[list[np.ndarray], int, str]:
    """The work of a comparison: per law the :func:`row_sources` of ``comparable[:, l]``, the
    fits in all (the progress bar's total) and the :func:`work_line` that announces them."""
    sources = [
        row_sources(comparable[:, j], distinct, testable, m, holdout_last, bootstrap)
        for j in range(len(laws))
    ]
    own = sum(int(np.sum(s == np.arange(s.size))) for s in sources)
    g = comparable.shape[0]
    boot = sum(int(np.sum(s[2 * g + g * m :] >= 0)) for s in sources)
    return sources, own, work_line(g, laws, comparable, own - boot, boot, bootstrap)


def work_line(
    g: int, laws: tuple[str, ...], comparable: np.ndarray, base: int, boot: int, bootstrap: int
) -> str:
    """The size of a comparison before it starts, in one line (for stderr).

    >>> print(work_line(9, ("a", "b"), np.ones((9, 2), bool), 150, 0, 0))  # doctest: +ELLIPSIS
    which law? 9 curves x 2 laws (18 pairs compared, 0 skipped: ...): 150 fits (...), no resamples
    """
    skipped = comparable.size - int(comparable.sum())
    head = (
        f"which law? {g} curves x {len(laws)} laws ({int(comparable.sum())} pairs compared, "
        f"{skipped} skipped: too few points): {base:,} fits (full, hold-out, leave-one-out)"
    )
    tail = f" + {boot:,} refits of {bootstrap} resamples" if bootstrap else ", no resamples"
    return head + tail


def announce(line: str, enabled: bool) -> None:
    """Print ``line`` on stderr when ``enabled`` (the progress setting)."""
    if enabled:
        print(line, file=sys.stderr, flush=True)
