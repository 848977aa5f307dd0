"""Structure files: any ``Sigma = sum_r w_r C_r (x) K_r`` written as TOML (or JSON).

A structure file lists terms; each term is a 2 x 2 branch matrix ``C`` times a position kernel
``K``, scaled by an optional ``weight`` (default 1)::

    name = "shared + decaying"

    [[terms]]                       # an image-independent component: every cosine + 0.2
    weight = 0.2
    branch = [[1.0, 1.0], [1.0, 1.0]]
    kernel = { kind = "ones" }

    [[terms]]                       # C = [[1, e], [e, 1]] with e = coupling
    weight = 0.8
    coupling = 0.3
    kernel = { kind = "exponential", length = 8.0 }

    [[terms]]                       # a dense n x n block, read from .npy (relative to the file)
    branch = [[1.0, 0.0], [0.0, 1.0]]
    kernel = { kind = "dense", path = "block.npy" }

Branch matrix: ``branch = [[C_AA, C_AB], [C_BA, C_BB]]`` or ``coupling = e`` (``[[1, e], [e, 1]]``).
Kernels (:data:`KERNELS`): ``identity``, ``ones``, ``exponential`` (``length``), ``powerlaw``
(``gamma``), ``grid`` (``length``, optional ``width``), ``dense`` (``path`` to an n x n .npy, or
``matrix`` inline). A term may instead name a built-in structure with its parameters,
``structure = "exchangeable"`` with ``psi_eq``, ``psi_aa``, ``psi_bb``, ``psi_ab`` (also
``decaying``, ``patch-grid``, ``shared``), scaled by its ``weight``. The names of
:meth:`tokenscale_sim.structures.terms.Structure.describe` (``Exponential``, ``Grid2D``,
``DenseKernel`` ...) are accepted too, so the ``structure`` a run writes into its result.json is
itself a structure file.

Checked on reading, before any work (``ValueError`` naming the file, the term and the field):
unknown or missing fields, numbers out of range, a branch matrix of a structured kernel that is not
symmetric positive semi-definite (then ``Sigma`` is PSD for every n), dense blocks that are not
square or of unequal sizes, and a diagonal of ``Sigma`` that is not 1. Structures with dense terms
are checked as a whole (:meth:`~tokenscale_sim.structures.terms.Structure.validate` at their size).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.structures import kernels as kn
from tokenscale_sim.structures import terms as st

__all__ = [
    "KERNELS",
    "MAX_DEPTH",
    "Param",
    "load_structure",
    "read_structure_data",
    "resolve_params",
    "structure_from_data",
    "to_toml",
]

_POSITIVE = (0.0, math.inf)

KERNELS: dict[str, tuple[Callable[..., Any], dict[str, tuple[float, float] | None]]] = {
    "identity": (kn.Identity, {}),
    "ones": (kn.Ones, {}),
    "exponential": (kn.Exponential, {"length": _POSITIVE}),
    "powerlaw": (kn.PowerLaw, {"gamma": _POSITIVE}),
    "grid": (kn.Grid2D, {"length": _POSITIVE, "width": None}),
}
"""Structured kernels: constructor and fields (``(lo, hi)``: a real in (lo, hi]; None: an
optional integer >= 1). ``dense`` is read from ``path`` or ``matrix``."""

_ALIASES = {"grid2d": "grid", "densekernel": "dense", "shared": "ones", "exp": "exponential"}
_PRESETS = ("exchangeable", "decaying", "patch-grid", "shared")
_TERM_FIELDS = {"weight", "branch", "coupling", "kernel", "structure"}


MAX_DEPTH = 32
"""Deepest nesting of tables and lists a structure or grid file may have."""

_PARAM_FIELDS = {"param", "value", "min", "max"}


@dataclass(frozen=True)
class Param:
    """A named parameter: its value in the file and its bounds (``lo <= value <= hi``)."""

    name: str
    value: float
    lo: float = -math.inf
    hi: float = math.inf


def _number(source: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{source}: {where} must be a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{source}: {where} must be a number in float range, got an integer "
                         f"of {len(str(abs(int(value))))} digits") from None  # fmt: skip
    if math.isnan(x):
        raise ValueError(f"{source}: {where} must be a number, got nan")
    return x


def _param(source: str, where: str, spec: Mapping[str, Any], known: dict[str, Param]) -> Param:
    unknown = set(spec) - _PARAM_FIELDS
    if unknown:
        raise ValueError(f"{source}: {where} must be a parameter table with fields among "
                         f"param, value, min, max, got {sorted(unknown)}")  # fmt: skip
    name = spec["param"]
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{source}: {where}.param must be a name (letters, digits, _), "
                         f"got {name!r}")  # fmt: skip
    if "value" not in spec:
        if name not in known:
            raise ValueError(f"{source}: {where}: parameter {name!r} needs a value where it is "
                             "first used")  # fmt: skip
        if set(spec) != {"param"}:
            raise ValueError(
                f"{source}: {where}: a repeated parameter {name!r} takes its "
                "value and bounds from its first use: give the name alone"
            )
        return known[name]
    value = _number(source, f"{where}.value", spec["value"])
    lo = _number(source, f"{where}.min", spec.get("min", -math.inf))
    hi = _number(source, f"{where}.max", spec.get("max", math.inf))
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{source}: {where}.value of {name!r} must be finite and in "
                         f"[{lo:g}, {hi:g}], got {value!r}")  # fmt: skip
    p = Param(name, value, lo, hi)
    if name in known and known[name] != p:
        raise ValueError(f"{source}: {where}: parameter {name!r} given twice with different "
                         f"values or bounds ({known[name]} and {p})")  # fmt: skip
    return p


def resolve_params(
    data: object, source: str = "structure"
) -> tuple[object, dict[str, Param], list[tuple[tuple, str]]]:
    """Replace every parameter table of parsed file ``data`` by its value.

    Returns:
        (plain data, ``{name: Param}`` in order of first use, ``[(path, name), ...]`` where
        each ``path`` is the tuple of keys and indices to one use).

    Raises:
        ValueError: a bad parameter table, nesting deeper than :data:`MAX_DEPTH`, or a number
            beyond float range (naming ``source`` and where).
    """
    known: dict[str, Param] = {}
    slots: list[tuple[tuple, str]] = []

    def walk(node: object, path: tuple) -> object:
        if len(path) > MAX_DEPTH:
            raise ValueError(f"{source}: nested deeper than {MAX_DEPTH} levels at "
                             f"{_where(path[:4])}...")  # fmt: skip
        if isinstance(node, Mapping):
            if "param" in node:
                p = _param(source, _where(path), node, known)
                known.setdefault(p.name, p)
                slots.append((path, p.name))
                return p.value
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, int) and not isinstance(node, bool):
            _number(source, _where(path), node)  # refuses integers beyond float range
        return node

    return walk(data, ()), known, slots


def _where(path: tuple) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "the file"


def _put(data: object, path: tuple, value: object) -> None:
    for key in path[:-1]:
        data = data[key]  # type: ignore[index]
    data[path[-1]] = value  # type: ignore[index]


class _Where:
    """Builds the errors of one file: ``"FILE: terms[i].FIELD must be ..., got ..."``."""

    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, expected: str, got: object) -> ValueError:
        shown = " ".join(repr(got).split())  # one line, even for an array
        shown = shown if len(shown) <= 200 else f"{shown[:160]} ... ({len(shown)} characters)"
        return ValueError(f"{self.source}: {where} must be {expected}, got {shown}")


def _real(w: _Where, where: str, value: object, lo: float, hi: float, *, open_lo=False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise w.error(where, "a number", value)
    try:
        x = float(value)
    except OverflowError:
        raise w.error(where, "a number in float range", f"{len(str(value))} digits") from None
    if not (math.isfinite(x) and (x > lo if open_lo else x >= lo) and x <= hi):
        raise w.error(where, f"finite and in {'(' if open_lo else '['}{lo}, {hi}]", value)
    return x


def _matrix(w: _Where, where: str, value: object, shape: tuple[int, ...] | None) -> np.ndarray:
    if np.iscomplexobj(value):  # type: ignore[arg-type]
        raise w.error(where, "a real matrix", "complex entries")
    try:
        if np.asarray(value).dtype.kind not in "iuf":  # complex, bool, strings, objects
            raise TypeError
        m = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise w.error(where, "a matrix of numbers", value) from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or (shape is not None and m.shape != shape):
        expected = f"a {shape[0]} x {shape[1]} matrix" if shape else "a square matrix"
        raise w.error(where, expected, f"shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise w.error(where, "finite", "non-finite entries")
    return m


def _dense(w: _Where, where: str, spec: Mapping[str, Any], base: Path | None) -> kn.DenseKernel:
    if ("path" in spec) == ("matrix" in spec):
        raise w.error(where, "a dense kernel with one of 'path' or 'matrix'", sorted(spec))
    if "matrix" in spec:
        return kn.DenseKernel(_matrix(w, f"{where}.matrix", spec["matrix"], None))
    if not isinstance(spec["path"], str):
        raise w.error(f"{where}.path", "a file name", spec["path"])
    path = Path(spec["path"])
    path = path if path.is_absolute() or base is None else base / path
    if not path.is_file():  # a FIFO or a device would block np.load
        raise w.error(
            f"{where}.path", "a readable .npy file (a regular file)", f"{path} ({_what(path)})"
        )
    try:
        m = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise w.error(f"{where}.path", "a readable .npy file", f"{path} ({err})") from None
    m = _matrix(w, f"{where}.path ({path})", m, None)
    if "size" in spec and spec["size"] != m.shape[0]:
        raise w.error(f"{where}.size", f"the size of the matrix ({m.shape[0]})", spec["size"])
    return kn.DenseKernel(m, str(path.resolve()))


def _kernel(w: _Where, where: str, spec: object, base: Path | None):
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise w.error(where, "a table with a 'kind' (e.g. { kind = 'exponential' })", spec)
    kind = spec["kind"].lower()
    kind = _ALIASES.get(kind, kind)
    if kind == "dense":
        unknown = set(spec) - {"kind", "path", "matrix", "size"}
        if unknown:
            raise w.error(where, "fields among kind, path, matrix", sorted(unknown))
        return _dense(w, where, spec, base)
    if kind not in KERNELS:
        raise w.error(f"{where}.kind", f"one of {sorted([*KERNELS, 'dense'])}", spec["kind"])
    make, fields = KERNELS[kind]
    unknown = set(spec) - {"kind", *fields}
    if unknown:
        raise w.error(where, f"fields among {['kind', *fields]} for {kind}", sorted(unknown))
    params: dict[str, Any] = {}
    for name, bounds in fields.items():
        value = spec.get(name)
        if bounds is not None:
            if value is None:
                raise w.error(f"{where}.{name}", f"given for a {kind} kernel", None)
            params[name] = _real(w, f"{where}.{name}", value, *bounds, open_lo=True)
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise w.error(f"{where}.{name}", "an integer >= 1", value)
            params[name] = value
    return make(**params)


def _preset(w: _Where, where: str, spec: Mapping[str, Any], weight: float) -> st.Structure:
    name = spec["structure"]
    if name not in _PRESETS:
        raise w.error(f"{where}.structure", f"one of {list(_PRESETS)}", name)
    params = {k: v for k, v in spec.items() if k not in ("structure", "weight")}
    try:
        s = st.shared(**params) if name == "shared" else st.from_name(name, **params)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{w.source}: {where} ({name}): {err}") from None
    return weight * s


def _term(w: _Where, i: int, spec: object, base: Path | None) -> tuple[st.Term, ...]:
    where = f"terms[{i}]"
    if not isinstance(spec, Mapping):
        raise w.error(where, "a table (branch or coupling, kernel, weight)", spec)
    weight = spec.get("weight", 1.0)
    weight = 1.0 if weight == "rest" else _real(w, f"{where}.weight", weight, 0.0, math.inf)
    if "structure" in spec:
        return _preset(w, where, spec, weight).terms
    unknown = set(spec) - _TERM_FIELDS
    if unknown:
        raise w.error(where, f"fields among {sorted(_TERM_FIELDS)}", sorted(unknown))
    if ("branch" in spec) == ("coupling" in spec):
        raise w.error(where, "given one of 'branch' (2 x 2) or 'coupling'", sorted(spec))
    if "kernel" not in spec:
        raise w.error(f"{where}.kernel", "given (e.g. { kind = 'identity' })", None)
    kernel = _kernel(w, f"{where}.kernel", spec["kernel"], base)
    if "coupling" in spec:
        e = _real(w, f"{where}.coupling", spec["coupling"], -1.0, 1.0)
        c = np.array([[1.0, e], [e, 1.0]])
    else:
        c = _matrix(w, f"{where}.branch", spec["branch"], (2, 2))
    if not isinstance(kernel, kn.DenseKernel):
        low = float(np.linalg.eigvalsh((c + c.T) / 2).min())
        if not np.allclose(c, c.T, atol=1e-12) or low < -1e-10:
            raise w.error(f"{where}.branch", "symmetric positive semi-definite", c.tolist())
    c = weight * c
    return (st.Term(((c[0, 0], c[0, 1]), (c[1, 0], c[1, 1])), kernel),)


def _what(path: Path) -> str:
    """What is at ``path`` when it is not a regular file (for errors)."""
    if path.is_dir():
        return "a folder"
    if path.exists():
        return "not a regular file (a FIFO, socket or device)"
    return "does not exist"


def _rest(w: _Where, specs: list, built: list[tuple[st.Term, ...]]) -> None:
    """Give the term with ``weight = "rest"`` (in place, in ``built``) the rest of the unit
    diagonal: ``1 - sum of the other terms' C_AA`` (module docstring)."""
    rest = [i for i, spec in enumerate(specs) if isinstance(spec, Mapping)
            and spec.get("weight") == "rest"]  # fmt: skip
    if not rest:
        return
    if len(rest) > 1:
        raise w.error("weight = 'rest'", "given to one term at most", f"terms {rest}")
    i = rest[0]
    if "structure" in specs[i]:
        raise w.error(f"terms[{i}].weight", "a number for a built-in term", "rest")
    others = [t for j, ts in enumerate(built) if j != i for t in ts]
    if any(isinstance(t.kernel, kn.DenseKernel) for t in [*others, *built[i]]):
        raise w.error(f"terms[{i}].weight", "a number ('rest' needs structured kernels only)",
                      "rest")  # fmt: skip
    (unit,) = built[i]
    if abs(unit.c[0, 0] - 1) > 1e-12 or abs(unit.c[1, 1] - 1) > 1e-12:
        raise w.error(f"terms[{i}].branch", "of unit diagonal (weight = 'rest')", unit.c.tolist())
    r = 1.0 - sum(t.c[0, 0] for t in others)
    if r < -1e-12:
        raise w.error(f"terms[{i}].weight = 'rest' (1 - the other weights' C_AA)", ">= 0",
                      round(r, 12))  # fmt: skip
    built[i] = (unit.scaled(max(r, 0.0)),)


