"""What goes wrong in a user's law, said in one line naming the law, the place and the fix.

A law is traced by JAX, never called on NumPy numbers: a law that calls NumPy (``np.exp``), takes
``float()`` of a parameter or branches on one with ``if`` fails inside JAX's tracer with a long
traceback. :func:`trial_evaluate` runs the law once abstractly (``jax.eval_shape``: nothing is
compiled or computed) when it is defined and turns any failure into one ``ValueError``:
``define_law: law 'f' calls NumPy (np.exp at f.py line 3); use jax.numpy (jnp.exp) ...``.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

_NUMPY_CALL = re.compile(r"\b(?:np|numpy|onp)\.([A-Za-z_][\w.]*)")
TRIAL_POINTS = 5
"""Length of the predictor in the trial evaluation."""


def error_reason(err: BaseException) -> str:
    """``"KeyError: 'b'"``: the exception's type and the first line of its message."""
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r})"
    lines = str(err.msg if isinstance(err, SyntaxError) else err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _user_frames(err: BaseException, files: Sequence[str]) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(err.__traceback__)
    wanted = {str(Path(f).resolve()) for f in files}
    return [f for f in frames if str(Path(f.filename).resolve()) in wanted]


def source_line(filename: str, lineno: int | None) -> str:
    """``"law.py line 7"``, or ``"line 7 of its notebook cell"`` for code typed in Jupyter
    (IPython compiles a cell to a temporary file ``.../ipykernel_<pid>/<hash>.py``, or
    ``<ipython-input-...>`` in older versions, whose name means nothing to the user).

    >>> source_line("/tmp/ipykernel_81/3228049155.py", 2), source_line("law.py", 7)
    ('line 2 of its notebook cell', 'law.py line 7')
    """
    cell = Path(filename).parent.name.startswith("ipykernel_") or filename.startswith("<ipython")
    return f"line {lineno} of its notebook cell" if cell else f"{filename} line {lineno}"


def error_place(err: BaseException, files: Sequence[str], fn: Callable | None = None) -> str:
    """``"law.py line 7"``: the deepest frame of ``err`` in one of ``files`` (the user's code),
    else where ``fn`` is defined, else the deepest frame (:func:`source_line`)."""
    if isinstance(err, SyntaxError) and err.filename:
        return source_line(err.filename, err.lineno)
    mine = _user_frames(err, files)
    if mine:
        return source_line(mine[-1].filename, mine[-1].lineno)
    code = getattr(fn, "__code__", None)
    if code is not None:
        return f"{source_line(code.co_filename, code.co_firstlineno)} (calling it)"
    return f"the call {getattr(fn, '__name__', 'fn')}(x, theta)" if fn else "an unknown place"


def check_output(spec: str, x_shape: tuple[int, ...], out) -> None:
    """Refuse a law's value that is not real and of the predictor's shape (m,) or a scalar:
    a complex, boolean or otherwise shaped result would be cast or broadcast into wrong numbers.
    ``out`` may be an array or an abstract ``jax.ShapeDtypeStruct``."""
    if tuple(out.shape) not in ((), tuple(x_shape)) or not jnp.issubdtype(out.dtype, jnp.number):
        raise ValueError(
            f"law {spec!r} must return a real array of shape {tuple(x_shape)} (as its "
            f"predictor) or a scalar, got dtype {out.dtype} and shape {tuple(out.shape)}"
        )
    if jnp.issubdtype(out.dtype, jnp.complexfloating):
        raise ValueError(f"law {spec!r} must return real numbers, got {out.dtype}")


def explain_failure(
    name: str, err: BaseException, fn: Callable, files: Sequence[str] = (), hint: str = ""
) -> str:
    """One line for ``err`` raised by law ``name`` (function ``fn``; its place searched in
    ``files`` and ``fn``'s own file): NumPy on traced values and Python control flow on them
    get their fix, anything else ``law 'f' failed at f.py line 7: KeyError: 'b'`` + ``hint``."""
    code = getattr(fn, "__code__", None)
    files = [*files, *([code.co_filename] if code is not None else [])]
    place = error_place(err, files, fn)
    mine = _user_frames(err, files)
    line = (mine[-1].line or "").strip() if mine else ""
    if isinstance(err, jax.errors.TracerArrayConversionError):
        call = _NUMPY_CALL.search(line)
        what = f"np.{call.group(1)}" if call else "a NumPy function"
        fix = f"jnp.{call.group(1)}" if call else "jnp.exp, jnp.log, ..."
        return (
            f"law {name!r} calls NumPy ({what} at {place}); use jax.numpy ({fix}, "
            "import jax.numpy as jnp): laws are traced by JAX, not computed in NumPy"
        )
    if isinstance(err, jax.errors.ConcretizationTypeError):
        return (
            f"law {name!r} needs a concrete number at {place} ({line or 'float(), int(), if'}): "
            "its parameters and predictor are traced by JAX; use jax.numpy functions and "
            "jnp.where instead of math.*, float() or if"
        )
    return f"law {name!r} failed at {place}: {error_reason(err)}{hint}"


def trial_evaluate(
    name: str, fn: Callable, call: Callable, params: Sequence[str], hint: str = ""
) -> None:
    """Evaluate ``call(x, theta)`` (the law as the engine calls it; ``fn`` the user's function,
    for the place of an error) abstractly on ``x`` of shape (:data:`TRIAL_POINTS`,) and scalar
    parameters; any failure is one ``ValueError`` naming the law (``hint`` appended to a
    failure that is not JAX's), a wrong shape or dtype of its value too.

    >>> import jax.numpy as jnp
    >>> law = lambda x, t: t["a"] * jnp.exp(-x)
    >>> trial_evaluate("decay", law, law, ["a"])
    >>> law = lambda x, t: t["a"] * np.exp(-x)
    >>> trial_evaluate("decay", law, law, ["a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: define_law: law 'decay' calls NumPy (np.exp at ...); use jax.numpy (jnp.exp, ...
    """
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    x = jax.ShapeDtypeStruct((TRIAL_POINTS,), dtype)
    theta = {p: jax.ShapeDtypeStruct((), dtype) for p in params}
    try:
        out = jax.eval_shape(call, x, theta)
    except MemoryError:
        raise
    except ValueError as err:
        if str(err).startswith("law "):  # already one line (a guarded law from load_law)
            raise ValueError(f"define_law: {err}") from None
        raise ValueError(f"define_law: {explain_failure(name, err, fn, hint=hint)}") from None
    except Exception as err:
        raise ValueError(f"define_law: {explain_failure(name, err, fn, hint=hint)}") from None
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(f"define_law: law {name!r} must return one array, got {type(out)}")
    try:
        check_output(name, x.shape, out)
    except ValueError as err:
        raise ValueError(f"define_law: {err}") from None
