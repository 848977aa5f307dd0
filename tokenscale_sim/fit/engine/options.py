"""Fitting options and the status enums shared by every fit module.

:class:`FitOptions` is a frozen dataclass of Python scalars (hashable: a ``jax.jit`` static
argument). :class:`Boundary` codes live in integer arrays (traced code cannot hold enums);
:class:`NbStatus` and :class:`IntervalMethod` are string enums, written as such to CSV/JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

import numpy as np

from tokenscale_sim.fit.engine.precision import PRECISIONS

if TYPE_CHECKING:
    from tokenscale_sim.fit.laws.models import Model

LOSSES = ("log", "linear", "weighted", "huber")
"""Loss names accepted by :class:`FitOptions`."""

MAX_NFEV = 10_000_000
"""Largest ``FitOptions.max_nfev`` (function evaluations of one Levenberg-Marquardt run)."""


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
        max_nfev: most function evaluations of a Levenberg-Marquardt run (laws fitted as least
            squares: MINPACK's ``maxfev``, the start and each trial step); 0 (default):
            ``max(max_iter, 100 (p + 1))``, MINPACK's ``lmder`` default for ``p`` parameters.
            A fit that spends it is reported not converged; raise it for far starts.
        runaway: also stop a Levenberg-Marquardt run that heads to a limit the law has at
            infinity (``|u|`` growing while ``sum r^2`` barely falls:
            :mod:`tokenscale_sim.fit.engine.polish`), reported not converged with
            ``Solution.runaway``. Off for a user's fit (MINPACK's stop rules only, which never
            end a fit making progress); on in the batched fits of
            :func:`~tokenscale_sim.fit.selection.compare.compare_laws`, where saturating laws
            on straight curves would otherwise crawl for their whole budget.
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
    max_nfev: int = 0
    runaway: bool = False

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
        if not isinstance(self.runaway, bool):
            raise TypeError(f"FitOptions: runaway must be True or False, got {self.runaway!r}")
        for name, (low, high, kind) in OPTION_BOUNDS.items():
            object.__setattr__(
                self, name, checked_option(name, getattr(self, name), low, high, kind)
            )


OPTION_BOUNDS: dict[str, tuple[float, float, str]] = {
    # name: (lowest, highest, kind); "open" ends: level in (0, 1), widths > 0
    "huber_delta": (0.0, math.inf, "positive"),
    "max_iter": (1, 10**6, "int"),
    "gtol": (0.0, math.inf, "nonnegative"),
    "memory_size": (1, 1000, "int"),
    "n_starts": (1, 10_000, "int"),
    "level": (0.0, 1.0, "fraction"),
    "boundary_rtol": (0.0, math.inf, "nonnegative"),
    "boundary_span": (0.0, 700.0, "positive"),
    "profile_points": (3, 100_000, "int"),
    "adam_steps": (0, 10**6, "int"),
    "chunk": (1, 2**20, "int"),
    "max_nfev": (0, MAX_NFEV, "int"),  # 0: MINPACK's default 100 (p + 1)
}
"""Bounds of every numeric :class:`FitOptions` field, checked where the options are made.
Integer fields take Python or NumPy integers (never ``bool``); the upper bounds keep the work
and memory of one fit finite (``n_starts`` beyond the start grid's size is the whole grid; a
``boundary_span`` past 700 overflows ``exp``; ``profile_points`` scales the interval pass's
memory, :func:`~tokenscale_sim.fit.inference.estimate.memory_estimate`)."""


def checked_option(name: str, value, low: float, high: float, kind: str):
    """``value`` of the :class:`FitOptions` field ``name`` as a Python int or float, or a
    ``TypeError`` / ``ValueError`` naming the option, the bound and the value.

    >>> checked_option("chunk", 8, 1, 2**20, "int")
    8
    >>> checked_option("chunk", 0, 1, 2**20, "int")
    Traceback (most recent call last):
    ...
    ValueError: FitOptions: chunk must be an integer in [1, 1048576], got 0
    >>> checked_option("gtol", float("nan"), 0.0, float("inf"), "nonnegative")
    Traceback (most recent call last):
    ...
    ValueError: FitOptions: gtol must be a finite number >= 0, got nan
    """
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(
                f"FitOptions: {name} must be an integer in [{low}, {high}], got "
                f"{type(value).__name__} {value!r}"
            )
        if not low <= value <= high:
            raise ValueError(
                f"FitOptions: {name} must be an integer in [{low}, {high}], got {value}"
            )
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"FitOptions: {name} must be a number, got {type(value).__name__} {value!r}"
        )
    x = float(value)
    bound = {
        "positive": "a finite number > 0",
        "nonnegative": "a finite number >= 0",
        "fraction": "in (0, 1)",
    }[kind]
    if kind == "positive":
        bound = f"a number in (0, {high:g}]" if math.isfinite(high) else bound
    ok = (
        low < x <= high if kind == "positive" else low <= x < high if kind == "nonnegative"
        else low < x < high
    )  # fmt: skip
    if not ok or not math.isfinite(x):
        raise ValueError(f"FitOptions: {name} must be {bound}, got {x!r}")
    return x


def check_options(fn: str, opts, default: FitOptions | None = None) -> FitOptions:
    """``opts``, or ``default`` (``FitOptions()``) for None; a ``TypeError`` naming ``fn`` for
    anything else (a loss name passed where the options go, say).

    >>> check_options("fit_curves", "log")
    Traceback (most recent call last):
    ...
    TypeError: fit_curves: opts must be a FitOptions (e.g. FitOptions(loss='log')), got str 'log'
    """
    if opts is None:
        return default if default is not None else FitOptions()
    if not isinstance(opts, FitOptions):
        shown = f" {opts!r}"[:40] if isinstance(opts, str | int | float) else ""
        raise TypeError(
            f"{fn}: opts must be a FitOptions (e.g. FitOptions(loss='log')), got "
            f"{type(opts).__name__}{shown}"
        )
    return opts


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
