"""Curves from Python data: pandas DataFrames, dicts of columns or of named curves, lists of pairs.

Every constructor ends in :func:`~tokenscale_sim.fit.data.curves.curves_from_points`, so the checks
are those of the CSV readers (finite values, ``sigma > 0``; replicates kept as points) and the
result is the one :class:`~tokenscale_sim.fit.data.curves.CurveSet` every fit takes.
:func:`as_curves` picks the constructor by the data's type; :func:`~tokenscale_sim.fit.fit_curves`
and the uncertainty functions call it, so they take these forms directly:

- a pandas DataFrame or a dict of equal-length columns in long layout (one row per point;
  group columns of any dtype: strings, ints, ...): :func:`curves_from_frame`;
- named curves ``{"A": (n, y), "B": (n, y, sigma)}`` or a list of ``(n, y)`` pairs, each curve
  of its own length: :func:`curves_from_pairs`.

pandas is optional: it is never imported here (a DataFrame is read through its own methods).
Predictor values are not range-checked here (``token_counts=False``): the fit checks the range
its law admits (``n >= 1`` for laws of token counts, any real for laws of ``x``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from tokenscale_sim.fit.data.curves import CurveSet, curves_from_points, numeric

CurvesLike = CurveSet | Mapping[Any, Any] | Sequence[Any] | Any
"""What :func:`as_curves` takes: a CurveSet, a DataFrame, a dict of columns or of named curves,
a list of ``(n, y)`` pairs (a DataFrame is typed ``Any``: pandas is optional)."""

Y_COLUMNS = ("y", "score")
"""Default response columns of :func:`curves_from_frame`, the first present is used."""


def _is_frame(data) -> bool:
    """A pandas DataFrame, recognised without importing pandas."""
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def _column(frame, name: str, columns: list[str], fn: str):
    if name not in columns:
        raise ValueError(f"{fn}: column {name!r} missing (columns: {columns})")
    column = frame[name]
    return column.to_numpy() if hasattr(column, "to_numpy") else column


def curves_from_frame(
    frame,
    n: str = "n",
    y: str | None = None,
    *,
    group: str | Sequence[str] = (),
    sigma: str | Any = None,
    aux: str | None = None,
    token_counts: bool = False,
) -> CurveSet:
    """Curves from a long table: a pandas DataFrame or a dict of equal-length columns.

    One row per point; rows with equal values in the ``group`` columns form one curve (in the
    order of first appearance), repeated ``n`` within a curve are replicates.

    Args:
        frame: ``pandas.DataFrame`` or ``{column: (rows,) array}``.
        n, y: predictor and response columns (``y`` default: ``"y"``, else ``"score"``).
        group: grouping column(s), of any dtype; a curve's key holds their values as Python
            scalars (``cs.keys[g] == ("llava", 7)``).
        sigma: standard errors of ``y``: a column name or a (rows,) array (scipy's
            ``curve_fit`` meaning under the ``linear`` loss, see ``FitOptions.absolute_sigma``).
        aux: column of per-point model input (Upsilon(n) for ``divergence_measured``).
        token_counts: refuse ``n < 1`` here (default: the fit checks its law's range).

    >>> cs = curves_from_frame({"model": [1, 1, 1, 2, 2, 2], "n": [1, 2, 4] * 2,
    ...                         "y": [1.0, 1.2, 1.5, 2.0, 2.3, 2.7]}, group="model")
    >>> cs.keys, cs.arrays.y.shape
    (((1,), (2,)), (2, 3))
    """
    fn = "curves_from_frame"
    if not (_is_frame(frame) or isinstance(frame, Mapping)):
        raise TypeError(
            f"{fn}: frame must be a pandas DataFrame or a dict of columns, got "
            f"{type(frame).__name__}"
        )
    names = getattr(frame, "columns", None)  # a DataFrame's Index has no truth value
    columns = [str(c) for c in (frame.keys() if names is None else names)]
    if y is None:
        y = next((c for c in Y_COLUMNS if c in columns), None)
        if y is None:
            raise ValueError(f"{fn}: no column 'y' or 'score'; name it with y= ({columns})")
    group = (group,) if isinstance(group, str) else tuple(group)
    values = {name: numeric(_column(frame, name, columns, fn), f"column {name!r}", fn)
              for name in (n, y, *([sigma] if isinstance(sigma, str) else []),
                           *([aux] if aux else []))}  # fmt: skip
    if sigma is not None and not isinstance(sigma, str):
        values["sigma"] = numeric(sigma, "sigma", fn)
    keys = [_column(frame, name, columns, fn) for name in group]
    lengths = {name: len(v) for name, v in values.items()}
    lengths.update({name: len(k) for name, k in zip(group, keys, strict=True)})
    if len(set(lengths.values())) != 1 or any(np.ndim(v) != 1 for v in values.values()):
        raise ValueError(f"{fn}: columns must be 1-D of one length, got lengths {lengths}")
    rows = len(values[n])
    ones = np.ones(rows)
    s = values[sigma if isinstance(sigma, str) else "sigma"] if sigma is not None else ones
    a = values[aux] if aux else ones
    key_rows = list(zip(*(np.asarray(k, dtype=object).tolist() for k in keys), strict=True))
    key_rows = key_rows or [()] * rows
    points: dict[tuple[Any, ...], list[tuple[float, float, float, float]]] = {}
    for i, key in enumerate(key_rows):
        missing = [name for name, v in zip(group, key, strict=True) if v is None or v != v]
        if missing:
            raise ValueError(f"{fn}: group column {missing[0]!r} has a missing value (row {i})")
        points.setdefault(key, []).append((values[n][i], values[y][i], s[i], a[i]))
    source = "DataFrame" if _is_frame(frame) else "dict"
    return curves_from_points(
        points, group, has_se=sigma is not None, source=source, fn=fn, token_counts=token_counts
    )


def curves_from_pairs(
    pairs: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]],
    *,
    keys: Sequence[Any] | None = None,
    token_counts: bool = False,
) -> CurveSet:
    """Curves of any lengths: ``[(n, y), ...]`` or ``{"name": (n, y), ...}``; each entry may add
    ``sigma`` as a third array (all or none of them).

    >>> cs = curves_from_pairs({"short": ([1, 2, 4], [1.0, 1.2, 1.5]),
    ...                         "long": ([1, 2, 4, 8, 16], [2.0, 2.3, 2.7, 3.1, 3.6])})
    >>> cs.keys, cs.arrays.n.shape, cs.arrays.weight.sum(axis=1).tolist()
    ((('short',), ('long',)), (2, 5), [3.0, 5.0])
    """
    fn = "curves_from_pairs"
    if isinstance(pairs, Mapping):
        keys, pairs = list(pairs.keys()) if keys is None else keys, list(pairs.values())
    if not isinstance(pairs, Sequence) or isinstance(pairs, str) or not pairs:
        raise ValueError(f"{fn}: pairs must be a non-empty list or dict of (n, y) pairs")
    keys = [str(g) for g in range(len(pairs))] if keys is None else list(keys)
    if len(keys) != len(pairs) or len(set(keys)) != len(keys):
        raise ValueError(f"{fn}: keys must be {len(pairs)} distinct names, got {keys}")
    sizes = {len(p) if isinstance(p, Sequence) else -1 for p in pairs}
    if not sizes <= {2, 3} or len(sizes) != 1:
        raise ValueError(
            f"{fn}: every entry must be (n, y) or every one (n, y, sigma), got entries of "
            f"{sorted(sizes)} items"
        )
    has_se = sizes == {3}
    points = {}
    for key, entry in zip(keys, pairs, strict=True):
        cols = [numeric(x, name, fn) for x, name in zip(entry, ("n", "y", "sigma"), strict=False)]
        m = cols[1].shape
        if cols[1].ndim != 1 or any(c.shape not in ((), m) for c in cols):
            raise ValueError(
                f"{fn}: curve {key}: n, y (and sigma) must be 1-D of one length, got shapes "
                f"{[c.shape for c in cols]}"
            )
        n_, y_, s_ = (np.broadcast_to(c, m) for c in (*cols, *([np.ones(m)] * (3 - len(cols)))))
        points[(key,)] = list(zip(n_, y_, s_, np.ones(m), strict=True))
    return curves_from_points(
        points, ("curve",), has_se=has_se, source="pairs", fn=fn, token_counts=token_counts
    )


def as_curves(data: CurvesLike, *, fn: str = "as_curves") -> CurveSet:
    """``data`` as a :class:`~tokenscale_sim.fit.data.curves.CurveSet`, whatever form it came in.

    A CurveSet is returned as it is; a DataFrame or a dict with an ``"n"`` column goes to
    :func:`curves_from_frame` (columns ``n``, ``y`` or ``score``, optional ``sigma``: one curve;
    a frame with other columns, which may hold several curves, is refused); a dict of named
    ``(n, y)`` curves or a non-empty list of ``(n, y)`` pairs to :func:`curves_from_pairs`.
    Anything else is a ``TypeError`` naming ``fn``.

    >>> as_curves([([1, 2, 4], [1.0, 1.2, 1.5])]).arrays.n.shape
    (1, 3)
    """
    if isinstance(data, CurveSet):
        return data
    if _is_frame(data) or (isinstance(data, Mapping) and "n" in data):
        names = getattr(data, "columns", None)  # a DataFrame's Index has no truth value
        columns = {str(c) for c in (cast(Mapping, data).keys() if names is None else names)}
        others = sorted(columns - {"n", "sigma", *Y_COLUMNS})
        if others:  # perhaps several curves (a benchmark column): never merged into one
            raise ValueError(
                f"{fn}: the frame has columns {others} besides n, y and sigma; give the curves "
                "with fit.curves_from_frame(frame, group=...) (or drop the columns if it is one "
                "curve)"
            )
        return curves_from_frame(data, sigma="sigma" if "sigma" in columns else None)
    if isinstance(data, Mapping) and data:
        return curves_from_pairs(data)
    if isinstance(data, list | tuple) and data and all(isinstance(p, list | tuple) for p in data):
        return curves_from_pairs(data)
    raise TypeError(
        f"{fn}: curves must be a CurveSet (from curves_from_arrays, curves_from_pairs, "
        "curves_from_frame, read_curves or load_paper_scores), a DataFrame or dict of columns "
        "n, y (long layout), a dict of named (n, y) curves or a list of (n, y) pairs; got "
        f"{type(data).__name__}"
    )
