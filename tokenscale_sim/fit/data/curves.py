"""Curves in: long and wide CSV, arrays, and the paper's benchmark scores shipped with the package.

Reading is here (not in :mod:`tokenscale_sim.runtime.outputs`, which writes) so that every input
check sits next to the container it fills. All checks run before any fitting or writing and raise a
one-line ``ValueError`` naming the function, the column or group, what was expected and what was
found.

Long layout: one row per point, columns ``n``, ``score`` (names configurable), optional grouping
columns and an optional standard-error column. Wide layout: a column ``n`` and one column per
curve (its header names the curve); empty cells are points the curve does not have.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.fit.data.checks import check_arrays, warn_unused_sigma
from tokenscale_sim.fit.data.columns import cell_number, check_grouping, numeric
from tokenscale_sim.fit.data.table import decode, parse_table, regular_file
from tokenscale_sim.fit.laws.models import Model, get_model
from tokenscale_sim.runtime.validation import check_memory

DATASETS = ("paper", "paper_exact")
"""Built-in dataset names: the paper's scores, all variants or only the exactly decoded ones."""

PAPER_GROUP = ("model_variant", "benchmark", "metric")


class CurveArrays(NamedTuple):
    """Curves as padded arrays, each of shape (..., M); padded entries have ``weight = 0``.

    ``se`` holds standard errors (ones when not given), ``aux`` per-point model input (Upsilon(n)
    for ``divergence_measured``; ones otherwise). ``weight`` is 1 for data, 0 for padding, and a
    resampling count in the case bootstrap.
    """

    n: Any
    y: Any
    se: Any
    weight: Any
    aux: Any


class CurveSet(NamedTuple):
    """G curves padded to a common length M.

    Attributes:
        keys: (G,) tuples of group values, one per curve (strings from files; from a
            DataFrame the column's values as Python scalars, e.g. ints).
        group: names of the grouping columns (the key entries).
        arrays: :class:`CurveArrays` of NumPy float64 (G, M).
        has_se: whether standard errors were given.
        source: where the curves came from (file name or dataset name).
    """

    keys: tuple[tuple[Any, ...], ...]
    group: tuple[str, ...]
    arrays: CurveArrays
    has_se: bool
    source: str

    def curve(self, g: int) -> CurveArrays:
        """The ``g``-th curve without padding (arrays of shape (m,))."""
        keep = self.arrays.weight[g] > 0
        return CurveArrays(*(np.asarray(x[g])[keep] for x in self.arrays))

    def label(self, g: int) -> str:
        """``"value1 / value2"`` label of curve ``g`` (``"curve"`` if ungrouped)."""
        return key_label(self.keys[g])


def key_label(curve_key: Sequence[Any]) -> str:
    """``"value1 / value2"`` for a curve's key of any values (``"curve"`` for the empty key).

    >>> key_label(("llava", 7)), key_label(())
    ('llava / 7', 'curve')
    """
    return " / ".join(str(v) for v in curve_key) or "curve"


