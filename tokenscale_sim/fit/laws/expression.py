r"""Laws from text: safe arithmetic expressions and ``module:function`` references.

:func:`parse_law` reads ``"S_inf - A * n**(-a)"`` with :mod:`ast` and a strict whitelist, never
``eval``: numbers, the predictor, parameter names, ``+ - * / **``, unary ``-``/``+``, the
constants ``pi`` and ``e`` and the functions of :data:`FUNCTIONS`. Anything else (attributes,
subscripts, comparisons, keywords, strings, ``^``...) is a ``ValueError`` naming the offending
token and its column. Every other name is a parameter, in order of first appearance. Parameters
the expression is affine in (jointly, e.g. ``S_inf`` and ``A`` above) are found from the syntax
tree and solved by variable projection; the model lists them first (``A * n**(-a) + c`` has
``params == ("A", "c", "a")``), as for every law of
:func:`~tokenscale_sim.fit.laws.define.define_law`.

:func:`load_law` imports ``fn(x, theta)`` from ``"path/to/file.py:function"`` or
``"package.module:function"``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax.numpy as jnp

from tokenscale_sim.fit.laws.define import LawFn, Starts, Transform, build_law
from tokenscale_sim.fit.laws.lawcache import cached_law, source_token, stable_text
from tokenscale_sim.fit.laws.lawcheck import (
    check_output,
    error_place,
    error_reason,
    explain_failure,
)
from tokenscale_sim.fit.laws.models import Model, name_stably

FUNCTIONS: dict[str, Callable] = {
    "exp": jnp.exp,
    "log": jnp.log,
    "log10": jnp.log10,
    "sqrt": jnp.sqrt,
    "arctan": jnp.arctan,
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "abs": jnp.abs,
    "minimum": jnp.minimum,
    "maximum": jnp.maximum,
}
"""Functions an expression may call (``minimum``/``maximum`` take two arguments)."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
"""Named constants an expression may use."""

MAX_CHARS = 2000
"""Longest expression :func:`parse_law` takes (a long law is clearer as a Python function)."""
MAX_DEPTH = 100
"""Deepest syntax tree :func:`parse_law` takes (every walk of the tree recurses: Python's own
recursion limit is 1000 frames)."""

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_OP_TOKENS = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Not: "not",
    ast.Invert: "~",
}


def _reject(
    text: str, node: ast.AST, what: str, token: str | None = None, col: int | None = None
) -> ValueError:
    col = int(getattr(node, "col_offset", 0) or 0) if col is None else col
    token = token or ast.get_source_segment(text, node) or what
    hint = " (use ** for powers)" if token == "^" else ""
    return ValueError(
        f"parse_law: {what} {token!r} at column {col + 1} of {text!r} is not allowed{hint}; "
        f"allowed: numbers, the predictor, parameter names, + - * / **, "
        f"{', '.join(FUNCTIONS)}, pi, e"
    )


def _reject_op(text: str, node: ast.BinOp | ast.UnaryOp) -> ValueError:
    """The operator token itself, located between the operands."""
    token = _OP_TOKENS.get(type(node.op), type(node.op).__name__)
    start = node.left.end_col_offset if isinstance(node, ast.BinOp) else node.col_offset
    found = text.find(token, start or 0)
    return _reject(text, node, "operator", token, found if found >= 0 else None)


def _check(text: str, node: ast.AST, predictor: str, names: list[str]) -> None:
    """Walk ``node``, raising on anything outside the whitelist; collect parameter names."""
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise _reject_op(text, node)
        _check(text, node.left, predictor, names)
        _check(text, node.right, predictor, names)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise _reject_op(text, node)
        _check(text, node.operand, predictor, names)
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _reject(text, node, "constant")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:  # an integer literal beyond float range
            finite = False
        if not finite:
            raise ValueError(
                f"parse_law: the number at column {node.col_offset + 1} of {text[:80]!r} is "
                "beyond the float range (about 1.8e308)"
            )
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise _reject(text, node, "function name used as a value")
        if node.id not in CONSTANTS and node.id != predictor and node.id not in names:
            names.append(node.id)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise _reject(text, node.func, "function")
        if node.keywords:
            raise _reject(text, node.keywords[0], "keyword argument")
        arity = 2 if node.func.id in ("minimum", "maximum") else 1
        if len(node.args) != arity:
            raise _reject(text, node, f"call with {len(node.args)} arguments (needs {arity})")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise _reject(text, arg, "starred argument")
            _check(text, arg, predictor, names)
    else:
        raise _reject(text, node, type(node).__name__.lower())


