"""Curves in: long and wide CSV, arrays, and the paper's benchmark scores shipped with the package.

Reading is here (not in :mod:`tokenscale_sim.files`, which writes) so that every input check sits
next to the container it fills. All checks run before any fitting or writing and raise a one-line
``ValueError`` naming the function, the column or group, what was expected and what was found.

Long layout: one row per point, columns ``n``, ``score`` (names configurable), optional grouping
columns and an optional standard-error column. Wide layout: a column ``n`` and one column per
curve (its header names the curve); empty cells are points the curve does not have.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.fit.models import Model, get_model
from tokenscale_sim.fit.table import decode, parse_table
from tokenscale_sim.validation import check_memory

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
        keys: (G,) tuples of group values, one per curve.
        group: names of the grouping columns (the key entries).
        arrays: :class:`CurveArrays` of NumPy float64 (G, M).
        has_se: whether standard errors were given.
        source: where the curves came from (file name or dataset name).
    """

    keys: tuple[tuple[str, ...], ...]
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
        return " / ".join(self.keys[g]) or "curve"


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)",
                    re.IGNORECASE | re.ASCII)  # fmt: skip
"""A number as CSV writers spell it: ASCII decimal digits, point, exponent (Python's ``float``
alone would also take ``1_000`` and non-ASCII digits)."""


def _number(value: str, fn: str, column: str, where: str) -> float:
    shown = f"{value[:40]!r}{'...' if len(value) > 40 else ''}" if isinstance(value, str) else value
    if not isinstance(value, str) or not NUMBER.fullmatch(value.strip()):
        comma = isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+,\d+\s*", value)
        hint = "; a decimal comma? write 1.5, not 1,5" if comma else ""
        raise ValueError(f"{fn}: column {column!r} must be numeric, got {shown} ({where}){hint}")
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{fn}: column {column!r} must be finite, got {shown} ({where})")
    return x


