"""Laws defined twice from the same source are the same
:class:`~tokenscale_sim.fit.laws.models.Model`.

The engine's compiled programs are keyed on the model (a static argument of ``jax.jit``), and a
model holds its law's functions, compared by identity. Re-running a notebook cell that defines a
law makes new functions, so without this cache every re-run traced and compiled the fit again
(issue 27 measured 2-3 s a cell). :func:`cached_law` keys a law on its *source*
(:func:`source_token` of its arguments): a function counts as its code (bytecode, constants,
names; not its place in the file or cell), its closure values, its defaults and the values of
the globals it reads; numbers, strings, arrays and containers count by value, modules by name,
anything else by identity (held alive in the key, so an identity is never reused by another
object). Equal source, equal token: the cached model is returned.
"""

from __future__ import annotations

import functools
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import numpy as np

CACHE_SIZE = 256
"""Most laws kept (least recently used dropped first)."""
_DEPTH = 4
_CACHE: OrderedDict[Hashable, Any] = OrderedDict()


class _Same:
    """Identity token: equal only to a token of the very same object, which it keeps alive."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _code_names(code: types.CodeType) -> set[str]:
    """Global (and attribute) names read by ``code`` and the code nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _code_token(code: types.CodeType) -> Hashable:
    """``code`` without its name and positions (line, column): moving a law in its file or cell
    keeps its token."""
    consts = tuple(
        _code_token(c) if isinstance(c, types.CodeType) else source_token(c) for c in code.co_consts
    )
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )


def _function_token(fn: types.FunctionType, depth: int) -> Hashable:
    cells = tuple(source_token(c.cell_contents, depth + 1) for c in fn.__closure__ or ())
    read = sorted(n for n in _code_names(fn.__code__) if n in fn.__globals__)
    return (
        "function",
        _code_token(fn.__code__),
        cells,
        source_token(fn.__defaults__, depth + 1),
        source_token(fn.__kwdefaults__, depth + 1),
        tuple((n, source_token(fn.__globals__[n], depth + 1)) for n in read),
    )


def source_token(obj: Any, depth: int = 0) -> Hashable:
    """A hashable stand-in for ``obj`` that is equal for equal source (see the module).

    >>> source_token(lambda x: 2 * x) == source_token(lambda x: 2 * x)
    True
    >>> source_token(lambda x: 2 * x) == source_token(lambda x: 3 * x)
    False
    """
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return (type(obj).__name__, obj)
    if isinstance(obj, float | complex):
        return (type(obj).__name__, repr(obj))  # nan equals nan here
    if isinstance(obj, tuple | list):
        return (type(obj).__name__, tuple(source_token(v, depth) for v in obj))
    if isinstance(obj, Mapping):
        return ("mapping", tuple((source_token(k), source_token(v, depth)) for k, v in obj.items()))
    if isinstance(obj, jax.Array):
        try:
            obj = np.asarray(obj)
        except Exception:  # a tracer or a key array: by identity
            return _Same(obj)
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype != object:
        arr = np.asarray(obj)
        return ("array", arr.dtype.str, arr.shape, arr.tobytes())
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if depth < _DEPTH and isinstance(obj, types.FunctionType):
        return _function_token(obj, depth)
    if depth < _DEPTH and isinstance(obj, functools.partial):
        return (
            "partial",
            source_token(obj.func, depth + 1),
            source_token(obj.args, depth + 1),
            source_token(obj.keywords, depth + 1),
        )
    return _Same(obj)


def stable_text(token: Hashable) -> str | None:
    """``repr`` of a :func:`source_token` made only of values (the same text in every process),
    or None when some part of it counts by identity.

    >>> stable_text(source_token(("a * n", 1.5)))
    "('tuple', (('str', 'a * n'), ('float', '1.5')))"
    >>> print(stable_text(source_token(object())))
    None
    """
    if isinstance(token, _Same):
        return None
    if isinstance(token, tuple) and any(stable_text(t) is None for t in token):
        return None
    return repr(token)


def cached_law(source: Hashable, build: Callable[[], Any]) -> Any:
    """The model cached under ``source`` (a :func:`source_token`), else ``build()`` cached there.
    A build that raises caches nothing."""
    try:
        found = _CACHE.get(source)
    except TypeError:  # an unhashable part slipped through: no caching
        return build()
    if found is not None:
        _CACHE.move_to_end(source)
        return found
    model = build()
    _CACHE[source] = model
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return model
