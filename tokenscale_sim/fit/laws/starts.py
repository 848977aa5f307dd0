"""Starting values of a law's nonlinear parameters: given, or defaults by transform and data.

A law's ``starts`` (a dict name -> value(s), or a (K, p) array) become the grid of starting
points the engine ranks (:func:`~tokenscale_sim.fit.engine.solver.start_grid`); a parameter given
no starts gets :func:`default_values` of its transform, scaled by the data's largest ``|x|`` so
that a law written in the data's units (``b1 * (1 - exp(-b2 * x))`` with x in the hundreds) has
a start where the law is not flat.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Transform = str | tuple[float, float]
"""A parameter transform: ``"free"``, ``"positive"`` or bounds ``(a, b)``, either end possibly
infinite (``(0, inf)``, ``(-inf, b)``)."""

LawFn = Callable[[Any, Mapping[str, Any]], Any]
"""A law ``fn(x, theta) -> y_hat``: ``x`` (m,) predictor, ``theta`` a dict name -> scalar."""

Starts = Mapping[str, Any] | np.ndarray | Sequence[float] | Sequence[Sequence[float]]
"""Starting values: a dict name -> value or values, or an array (K, p) of starting points (one
point of p values, as curve_fit's ``p0``, is K = 1)."""


SCALED_DEFAULTS_MAX = 4
"""Up to this many nonlinear parameters without starts, each gets five data-scaled defaults
(5**4 = 625 grid rows at most); past it, the three of its transform."""


def default_values(spec: Transform, scale: float | None = None) -> list[float]:
    """Starting values of a parameter by its transform (when none is given for it).

    Three by transform (``0.1, 1, 10`` if positive; ``-1, 0.5, 2`` if free; three points inside
    finite bounds). With ``scale`` (the largest ``|x|`` of the data), an unbounded direction also
    gets ``1/scale`` and ``scale`` (positive, one-sided) or ``+-1/scale`` (free): a rate in
    ``exp(-b x)`` on x of hundreds starts near ``1/x``, not at 0.5, where ``exp(-0.5 x)`` is 0
    and the fit has no slope to follow. Finite bounds set their own scale.

    >>> default_values("positive", 500.0)
    [0.002, 0.1, 1.0, 10.0, 500.0]
    >>> default_values("free", 500.0)
    [-1.0, -0.002, 0.002, 0.5, 2.0]
    """
    s = None if scale is None or not np.isfinite(scale) or scale <= 0 else float(scale)
    if spec == "positive":
        return sorted([0.1, 1.0, 10.0] + ([1 / s, s] if s else []))
    if isinstance(spec, tuple | list):
        a, b = (float(x) for x in spec)
        if np.isfinite(a) and np.isfinite(b):
            return [a + (b - a) * t for t in (0.2, 0.5, 0.8)]
        steps = sorted([0.1, 1.0, 10.0] + ([1 / s, s] if s else []))
        if np.isfinite(a):
            return [a + t for t in steps]
        if np.isfinite(b):
            return [b - t for t in steps]
    return sorted([-1.0, 0.5, 2.0] + ([-1 / s, 1 / s] if s else []))


def start_table(
    starts: Starts,
    params: tuple[str, ...],
    nonlin: list[str],
    specs: Mapping[str, Transform],
    scale: float | None = None,
) -> np.ndarray:
    """Natural starting values of the nonlinear parameters (K, k) from a dict or (K, p) array;
    a parameter the dict does not name gets the defaults of its transform, scaled by the data's
    ``scale`` (:func:`default_values`) when at most :data:`SCALED_DEFAULTS_MAX` need them."""
    if isinstance(starts, Mapping):
        unknown = sorted(set(starts) - set(params))
        if unknown:
            raise ValueError(f"define_law: starts for unknown parameters {unknown}")
        if sum(p not in starts for p in nonlin) > SCALED_DEFAULTS_MAX:
            scale = None
        given = {p: starts[p] if p in starts else default_values(specs[p], scale) for p in nonlin}
        values = [np.atleast_1d(np.asarray(given[p], float)) for p in nonlin]
        rows = list(itertools.product(*values))
        return np.array(rows, float).reshape(len(rows), len(nonlin))
    arr = np.atleast_2d(np.asarray(starts, float))
    if arr.shape[1] != len(params):
        raise ValueError(
            f"define_law: a starts array needs {len(params)} columns {params}, got {arr.shape}"
        )
    return arr[:, [params.index(p) for p in nonlin]]
