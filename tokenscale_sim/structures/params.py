r"""Named parameters in structure files, and the exact curves of such a file in ``jax.numpy``.

Any number of a structure file (:mod:`tokenscale_sim.structures.files`) may be a named
parameter with its bounds::

    [[terms]]
    weight = { param = "w", value = 0.6, min = 0.0, max = 1.0 }
    coupling = { param = "c", value = 0.3, min = -1.0, max = 1.0 }
    kernel = { kind = "exponential", length = { param = "l", value = 8.0, min = 0.5, max = 512 } }

    [[terms]]                       # the rest of the unit diagonal: 1 - (the others' C_AA)
    weight = "rest"
    coupling = 0.0
    kernel = { kind = "identity" }

At the given values the file is a plain structure file (``theory`` and ``simulate`` read it
unchanged). ``min``/``max`` default to -inf/+inf; a name used twice means one parameter (a later
use may give the name alone, ``{ param = "w" }``). ``weight = "rest"`` (one term at most, its
branch diagonal 1, no dense terms) keeps ``Sigma``'s diagonal at 1 while other weights vary.

:class:`ParamFile` (from :func:`read_param_file`) gives the structure at any values
(:meth:`ParamFile.structure`, the NumPy path of :mod:`~tokenscale_sim.structures.exact`) and
:meth:`ParamFile.curves`: the exact population curves ``v``, ``psi_eq``, ``psi_AABB``, ``psi_AB``
(n = 1..N) as a pure ``jax.numpy`` function of the parameter vector (jit, vmap and grad), by the
prefix sums of :mod:`tokenscale_sim.structures.terms`:

    s_K(n) = 1' K[:n,:n] 1,   v_n = sum_r (C00 + C11 - C01 - C10) s_r(n),
    psi_AB(n) = sum_r (C01 + C10) (s_r(n) - t_r(n)) / (2 n (n - 1)), ...

:meth:`ParamFile.check` checks bounds, branch matrices and the unit diagonal at every point of a
grid at once (NumPy, before any work).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.files import (
    Param,
    read_structure_data,
    resolve_params,
    structure_from_data,
)

_KERNEL_REALS = {"exponential": "length", "powerlaw": "gamma", "grid": "length"}

__all__ = [
    "Param",
    "ParamFile",
    "dump_toml",
    "param_file_from_data",
    "read_param_file",
    "resolve_params",
]


def _put(data: object, path: tuple, value: object) -> None:
    for key in path[:-1]:
        data = data[key]  # type: ignore[index]
    data[path[-1]] = value  # type: ignore[index]


def _get(data: object, path: tuple) -> Any:
    for key in path:
        data = data[key]  # type: ignore[index]
    return data


def _toml_value(value: object) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        import json

        return json.dumps(value)
    raise TypeError(f"dump_toml: cannot write {type(value).__name__}")


def dump_toml(data: Mapping[str, Any], comment: str = "") -> str:
    """A structure file's data as TOML: top-level values, then each ``[[terms]]`` table with
    inline values (only what structure files hold)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if k != "terms"]
    for term in data.get("terms", []):
        lines += ["", "[[terms]]", *(f"{k} = {_toml_value(v)}" for k, v in term.items())]
    return "\n".join(lines) + "\n"


def _copy(node: object) -> object:
    if isinstance(node, Mapping):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


# ------------------------------------------------------------------ the file as a program


def _leaf(node: object, path: tuple, slots: dict[tuple, int]):
    """A number of the file as a function of the parameter vector."""
    if path in slots:
        i = slots[path]
        return lambda theta: theta[..., i]
    x = float(node)  # type: ignore[arg-type]
    return lambda theta: x


@dataclass(frozen=True, eq=False)
class _TermProgram:
    """One term: its branch matrix and its kernel's prefix sums as functions of theta.

    ``branch(theta)`` is the weighted C (nested tuples); for the rest term (``rest``) it is the
    unweighted C, scaled by the rest of the diagonal. A kernel without parameters is ``fixed``
    (its NumPy prefix sums); one with a parameter has ``kind``, ``real`` (theta -> length or
    gamma) and the grid's ``width``."""

    branch: Any
    kind: str
    real: Any = None
    width: int | None = None
    fixed: st.Kernel | None = None
    rest: bool = False


