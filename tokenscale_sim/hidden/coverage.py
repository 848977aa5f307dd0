"""Coverage of the divergence-law intervals of :func:`tokenscale_sim.hidden.measure.measure`.

Hidden states are simulated from a structure whose truth is known from the exact theory, and
measured as a user's files would be. With raw (not unit-normalised) Gaussian tokens of width d,
``measure`` fits ``mean D(n) = lambda sqrt(mean Upsilon-hat(n))`` under the log loss, so its
target is

    ln lambda* = mean_n [ ln E[D(n)] - (1/2) ln E[Upsilon-hat(n)] ]

with the exact Gaussian ``E[D(n)]`` and ``E[Upsilon-hat(n)]`` at the exact expected cosines
(:func:`tokenscale_sim.structures.exact.exact_curves`). :func:`lambda_coverage` counts how often
each interval holds ``lambda*``: the pair bootstrap (``lambda_ci``, resampling whole branch pairs)
and the fit's own interval, which treats the n points of one cumulative curve as independent.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from tokenscale_sim.hidden.arrays import from_arrays
from tokenscale_sim.hidden.measure import MeasureOptions, measure
from tokenscale_sim.montecarlo.sampling import token_sampler
from tokenscale_sim.runtime.validation import as_key
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import exact_curves


class LambdaCoverage(NamedTuple):
    """How often the intervals of lambda held the truth over ``reps`` simulated measurements.

    Attributes:
        truth: lambda* (module docstring). pairs, reps: pairs per measurement, measurements.
        pair_bootstrap, points: coverage of the pair-bootstrap and the fit's interval.
        se: Monte Carlo standard error of a coverage near the nominal level.
        pair_width: median width of the pair-bootstrap interval.
    """

    truth: float
    pairs: int
    reps: int
    pair_bootstrap: float
    points: float
    se: float
    pair_width: float


def lambda_truth(structure: st.Structure, n_max: int, d: int) -> float:
    """lambda* of raw Gaussian tokens (module docstring)."""
    exact = exact_curves(structure, n_max, d)
    assert exact.upsilon is not None
    return float(np.exp(np.mean(np.log(exact.gaussian_mean) - 0.5 * np.log(exact.upsilon))))


def lambda_coverage(
    key: jax.Array | int,
    structure: st.Structure,
    *,
    n_max: int,
    d: int,
    pairs: int,
    reps: int,
    bootstrap: int = 200,
    level: float = 0.95,
) -> LambdaCoverage:
    """Simulate ``reps`` measurements of ``pairs`` branch pairs each and count coverage.

    >>> import jax
    >>> from tokenscale_sim import structures
    >>> c = lambda_coverage(jax.random.key(0), structures.decaying(4.0, 0.3), n_max=8, d=16,
    ...                     pairs=10, reps=3, bootstrap=50)
    >>> c.reps, 0 <= c.pair_bootstrap <= 1
    (3, True)
    """
    key = as_key("lambda_coverage", key)
    truth = lambda_truth(structure, n_max, d)
    sample = jax.jit(jax.vmap(token_sampler(structure, n_max, d)))
    hits = np.zeros((reps, 2), bool)
    widths = np.zeros(reps)
    for r in range(reps):
        h = np.asarray(sample(jax.random.split(jax.random.fold_in(key, r), pairs)))
        options = MeasureOptions(normalise=False, bootstrap=bootstrap, level=level, seed=r)
        m = measure(from_arrays(h), options)
        assert m.fit is not None and m.lambda_pairs is not None
        b = m.lambda_pairs
        hits[r] = (b.low <= truth <= b.high, m.fit.ci_low[0, 0] <= truth <= m.fit.ci_high[0, 0])
        widths[r] = b.high - b.low
    cover = hits.mean(axis=0)
    se = float(np.sqrt(level * (1 - level) / reps))
    return LambdaCoverage(
        truth, pairs, reps, float(cover[0]), float(cover[1]), se, float(np.median(widths))
    )