def curves_from_points(
    points: Mapping[tuple[Any, ...], Sequence[tuple[float, float, float, float]]],
    group: Sequence[str] = (),
    *,
    has_se: bool = False,
    source: str = "arrays",
    fn: str = "curves_from_points",
    token_counts: bool = True,
) -> CurveSet:
    """Pad ``{key: [(n, y, se, aux), ...]}`` into a :class:`CurveSet`, checking each curve.

    Checks: every value finite; ``n >= 1`` (token counts; with ``token_counts=False``, for a
    law of any real predictor x, any finite value: the fit checks the range its law admits),
    ``se > 0`` when given, ``aux > 0``. Points are sorted by ``n``. Repeated ``n`` within a
    curve are replicates (several seeds or runs at one token count) and are kept as separate
    points: every fit weighs each of them, leave-one-out leaves out one distinct ``n`` with all
    its replicates (:func:`distinct_slots`).
    """
    if not points:
        raise ValueError(f"{fn}: no curves found in {source}")
    size = max(len(v) for v in points.values())
    shape = (len(points), size)
    n = np.ones(shape)
    y = np.ones(shape)
    se = np.ones(shape)
    aux = np.ones(shape)
    weight = np.zeros(shape)
    for g, (key, pts) in enumerate(points.items()):
        label = key_label(key)
        arr = np.array(sorted(pts), dtype=float).reshape(-1, 4)
        if not len(arr):
            raise ValueError(f"{fn}: curve {label} has no points")
        for j, name in enumerate(("n", "y", "sigma" if has_se else "se", "aux")):
            bad = ~np.isfinite(arr[:, j])
            if bad.any():
                raise ValueError(
                    f"{fn}: {name} must be finite, got {arr[bad, j][0]} in {label} "
                    f"({int(bad.sum())} of {len(arr)} points)"
                )
        if token_counts and np.any(arr[:, 0] < 1):
            raise ValueError(
                f"{fn}: n must be >= 1 (token counts), got {arr[:, 0].min()} in {label}"
            )
        if has_se and np.any(arr[:, 2] <= 0):
            raise ValueError(f"{fn}: standard errors must be > 0, got {arr[:, 2].min()} in {label}")
        if np.any(arr[:, 3] <= 0):
            raise ValueError(f"{fn}: aux (Upsilon) must be > 0, got {arr[:, 3].min()} in {label}")
        m = len(arr)
        n[g, :m], y[g, :m], se[g, :m], aux[g, :m] = arr.T
        weight[g, :m] = 1.0
    return CurveSet(tuple(points), tuple(group), CurveArrays(n, y, se, weight, aux), has_se, source)


def _per_curve(values, name: str, shape: tuple[int, int], fn: str) -> np.ndarray | None:
    """``values`` given as a scalar, one curve's (m,) or every curve's (G, m) -> (G, m)."""
    if values is None:
        return None
    a = numeric(values, name, fn)
    if (
        a.ndim > 2
        or (a.ndim >= 1 and a.shape[-1] != shape[1])
        or (a.ndim == 2 and a.shape[0] not in (1, shape[0]))
    ):
        raise ValueError(
            f"{fn}: {name} must be a scalar, (m,) or (G, m) with y of shape {shape}, got shape "
            f"{a.shape}"
        )
    return np.broadcast_to(a, shape)


def curves_from_arrays(
    n,
    y,
    se=None,
    aux=None,
    keys: Sequence[Any] | None = None,
    *,
    sigma=None,
    token_counts: bool = False,
) -> CurveSet:
    """Curves from arrays: ``n``, ``y`` of shape (m,) (one curve) or (G, m) (G curves of m
    points; ``n`` may be (m,) for all). Repeated ``n`` are replicates
    (``curves_from_arrays(np.repeat(n, 3), y)``). Curves of different lengths:
    :func:`~tokenscale_sim.fit.data.frames.curves_from_pairs`.

    Args:
        sigma: standard errors of ``y`` (scalar, (m,) or (G, m)), with scipy's ``curve_fit``
            meaning under the ``linear`` loss (see ``FitOptions.absolute_sigma``); ``se`` is the
            older name of the same argument.
        aux: per-point model input (Upsilon(n) for ``divergence_measured``).
        keys: (G,) names of the curves (default ``"0"``, ``"1"``, ...).
        token_counts: refuse ``n < 1`` here; by default every finite ``n`` is kept and the fit
            checks the range its law admits (token counts ``n >= 1`` for laws of ``n``).

    >>> cs = curves_from_arrays([1, 2, 4], [1.0, 1.5, 2.2])
    >>> cs.arrays.n.shape
    (1, 3)
    """
    fn = "curves_from_arrays"
    if se is not None and sigma is not None:
        raise ValueError(f"{fn}: give sigma or se (the same standard errors), not both")
    sigma = se if sigma is None else sigma
    y2 = numeric(y, "y", fn)
    y2 = y2[None] if y2.ndim == 1 else y2
    if y2.ndim != 2 or y2.size == 0:
        raise ValueError(
            f"{fn}: y must hold at least one curve of points, shape (m,) or (G, m), got shape "
            f"{np.shape(y)}"
        )
    n2, se2, aux2 = (_per_curve(v, name, y2.shape, fn) for v, name in
                     ((n, "n"), (sigma, "sigma"), (aux, "aux")))  # fmt: skip
    assert n2 is not None
    g = y2.shape[0]
    keys = list(keys) if keys is not None else [str(i) for i in range(g)] if g > 1 else [""]
    if len(keys) != g:
        raise ValueError(f"{fn}: keys must name the {g} curves, got {len(keys)} keys")
    if len(set(keys)) != g:
        raise ValueError(f"{fn}: keys must be distinct, got {keys}")
    grouped = keys != [""]  # one unnamed curve carries no group column
    ones = np.ones(y2.shape[1])
    points = {
        (key,) if grouped else (): list(zip(
            n2[i], y2[i], ones if se2 is None else se2[i], ones if aux2 is None else aux2[i],
            strict=True,
        ))
        for i, key in enumerate(keys)
    }  # fmt: skip
    return curves_from_points(
        points,
        ("curve",) if grouped else (),
        has_se=sigma is not None,
        fn=fn,
        token_counts=token_counts,
    )


