"""Closed forms: what the theory predicts, with no structure and no sampling.

:mod:`.closed_forms` holds Upsilon(n), the bound, the exact Gaussian E[D], n_b, rho, alpha(n) and
the regime slopes (re-exported here: ``from tokenscale_sim import theory; theory.upsilon(...)``);
:mod:`.divergence` turns hidden states, sampled or real, into D(n) and every psi(n) by cumulative
sums. Hands on: formulas to ``structures`` (exact curves), ``fit`` (the paper's laws) and the rest.
"""

from tokenscale_sim.theory.closed_forms import (
    CONVENTIONS,
    REGIMES,
    TheoryCurves,
    TransitionPoint,
    alpha,
    alpha_from_upsilon,
    check_upsilon,
    curves,
    divergence_bound,
    expected_cosine,
    fixed_point,
    gaussian_divergence_std,
    gaussian_mean_divergence,
    log_score,
    regime,
    regime_of_slope,
    rho,
    sqrt_upsilon_slope,
    transition_curve,
    transition_point,
    upsilon,
    upsilon_from_nb,
)

__all__ = [
    "CONVENTIONS",
    "REGIMES",
    "TheoryCurves",
    "TransitionPoint",
    "alpha",
    "alpha_from_upsilon",
    "check_upsilon",
    "curves",
    "divergence_bound",
    "expected_cosine",
    "fixed_point",
    "gaussian_divergence_std",
    "gaussian_mean_divergence",
    "log_score",
    "regime",
    "regime_of_slope",
    "rho",
    "sqrt_upsilon_slope",
    "transition_curve",
    "transition_point",
    "upsilon",
    "upsilon_from_nb",
]