def _branch_program(spec: Mapping, path: tuple, slots: dict[tuple, int], *, weighted=True):
    weight = _leaf(spec.get("weight", 1.0) if weighted else 1.0, (*path, "weight"), slots)
    if "coupling" in spec:
        e = _leaf(spec["coupling"], (*path, "coupling"), slots)
        one = _leaf(1.0, (), {})
        entries = [[one, e], [e, one]]
    else:
        entries = [
            [_leaf(spec["branch"][a][b], (*path, "branch", a, b), slots) for b in range(2)]
            for a in range(2)
        ]

    def branch(theta):
        w = weight(theta)
        return tuple(tuple(w * entries[a][b](theta) for b in range(2)) for a in range(2))

    return branch


def _prefix_sums(prog: _TermProgram, theta, n_max: int):
    """``(s(n), t(n))`` (..., n_max) of one term's kernel at theta (batched over leading axes)."""
    n = jnp.arange(1, n_max + 1, dtype=float)
    if prog.fixed is not None:
        s = jnp.asarray(prog.fixed.prefix_sums(n_max), dtype=float)
        return s, jnp.asarray(prog.fixed.trace_cumsum(n_max), dtype=float)
    x = jnp.asarray(prog.real(theta))[..., None]
    if prog.kind == "grid":
        w = prog.width if prog.width is not None else math.isqrt(n_max - 1) + 1
        a = jnp.exp(-1.0 / x)
        p = np.arange(n_max)
        row, col = p // w, p % w
        c = np.arange(min(w, n_max))
        col_sums = ((1 - a ** (c + 1)) + a * (1 - a ** (w - 1 - c))) / (1 - a)
        earlier = a * (1 - a**row) / (1 - a) * col_sums[..., col]
        same = a * (1 - a**col) / (1 - a)
        return jnp.cumsum(1.0 + 2 * (earlier + same), axis=-1), n
    k = jnp.arange(n_max, dtype=float)
    lags = jnp.exp(-k / x) if prog.kind == "exponential" else (1.0 + k) ** (-x)
    tail = jnp.concatenate([jnp.zeros_like(lags[..., :1]), jnp.cumsum(lags[..., 1:], -1)], -1)
    return jnp.cumsum(lags[..., :1] + 2 * tail, axis=-1), n