def curves_from_rows(
    rows: Iterable[Mapping[str, str]],
    columns: Sequence[str],
    *,
    n_col: str = "n",
    y_col: str = "score",
    group: Sequence[str] | None = None,
    se_col: str | None = None,
    aux_col: str | None = None,
    layout: str = "auto",
    source: str = "rows",
    token_counts: bool = True,
    lines: Sequence[int] | None = None,
) -> CurveSet:
    """Curves from CSV-like rows (dicts of strings); see :func:`read_curves` for the layouts.
    ``lines``: the line each row starts on, for messages (default: 2, 3, ...)."""
    fn = "read_curves"
    columns = list(columns)
    numbered = list(zip(lines or range(2, 2**62), rows, strict=False))
    if layout not in ("auto", "long", "wide"):
        raise ValueError(f"{fn}: layout must be 'auto', 'long' or 'wide', got {layout!r}")
    if layout == "auto":
        layout = "long" if y_col in columns or group else "wide"
    if n_col not in columns:
        raise ValueError(f"{fn}: column {n_col!r} missing in {source} (columns: {columns})")
    points: dict[tuple[str, ...], list[tuple[float, float, float, float]]] = {}
    if layout == "wide":
        curve_cols = [c for c in columns if c != n_col]
        if not curve_cols:
            raise ValueError(f"{fn}: wide layout needs curve columns besides {n_col!r} in {source}")
        for i, row in numbered:
            n = cell_number(row[n_col], fn, n_col, f"line {i}")
            for c in curve_cols:
                if (row.get(c) or "").strip():
                    points.setdefault((c,), []).append(
                        (n, cell_number(row[c], fn, c, f"line {i}"), 1.0, 1.0)
                    )
        return curves_from_points(
            points, ("curve",), source=source, fn=fn, token_counts=token_counts
        )
    used = [n_col, y_col, *(c for c in (se_col, aux_col) if c)]
    named = (group,) if isinstance(group, str) else tuple(group or ())
    for c in [*used[1:], *named]:  # a missing column first: it says what the table is
        if c not in columns:
            raise ValueError(f"{fn}: column {c!r} missing in {source} (columns: {columns})")
    group = check_grouping(fn, columns, used, group)
    for i, row in numbered:
        where = f"line {i}"
        key = tuple(row[c] for c in group)
        point = (
            cell_number(row[n_col], fn, n_col, where),
            cell_number(row[y_col], fn, y_col, where),
            cell_number(row[se_col], fn, se_col, where) if se_col else 1.0,
            cell_number(row[aux_col], fn, aux_col, where) if aux_col else 1.0,
        )
        points.setdefault(key, []).append(point)
    return curves_from_points(
        points, group, has_se=se_col is not None, source=source, fn=fn, token_counts=token_counts
    )


