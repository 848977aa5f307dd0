"""Input checks of padded curve arrays, shared by every public fitting entry point.

:func:`check_arrays` is what :func:`~tokenscale_sim.fit.inference.estimate.fit_arrays` (arrays a
user or a study built by hand) and :func:`~tokenscale_sim.fit.data.curves.check_curves` (every
:class:`~tokenscale_sim.fit.data.curves.CurveSet`) run before anything reaches JAX: the same rules
as the CLI's readers, one ``ValueError`` naming the function, the field, the curve and the value.
Traced code never sees a NaN it would turn into a fit flagged ``converged``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from tokenscale_sim.fit.laws.models import Model
from tokenscale_sim.runtime.validation import SigmaWarning

FIELDS = ("n", "y", "se", "weight", "aux")
"""The fields of :class:`~tokenscale_sim.fit.data.curves.CurveArrays`, in order."""


def check_arrays(
    data, model: Model, loss: str, *, fn: str, labels: Sequence[str] | None = None
) -> None:
    """Raise when padded curves ``data`` (a ``CurveArrays``, fields of one shape (..., M)) cannot
    be fitted by ``model`` under ``loss``.

    Checks, on the points with ``weight > 0`` (padding is never read): one shape for all five
    fields; ``weight`` finite and ``>= 0`` with at least one point per curve; ``n``, ``y``,
    ``se``, ``aux`` finite; ``se > 0`` and ``aux > 0``; ``y > 0`` under the ``log`` and
    ``huber`` losses; token counts
    ``n >= 1`` for laws of ``n`` (``model.predictor == "n"``; other predictors take any real).
    ``labels``: names of the curves for messages (default ``curve 0``, ``curve 1``, ...).

    >>> import numpy as np
    >>> from tokenscale_sim.fit.data.curves import CurveArrays
    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> one = np.ones((1, 3))
    >>> bad = CurveArrays(np.array([[1.0, 2, 4]]), np.array([[1.0, np.nan, 2]]), one, one, one)
    >>> check_arrays(bad, get_model("powerlaw"), "log", fn="fit_arrays")
    Traceback (most recent call last):
    ...
    ValueError: fit_arrays: y must be finite, got nan at point 1 of curve 0
    """
    if not isinstance(data, tuple) or getattr(data, "_fields", None) != FIELDS:
        raise TypeError(
            f"{fn}: data must be a CurveArrays(n, y, se, weight, aux) of arrays (G, M), got "
            f"{type(data).__name__}; curves_from_arrays(...).arrays builds one"
        )
    arrays = {name: np.asarray(x) for name, x in zip(FIELDS, data, strict=True)}
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1 or arrays["y"].ndim < 1 or arrays["y"].size == 0:
        raise ValueError(f"{fn}: n, y, se, weight, aux must share one shape (G, M), got {shapes}")
    flat = {name: a.reshape(-1, a.shape[-1]).astype(float) for name, a in arrays.items()}
    w = flat["weight"]
    g_count = w.shape[0]
    names = list(labels) if labels is not None else [f"curve {g}" for g in range(g_count)]
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        g = int(np.argwhere(~(np.isfinite(w) & (w >= 0)))[0, 0])
        raise ValueError(f"{fn}: weight must be finite and >= 0, got {w[g].min()} in {names[g]}")
    empty = ~np.any(w > 0, axis=1)
    if empty.any():
        raise ValueError(f"{fn}: {names[int(np.argmax(empty))]} has no points (every weight 0)")
    real = w > 0
    rules = [(name, np.isfinite, "be finite") for name in ("n", "y", "se", "aux")]
    rules += [("se", lambda x: x > 0, "be > 0"), ("aux", lambda x: x > 0, "be > 0")]
    if loss in ("log", "huber"):
        rules.append(("y", lambda x: x > 0, f"be > 0 (the {loss} loss needs scores > 0)"))
    if model.predictor == "n":
        rules.append(("n", lambda x: x >= 1, f"be >= 1 (token counts of law {model.name!r})"))
    for name, ok, what in rules:
        with np.errstate(invalid="ignore"):
            bad = real & ~ok(flat[name])
        if bad.any():
            g, i = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{fn}: {name} must {what}, got {flat[name][g, i]} at point {i} of {names[g]}"
            )


def warn_unused_sigma(has_sigma: bool, loss: str, fn: str) -> None:
    """Warn (once per process and loss under Python's default filter) when curves carry sigma
    that ``loss`` does not use: the ``log`` and ``huber`` losses fit ``ln y`` unweighted."""
    if has_sigma and loss in ("log", "huber"):
        warnings.warn(
            f"{fn}: the curves carry sigma (standard errors of y), which the {loss!r} loss "
            "(a fit of ln y, unweighted) does not use; pass FitOptions(loss='linear') (CLI: "
            "--loss linear) to weight by 1/sigma^2 as scipy's curve_fit does "
            "(absolute_sigma=True, --loss weighted: for known sigma)",
            SigmaWarning,
            stacklevel=1,  # one place: Python's default filter shows it once per process
        )
