"""Fitting options and the status enums shared by every fit module.

:class:`FitOptions` is a frozen dataclass of Python scalars (hashable: a ``jax.jit`` static
argument). :class:`Boundary` codes live in integer arrays (traced code cannot hold enums);
:class:`NbStatus` and :class:`IntervalMethod` are string enums, written as such to CSV/JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

import numpy as np

from tokenscale_sim.fit.engine.precision import PRECISIONS
from tokenscale_sim.runtime.validation import check_count, check_real

if TYPE_CHECKING:
    from tokenscale_sim.fit.laws.models import Model

LOSSES = ("log", "linear", "weighted", "huber")
"""Loss names accepted by :class:`FitOptions`."""


class NbStatus(StrEnum):
    """Where a fitted ``n_b`` lies, as written to CSV/JSON (``"n_b_status"``)."""

    NO_NB = "no_n_b"
    INTERIOR = "interior"
    BOUNDARY_ZERO = "boundary_zero"
    BOUNDARY_INF = "boundary_inf"


class Boundary(IntEnum):
    """Boundary code of a fit, stored as an integer array (traced code cannot hold enums).

    ``NONE`` (-1): the model has no ``n_b``; ``INTERIOR`` (0): ``0 < n_b < inf`` estimated;
    ``ZERO`` (1) / ``INF`` (2): the fit sits at the limit ``n_b -> 0`` / ``n_b -> inf`` (a pure
    power law), so ``n_b`` is reported as exactly 0 / inf.

    >>> Boundary(2).label, Boundary(2).status.value
    ('n_b=inf (pure power law)', 'boundary_inf')
    """

    NONE = -1
    INTERIOR = 0
    ZERO = 1
    INF = 2

    @property
    def label(self) -> str:
        """Human-readable description for tables."""
        return _LABELS[self]

    @property
    def status(self) -> NbStatus:
        """The :class:`NbStatus` written to files."""
        return _STATUS[self]


_LABELS = {
    Boundary.NONE: "-",
    Boundary.INTERIOR: "interior",
    Boundary.ZERO: "n_b=0 (pure power law)",
    Boundary.INF: "n_b=inf (pure power law)",
}
_STATUS = {
    Boundary.NONE: NbStatus.NO_NB,
    Boundary.INTERIOR: NbStatus.INTERIOR,
    Boundary.ZERO: NbStatus.BOUNDARY_ZERO,
    Boundary.INF: NbStatus.BOUNDARY_INF,
}

BOUNDARY = tuple(Boundary(i).label for i in range(3))
"""Labels of the boundary codes 0, 1, 2 (``BOUNDARY[code]``; kept for tables and notebooks)."""


class IntervalMethod(StrEnum):
    """How the intervals of a :class:`~tokenscale_sim.fit.inference.estimate.FitResult` are built.

    ``PROFILE``: profile likelihood with the small-sample F threshold (see
    :mod:`tokenscale_sim.fit.inference.profile`); ``WALD``: Student-t Wald intervals from the
    delta-method standard errors (on the log scale for positive parameters). ``AUTO`` (options only,
    the default): profile intervals for every parameter where the closed-form profile exists (log
    loss, a law of ln y, at most one nonlinear parameter: the power law, alpha(n), both
    divergence laws and user laws of that shape), else profile for ``n_b`` and Wald for the
    others (the L-BFGS profile of every parameter costs ~40 refits each; ask for it with
    ``PROFILE``).
    """

    AUTO = "auto"
    PROFILE = "profile"
    WALD = "wald"


@dataclass(frozen=True)
class FitOptions:
    """Static fitting options (hashable: used as a ``jax.jit`` static argument).

    Attributes:
        loss: one of :data:`LOSSES`.
        huber_delta: width of the Huber loss in ln units (``loss="huber"``).
        max_iter: L-BFGS iterations per start.
        gtol: stop when the gradient norm of the loss falls below this.
        memory_size: L-BFGS history length.
        n_starts: number of variable-projection grid starts kept (best first).
        level: confidence level of the intervals.
        boundary_rtol: relative loss improvement over the best ``n_b`` limit needed to call the
            fit interior.
        boundary_span: an ``n_b`` beyond ``[n_min e^-span, n_max e^span]`` counts as a limit.
        profile_points: grid size of the ``n_b`` profile likelihood.
        adam_steps: optional Adam warm-up steps before L-BFGS (0: none).
        linesearch: ``"backtracking"`` (Armijo, cheap under vmap: the default) or ``"zoom"``
            (strong Wolfe, optax's default for L-BFGS).
        chunk: curves per vmapped chunk in :func:`solve_batch` (chunks run one after another);
            for least-squares laws the number of lanes that Levenberg-Marquardt runs share
            (:func:`tokenscale_sim.fit.engine.lanes.drain`).
        interval: an :class:`IntervalMethod` value: ``"auto"`` (default), ``"profile"``
            or ``"wald"``.
        absolute_sigma: scipy's ``curve_fit`` meaning, for curves that carry ``sigma`` (standard
            errors of y). The ``linear`` loss then minimises ``sum ((y - y_hat) / sigma)^2``;
            ``False`` (default): sigma is relative, the covariance is scaled by the reduced
            chi-square ``RSS / (m - p)``; ``True``: sigma is absolute, the covariance is
            ``(J'J)^-1`` unscaled, which is the ``weighted`` loss (``loss`` becomes
            ``"weighted"``, and ``loss="weighted"`` sets ``absolute_sigma=True``). The ``log``
            and ``huber`` losses fit ``ln y`` unweighted and take no ``absolute_sigma=True``.
        precision: ``"float64"`` (default): every fit computes in float64 whether or not the
            user switched ``jax_enable_x64`` on (:mod:`tokenscale_sim.fit.engine.precision`);
            ``"float32"``: in float32 (accelerators; fewer fits converge).
    """

    loss: str = "log"
    huber_delta: float = 0.1
    max_iter: int = 400
    gtol: float = 1e-13
    memory_size: int = 10
    n_starts: int = 3
    level: float = 0.95
    boundary_rtol: float = 1e-7
    boundary_span: float = 9.0
    profile_points: int = 41
    adam_steps: int = 0
    linesearch: str = "backtracking"
    chunk: int = 256
    interval: str = IntervalMethod.AUTO
    absolute_sigma: bool = False
    precision: str = "float64"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"FitOptions: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"FitOptions: precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if not isinstance(self.absolute_sigma, bool):
            raise TypeError(
                f"FitOptions: absolute_sigma must be True or False, got {self.absolute_sigma!r}"
            )
        if self.absolute_sigma and self.loss in ("log", "huber"):
            raise ValueError(
                f"FitOptions: absolute_sigma=True is least squares of y weighted by 1/sigma^2 "
                f"(scipy's curve_fit), which loss {self.loss!r} (of ln y) is not; pass "
                "loss='linear' (or loss='weighted')"
            )
        # one representation: known sigma is the weighted loss (frozen: set through object)
        if self.absolute_sigma and self.loss == "linear":
            object.__setattr__(self, "loss", "weighted")
        if self.loss == "weighted":
            object.__setattr__(self, "absolute_sigma", True)
        if self.linesearch not in ("backtracking", "zoom"):
            raise ValueError(
                f"FitOptions: linesearch must be 'backtracking' or 'zoom', got {self.linesearch!r}"
            )
        if self.interval not in tuple(IntervalMethod):
            raise ValueError(
                f"FitOptions: interval must be one of {[m.value for m in IntervalMethod]}, "
                f"got {self.interval!r}"
            )
        # every number once, here: a count is an int (not a bool or 2.0), a real is finite
        least = {"adam_steps": 0, "profile_points": 3}
        for name in ("max_iter", "memory_size", "n_starts", "profile_points", "adam_steps",
                     "chunk"):  # fmt: skip
            value = check_count("FitOptions", name, getattr(self, name), least.get(name, 1))
            object.__setattr__(self, name, value)
        for name, lo, open_lo in (("huber_delta", 0.0, True), ("boundary_span", 0.0, True),
                                  ("gtol", 0.0, False), ("boundary_rtol", 0.0, False)):  # fmt: skip
            value = check_real("FitOptions", name, getattr(self, name), lo, open_lo=open_lo)
            object.__setattr__(self, name, value)
        level = check_real("FitOptions", "level", self.level, 0, 1, open_lo=True, open_hi=True)
        object.__setattr__(self, "level", level)


def finite_fit(model: Model, estimates, boundary, loss) -> np.ndarray:
    """(G,) whether each fit has a finite ``loss`` and finite ``estimates`` (G, p), ``n_b = inf``
    at its limit (``boundary`` :attr:`Boundary.INF`) excepted: a fit
    failing this is never reported as converged.

    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> est = np.array([[1.0, 0.3, np.inf], [1.0, np.nan, 5.0]])
    >>> finite_fit(get_model("alpha_n"), est, np.array([2, 0]), np.array([0.1, 0.1])).tolist()
    [True, False]
    """
    finite = np.isfinite(np.asarray(estimates))
    if model.nb_index is not None:  # the natural n_b sits at the index of ln n_b in u
        finite[:, model.nb_index] |= np.asarray(boundary) == Boundary.INF
    return finite.all(axis=1) & np.isfinite(np.asarray(loss))
