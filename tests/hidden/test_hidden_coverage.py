"""The pair-bootstrap interval of lambda (``tokenscale measure``) against the exact truth."""

import jax
import pytest

from tokenscale_sim.hidden.coverage import lambda_coverage, lambda_truth
from tokenscale_sim.structures import terms as st


def test_truth_is_the_exact_theory():
    s = st.exchangeable(0.5, 0.3, psi_ab=0.2)
    # E[D] = sqrt(v) E[chi_d]/sqrt(d) and E[Upsilon-hat] = v/2 up to the cosines' 1/d bias
    assert 1.35 < lambda_truth(s, 16, 64) < 2**0.5


@pytest.mark.slow
def test_pair_bootstrap_covers_lambda_and_the_points_interval_does_not():
    c = lambda_coverage(
        jax.random.key(0), st.decaying(4.0, coupling=0.3), n_max=16, d=32, pairs=20, reps=400
    )
    assert abs(c.pair_bootstrap - 0.95) < 4 * c.se  # the default interval: honest
    assert c.points < 0.5  # why the fit's own interval is not the one reported
