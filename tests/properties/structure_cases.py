"""Generated inputs made of files: structure files, grid files, hidden-state arrays, measure
folders and CSV tables, each a valid base with one or two hostile changes.

A case is a :class:`Files`: the file names and bytes to lay down in the example's folder (a
``None`` body makes a FIFO: a reader that opens it blocks, which must not hang a command) and
the name of the main file.
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from bad_input_strategies import deep, toml_scalar, toml_values
from hypothesis import strategies as st


class Files(NamedTuple):
    main: str
    bodies: dict[str, bytes | None]


def lay_down(root: Path, files: Files) -> Path:
    """Write ``files`` under ``root`` (FIFOs for ``None`` bodies); return the main file's path."""
    for name, body in files.bodies.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if body is None:
            os.mkfifo(path)
        else:
            path.write_bytes(body)
    return root / files.main


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


# ------------------------------------------------------------------------------ structure files

BASE_STRUCTURE: dict[str, Any] = {
    "name": "s",
    "terms": [
        {"weight": 0.2, "branch": [[1.0, 1.0], [1.0, 1.0]], "kernel": {"kind": "ones"}},
        {"weight": 0.8, "coupling": 0.3, "kernel": {"kind": "exponential", "length": 8.0}},
    ],
}

FIELD_PATHS = (
    ("name",), ("terms",), ("terms", 0), ("terms", 0, "weight"), ("terms", 0, "branch"),
    ("terms", 0, "branch", 0), ("terms", 0, "branch", 0, 1), ("terms", 1, "coupling"),
    ("terms", 1, "kernel"), ("terms", 1, "kernel", "kind"), ("terms", 1, "kernel", "length"),
    ("terms", 0, "kernel"), ("terms", 1, "weight"),
)  # fmt: skip

KERNEL_SPECS = st.sampled_from([
    {"kind": "powerlaw", "gamma": 1.5}, {"kind": "grid", "length": 2.0, "width": 3},
    {"kind": "grid", "length": 2.0, "width": 0}, {"kind": "grid", "length": 2.0, "width": 2.5},
    {"kind": "identity", "length": 1.0}, {"kind": "dense", "matrix": [[1.0, 0.5], [0.5, 1.0]]},
    {"kind": "dense", "matrix": [[1.0, 2.0], [2.0, 1.0]]}, {"kind": "dense", "path": "k.npy"},
    {"kind": "dense", "path": "k.npy", "matrix": [[1.0]]}, {"kind": "dense", "path": "."},
    {"kind": "dense", "path": "fifo.npy"}, {"kind": "dense", "path": "text.npy"},
    {"kind": "dense", "path": "missing.npy"}, {"kind": "dense", "path": "/etc/passwd"},
    {"kind": "DenseKernel", "path": "k.npy", "size": 3}, {"kind": "exp", "length": 1e-300},
    {"kind": "Exponential"}, {"kind": ""}, {"kind": "x" * 500},
])  # fmt: skip
"""Kernels a user might write, most of them wrong."""

PRESETS = st.sampled_from([
    {"structure": "exchangeable", "psi_eq": 0.5, "psi_aa": 0.3, "psi_ab": 0.25},
    {"structure": "exchangeable", "psi_eq": 2.0, "psi_aa": 0.3},
    {"structure": "exchangeable", "psi_eq": "0.5", "psi_aa": 0.3},
    {"structure": "decaying", "length": -1.0, "coupling": 0.3},
    {"structure": "decaying", "length": 4.0, "coupling": 0.3, "kernel": "nope"},
    {"structure": "patch-grid", "length": 2.0, "width": 10**30},
    {"structure": "shared", "weight": 1.0},
    {"structure": "exchangeable", "psi_eq": 0.5, "psi_aa": 0.3, "bogus": 1},
    {"structure": "nope"},
    {"structure": 3},
])  # fmt: skip