def _check_whole(w: _Where, structure: st.Structure) -> None:
    sizes = {t.kernel.max_n for t in structure.terms if t.kernel.max_n is not None}
    if len(sizes) > 1:
        raise w.error("the dense kernels", "of one size", sorted(sizes))
    if not sizes:  # structured kernels have unit diagonals: Sigma_ii = sum_r C_r[a, a]
        for a, label in ((0, "C_AA"), (1, "C_BB")):
            parts = [t.c[a, a] for t in structure.terms]
            if abs(sum(parts) - 1) > 1e-9:
                each = ", ".join(f"terms[{i}]: {p:g}" for i, p in enumerate(parts))
                raise w.error(
                    f"the weighted {label} summed over terms ({each})",
                    "1 (Sigma is a correlation: unit diagonal)",
                    round(float(sum(parts)), 12),
                )
        return
    try:
        structure.validate(sizes.pop())
    except ValueError as err:
        raise ValueError(f"{w.source}: {err}") from None


def structure_from_data(
    data: object, *, source: str = "structure", base: str | Path | None = None
) -> st.Structure:
    """The :class:`~tokenscale_sim.structures.terms.Structure` of a parsed structure file.

    Args:
        data: the parsed file: ``{"name": str (optional), "terms": [term, ...]}`` (module
            docstring); ``params`` (written by ``describe``) is accepted and ignored. Named
            parameters (:mod:`tokenscale_sim.structures.params`) take their values.
        source: how errors name the file. base: folder of relative dense ``path``'s.

    Raises:
        ValueError: naming ``source``, the term and the field (module docstring).

    >>> s = structure_from_data({"terms": [
    ...     {"weight": 0.2, "branch": [[1, 1], [1, 1]], "kernel": {"kind": "ones"}},
    ...     {"weight": 0.8, "coupling": 0.3, "kernel": {"kind": "exponential", "length": 8.0}}]})
    >>> structure_from_data(s.describe()).v(3).round(6).tolist() == s.v(3).round(6).tolist()
    True
    """
    w = _Where(source)
    data, _, _ = resolve_params(data, source)
    if not isinstance(data, Mapping):
        raise w.error("the file", "a table with 'terms'", type(data).__name__)
    unknown = set(data) - {"name", "terms", "params"}
    if unknown:
        raise w.error("the top level", "fields among name, terms, params", sorted(unknown))
    terms = data.get("terms")
    if not isinstance(terms, list) or not terms:
        raise w.error("terms", "a non-empty list of terms ([[terms]] tables)", terms)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise w.error("name", "a string", name)
    folder = None if base is None else Path(base)
    parts = [_term(w, i, spec, folder) for i, spec in enumerate(terms)]
    _rest(w, terms, parts)
    structure = st.Structure(tuple(t for ts in parts for t in ts), name)
    _check_whole(w, structure)
    return structure


