"""Coverage study: the default intervals are honest on the paper's design (issue 15)."""

import jax
import numpy as np
import pytest

from tokenscale_sim.fit.inference.coverage import METHODS, PAPER_N, coverage, synthetic_curves


def test_coverage_argument_errors_and_shapes():
    with pytest.raises(ValueError, match="methods must be among"):
        coverage(jax.random.key(0), "powerlaw", [2.0, -0.3], PAPER_N, 0.05, methods=("bca",))
    with pytest.raises(ValueError, match="reps must be >= 2"):
        coverage(jax.random.key(0), "powerlaw", [2.0, -0.3], PAPER_N, 0.05, reps=1)
    r = coverage(
        jax.random.key(0),
        "powerlaw",
        [2.0, -0.3],
        PAPER_N,
        0.05,
        reps=50,
        methods=METHODS,
        boot_m=50,
    )
    assert r.cover.shape == (len(METHODS), 2) and r.methods == METHODS
    assert np.all((r.cover >= 0) & (r.cover <= 1)) and np.all(np.isfinite(r.median_width))
    cs = synthetic_curves(jax.random.key(1), "alpha_n", [20.0, 0.3, 30.0], PAPER_N, 0.0, 2)
    np.testing.assert_allclose(cs.arrays.y[0, 0], 20.0, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("theta", "sd"), [((20.0, 0.3, 30.0), 0.03), ((45.0, 0.15, 120.0), 0.015)])
def test_default_intervals_cover_95_on_the_paper_design(theta, sd):
    """The intervals `tokenscale fit` reports by default (profile likelihood, F threshold) cover
    c, beta and n_b in 92-98 % of 1000 curves (Monte Carlo SE ~0.007) at the issue's truths."""
    r = coverage(jax.random.key(15), "alpha_n", theta, PAPER_N, sd, reps=1000, methods=("profile",))
    assert np.all((r.cover >= 0.92) & (r.cover <= 0.98)), r.cover
