"""The lane pool (fit.lanes.drain) and the Levenberg-Marquardt state machine it runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.fit import (
    FitOptions,
    curves_from_arrays,
    fit_arrays,
    get_model,
    load_paper_scores,
)
from tokenscale_sim.fit.engine import solver as engine
from tokenscale_sim.fit.engine.lanes import drain
from tokenscale_sim.fit.engine.polish import levenberg_marquardt


def test_drain_runs_every_problem_to_its_own_end_whatever_the_pool():
    """Collatz-like counters of very different lengths: each result is the problem's own, for
    pools smaller than, equal to and larger than the queue."""
    starts = jnp.array([1, 7, 27, 2, 97, 3, 871, 6])

    def step(state, _):
        x, k = state
        nxt = jnp.where(x % 2 == 0, x // 2, 3 * x + 1)
        return jnp.where(x > 1, nxt, x), k + (x > 1)

    def steps_alone(x):
        k = 0
        while x > 1:
            x, k = (x // 2 if x % 2 == 0 else 3 * x + 1), k + 1
        return k

    want = [steps_alone(int(x)) for x in starts]
    for lanes in (1, 3, 8, 20):
        got = drain(
            lambda x: (x, jnp.asarray(0)), step, lambda s: s[0] <= 1, lambda s: s[1], starts, lanes
        )
        assert np.asarray(got).tolist() == want, lanes


@pytest.mark.slow
def test_pooled_least_squares_equal_one_run_per_start():
    """solve_batch's pooled runs (3 lanes for 4 curves x 3 starts) give what a vmapped
    levenberg_marquardt over each curve's starts gives (the same budget of evaluations): the
    same optimum where the fit converges, the same RSS (1e-6) where it runs away (the end of a
    crawl along a valley moves with the rounding of batched operations)."""
    law = get_model("saturating")
    n = np.array([1.0, 2, 4, 8, 16, 32, 64, 128])
    ys = [40 - 15 * n**-0.5, 40 - 15 * n**-0.3 + 0.1 * np.sin(n), 30 + 2 * np.log(n), 50 - n**-1]
    data = curves_from_arrays(n, np.array(ys)).arrays
    opts = FitOptions(chunk=3)
    arrays = jax.tree.map(jnp.asarray, data)
    grid = engine.start_grid(law, data)
    sol = engine.solve_batch(law, opts, arrays, grid)

    @jax.jit
    def alone(row):
        starts = engine._least_squares_starts(law, opts, row, grid)
        res = engine._least_squares_residuals(law, opts, row)
        steps = engine.evaluation_budget(opts, law.n_params) - 1  # the start is one evaluation
        return jax.vmap(lambda u0: levenberg_marquardt(res, u0, max_iter=steps))(starts)

    for g in range(len(ys)):
        ref = alone(jax.tree.map(lambda x, g=g: x[g], arrays))
        best = int(np.argmin(np.asarray(ref.rss)))
        assert bool(ref.converged[best]) or not sol.converged[g]  # (exact fits: not resolved)
        rss = 2 * float(sol.loss[g]) * len(n)
        np.testing.assert_allclose(rss, float(ref.rss[best]), rtol=1e-6)
        if ref.converged[best]:
            np.testing.assert_allclose(sol.u[g], ref.u[best], rtol=1e-10)
            assert int(sol.iterations[g]) == int(np.sum(ref.iterations))


def test_run_away_fits_stop_early_and_are_not_converged():
    """A saturating law on the paper's nearly straight curves has no optimum (S_inf, A -> inf,
    a -> 0; 30 of 54 curves): under the run-away rule (``runaway=True``, as in ``compare``)
    those fits stop long before their 3 x 400 trial steps (three starts), say they did not
    converge and why (``Solution.runaway``); the others converge. Without the rule (a user's
    fit: MINPACK's stop rules only) the same fits go on, and are not converged either."""
    curves = load_paper_scores()
    grid = engine.start_grid(get_model("saturating"), curves.arrays)
    rule = FitOptions(runaway=True)
    sol = engine.solve_batch(get_model("saturating"), rule, curves.arrays, grid)
    away = ~np.asarray(sol.converged)
    assert away.sum() >= 10
    assert np.all(np.asarray(sol.iterations)[away] <= 3 * 100)
    runaway = np.asarray(sol.runaway)
    assert not (runaway & ~away).any() and runaway.sum() >= 10, (runaway.sum(), away.sum())
    res = fit_arrays("saturating", curves.arrays, rule)
    g = curves.keys.index(("vision_question_queries", "HallusionBench", "Overall"))
    assert away[g] and res.estimates[g, 0] > 100 * curves.curve(g).y.max()  # S_inf ran off
    assert not res.converged[g]
    user = fit_arrays("saturating", curves.arrays)
    assert not user.converged[away].any() and user.converged[~away].all()
    ruled = np.asarray(sol.iterations)
    assert np.all(user.iterations >= ruled) and np.all(user.iterations[runaway] > ruled[runaway])