@dataclass(frozen=True, eq=False)
class ParamFile:
    """A structure file with named parameters (module docstring).

    Attributes:
        source: the file's name (for errors). data: the parsed file, parameters at their values.
        params: ``{name: Param}``; names: their order in a parameter vector.
        slots: where each parameter is used. base: folder of relative dense paths.
    """

    source: str
    data: Any
    params: dict[str, Param]
    slots: list[tuple[tuple, str]]
    base: str | None = None
    programs: tuple[_TermProgram, ...] = field(default=(), repr=False)
    rest: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def values(self) -> np.ndarray:
        return np.array([p.value for p in self.params.values()], dtype=float)

    @property
    def name(self) -> str:
        name = self.data.get("name") if isinstance(self.data, Mapping) else None
        return name if isinstance(name, str) else self.source.rsplit("/", 1)[-1].split(".")[0]

    def with_values(self, values: Mapping[str, float]) -> Any:
        """The parsed file with ``values`` (names of :attr:`params`) put in: a plain structure
        file (no parameter tables left)."""
        data = _copy(self.data)
        for path, name in self.slots:
            _put(data, path, float(values.get(name, self.params[name].value)))
        return data

    def toml(self, values: Mapping[str, float], comment: str = "") -> str:
        """The file as TOML with its parameter tables at ``values`` (bounds kept): a calibrated
        file is again a parametrised structure file."""
        data = _copy(self.data)
        for path, name in self.slots:
            table = dict(_get(data, path))
            if "value" in table and name in values:
                table["value"] = float(values[name])
            _put(data, path, table)
        assert isinstance(data, Mapping)
        return dump_toml(data, comment)

    def structure(self, values: Mapping[str, float] | None = None) -> st.Structure:
        """The checked :class:`~tokenscale_sim.structures.terms.Structure` at ``values`` (the
        file's values for the names not given); ValueError naming the file where it breaks."""

        self.check_values(dict(values or {}))
        data = self.with_values(dict(values or {}))
        return structure_from_data(data, source=self.source, base=self.base)

    def check_values(self, values: Mapping[str, object]) -> None:
        """Unknown names and values outside a parameter's bounds: ValueError naming them."""
        for name, value in values.items():
            if name not in self.params:
                raise ValueError(f"{self.source}: unknown parameter {name!r}; the file's "
                                 f"parameters are {list(self.params) or 'none'}")  # fmt: skip
            p = self.params[name]
            x = np.asarray(value, dtype=float)
            bad = ~(np.isfinite(x) & (x >= p.lo) & (x <= p.hi))
            if np.any(bad):
                got = np.ravel(x)[int(np.argmax(np.ravel(bad)))]
                raise ValueError(f"{self.source}: parameter {name} must be finite and in "
                                 f"[{p.lo:g}, {p.hi:g}], got {got!r}")  # fmt: skip

    def _branches(self, theta) -> list:
        parts = [prog.branch(theta) for prog in self.programs]
        if self.rest is not None:
            r = 1.0 - sum(b[0][0] for i, b in enumerate(parts) if i != self.rest)
            unit = parts[self.rest]
            parts[self.rest] = tuple(tuple(r * x for x in row) for row in unit)
        return parts

    def rest_weight(self, theta):
        """The weight of the rest term at ``theta`` (..., P) (None without one)."""
        if self.rest is None:
            return None
        parts = [prog.branch(theta) for prog in self.programs]
        return 1.0 - sum(b[0][0] for i, b in enumerate(parts) if i != self.rest)

    def branches(self, theta) -> list:
        """Every term's weighted branch matrix at ``theta`` (..., P): nested tuples of arrays."""
        return self._branches(theta)

    def check(self, theta: np.ndarray) -> np.ndarray:
        """Boolean (...,): where ``theta`` (..., P) gives a valid structure (branch matrices
        symmetric PSD, kernel parameters > 0, unit diagonal, rest weight >= 0). Bounds are
        checked by :meth:`check_values` (an error)."""
        theta = np.asarray(theta, dtype=float)
        ok = np.all(np.isfinite(theta), axis=-1)
        aa = bb = 0.0
        for prog, b in zip(self.programs, self._branches(theta), strict=True):
            (c00, c01), (c10, c11) = (tuple(np.broadcast_to(x, theta.shape[:-1]) for x in r)
                                      for r in b)  # fmt: skip
            aa, bb = aa + c00, bb + c11
            if not isinstance(prog.fixed, st.DenseKernel):
                tol = 1e-10
                ok &= (np.abs(c01 - c10) <= 1e-12) & (c00 >= -tol) & (c11 >= -tol)
                ok &= c00 * c11 - c01 * c10 >= -tol
            if prog.real is not None:
                ok &= np.asarray(prog.real(theta)) > 0
        if self.rest is not None:
            ok &= np.asarray(self.rest_weight(theta)) >= -1e-12
        if not any(isinstance(p.fixed, st.DenseKernel) for p in self.programs):
            ok &= (np.abs(aa - 1) <= 1e-9) & (np.abs(bb - 1) <= 1e-9)
        return ok

    def curves(self, theta, n_max: int):
        """Exact population curves ``(v, psi_eq, psi_aabb, psi_ab)``, each (..., n_max), at
        ``theta`` (..., P): pure ``jax.numpy`` (module docstring; NaN pairwise psi's at n = 1)."""
        theta = jnp.asarray(theta, dtype=float)
        sums: list[list[Any]] = [[0.0, 0.0], [0.0, 0.0]]
        traces: list[list[Any]] = [[0.0, 0.0], [0.0, 0.0]]
        for prog, b in zip(self.programs, self._branches(theta), strict=True):
            s, t = _prefix_sums(prog, theta, n_max)
            for a in range(2):
                for c in range(2):
                    coef = jnp.asarray(b[a][c])[..., None]
                    sums[a][c] = sums[a][c] + coef * s
                    traces[a][c] = traces[a][c] + coef * t
        n = jnp.arange(1, n_max + 1, dtype=float)
        pairs = jnp.where(n > 1, n * (n - 1), jnp.nan)
        off = [[sums[a][c] - traces[a][c] for c in range(2)] for a in range(2)]
        v = sums[0][0] + sums[1][1] - sums[0][1] - sums[1][0]
        psi_eq = (traces[0][1] + traces[1][0]) / (2 * n)
        psi_aabb = (off[0][0] + off[1][1]) / (2 * pairs)
        psi_ab = (off[0][1] + off[1][0]) / (2 * pairs)
        shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in (v, psi_eq, psi_aabb, psi_ab)))
        return tuple(jnp.broadcast_to(x, shape) for x in (v, psi_eq, psi_aabb, psi_ab))