DENSE_BLOCKS = st.sampled_from([
    np.eye(3), np.full((3, 3), 0.5) + 0.5 * np.eye(3), np.array([[1.0, 2.0], [2.0, 1.0]]),
    np.ones((2, 3)), np.eye(3) * (1 + 1j), np.array([[np.nan, 0.0], [0.0, 1.0]]),
    np.eye(3).astype(np.float32), np.eye(3, dtype=int), np.zeros((0, 0)), np.ones((2, 2, 2)),
    np.array([["a", "b"], ["c", "d"]]), np.array([[1.0, 0.0], [0.0, 1.0]], dtype=object),
    np.eye(2, dtype=bool), np.array(5.0),
])  # fmt: skip


def _set(doc: Any, path: tuple, value: Any, *, delete: bool = False) -> None:
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return


def _toml(doc: Any) -> str:
    """A structure document as TOML (arrays of tables for ``terms`` when they are tables)."""
    if not isinstance(doc, dict):
        return f"value = {toml_scalar(doc)}\n"
    lines, tables = [], []
    for key, value in doc.items():
        if (
            key == "terms"
            and isinstance(value, list)
            and value
            and all(isinstance(t, dict) for t in value)
        ):
            tables = value
        else:
            lines.append(f"{key} = {toml_scalar(value)}")
    for term in tables:
        lines += ["", "[[terms]]", *(f"{k} = {toml_scalar(v)}" for k, v in term.items())]
    return "\n".join(lines) + "\n"


@st.composite
def structure_files(draw) -> Files:
    """A structure file (TOML or JSON) with one to three hostile changes, and its side files."""
    doc = copy.deepcopy(BASE_STRUCTURE)
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["set", "delete", "kernel", "preset", "unknown", "term"]))
        if change == "set":
            _set(doc, draw(st.sampled_from(FIELD_PATHS)), draw(toml_values))
        elif change == "delete":
            _set(doc, draw(st.sampled_from(FIELD_PATHS)), None, delete=True)
        elif change == "kernel":
            _set(doc, ("terms", 1, "kernel"), draw(KERNEL_SPECS))
        elif change == "preset":
            _set(doc, ("terms", draw(st.integers(0, 1))), draw(PRESETS))
        elif change == "unknown":
            where = draw(st.sampled_from([(), ("terms", 0), ("terms", 1, "kernel")]))
            _set(doc, (*where, draw(st.sampled_from(["extra", "Weight", "terms2"]))), 1.0)
        else:
            _set(doc, ("terms",), [*doc.get("terms", []), draw(PRESETS)])
    as_json = draw(st.booleans())
    text = json.dumps(doc) if as_json else _toml(doc)
    raw = draw(st.sampled_from(["none", "bom", "deep", "digits", "truncate", "junk", "empty"]))
    if raw == "bom":
        text = "\ufeff" + text
    elif raw == "deep":
        depth = draw(st.sampled_from([50, 1000, 100_000]))
        field = '"weight": ' if as_json else "weight = "
        text = text.replace(field + "0.2", field + deep(depth), 1)
    elif raw == "digits":
        digits = "9" * draw(st.sampled_from([300, 400, 5000]))
        field = '"length": ' if as_json else "length = "
        text = text.replace(field + "8.0", field + digits, 1)
    elif raw == "truncate":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif raw == "junk":
        text = draw(st.sampled_from(["\x00\x01\xff", "[[terms]\n", "{", "terms = 1\n", "é"]))
    elif raw == "empty":
        text = ""
    body = text.encode("utf-8") if raw != "junk" else text.encode("latin-1", "replace")
    if draw(st.booleans()) and raw == "bom":
        body = text.encode("utf-16")
    main = "s.json" if as_json else "s.toml"
    bodies: dict[str, bytes | None] = {
        main: body,
        "k.npy": npy_bytes(draw(DENSE_BLOCKS)),
        "text.npy": b"not an array\n",
        "fifo.npy": None,
    }
    return Files(main, bodies)


# ------------------------------------------------------------------------------ sweep grid specs

SWEEP_NAMES = ("shared", "image", "weight", "length", "coupling", "local_coupling", "d", "n_max")
spec_parts = st.sampled_from(
    ["0", "1", "0.1", "0.5", "4", "-1", "nan", "inf", "1e400", "9" * 300, "", "x", "log", "2.5"]
)