def load_structure(path: str | Path) -> st.Structure:
    """Read a structure file (``.toml``; ``.json`` is accepted) and check it (module docstring).

    A run's ``result.json`` (``simulate``: the structure under ``metadata.structure``) and
    ``theory --json`` (under ``structure``) are read as the structure they record.

    Raises:
        ValueError: an unreadable file, bad TOML/JSON, or a bad structure (naming the term and
            the field); FileNotFoundError for a missing file.
    """
    p = Path(path)
    data = read_structure_data(p)
    if isinstance(data, dict) and "terms" not in data:  # a run's record of its structure
        held = [h.get("structure") for h in (data, data.get("metadata")) if isinstance(h, dict)]
        data = next((x for x in held if isinstance(x, dict)), data)
    return structure_from_data(data, source=str(p), base=p.parent)


def read_structure_data(path: str | Path, what: str = "structure file") -> object:
    """The parsed TOML (JSON for ``.json``) of a file: a UTF-8 byte-order mark is accepted.

    Raises:
        FileNotFoundError: nothing at ``path``. ValueError: a folder, a FIFO or device (never
            opened: it could block), undecodable text, bad TOML/JSON, nesting too deep or a
            number beyond what the parser reads (naming the file).
    """
    p = Path(path)
    if not p.is_file():
        what_is = _what(p)
        if what_is == "does not exist":
            raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
        raise ValueError(f"{what} {str(p)!r} is {what_is}, not a file")
    kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
    try:
        text = p.read_text(encoding="utf-8-sig")
        return json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, TOMLDecodeError
        raise ValueError(f"{what} {str(p)!r} is not valid {kind}: {err}") from None
    except RecursionError:
        raise ValueError(f"{what} {str(p)!r} is nested too deeply to read") from None


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"to_toml: cannot write {type(value).__name__}")


def to_toml(structure: st.Structure) -> str:
    """The structure as a TOML structure file (``describe`` form; None values left out).

    >>> s = 0.8 * st.decaying(4.0, 0.3) + st.shared(0.2)
    >>> again = structure_from_data(tomllib.loads(to_toml(s)))
    >>> bool(np.allclose(again.sigma(3), s.sigma(3)))
    True
    """
    data = structure.describe()
    lines = [f"name = {_toml_value(data['name'])}"]
    for term in data["terms"]:  # type: ignore[union-attr]
        kernel = ", ".join(
            f"{k} = {_toml_value(v)}" for k, v in term["kernel"].items() if v is not None
        )
        lines += ["", "[[terms]]", f"branch = {_toml_value(term['branch'])}",
                  f"kernel = {{ {kernel} }}"]  # fmt: skip
    return "\n".join(lines) + "\n"
