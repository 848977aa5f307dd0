"""One precision policy for every fit: float64 inside the fitter, whatever ``jax_enable_x64`` says.

JAX computes in float32 unless a program switches ``jax_enable_x64`` on, and the package never
switches it at import (DESIGN.md: float64 at the edges). A user who calls the fitter from a
notebook without that line would get float32 fits: on the paper's 54 curves a saturating law
converged on 17 curves in float32 and on 25 in float64. So the public entry points of
:mod:`tokenscale_sim.fit` run inside :func:`fit_precision`, a scoped, thread-local
``jax.enable_x64`` (JAX >= 0.8): the same answer with and without the user's x64 switch, and the
switch itself left as it was. ``FitOptions(precision="float32")`` asks for float32 explicitly
(accelerators; the CLI's ``--float32``).

Compiled programs are keyed on the precision by JAX itself, so the two never mix.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import jax

PRECISIONS = ("float64", "float32")
"""Values of ``FitOptions.precision``."""

F = TypeVar("F", bound=Callable[..., Any])


def fit_precision(precision: str = "float64") -> AbstractContextManager[Any]:
    """The scope a fit runs in: ``jax.enable_x64(precision == "float64")`` (thread-local,
    restored on exit).

    >>> import jax.numpy as jnp
    >>> with fit_precision("float64"):
    ...     str(jnp.zeros(1).dtype)
    'float64'
    >>> with fit_precision("float32"):
    ...     str(jnp.zeros(1).dtype)
    'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"fit_precision: precision must be one of {PRECISIONS}, got {precision!r}")
    return jax.enable_x64(precision == "float64")


def in_fit_precision(fn: F) -> F:
    """Decorate a public fitting function: run it in :func:`fit_precision` of its ``opts``
    argument (``opts.precision``; float64 when the function has no ``opts`` or it is None)."""
    signature = inspect.signature(fn)
    takes_opts = "opts" in signature.parameters

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        opts = signature.bind_partial(*args, **kwargs).arguments.get("opts") if takes_opts else None
        with fit_precision(getattr(opts, "precision", "float64")):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