@st.composite
def grid_specs(draw) -> str:
    """One ``--grid NAME=SPEC``: a name (sometimes not an axis) and a spec with hostile parts."""
    name = draw(st.one_of(st.sampled_from(SWEEP_NAMES), st.sampled_from(["", "Length", "x"])))
    form = draw(st.sampled_from(["range", "log", "list", "junk"]))
    if form == "range":
        count = draw(st.sampled_from(["1", "2", "3", "0", "-2", "2.5", "1000000000", "x"]))
        spec = f"{draw(spec_parts)}:{draw(spec_parts)}:{count}"
    elif form == "log":
        spec = f"{draw(spec_parts)}:{draw(spec_parts)}:{draw(st.sampled_from(['2', '3']))}:log"
    elif form == "list":
        spec = ",".join(draw(st.lists(spec_parts, min_size=1, max_size=3)))
    else:
        spec = draw(st.sampled_from(["", ":", "::", "1:2", "1:2:3:4:5", "1:2:3:lin", ",,"]))
    return f"{name}={spec}"


@st.composite
def grid_files(draw) -> Files:
    """A ``--grid-file``: [grid] and [set] tables with hostile values, shapes and nesting."""
    grid_value = st.one_of(
        st.lists(st.sampled_from([0.1, 0.2, 4.0, -1.0, 10**400, "x", True]), max_size=3),
        st.sampled_from(["0.1:0.3:2", "1:4:2:log", "x", ""]),
        toml_values,
    )
    grid = draw(
        st.one_of(
            st.dictionaries(st.sampled_from(SWEEP_NAMES), grid_value, max_size=2),
            toml_values,
        )
    )
    fixed = draw(st.one_of(st.dictionaries(st.sampled_from(SWEEP_NAMES), toml_values,
                                           max_size=2), toml_values))  # fmt: skip
    lines = []
    for table, value in (("grid", grid), ("set", fixed)):
        if isinstance(value, dict):
            lines += [f"[{table}]", *(f"{k} = {toml_scalar(v)}" for k, v in value.items())]
        else:
            lines.insert(0, f"{table} = {toml_scalar(value)}")
    text = "\n".join(lines) + "\n"
    raw = draw(st.sampled_from(["none", "deep", "digits", "extra", "bom", "junk"]))
    if raw == "deep":
        text = f"[grid]\nlength = {deep(draw(st.sampled_from([100, 5000, 100_000])), '4.0')}\n"
    elif raw == "digits":
        text = f"[grid]\nlength = [{'9' * 500}, 2.0]\n[set]\nweight = {'1' * 400}\n"
    elif raw == "extra":
        text += "[other]\nx = 1\n"
    elif raw == "bom":
        text = "\ufeff" + text
    elif raw == "junk":
        text = "\x00\xff[grid"
    return Files("g.toml", {"g.toml": text.encode("utf-8", "surrogateescape")})


# ------------------------------------------------------------------------------ hidden states


def _hidden_base(rng: np.random.Generator, pairs: int = 3, n: int = 6, d: int = 5) -> np.ndarray:
    return rng.standard_normal((pairs, 2, n, d))


