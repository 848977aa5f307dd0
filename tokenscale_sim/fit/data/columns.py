"""What a column of curves may hold: numbers in CSV cells and in arrays, and which columns a
long table may carry without saying how they group its rows.

Shared by the readers of :mod:`tokenscale_sim.fit.data.curves` (CSV, arrays) and
:mod:`tokenscale_sim.fit.data.frames` (DataFrames, dicts); every check raises a one-line
``ValueError`` naming the function, the column, the line where there is one, and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np


class UngroupedColumns(ValueError):
    """A long table holds columns besides the predictor, the response and sigma, and no one
    said whether they tell curves apart (``group=``) or the table is one curve (``group=()``).

    Attributes: ``columns``: the other columns; ``used``: the columns read.
    """

    def __init__(self, fn: str, columns: Sequence[str], used: Sequence[str], ways: tuple[str, str]):
        self.columns, self.used = list(columns), list(used)
        super().__init__(
            f"{fn}: the table has columns {self.columns} besides {', '.join(self.used)}, and no "
            f"group was given: several curves? name their columns with {ways[0]}; one curve? "
            f"say so with {ways[1]}"
        )


def check_grouping(
    fn: str, columns: Sequence[str], used: Sequence[str], group: Sequence[str] | None
) -> tuple[str, ...]:
    """``group`` as a tuple, or :class:`UngroupedColumns` when it is ``None`` (not said) and
    ``columns`` hold others than ``used``: silently pooling every benchmark of a table into
    one curve is the mistake this refuses. ``group=()`` states that the table is one curve.

    >>> check_grouping("f", ["n", "y", "benchmark"], ["n", "y"], ())
    ()
    >>> check_grouping("f", ["n", "y", "benchmark"], ["n", "y"], None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tokenscale_sim.fit.data.columns.UngroupedColumns: f: the table has columns ['benchmark'] ...
    """
    if group is not None:
        return (group,) if isinstance(group, str) else tuple(group)
    other = [c for c in columns if c not in used]
    if other:
        raise UngroupedColumns(fn, other, used, (f"group={other!r}", "group=()"))
    return ()


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)",
                    re.IGNORECASE | re.ASCII)  # fmt: skip
"""A number as CSV writers spell it: ASCII decimal digits, point, exponent (Python's ``float``
alone would also take ``1_000`` and non-ASCII digits)."""


def cell_number(value: str, fn: str, column: str, where: str) -> float:
    shown = f"{value[:40]!r}{'...' if len(value) > 40 else ''}" if isinstance(value, str) else value
    if not isinstance(value, str) or not NUMBER.fullmatch(value.strip()):
        comma = isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+,\d+\s*", value)
        hint = "; a decimal comma? write 1.5, not 1,5" if comma else ""
        raise ValueError(f"{fn}: column {column!r} must be numeric, got {shown} ({where}){hint}")
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{fn}: column {column!r} must be finite, got {shown} ({where})")
    return x


KINDS_OF_NUMBERS = {
    "b": "booleans",
    "c": "complex numbers",
    "m": "time spans (timedelta64)",
    "M": "dates (datetime64)",
    "U": "strings",
    "S": "bytes",
    "V": "records",
}
"""Array kinds :func:`numeric` refuses, with the words its message uses (NumPy would read dates
as nanoseconds, drop an imaginary part, read booleans as 0/1 and parse numeric strings)."""


def numeric(values, name: str, fn: str) -> np.ndarray:
    """``values`` as a float64 array, or a one-line ``ValueError`` naming ``name``: real numbers
    only (ints, floats; never dates, booleans, complex numbers or strings, see
    :data:`KINDS_OF_NUMBERS`).

    >>> numeric([1, 2], "n", "f").dtype
    dtype('float64')
    >>> numeric(np.array(["2020-01-01"], dtype="datetime64[D]"), "n", "f")
    Traceback (most recent call last):
    ...
    ValueError: f: n must be numbers, got dates (datetime64)
    """
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError):  # ragged: the message below says what to do
        raw = None
    kind = None if raw is None else raw.dtype.kind
    if kind == "O" and raw is not None:  # a mixed object column: its first non-number decides
        odd = next((v for v in raw.flat if isinstance(v, bool | str | bytes | np.bool_)
                    or not isinstance(v, int | float | np.integer | np.floating | type(None))),
                   None)  # fmt: skip
        if odd is not None:
            raise ValueError(
                f"{fn}: {name} must be numbers, got {type(odd).__name__} {str(odd)[:40]!r}"
            )
    if kind in KINDS_OF_NUMBERS:
        raise ValueError(f"{fn}: {name} must be numbers, got {KINDS_OF_NUMBERS[kind]}")
    try:
        return np.asarray(values, dtype=float)
    except OverflowError:  # an int past float range
        raise ValueError(f"{fn}: {name} must be finite numbers, got an integer too large for a "
                         "float") from None  # fmt: skip
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{fn}: {name} must be numbers of one shape, got {type(values).__name__} "
            f"({str(err).splitlines()[0][:80]}); curves of different lengths: pass a list of "
            "(n, y) pairs (curves_from_pairs)"
        ) from None