def read_curves(
    path: str | os.PathLike[str],
    *,
    n_col: str = "n",
    y_col: str = "score",
    group: Sequence[str] | None = None,
    se_col: str | None = None,
    aux_col: str | None = None,
    layout: str = "auto",
    token_counts: bool = True,
) -> CurveSet:
    """Read curves from a CSV file (long or wide layout; ``auto`` picks long when ``y_col`` or a
    grouping column is present). ``token_counts=False``: the predictor column may hold any
    finite reals (laws of a general predictor x), not only token counts ``n >= 1``.

    ``group``: the columns that tell curves apart in the long layout; ``()`` states that the
    table is one curve. Left out (``None``), a long table with columns besides ``n_col``,
    ``y_col``, ``se_col`` and ``aux_col`` is refused (:class:`~.columns.UngroupedColumns`)
    rather than pooled into one curve.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing column, non-numeric or NaN value, ... (repeated ``n`` are replicates)
    """
    p = regular_file("read_curves", path, "a CSV file")
    # rows as dicts of strings: a few hundred bytes per row of some 20 characters
    check_memory("read_curves", f"reading {str(p)!r}", 30 * p.stat().st_size, "split the file")
    text = decode(p.read_bytes(), str(p))
    return _parse(text, str(p), n_col, y_col, group, se_col, aux_col, layout, token_counts)


def _parse(
    text, source, n_col, y_col, group, se_col, aux_col, layout, token_counts=True
) -> CurveSet:
    table = parse_table(text, source)
    return curves_from_rows(
        table.rows,
        table.columns,
        lines=table.lines,
        n_col=n_col,
        y_col=y_col,
        group=group,
        se_col=se_col,
        aux_col=aux_col,
        layout=layout,
        source=source,
        token_counts=token_counts,
    )


def load_paper_scores(exact_only: bool = False, group: Sequence[str] = PAPER_GROUP) -> CurveSet:
    """The paper's benchmark scores (18 benchmarks x 3 variants x n = 1..768) as curves.

    ``exact_only`` keeps the two variants decoded exactly (to 1e-4) from the paper's figures and
    drops the approximate ``vision_queries_noft``. ``n`` is ``n_l``, the fused vision tokens.

    >>> cs = load_paper_scores(exact_only=True)
    >>> len(cs.keys), cs.arrays.n.shape[1]
    (36, 10)
    """
    text = resources.files("tokenscale_sim").joinpath("data/paper_scores.csv").read_text()
    if exact_only:
        lines = text.splitlines()
        text = "\n".join([lines[0]] + [ln for ln in lines[1:] if "noft" not in ln.split(",")[0]])
    return _parse(
        text,
        "paper" if not exact_only else "paper_exact",
        "n_l",
        "score",
        tuple(group),
        None,
        None,
        "long",
    )