@st.composite
def hidden_files(draw) -> Files:
    """A ``--hidden`` file (.npy, .npz, or two .npy files A and B) with a hostile change."""
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    base = _hidden_base(rng)
    change = draw(st.sampled_from([
        "none", "nan", "inf", "ndim3", "ndim5", "branches3", "n0", "d0", "pairs0", "complex",
        "object", "bool", "int", "float16", "zeros", "huge", "strings", "truncate", "text",
        "npz_keys", "npz_mask", "npz_lengths", "npz_ab", "npz_ab_mismatch", "pair_ab", "fifo",
    ]))  # fmt: skip
    array: Any = base
    bodies: dict[str, bytes | None] = {}
    main = "h.npy"
    if change == "nan":
        array = base.copy()
        array[0, 0, 1, 2] = np.nan
    elif change == "inf":
        array = base.copy()
        array[1, 1, 0, 0] = np.inf
    elif change == "ndim3":
        array = base[0]
    elif change == "ndim5":
        array = base[None]
    elif change == "branches3":
        array = np.concatenate([base, base[:, :1]], axis=1)
    elif change == "n0":
        array = base[:, :, :0]
    elif change == "d0":
        array = base[..., :0]
    elif change == "pairs0":
        array = base[:0]
    elif change == "complex":
        array = base * (1 + 1j)
    elif change == "object":
        array = base.astype(object)
    elif change == "bool":
        array = base > 0
    elif change == "int":
        array = (base * 10).astype(np.int64)
    elif change == "float16":
        array = base.astype(np.float16)
    elif change == "zeros":
        array = np.zeros_like(base)
    elif change == "huge":
        array = base * 1e300
    elif change == "strings":
        array = base.astype(str)
    if change == "truncate":
        bodies[main] = npy_bytes(base)[: draw(st.integers(0, 200))]
    elif change == "text":
        bodies[main] = b"pairs,2,n,d\n1,2,3\n"
    elif change == "fifo":
        bodies[main] = None
    elif change.startswith("npz"):
        main = "h.npz"
        arrays: dict[str, Any] = {"hidden": base}
        if change == "npz_keys":
            arrays = {"states": base}
        elif change == "npz_mask":
            arrays["mask"] = draw(
                st.sampled_from(
                    [
                        np.ones((3, 6), bool),
                        np.zeros((3, 6), bool),
                        np.ones((2, 6), bool),
                        np.full((3, 6), 2.0),
                        np.array([[True, False, True, True, True, True]] * 3),
                    ]
                )
            )
        elif change == "npz_lengths":
            arrays["lengths"] = draw(st.sampled_from([
                np.array([6, 6, 6]), np.array([0, 6, 6]), np.array([7, 1, 1]),
                np.array([-1, 2, 3]), np.array([2.5, 3, 3]), np.array([6, 6])]))  # fmt: skip
        elif change == "npz_ab":
            arrays = {"a": base[:, 0], "b": base[:, 1]}
        elif change == "npz_ab_mismatch":
            arrays = {"a": base[:, 0], "b": base[:2, 1, :, :4]}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        bodies[main] = buf.getvalue()
    elif change == "pair_ab":
        other = draw(st.sampled_from([base[:, 1], base[:2, 1], base[:, 1, :, :3], base[:, 1] * 1j]))
        bodies = {"a.npy": npy_bytes(base[:, 0]), "b.npy": npy_bytes(other)}
        main = "a.npy"
    else:
        bodies[main] = npy_bytes(np.asarray(array))
    return Files(main, bodies)


# ------------------------------------------------------------------------------ measure folders


