"""Experiment design and power: which token counts, how many questions, to find a transition.

Typical use::

    from tokenscale_sim import design as dz
    truth = dz.Truth("alpha_n", (30.0, 0.2, 16.0))                  # c (percent), beta, n_b
    paper = dz.paper_design(total_questions=30_000)                  # n in {1, ..., 768}
    r = dz.simulate_design(key, truth, paper, dz.Noise("binomial"))  # power, n_b/beta intervals
    best = dz.search_designs(truth, dz.Noise(), k=10, total_questions=30_000)

Modules: :mod:`.core` (truths, designs, noise models, synthetic scores), :mod:`.fitting` (the one
place that calls the fit package), :mod:`.power` (simulated power, estimates, coverage),
:mod:`.fisher` (Fisher-information screen), :mod:`.search` (design search and studies),
:mod:`.report` (the demo report's section).
"""

from tokenscale_sim.design.core import (
    NOISE_KINDS,
    PAPER_N,
    Design,
    Noise,
    Truth,
    log_score_variance,
    log_spaced,
    noise_from_residuals,
    paper_design,
    simulate_scores,
)
from tokenscale_sim.design.fisher import (
    CRITERIA,
    Screen,
    alpha_n_jacobian,
    fisher_screen,
    identification_note,
    identified,
    law_jacobian,
    noncentrality,
)
from tokenscale_sim.design.fitting import WEIGHTINGS
from tokenscale_sim.design.power import DesignResult, StudyOptions, null_truth, simulate_design
from tokenscale_sim.design.search import (
    DEFAULT_CANDIDATES,
    SearchResult,
    StudyRow,
    criterion_problem,
    design_study,
    reference_designs,
    search_designs,
)

__all__ = [
    "CRITERIA",
    "DEFAULT_CANDIDATES",
    "NOISE_KINDS",
    "PAPER_N",
    "WEIGHTINGS",
    "Design",
    "DesignResult",
    "Noise",
    "Screen",
    "SearchResult",
    "StudyOptions",
    "StudyRow",
    "Truth",
    "alpha_n_jacobian",
    "criterion_problem",
    "design_study",
    "fisher_screen",
    "identification_note",
    "identified",
    "law_jacobian",
    "log_score_variance",
    "log_spaced",
    "noise_from_residuals",
    "noncentrality",
    "null_truth",
    "paper_design",
    "reference_designs",
    "search_designs",
    "simulate_design",
    "simulate_scores",
]