def load_dataset(name: str) -> CurveSet:
    """A built-in dataset by name (:data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"load_dataset: dataset must be one of {DATASETS}, got {name!r}")
    return load_paper_scores(exact_only=name == "paper_exact")


def enough_points(count, distinct, n_params):
    """Whether a law of ``n_params`` parameters can be fitted to ``count`` points at ``distinct``
    distinct ``n`` (arrays broadcast): ``count >= p + 1`` (a residual variance exists) and
    ``distinct >= min(p + 1, 3)`` (replicates at one ``n`` do not pin a curve).

    >>> bool(enough_points(4, 4, 3)), bool(enough_points(6, 2, 2))
    (True, False)
    """
    p = np.asarray(n_params)
    return (np.asarray(count) >= p + 1) & (np.asarray(distinct) >= np.minimum(p + 1, 3))


def distinct_slots(n, weight) -> tuple[np.ndarray, np.ndarray]:
    """Per point the rank of its ``n`` among the curve's distinct ``n`` (-1 for padding), and
    the number of distinct ``n`` per curve: ``(slot (G, M), distinct (G,))``.

    >>> slot, d = distinct_slots(np.array([[1.0, 2, 2, 4]]), np.array([[1.0, 1, 1, 0]]))
    >>> slot.tolist(), d.tolist()
    ([[0, 1, 1, -1]], [2])
    """
    n, w = np.atleast_2d(n), np.atleast_2d(weight)
    slot = np.full(n.shape, -1)
    distinct = np.zeros(n.shape[0], int)
    for g in range(n.shape[0]):
        ok = w[g] > 0
        values, inverse = np.unique(n[g][ok], return_inverse=True)
        slot[g][ok] = inverse
        distinct[g] = values.size
    return slot, distinct


def check_curves(
    curves: CurveSet, model: str | Model, loss: str = "log", *, counts: bool = True
) -> None:
    """Raise ``ValueError`` when ``curves`` cannot be fitted by ``model`` under ``loss``.

    Checks: a :class:`CurveSet` with at least one curve, its arrays as
    :func:`~tokenscale_sim.fit.data.checks.check_arrays` wants them (finite, ``n >= 1`` for laws of
    token counts, positive ``y`` under the log and Huber losses, ...; sigma the loss does not
    use is warned about), at least ``p + 1`` points per curve (``p`` parameters; ``p + 1`` so
    that a residual variance exists), standard
    errors present for ``loss="weighted"``; degenerate curves are refused naming the curve: a
    constant one (R^2 undefined, n_b anywhere) or one with fewer than 3 distinct ``n``.
    ``counts=False`` leaves out the two point-count checks (:func:`enough_points`; compare gives
    such curves the status ``too few points`` instead).
    """
    m = get_model(model)
    fn = "check_curves"
    if not isinstance(curves, CurveSet):
        raise TypeError(
            f"{fn}: curves must be a CurveSet (from curves_from_arrays, curves_from_pairs, "
            f"curves_from_frame, read_curves or load_paper_scores), got {type(curves).__name__}"
        )
    a = curves.arrays
    if not curves.keys or a.weight.size == 0:
        raise ValueError(f"{fn}: need at least one curve, got none from {curves.source}")
    labels = [key_label(k) for k in curves.keys]
    check_arrays(a, m, loss, fn=fn, labels=labels)
    warn_unused_sigma(curves.has_se, loss, fn)
    n_points = (a.weight > 0).sum(axis=1)
    _, n_distinct = distinct_slots(a.n, a.weight)
    for g, label in enumerate(labels):
        if counts and n_points[g] < m.n_params + 1:
            raise ValueError(
                f"{fn}: model {m.name!r} has {m.n_params} parameters and needs at least "
                f"{m.n_params + 1} points, got {int(n_points[g])} in {label}"
            )
        ok = a.weight[g] > 0
        distinct = int(n_distinct[g])
        if counts and distinct < min(m.n_params + 1, 3):
            raise ValueError(
                f"{fn}: curve {label} is degenerate: {distinct} distinct n, need at least "
                f"{min(m.n_params + 1, 3)}"
            )
        if np.ptp(a.y[g][ok]) == 0:
            raise ValueError(
                f"{fn}: curve {label} is degenerate: the same value {a.y[g][ok][0]:g} at every "
                "n, so it has no scaling to fit (no exponent, no transition)"
            )
    if loss == "weighted" and not curves.has_se:
        raise ValueError(
            f"{fn}: loss 'weighted' (absolute_sigma=True) needs a standard-error column: sigma= "
            "in curves_from_arrays or curves_from_frame, se_col= in read_curves (--se-col)"
        )