def curves_from_points(
    points: Mapping[tuple[str, ...], Sequence[tuple[float, float, float, float]]],
    group: Sequence[str] = (),
    *,
    has_se: bool = False,
    source: str = "arrays",
    fn: str = "curves_from_points",
    token_counts: bool = True,
) -> CurveSet:
    """Pad ``{key: [(n, y, se, aux), ...]}`` into a :class:`CurveSet`, checking each curve.

    Checks: ``n >= 1`` (token counts; with ``token_counts=False``, for a law of any real
    predictor x, any finite value), ``y`` finite, ``se > 0`` when given, ``aux > 0``. Points are
    sorted by ``n``. Repeated ``n`` within a curve are replicates (several seeds or runs at one
    token count) and are kept as separate points: every fit weighs each of them, leave-one-out
    leaves out one distinct ``n`` with all its replicates (:func:`distinct_groups`).
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
        label = " / ".join(key) or "curve"
        arr = np.array(sorted(pts), dtype=float).reshape(-1, 4)
        if not len(arr):
            raise ValueError(f"{fn}: curve {label} has no points")
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


def curves_from_arrays(n, y, se=None, aux=None, keys: Sequence[str] | None = None) -> CurveSet:
    """Curves from arrays: ``n``, ``y`` (and optional ``se``, ``aux``) of shape (m,) or (G, m).

    >>> cs = curves_from_arrays([1, 2, 4], [1.0, 1.5, 2.2])
    >>> cs.arrays.n.shape
    (1, 3)
    """
    fn = "curves_from_arrays"
    y2 = np.atleast_2d(np.asarray(y, dtype=float))
    if y2.ndim != 2 or y2.size == 0:
        raise ValueError(
            f"{fn}: y must hold at least one curve of points, shape (m,) or (G, m), got shape "
            f"{np.shape(y)}"
        )
    n2 = np.broadcast_to(np.atleast_2d(np.asarray(n, dtype=float)), y2.shape)
    se2 = None if se is None else np.broadcast_to(np.asarray(se, float), y2.shape)
    aux2 = np.ones_like(y2) if aux is None else np.broadcast_to(np.asarray(aux, float), y2.shape)
    for name, arr in (("n", n2), ("y", y2), ("se", se2), ("aux", aux2)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise ValueError(f"{fn}: {name} must be finite, got NaN or inf")
    keys = keys or [str(g) for g in range(y2.shape[0])] if y2.shape[0] > 1 else [""]
    points = {}
    for g, key in enumerate(keys):
        s = np.ones(y2.shape[1]) if se2 is None else se2[g]
        points[(key,) if key else ()] = list(zip(n2[g], y2[g], s, aux2[g], strict=True))
    return curves_from_points(
        points, ("curve",) if y2.shape[0] > 1 else (), has_se=se is not None, fn=fn
    )


def curves_from_rows(
    rows: Iterable[Mapping[str, str]],
    columns: Sequence[str],
    *,
    n_col: str = "n",
    y_col: str = "score",
    group: Sequence[str] = (),
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
            n = _number(row[n_col], fn, n_col, f"line {i}")
            for c in curve_cols:
                if (row.get(c) or "").strip():
                    points.setdefault((c,), []).append(
                        (n, _number(row[c], fn, c, f"line {i}"), 1.0, 1.0)
                    )
        return curves_from_points(
            points, ("curve",), source=source, fn=fn, token_counts=token_counts
        )
    needed = [y_col, *group, *(c for c in (se_col, aux_col) if c)]
    for c in needed:
        if c not in columns:
            raise ValueError(f"{fn}: column {c!r} missing in {source} (columns: {columns})")
    for i, row in numbered:
        where = f"line {i}"
        key = tuple(row[c] for c in group)
        point = (
            _number(row[n_col], fn, n_col, where),
            _number(row[y_col], fn, y_col, where),
            _number(row[se_col], fn, se_col, where) if se_col else 1.0,
            _number(row[aux_col], fn, aux_col, where) if aux_col else 1.0,
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
    group: Sequence[str] = (),
    se_col: str | None = None,
    aux_col: str | None = None,
    layout: str = "auto",
    token_counts: bool = True,
) -> CurveSet:
    """Read curves from a CSV file (long or wide layout; ``auto`` picks long when ``y_col`` or a
    grouping column is present). ``token_counts=False``: the predictor column may hold any
    finite reals (laws of a general predictor x), not only token counts ``n >= 1``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing column, non-numeric or NaN value, ... (repeated ``n`` are replicates)
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"read_curves: {str(p)!r} is a folder, not a CSV file")
    if not p.is_file():
        raise FileNotFoundError(f"read_curves: no such file {str(p)!r}")
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

    Checks: a :class:`CurveSet` with at least one curve, at least ``p + 1`` points per curve
    (``p`` parameters; ``p + 1`` so that a residual variance exists), positive ``y`` under the log
    and Huber losses (and always for ``ln``-based starting values of positive models), standard
    errors present for ``loss="weighted"``; degenerate curves are refused naming the curve: a
    constant one (R^2 undefined, n_b anywhere) or one with fewer than 3 distinct ``n``.
    ``counts=False`` leaves out the two point-count checks (:func:`enough_points`; compare gives
    such curves the status ``too few points`` instead).
    """
    m = get_model(model)
    fn = "check_curves"
    if not isinstance(curves, CurveSet):
        raise TypeError(
            f"{fn}: curves must be a CurveSet (from curves_from_arrays, read_curves or "
            f"load_paper_scores), got {type(curves).__name__}"
        )
    a = curves.arrays
    if not curves.keys or a.weight.size == 0:
        raise ValueError(f"{fn}: need at least one curve, got none from {curves.source}")
    n_points = (a.weight > 0).sum(axis=1)
    for g, key in enumerate(curves.keys):
        label = " / ".join(key) or "curve"
        if counts and n_points[g] < m.n_params + 1:
            raise ValueError(
                f"{fn}: model {m.name!r} has {m.n_params} parameters and needs at least "
                f"{m.n_params + 1} points, got {int(n_points[g])} in {label}"
            )
        ok = a.weight[g] > 0
        if loss in ("log", "huber") and np.any(a.y[g][ok] <= 0):
            raise ValueError(
                f"{fn}: the {loss} loss needs scores > 0, got {a.y[g][ok].min():g} in {label}"
            )
        distinct = np.unique(a.n[g][ok]).size
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
        raise ValueError(f"{fn}: loss 'weighted' needs a standard-error column (--se-col)")
