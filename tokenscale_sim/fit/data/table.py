"""CSV text in: the one reading layer under the table readers (:func:`~.data.read_curves`).

It takes what spreadsheet programs and scripts write and refuses, in one line naming the source
and the line, what it cannot read without guessing:

- bytes: UTF-8 with or without a byte-order mark, UTF-16 with one; other 8-bit text (Latin-1,
  Windows-1252) is decoded as Windows-1252 (numbers are ASCII in every one of them, so only
  labels could differ); NUL bytes without a UTF-16 mark, other control characters and
  undecodable bytes are not text.
- delimiter: ``,``; a header without a comma but with ``;`` or a tab uses that (European and
  tab-separated exports).
- shape: a header row, then rows of exactly as many fields (extra *empty* trailing fields are
  dropped); blank lines are skipped; quoted fields may hold the delimiter and newlines (line
  numbers count physical lines); a column name appears once; a field is at most
  :data:`FIELD_LIMIT` characters.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

FIELD_LIMIT = csv.field_size_limit()
"""Longest field accepted (Python's csv default, 131072 characters)."""

DELIMITERS = (",", ";", "\t")


class Table(NamedTuple):
    """A parsed CSV: ``columns`` (header names, stripped), ``rows`` (dicts column -> text) and
    ``lines`` (the physical line each row starts on, 1-based, for messages)."""

    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]


NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def regular_file(fn: str, path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it names a regular file (links followed), else
    ``FileNotFoundError`` ("no such file") or ``ValueError`` saying what it is instead (a
    folder, a FIFO, ...), never opened: reading a FIFO blocks until someone writes to it.

    >>> regular_file("read_curves", "/", "a CSV file")
    Traceback (most recent call last):
    ...
    ValueError: read_curves: '/' is a folder, not a CSV file
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{fn}: no such file {str(p)!r}") from None
    except OSError as err:
        raise ValueError(f"{fn}: cannot read {str(p)!r} ({err.strerror or err})") from None
    for test, kind in NOT_REGULAR:
        if test(mode):
            raise ValueError(f"{fn}: {str(p)!r} is {kind}, not {what}")
    return p


def decode(data: bytes, source: str, fn: str = "read_curves") -> str:
    """CSV bytes as text (see the module docstring for the encodings).

    >>> decode(b"\\xef\\xbb\\xbfn,score\\n", "f.csv")
    'n,score\\n'
    >>> decode(b"n,caf\\xe9\\n", "f.csv")  # Latin-1
    'n,café\\n'
    """
    not_text = ValueError(f"{fn}: {source!r} is not a text (CSV) file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise not_text from None
        if not re.search(r"[0-9A-Za-z]", text):  # binary bytes behind a mark: no CSV at all
            raise not_text
    elif b"\x00" in data:
        raise not_text
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    if CONTROL.search(text):
        raise not_text
    return text


CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")
"""Characters no CSV text holds (control characters other than tab and line ends, and the
replacement character of undecodable bytes)."""


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def parse_table(text: str, source: str, fn: str = "read_curves") -> Table:
    """Parse CSV ``text`` (from ``source``, named in messages) into a :class:`Table`.

    Raises:
        ValueError: an empty text, a repeated or missing column name with values under it, a
            row with fewer fields than the header (or extra fields that are not empty), a field
            longer than :data:`FIELD_LIMIT`, broken quoting; each naming ``source`` and the line.

    >>> t = parse_table('n,score\\n1,"2.5"\\n\\n4,3\\n', "f.csv")
    >>> t.columns, t.rows[1], t.lines
    (['n', 'score'], {'n': '4', 'score': '3'}, [2, 4])
    >>> parse_table("n,score\\n1\\n", "f.csv")
    Traceback (most recent call last):
    ...
    ValueError: read_curves: 'f.csv' line 2 has 1 field, the header has 2 (n, score)
    """
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ValueError(f"{fn}: {source!r} is empty (expected a header row, then data rows)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    columns: list[str] | None = None
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or not any(f.strip() for f in fields):
                continue  # a blank line (or one of empty fields only)
            if columns is None:
                columns = _header(fields, source, fn)
                continue
            if len(fields) > len(columns) and not any(f.strip() for f in fields[len(columns) :]):
                fields = fields[: len(columns)]
            if len(fields) != len(columns):
                s = "" if len(fields) == 1 else "s"
                raise ValueError(
                    f"{fn}: {source!r} line {line} has {len(fields)} field{s}, the header has "
                    f"{len(columns)} ({', '.join(columns)})"
                )
            for name, value in zip(columns, fields, strict=True):
                if not name and value.strip():
                    raise ValueError(
                        f"{fn}: {source!r} line {line} has a value ({value[:20]!r}) under a "
                        "column without a name"
                    )
            rows.append(dict(zip(columns, fields, strict=True)))
            lines.append(line)
    except csv.Error as err:
        raise ValueError(
            f"{fn}: {source!r} line {reader.line_num} is not valid CSV: {err}"
        ) from None
    assert columns is not None  # a non-blank text has a header
    return Table(columns, rows, lines)


def _header(fields: list[str], source: str, fn: str) -> list[str]:
    columns = [f.strip() for f in fields]
    while columns and not columns[-1]:
        columns.pop()  # trailing empty header cells (spreadsheet exports)
    named = [c for c in columns if c]
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise ValueError(
            f"{fn}: {source!r} names column {repeated[0]!r} more than once in its header"
        )
    return columns