def _term_program(spec: Mapping, i: int, slots: dict[tuple, int], term: st.Term) -> _TermProgram:
    """The program of file term ``i`` (``term``: the same term built at the file's values)."""
    path = ("terms", i)
    kernel = spec["kernel"]
    kind = kernel if isinstance(kernel, str) else str(kernel["kind"])
    kind = {"grid2d": "grid", "exp": "exponential"}.get(kind.lower(), kind.lower())
    rest = spec.get("weight") == "rest"
    branch = _branch_program(spec, path, slots, weighted=not rest)
    name = _KERNEL_REALS.get(kind)
    if name is None or (*path, "kernel", name) not in slots:
        return _TermProgram(branch, kind, fixed=term.kernel, rest=rest)
    assert isinstance(kernel, Mapping)  # a kernel with a parameter is a table
    real = _leaf(kernel[name], (*path, "kernel", name), slots)
    width = kernel.get("width") if kind == "grid" else None
    return _TermProgram(branch, kind, real, width, rest=rest)


def _constant_program(term: st.Term) -> _TermProgram:
    c = term.branch
    return _TermProgram(lambda theta: c, type(term.kernel).__name__.lower(), fixed=term.kernel)


def read_param_file(path) -> ParamFile:
    """Read a structure file with named parameters (module docstring), checked at its values."""
    from pathlib import Path

    p = Path(path)
    return param_file_from_data(read_structure_data(p), source=str(p), base=p.parent)


def param_file_from_data(data: object, *, source: str = "structure", base=None) -> ParamFile:
    """The :class:`ParamFile` of parsed file ``data`` (checked at its values)."""

    plain, params, slots = resolve_params(data, source)
    structure = structure_from_data(plain, source=source, base=base)
    assert isinstance(plain, Mapping)  # structure_from_data refused anything else
    index = {name: i for i, name in enumerate(params)}
    slot_index = {path: index[name] for path, name in slots}
    programs: list[_TermProgram] = []
    rest = None
    for i, spec in enumerate(plain["terms"]):
        if "structure" in spec:  # a built-in: its terms, constant
            if any(p[:2] == ("terms", i) for p in slot_index):
                raise ValueError(f"{source}: terms[{i}]: named parameters inside a built-in "
                                 "('structure = ...') are not supported; write its terms "
                                 "out")  # fmt: skip
            count = len(structure_from_data({"terms": [spec]}, source=source, base=base).terms)
            programs += [_constant_program(structure.terms[len(programs) + k])
                         for k in range(count)]  # fmt: skip
            continue
        if spec.get("weight") == "rest":
            rest = len(programs)
        programs.append(_term_program(spec, i, slot_index, structure.terms[len(programs)]))
    return ParamFile(source, data, params, slots, None if base is None else str(base),
                     tuple(programs), rest)  # fmt: skip
