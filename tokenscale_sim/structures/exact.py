"""Every exact curve of a structure and token model, in one place.

:func:`tokenscale_sim.montecarlo.simulation.simulate`, :mod:`tokenscale_sim.study` and
``tokenscale theory`` all take their exact curves from here, so the oracle the Monte Carlo is
tested against and the numbers a user reads are the same function:

- :func:`exact_curves`: v_n, E[D(n)^2] of the token model, the bound sqrt(E[D^2]), the exact
  Gaussian E[D(n)] and its std, the exact expectations of the *sampled* cosine psi's and
  Upsilon at them, and the transition point;
- :func:`transition`: the transition point of psi curves, decided from the curves themselves
  (constant psi's: n_b itself, status ``"constant"``; psi's that vary with n: the fixed point
  of n_b(n) = n, :func:`tokenscale_sim.theory.closed_forms.fixed_point`);
- :func:`theory_table`: the table of ``tokenscale theory`` (Upsilon, bound, E[D], n_b(n), the
  log-log slope of sqrt(Upsilon), regimes and alpha(n)) for any psi curves.

Token models (:class:`TokenModel`) and their exact E[D(n)^2] (:func:`expected_squared_divergence`):

- ``"gaussian"``: tokens with iid feature columns N(0, Sigma/d): ``E[D^2] = v_n``,
  ``D(n) ~ sqrt(v_n/d) chi_d`` (exact mean and std, :mod:`tokenscale_sim.theory.closed_forms`);
- ``"unit"``: each Gaussian token scaled to unit length (the theory's setting); per sample
  ``D(n)^2 = 2 Upsilon-hat(n)``, so ``E[D^2] = n (1 - psi_eq) + n (n-1) (psi_aabb - psi_ab)`` at
  the exact expected cosines (``Structure.expected_cosine_psi``);
- ``"student-t"``: the scale mixture ``h_i = s_i g_i``, ``s_i^2 = (df - 2)/chi^2_df``:
  ``E[D^2] = q v_n + 2 n (1 - q)``, ``q = E[s]^2 = (df-2) Gamma((df-1)/2)^2 / (2 Gamma(df/2)^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tokenscale_sim.structures.terms import PsiCurves, Structure, check_count
from tokenscale_sim.theory import closed_forms as theory

__all__ = [
    "TOKEN_KINDS",
    "ExactCurves",
    "TokenModel",
    "as_token_model",
    "exact_curves",
    "expected_squared_divergence",
    "is_constant",
    "student_t_scale_moment",
    "theory_table",
    "transition",
]

TOKEN_KINDS = ("gaussian", "unit", "student-t")
"""Token models of :class:`TokenModel`."""

CONSTANT_TOL = 1e-12
"""Absolute tolerance under which psi curves count as constant in n (:func:`is_constant`)."""


@dataclass(frozen=True)
class TokenModel:
    """How token embeddings are drawn (see the module docstring for each model's oracle).

    Attributes:
        kind: ``"gaussian"``, ``"unit"`` (unit-normalised Gaussian) or ``"student-t"``.
        df: degrees of freedom of the Student-t scale mixture (``df > 2``); unused otherwise.
    """

    kind: str = "gaussian"
    df: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in TOKEN_KINDS:
            raise ValueError(f"TokenModel: kind must be one of {TOKEN_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.df) and self.df > 2):
            raise ValueError(f"TokenModel: df must be finite and > 2, got {self.df}")


def as_token_model(tokens: TokenModel | str) -> TokenModel:
    """``tokens`` itself, or the :class:`TokenModel` of that kind (default df)."""
    return tokens if isinstance(tokens, TokenModel) else TokenModel(tokens)


def student_t_scale_moment(df: float) -> float:
    """q = E[s]^2 of the Student-t scale ``s = sqrt((df - 2)/chi^2_df)`` (so E[s^2] = 1).

    >>> round(student_t_scale_moment(5.0), 6)
    0.848826
    """
    return (df - 2) / 2 * math.exp(2 * (math.lgamma((df - 1) / 2) - math.lgamma(df / 2)))


def expected_squared_divergence(
    structure: Structure,
    n_max: int,
    d: int,
    tokens: TokenModel | str = "gaussian",
    *,
    validated: bool = False,
) -> np.ndarray:
    """Exact E[D(n)^2], n = 1..n_max, for the token model (the samplers' oracle).

    - gaussian: ``v_n``;
    - unit: ``2 Upsilon(n)`` at the exact expected sampled cosines:
      ``2 [n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab)]``;
    - student-t: ``q v_n + 2 n (1 - q)`` (:func:`student_t_scale_moment`).

    Args:
        structure: the token correlation structure. n_max: tokens (>= 1). d: width (>= 1).
        tokens: a :class:`TokenModel` or its kind.
        validated: skip ``structure.validate(n_max)`` (the caller did it, e.g. a sampling plan).

    Returns:
        float64 array ``(n_max,)``.

    >>> from tokenscale_sim import structures
    >>> expected_squared_divergence(structures.exchangeable(0.5, 0.3, psi_ab=0.2), 3, 8).round(6)
    array([1. , 2.4, 4.2])
    """
    n_max, d = _checked(structure, n_max, d, validated, "expected_squared_divergence")
    return _mean_squared(structure, n_max, d, as_token_model(tokens), None)


def _checked(
    structure: Structure, n_max: int, d: int, validated: bool, func: str
) -> tuple[int, int]:
    n_max, d = check_count(func, "n_max", n_max), check_count(func, "d", d)
    if not validated:
        structure.validate(n_max)
    return n_max, d


def _mean_squared(
    structure: Structure, n_max: int, d: int, tokens: TokenModel, psi: PsiCurves | None
) -> np.ndarray:
    n = np.arange(1, n_max + 1, dtype=np.float64)
    v = np.asarray(structure.v(n_max), dtype=np.float64)
    if tokens.kind == "gaussian":
        return v
    if tokens.kind == "student-t":
        q = student_t_scale_moment(tokens.df)
        return q * v + 2 * n * (1 - q)
    psi = structure.expected_cosine_psi(n_max, d) if psi is None else psi
    cross = np.where(n > 1, np.asarray(psi.psi_aabb) - np.asarray(psi.psi_ab), 0.0)
    return 2 * (n * (1 - np.asarray(psi.psi_eq)) + n * (n - 1) * cross)


class ExactCurves(NamedTuple):
    """Exact curves of a structure and token model; arrays are ``(n_max,)`` float64.

    Attributes:
        v: v_n = 2 Upsilon(n) with population psi's (E[D^2] of Gaussian tokens).
        mean_squared: exact E[D(n)^2] of the token model (:func:`expected_squared_divergence`).
        bound: sqrt(mean_squared) >= E[D(n)] (Jensen); the bound sqrt(2 Upsilon).
        gaussian_mean: exact E[D(n)] for Gaussian tokens (the oracle; approximate otherwise).
        gaussian_std: exact std of D(n) for Gaussian tokens.
        psi_eq, psi_aa, psi_bb, psi_ab: exact expectations of the sampled cosine averages
            (``Structure.expected_cosine_psi``; pairwise ones NaN at n = 1), or None when not
            asked for.
        upsilon: Upsilon(n) at those expected psi's (= E[Upsilon-hat]), or None.
        transition: the structure's transition point (:func:`transition` of its population
            psi's).
    """

    v: np.ndarray
    mean_squared: np.ndarray
    bound: np.ndarray
    gaussian_mean: np.ndarray
    gaussian_std: np.ndarray
    psi_eq: np.ndarray | None
    psi_aa: np.ndarray | None
    psi_bb: np.ndarray | None
    psi_ab: np.ndarray | None
    upsilon: np.ndarray | None
    transition: theory.TransitionPoint

    def columns(self) -> dict[str, np.ndarray]:
        """``{"exact_<curve>": (n_max,) array}`` of the per-n curves that are present."""
        return {
            f"exact_{k}": np.asarray(v)
            for k, v in self._asdict().items()
            if isinstance(v, np.ndarray)
        }


def exact_curves(
    structure: Structure,
    n_max: int,
    d: int,
    tokens: TokenModel | str = "gaussian",
    *,
    psi: bool = True,
    validated: bool = False,
) -> ExactCurves:
    """All exact curves of ``structure`` for ``n = 1..n_max`` tokens of width ``d``.

    Args:
        structure: the token correlation structure.
        n_max: tokens per branch (>= 1). d: embedding width (>= 1).
        tokens: a :class:`TokenModel` or its kind.
        psi: also the exact expected sampled psi's and Upsilon at them (``O(n_max)`` for
            stationary structures, else the dense ``2 n_max x 2 n_max`` Sigma).
        validated: skip ``structure.validate(n_max)`` (the caller did it already).

    Returns:
        :class:`ExactCurves`.

    >>> from tokenscale_sim import structures
    >>> c = exact_curves(structures.exchangeable(0.5, 0.3, psi_ab=0.2), 3, 64)
    >>> c.v.round(6).tolist(), round(c.transition.n_b, 9), c.transition.status
    ([1.0, 2.4, 4.2], 4.0, 'constant')
    """
    n_max, d = _checked(structure, n_max, d, validated, "exact_curves")
    tokens = as_token_model(tokens)
    v = np.asarray(structure.v(n_max), dtype=np.float64)
    cosines = structure.expected_cosine_psi(n_max, d) if psi else None
    mean_sq = _mean_squared(structure, n_max, d, tokens, cosines)
    sampled: list[np.ndarray | None] = [None] * 4
    ups = None
    if cosines is not None:
        eq, aa, bb, ab = (
            np.asarray(c, dtype=np.float64)
            for c in (cosines.psi_eq, cosines.psi_aa, cosines.psi_bb, cosines.psi_ab)
        )
        sampled = [eq, aa, bb, ab]
        n = np.arange(1, n_max + 1, dtype=np.float64)
        ups = np.asarray(theory.upsilon(n, eq, (aa + bb) / 2, ab), dtype=np.float64)
    return ExactCurves(
        v=v,
        mean_squared=mean_sq,
        bound=np.sqrt(np.clip(mean_sq, 0.0, None)),
        gaussian_mean=np.asarray(theory.gaussian_mean_divergence(v, d), dtype=np.float64),
        gaussian_std=np.asarray(theory.gaussian_divergence_std(v, d), dtype=np.float64),
        psi_eq=sampled[0],
        psi_aa=sampled[1],
        psi_bb=sampled[2],
        psi_ab=sampled[3],
        upsilon=ups,
        transition=transition(structure.psi(n_max)),
    )


def is_constant(psi: PsiCurves) -> bool:
    """True when psi_eq(n) and Delta(n) (n >= 2) do not vary with n (to :data:`CONSTANT_TOL`).

    Decided from the curves, never from a structure's name: any structure whose population
    psi's are constant (an exchangeable one, scaled or plus a shared component) qualifies.

    >>> from tokenscale_sim import structures
    >>> is_constant(structures.constant_psi(5, 0.5, 0.3, psi_ab=0.2))
    True
    >>> is_constant(structures.decaying(4.0, coupling=0.3).psi(5))
    False
    """
    eq = np.asarray(psi.psi_eq, dtype=np.float64)
    delta = np.asarray(psi.delta, dtype=np.float64)[1:]
    return bool(
        np.all(np.abs(eq - eq[0]) <= CONSTANT_TOL)
        and (delta.size == 0 or np.all(np.abs(delta - delta[0]) <= CONSTANT_TOL))
    )


def transition(psi: PsiCurves) -> theory.TransitionPoint:
    """The transition point of psi curves (authors' convention).

    Constant psi's: ``n_b = (1 - psi_eq)/Delta - 1`` itself, status ``"constant"`` (negative
    for Delta < 0, where Upsilon peaks and falls); ``n_b = inf`` with status
    ``"no_transition"`` for Delta = 0 or n_max = 1 (Delta undefined). Psi's that vary with n:
    the fixed point of ``n_b(n) = n`` with its status
    (:func:`tokenscale_sim.theory.closed_forms.fixed_point`).
    """
    curve = theory.transition_curve(psi.psi_eq, psi.delta)
    if is_constant(psi):
        if not np.isfinite(curve[-1]):
            return theory.TransitionPoint(math.inf, "no_transition")
        return theory.TransitionPoint(float(curve[-1]), "constant")
    n = np.arange(1.0, len(curve) + 1)
    return theory.fixed_point(n, curve, psi.delta)


THEORY_COLUMNS = (
    "n",
    "psi_eq",
    "delta",
    "upsilon",
    "bound",
    "gaussian_mean",
    "n_b",
    "slope",
    "regime",
    "alpha",
)
"""Columns of :func:`theory_table`, in order."""


def theory_table(
    psi: PsiCurves, *, beta: float = 1.0, d: int = 256, convention: str = "authors"
) -> tuple[dict[str, np.ndarray], theory.TransitionPoint]:
    """The theory table of psi curves: ``({column: (n_max,) array}, transition point)``.

    Constant psi's (:func:`is_constant`) use the closed forms: slope ``1/2 + n/(2(n + n_b))``
    and ``alpha(n; beta, n_b)``. Psi's that vary with n use the exact Upsilon(n), its numerical
    log-log slope and the implied ``alpha(n) = -(beta/2) ln(Upsilon(n)/Upsilon(1)) / ln n``.
    Regimes are :func:`tokenscale_sim.theory.closed_forms.regime_of_slope` of the slope. The ``n_b``
    column is the local n_b(n) (NaN at n = 1), shifted by 2 tokens under the ``"literal"``
    convention, as is the returned transition point.

    Raises:
        ValueError: ``beta <= 0``, or Upsilon(n) <= 0 for some n (Delta < 0 past its root).

    >>> from tokenscale_sim import structures
    >>> cols, tp = theory_table(structures.constant_psi(4, 0.5, 0.3, psi_ab=0.2), d=64)
    >>> cols["upsilon"].round(6).tolist(), tp.status
    ([0.5, 1.2, 2.1, 3.2], 'constant')
    """
    if not beta > 0:
        raise ValueError(f"theory_table: beta must be > 0, got {beta}")
    if convention not in theory.CONVENTIONS:
        raise ValueError(
            f"theory_table: convention must be one of {theory.CONVENTIONS}, got {convention!r}"
        )
    eq = np.asarray(psi.psi_eq, dtype=np.float64)
    n = np.arange(1, len(eq) + 1, dtype=np.float64)
    pairwise = n > 1
    ups = np.asarray(
        theory.upsilon(
            n, eq, np.where(pairwise, psi.psi_aabb, 0.0), np.where(pairwise, psi.psi_ab, 0.0)
        ),
        dtype=np.float64,
    )
    if np.any(ups <= 0):
        raise ValueError(f"theory_table: Upsilon(n) <= 0 from n = {int(n[np.argmax(ups <= 0)])}")
    n_b_curve = theory.transition_curve(eq, psi.delta)
    tp = transition(psi)
    if is_constant(psi):  # the closed forms (n_b < 0 when Delta < 0: Upsilon peaks and falls)
        slope = np.asarray(theory.sqrt_upsilon_slope(n, tp.n_b), dtype=np.float64)
        alpha = np.asarray(theory.alpha(n, beta, tp.n_b), dtype=np.float64)
    else:  # psi's vary with n: exact Upsilon, its numerical log-log slope, the implied alpha
        slope = 0.5 * np.gradient(np.log(ups), np.log(n)) if len(n) > 1 else np.full(1, 0.5)
        alpha = np.array(theory.alpha_from_upsilon(n, ups, beta), dtype=np.float64)
        alpha[0] = -beta * slope[0]
    shift = 2.0 if convention == "literal" else 0.0
    cols = {
        "n": n,
        "psi_eq": eq,
        "delta": np.asarray(psi.delta, dtype=np.float64),
        "upsilon": ups,
        "bound": np.asarray(theory.divergence_bound(ups), dtype=np.float64),
        "gaussian_mean": np.asarray(theory.gaussian_mean_divergence(2 * ups, d), dtype=np.float64),
        "n_b": n_b_curve + shift,
        "slope": slope,
        "regime": np.asarray(theory.regime_of_slope(slope)),
        "alpha": alpha,
    }
    return cols, tp._replace(n_b=tp.n_b + shift)