@st.composite
def measure_folders(draw, valid: dict[str, bytes]) -> Files:
    """A ``tokenscale measure`` folder (``valid``: its curves.csv and measure.json bytes) with a
    field missing, null or of the wrong type, a short or non-numeric row, or damaged JSON."""
    meta = json.loads(valid["measure.json"])
    csv_text = valid["curves.csv"].decode("utf-8")
    layer_key = next(iter(meta["layers"]))
    change = draw(st.sampled_from([
        "none", "d", "d_missing", "layers", "layers_missing", "json_junk", "json_empty",
        "csv_short", "csv_cell", "csv_column", "csv_empty", "csv_header", "csv_bom", "csv_n",
        "csv_missing", "json_missing", "json_array",
    ]))  # fmt: skip
    if change == "d":
        meta["layers"][layer_key]["d"] = draw(st.sampled_from(
            [0, -5, 2.7, None, "x", 10**400, 1e300, True, [], float("nan")]))  # fmt: skip
    elif change == "d_missing":
        del meta["layers"][layer_key]["d"]
    elif change == "layers":
        meta["layers"] = draw(st.sampled_from([None, [], {}, 3, "x", [1, 2]]))
    elif change == "layers_missing":
        del meta["layers"]
    lines = csv_text.splitlines()
    if change == "csv_short":
        row = draw(st.integers(1, len(lines) - 1))
        lines[row] = ",".join(lines[row].split(",")[: draw(st.integers(0, 3))])
    elif change == "csv_cell":
        row = draw(st.integers(1, len(lines) - 1))
        cells = lines[row].split(",")
        cells[draw(st.integers(0, len(cells) - 1))] = draw(
            st.sampled_from(["x", "", "inf", "1e400", "nan", "1,5", "-1"]))  # fmt: skip
        lines[row] = ",".join(cells)
    elif change == "csv_column":
        header = lines[0].split(",")
        drop = draw(st.sampled_from([i for i, h in enumerate(header) if h.endswith("_mean")]))
        lines = [",".join(c for i, c in enumerate(ln.split(",")) if i != drop) for ln in lines]
    elif change == "csv_header":
        lines = lines[:1]
    elif change == "csv_n":
        lines = [lines[0], *lines[2:]]
    text_csv = "\n".join(lines) + "\n"
    if change == "csv_empty":
        text_csv = ""
    elif change == "csv_bom":
        text_csv = "\ufeff" + text_csv
    text_json = json.dumps(meta)
    if change == "json_junk":
        text_json = text_json[: len(text_json) // 2]
    elif change == "json_empty":
        text_json = ""
    elif change == "json_array":
        text_json = "[1, 2]"
    bodies: dict[str, bytes | None] = {
        "m/curves.csv": text_csv.encode("utf-8"),
        "m/measure.json": text_json.encode("utf-8"),
    }
    if change == "csv_missing":
        del bodies["m/curves.csv"]
    elif change == "json_missing":
        del bodies["m/measure.json"]
    return Files("m", bodies)


# ------------------------------------------------------------------------------ CSV tables

BASE_ROWS = [["curve", "n", "score"]] + [
    [name, str(n), f"{scale * n**0.1:.4f}"]
    for name, scale in (("a", 30.0), ("b", 40.0))
    for n in (1, 4, 16, 64, 256)
]


@st.composite
def csv_tables(draw) -> Files:
    """A long CSV of two curves with hostile cells, shapes, encodings and delimiters."""
    rows = [list(r) for r in BASE_ROWS]
    for _ in range(draw(st.integers(0, 2))):
        if not rows:  # every row dropped already
            break
        change = draw(st.sampled_from(
            ["cell", "short", "long", "dup_column", "drop_rows", "header"]))  # fmt: skip
        row = draw(st.integers(1, len(rows) - 1)) if len(rows) > 1 else 0
        if change == "cell" and rows[row]:
            col = draw(st.integers(0, len(rows[row]) - 1))
            rows[row][col] = draw(st.sampled_from([
                "x", "", "nan", "inf", "-inf", "1e400", "1" * 400, "0", "-3", "1,5", "1_000",
                "١٢", "2026-01-01", "True", " 7 ", "0x1p3", "5e-324"]))  # fmt: skip
        elif change == "short":
            rows[row] = rows[row][:-1]
        elif change == "long":
            rows[row] = [*rows[row], "9"]
        elif change == "dup_column":
            rows = [[*r, r[-1]] for r in rows]
            rows[0][-1] = rows[0][draw(st.integers(0, 2))]
        elif change == "drop_rows":
            rows = rows[: draw(st.integers(0, len(rows)))]
        else:
            rows[0][draw(st.integers(0, 2))] = draw(st.sampled_from(["", "N", "score", "curve"]))
    delimiter = draw(st.sampled_from([",", ",", ";", "\t", "|", " "]))
    text = "\n".join(delimiter.join(r) for r in rows) + "\n"
    raw = draw(st.sampled_from(["none", "none", "bom", "crlf", "utf16", "binary", "empty"]))
    if raw == "bom":
        body = ("\ufeff" + text).encode("utf-8")
    elif raw == "crlf":
        body = text.replace("\n", "\r\n").encode("utf-8")
    elif raw == "utf16":
        body = text.encode("utf-16")
    elif raw == "binary":
        body = b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256))
    elif raw == "empty":
        body = b""
    else:
        body = text.encode("utf-8")
    return Files("s.csv", {"s.csv": body})
