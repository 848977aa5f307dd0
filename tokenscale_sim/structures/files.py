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
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.kernels import (
    DenseKernel,
    Exponential,
    Grid2D,
    Identity,
    Ones,
    PowerLaw,
)

__all__ = ["KERNELS", "load_structure", "structure_from_data", "to_toml"]

_POSITIVE = (0.0, math.inf)

KERNELS: dict[str, tuple[Callable[..., Any], dict[str, tuple[float, float] | None]]] = {
    "identity": (Identity, {}),
    "ones": (Ones, {}),
    "exponential": (Exponential, {"length": _POSITIVE}),
    "powerlaw": (PowerLaw, {"gamma": _POSITIVE}),
    "grid": (Grid2D, {"length": _POSITIVE, "width": None}),
}
"""Structured kernels: constructor and fields (``(lo, hi)``: a real in (lo, hi]; None: an
optional integer >= 1). ``dense`` is read from ``path`` or ``matrix``."""

_ALIASES = {"grid2d": "grid", "densekernel": "dense", "shared": "ones", "exp": "exponential"}
_PRESETS = ("exchangeable", "decaying", "patch-grid", "shared")
_TERM_FIELDS = {"weight", "branch", "coupling", "kernel", "structure"}


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
    except OverflowError:  # an integer of hundreds of digits
        raise w.error(where, "a number in float range", f"{len(str(value))} digits") from None
    if not (math.isfinite(x) and (x > lo if open_lo else x >= lo) and x <= hi):
        raise w.error(where, f"finite and in {'(' if open_lo else '['}{lo}, {hi}]", value)
    return x


def _matrix(w: _Where, where: str, value: object, shape: tuple[int, ...] | None) -> np.ndarray:
    try:
        if np.asarray(value).dtype.kind not in "iuf":  # complex, bool, strings, objects
            raise TypeError
        m = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise w.error(where, "a matrix of real numbers in float range", value) from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or (shape is not None and m.shape != shape):
        expected = f"a {shape[0]} x {shape[1]} matrix" if shape else "a square matrix"
        raise w.error(where, expected, f"shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise w.error(where, "finite", "non-finite entries")
    return m


def _dense(w: _Where, where: str, spec: Mapping[str, Any], base: Path | None) -> DenseKernel:
    if ("path" in spec) == ("matrix" in spec):
        raise w.error(where, "a dense kernel with one of 'path' or 'matrix'", sorted(spec))
    if "matrix" in spec:
        return DenseKernel(_matrix(w, f"{where}.matrix", spec["matrix"], None))
    if not isinstance(spec["path"], str):
        raise w.error(f"{where}.path", "a file name", spec["path"])
    path = Path(spec["path"])
    path = path if path.is_absolute() or base is None else base / path
    if not path.is_file():  # a folder, a FIFO (np.load would wait on it forever), nothing
        what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "missing"
        raise w.error(f"{where}.path", "a readable .npy file", f"{path} ({what})")
    try:
        m = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise w.error(f"{where}.path", "a readable .npy file", f"{path} ({err})") from None
    m = _matrix(w, f"{where}.path ({path})", m, None)
    if "size" in spec and spec["size"] != m.shape[0]:
        raise w.error(f"{where}.size", f"the size of the matrix ({m.shape[0]})", spec["size"])
    return DenseKernel(m, str(path.resolve()))


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
    weight = _real(w, f"{where}.weight", spec.get("weight", 1.0), 0.0, math.inf)
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
    if not isinstance(kernel, DenseKernel):
        low = float(np.linalg.eigvalsh((c + c.T) / 2).min())
        if not np.allclose(c, c.T, atol=1e-12) or low < -1e-10:
            raise w.error(f"{where}.branch", "symmetric positive semi-definite", c.tolist())
    c = weight * c
    return (st.Term(((c[0, 0], c[0, 1]), (c[1, 0], c[1, 1])), kernel),)


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
            docstring); ``params`` (written by ``describe``) is accepted and ignored.
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
    built = tuple(t for i, spec in enumerate(terms) for t in _term(w, i, spec, folder))
    structure = st.Structure(built, name)
    _check_whole(w, structure)
    return structure


def load_structure(path: str | Path) -> st.Structure:
    """Read a structure file (``.toml``; ``.json`` is accepted) and check it (module docstring).

    Raises:
        ValueError: an unreadable file, bad TOML/JSON, or a bad structure (naming the term and
            the field); FileNotFoundError for a missing file.
    """
    p = Path(path)
    if not p.is_file():
        if p.exists():  # a folder or a FIFO (reading one would wait forever)
            raise ValueError(f"structure file {str(p)!r} is a folder or not a regular file")
        raise FileNotFoundError(f"structure file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark, as the CSV reader takes
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise ValueError(f"structure file {str(p)!r} is not valid {kind}: {err}") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ValueError(f"structure file {str(p)!r} is nested too deeply to read") from None
    return structure_from_data(data, source=str(p), base=p.parent)


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