def _evaluate(node: ast.AST, x, theta: Mapping, predictor: str):
    """Evaluate a checked tree with ``jnp`` (the only interpreter: no ``eval``)."""
    if isinstance(node, ast.BinOp):
        a = _evaluate(node.left, x, theta, predictor)
        b = _evaluate(node.right, x, theta, predictor)
        return _BINOPS[type(node.op)](a, b)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, x, theta, predictor)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]
    if isinstance(node, ast.Name):
        if node.id == predictor:
            return x
        return CONSTANTS[node.id] if node.id in CONSTANTS else theta[node.id]
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    args = [_evaluate(a, x, theta, predictor) for a in node.args]
    return FUNCTIONS[node.func.id](*args)


def _depth(tree: ast.AST) -> int:
    """Depth of the syntax tree, counted without recursion (``a + b + c`` is 3 deep: 2 BinOps
    and a leaf)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _free_of(node: ast.AST, group: set[str]) -> bool:
    return not any(isinstance(s, ast.Name) and s.id in group for s in ast.walk(node))


def _affine(node: ast.AST, group: set[str]) -> bool:
    """True when the expression is affine (jointly) in the parameters ``group``."""
    if _free_of(node, group):
        return True
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.UnaryOp):
        return _affine(node.operand, group)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub):
            return _affine(node.left, group) and _affine(node.right, group)
        if isinstance(node.op, ast.Mult):
            return (_free_of(node.left, group) and _affine(node.right, group)) or (
                _free_of(node.right, group) and _affine(node.left, group)
            )
        if isinstance(node.op, ast.Div):
            return _free_of(node.right, group) and _affine(node.left, group)
    return False


def linear_parameters(tree: ast.AST, names: Sequence[str]) -> list[str]:
    """Greedy largest set of ``names`` (first-appearance order) the expression is affine in."""
    group: set[str] = set()
    for name in names:
        if _affine(tree, group | {name}):
            group.add(name)
    return [n for n in names if n in group]


def parse_law(
    text: str,
    *,
    predictor: str = "n",
    starts: Starts | None = None,
    transforms: Mapping[str, Transform] | None = None,
    linear: Sequence[str] | None = None,
    name: str | None = None,
    space: str = "linear",
    params: Sequence[str] | None = None,
) -> Model:
    """A law from an arithmetic expression of the predictor and parameters.

    Args:
        text: e.g. ``"S_inf - A * n**(-a)"`` (the prediction of y; of ln y with ``space="log"``).
        predictor: the predictor's name in ``text`` (``"n"``: token counts; ``"x"``: any reals).
        starts, transforms: as in :func:`~tokenscale_sim.fit.laws.define.define_law`.
        linear: parameters solved by variable projection; ``None``: every parameter the
            expression is affine in (and whose transform is free); ``()``: none.
        name: the law's name (default: the expression itself).
        space: ``"linear"`` or ``"log"`` (see :func:`~tokenscale_sim.fit.laws.define.define_law`).
        params: the parameters' order (default: first appearance; linear ones are then moved
            first); must name them all.

    Raises:
        ValueError: naming the offending token and its column, for anything not whitelisted.

    >>> law = parse_law("S_inf - A * n**(-a)", starts={"a": 0.5})
    >>> law.params, law.q
    (('S_inf', 'A', 'a'), 2)
    >>> parse_law("S_inf - A * n^(-a)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: parse_law: operator '^' at column 14 of 'S_inf - A * n^(-a)' is not allowed (use...
    """
    arguments = (text, predictor, starts, transforms, linear, name, space, params)
    token = source_token(("parse_law", *arguments))

    def build() -> Model:
        # an expression law is its arguments: its compiled programs can be kept on disk whole
        model = _parse_law(*arguments)
        stable = stable_text(token)
        return model if stable is None else name_stably(model, f"parse_law:{stable}")

    return cached_law(token, build)


def _parse_law(text, predictor, starts, transforms, linear, name, space, params) -> Model:
    """:func:`parse_law` itself (uncached)."""
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"parse_law: the expression has {len(text)} characters, more than the {MAX_CHARS} "
            "allowed; write a long law as a Python function (--law file.py:NAME)"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise ValueError(
            f"parse_law: syntax error at column {err.offset} in {text!r}: {err.msg}"
        ) from None
    except (RecursionError, MemoryError):
        raise ValueError(f"parse_law: {text[:40]!r}... is nested too deeply to parse") from None
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        raise ValueError(
            f"parse_law: the expression nests {depth} operations deep, more than the "
            f"{MAX_DEPTH} allowed; write a long law as a Python function (--law file.py:NAME)"
        )
    text = text.strip()
    names: list[str] = []
    _check(text, tree, predictor, names)
    if not names:
        raise ValueError(f"parse_law: {text!r} has no parameters (predictor is {predictor!r})")
    if params is not None:
        if sorted(params) != sorted(names):
            raise ValueError(
                f"parse_law: params {list(params)} must be the names {names} of {text!r}"
            )
        names = list(params)
    transforms = dict(transforms or {})
    if linear is None:
        free = [n for n in names if transforms.get(n, "free") == "free"]
        linear = linear_parameters(tree, free)

    def fn(x, theta):
        return _evaluate(tree, x, theta, predictor)

    return build_law(
        name or text,
        fn,
        names,
        transforms=transforms,
        linear=linear,
        starts=starts,
        predictor=predictor,
        space=space,
    )


def guard_law(fn: Callable, spec: str, files: Sequence[str], *, law: bool = True) -> Callable:
    """``fn`` whose errors become one ``ValueError`` naming ``spec``, the file and line that
    failed and the user's message: ``law 'f.py:g' failed at f.py line 7: KeyError: 'b'``.

    With ``law`` (``fn(x, theta)``), the result must be a real array of the shape of ``x`` or a
    scalar; a complex, boolean or otherwise shaped result is refused (it would be cast or
    broadcast into wrong numbers).
    """

    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
            if law:
                out = jnp.asarray(out)
        except MemoryError:
            raise
        except (Exception, SystemExit) as err:
            raise ValueError(explain_failure(spec, err, fn, files)) from None
        if law:
            check_output(spec, jnp.shape(args[0]), out)
        return out

    return guarded


def _import(spec: str, where: str, path: Path | None):
    """The module of ``spec``; any error (missing, syntax, raising on import) as one line."""
    try:
        if path is None:
            return importlib.import_module(where)
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ValueError(f"load_law: cannot import {where!r}")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module
    except ModuleNotFoundError as err:
        if path is None and err.name and where.startswith(err.name):
            raise ValueError(
                f"load_law: no module named {err.name!r} (from {spec!r}; a file needs the "
                "ending .py)"
            ) from None
        raise ValueError(
            f"load_law: importing {where!r} failed at {error_place(err, [str(path or where)])}: "
            f"{error_reason(err)}"
        ) from None
    except MemoryError:
        raise
    except (Exception, SystemExit) as err:
        files = [str(path)] if path is not None else []
        raise ValueError(
            f"load_law: importing {where!r} failed at {error_place(err, files)}: "
            f"{error_reason(err)}"
        ) from None


def load_law(spec: str) -> LawFn | Model:
    """The function ``fn(x, theta)`` (pass it to :func:`~tokenscale_sim.fit.laws.define.define_law`)
    or the ready :class:`~tokenscale_sim.fit.laws.models.Model` (e.g. made with ``define_law`` in
    the user's file) named by ``"path/to/file.py:name"`` or ``"package.module:name"``.

    Whatever fails in the user's code (importing it, or calling the law later, while fitting)
    is one ``ValueError`` naming the file, the line and the user's message (:func:`guard_law`).

    >>> load_law("math:hypot").__name__
    'hypot'
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(
            f"load_law: expected 'file.py:function' or 'module:function', got {spec!r}"
        )
    path = None
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"load_law: no such file {where!r}")
    module = _import(spec, where, path)
    files = [str(path)] if path is not None else [getattr(module, "__file__", None) or where]
    fn = getattr(module, attr, None)
    if isinstance(fn, Model):
        parts = {k: getattr(fn, k) for k in _MODEL_CALLABLES}
        wrapped = {k: guard_law(f, spec, files, law=False) for k, f in parts.items() if f}
        return dataclasses.replace(fn, **wrapped)
    if not callable(fn):
        raise ValueError(f"load_law: {where!r} has no function or Model {attr!r}")
    return guard_law(fn, spec, files)


_MODEL_CALLABLES = ("basis", "natural", "unconstrained", "grid", "evaluate")
