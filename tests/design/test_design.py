"""Experiment design: noise models, Fisher screen, the calibrated transition test, coverage.

Statistical checks use Monte Carlo error (binomial SEs of rates), never hand-tuned tolerances.
Every simulated study here uses m = 1000 experiments of 10 token counts, so the fitter compiles
once for the whole module.
"""

import jax
import numpy as np
import pytest

from tokenscale_sim import design as dz
from tokenscale_sim import fit

M = 1000  # experiments per simulated design (one compiled fitter for the module)
LEVEL = 0.05


def _rate_se(p, m, m_null=0):
    """SE of a rejection rate: binomial over the experiments, plus the estimated critical value's
    own error (the null quantile's coverage is a binomial proportion over the null draws)."""
    return np.sqrt(p * (1 - p) * (1 / m + (1 / m_null if m_null else 0)))


# ----------------------------------------------------------------------------- closed forms


def test_alpha_n_jacobian_matches_jacfwd_and_finite_differences():
    truth = dz.Truth("alpha_n", (30.0, 0.3, 12.0))
    n = np.array(dz.PAPER_N, float)
    closed = np.asarray(dz.alpha_n_jacobian(n, *truth.params))
    np.testing.assert_allclose(dz.law_jacobian(truth, n), closed, rtol=1e-12, atol=1e-14)
    u = np.array([np.log(30.0), 0.3, np.log(12.0)])
    h = 1e-5
    for j in range(3):
        du = np.zeros(3)
        du[j] = h

        def ls(uu):
            return dz.Truth("alpha_n", (np.exp(uu[0]), uu[1], np.exp(uu[2]))).log_score(n)

        fd = (ls(u + du) - ls(u - du)) / (2 * h)
        # central differences: error ~ h^2 f''' ~ 1e-10, rounding ~ eps/h ~ 1e-11
        np.testing.assert_allclose(closed[:, j], fd, rtol=0, atol=1e-8)


def test_binomial_log_score_variance_matches_simulation():
    """Delta-method Var(ln S_hat) = (1 - p)/(N p) against 200 000 simulated benchmarks per point:
    z-scores of the sample variance (SE ~ var sqrt(2/m) for near-normal ln S_hat)."""
    noise = dz.Noise()
    log_s = np.log(np.array([20.0, 50.0, 80.0]))
    questions = np.array([3000, 3000, 3000])
    scores = np.asarray(dz.simulate_scores(jax.random.key(3), log_s, questions, noise, 200_000))
    var_hat = np.var(np.log(scores), axis=0, ddof=1)
    var = np.asarray(dz.log_score_variance(log_s, questions, noise))
    z = (var_hat - var) / (var * np.sqrt(2 / (scores.shape[0] - 1)))
    assert np.all(np.abs(z) < 5), z
    assert np.all(scores > 0) and np.all(scores < 100)


def test_noise_from_residuals_is_the_residual_sd():
    n = np.array(dz.PAPER_N, float)
    r = np.array([0.01, -0.02, 0.015, 0.0, -0.01, 0.02, -0.015, 0.005, 0.01, -0.015])
    y = 40.0 * n**0.1 * np.exp(r)
    res = fit.fit_curves(fit.curves_from_arrays(n, y), "powerlaw")
    coef = np.polyfit(np.log(n), np.log(y), 1)
    rss = np.sum((np.log(y) - np.polyval(coef, np.log(n))) ** 2)
    noise = dz.noise_from_residuals(res)
    assert noise.kind == "lognormal"
    np.testing.assert_allclose(noise.sigma, np.sqrt(rss / (10 - 2)), rtol=1e-8)


def test_batched_screen_agrees_with_single_designs():
    truth = dz.Truth("alpha_n", (30.0, 0.2, 16.0))
    found = dz.search_designs(truth, dz.Noise(), k=5, total_questions=5000, top=3)
    single = dz.fisher_screen(truth, found.designs, dz.Noise())
    np.testing.assert_allclose(single.nb_width, found.screen.nb_width, rtol=1e-10)
    np.testing.assert_allclose(single.ncp, found.screen.ncp, rtol=1e-10)
    assert np.all(np.diff(found.screen.nb_width) >= 0)  # ranked best first
    paper_like = dz.fisher_screen(truth, [dz.log_spaced(5, 1, 768, 5000)], dz.Noise())
    assert found.screen.nb_width[0] <= paper_like.nb_width[0]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: dz.Truth("alpha_n", (1.0, 0.2)), "takes 3 parameters"),
        (lambda: dz.Design((1, 2, 4), (10, 10, 10)), "at least 4"),
        (lambda: dz.Design((1, 2, 4, 8), (10, 10, 10)), "questions"),
        (lambda: dz.Noise("poisson"), "kind"),
        (lambda: dz.Noise("lognormal"), "sigma > 0"),
        (lambda: dz.StudyOptions(m=5), "m and m_null"),
        (lambda: dz.StudyOptions(weighting="x"), "weighting"),
        (
            lambda: dz.fisher_screen(
                dz.Truth("alpha_n", (90.0, 0.5, 4.0)), [dz.paper_design()], dz.Noise()
            ),
            "S\\(n\\) < 100",
        ),
        (
            lambda: dz.search_designs(
                dz.Truth("powerlaw", (30.0, -0.1)), dz.Noise(), k=4, total_questions=400
            ),
            "no n_b",
        ),
    ],
)
def test_validation_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ----------------------------------------------------------------------------- the test's level


def _power(key, truth, noise, design=None, intervals=False):
    opts = dz.StudyOptions(m=M, intervals=intervals)
    return dz.simulate_design(key, truth, design or dz.paper_design(30_000), noise, opts)


@pytest.mark.slow
def test_level_under_a_power_law_truth():
    """The once-per-design calibrated test holds its level: the rejection rate under a power-law
    truth is within Monte Carlo error of 0.05 (binomial noise, 3000 questions per point)."""
    r = _power(jax.random.key(10), dz.Truth("powerlaw", (30.0, -0.1)), dz.Noise())
    assert abs(r.power - LEVEL) < 4 * _rate_se(LEVEL, M, M), r.power


@pytest.mark.slow
def test_nb_quantiles_are_order_statistics_when_fits_run_to_infinity(float32):
    """In float32 over 10% of the fits under a power-law truth sit at n_b -> inf: the n_b
    quantiles are order statistics (inf), never the NaN of interpolating inf - inf."""
    r = _power(jax.random.key(10), dz.Truth("powerlaw", (30.0, -0.1)), dz.Noise())
    assert r.nb_inf_fraction > 0.1
    q = np.array([r.nb_q10, r.nb_median, r.nb_q90])
    assert not np.isnan(q).any() and np.all(np.diff(q) >= 0) and q[2] == np.inf, q


@pytest.mark.slow
@pytest.mark.parametrize(
    "params", [(30.0, 1e-3, 16.0), (30.0, 0.2, 1e6)], ids=["beta->0", "n_b beyond design"]
)
def test_power_tends_to_level_as_the_effect_vanishes(params):
    r = _power(jax.random.key(11), dz.Truth("alpha_n", params), dz.Noise())
    assert abs(r.power - LEVEL) < 4 * _rate_se(LEVEL, M, M), r.power


@pytest.mark.slow
def test_power_tends_to_one_as_noise_vanishes():
    truth = dz.Truth("alpha_n", (30.0, 0.1, 64.0))
    small = _power(jax.random.key(12), truth, dz.Noise())  # 3000 questions per point
    tiny = _power(jax.random.key(13), truth, dz.Noise("lognormal", sigma=1e-4))
    assert small.power < 0.9  # a weak effect: far from certain at realistic noise
    # all M experiments reject: if the power were below 0.995, this fails with prob < 0.007
    assert tiny.power == 1.0


# ----------------------------------------------------------------------------- coverage, screen


@pytest.mark.slow
def test_interval_coverage_when_identified():
    """n_b (profile) and beta (Wald) 95 % intervals cover at the nominal rate within Monte Carlo
    error when the transition is well inside the design and the noise is small."""
    truth = dz.Truth("alpha_n", (1.0, 1.0, 16.0))
    r = _power(jax.random.key(14), truth, dz.Noise("lognormal", sigma=0.02), intervals=True)
    assert r.nb_open_fraction == 0.0 and r.converged_fraction == 1.0
    se = _rate_se(0.95, M)
    assert abs(r.nb_coverage - 0.95) < 4 * se, r.nb_coverage
    assert abs(r.beta_coverage - 0.95) < 4 * se, r.beta_coverage


@pytest.mark.slow
def test_fisher_screen_ranks_designs_like_simulation():
    """Spearman rank correlation of the screen's expected ln n_b width with the simulated median
    profile-interval width over seven designs, one-sided permutation p < 0.01."""
    from scipy.stats import spearmanr

    truth = dz.Truth("alpha_n", (1.0, 1.0, 16.0))
    noise = dz.Noise("lognormal", sigma=0.03)
    spans = [(2, 64), (1, 128), (1, 768), (2, 256), (4, 768), (8, 1024), (32, 1024)]
    designs = [dz.log_spaced(10, lo, hi, 10) for lo, hi in spans]
    rows = dz.design_study(
        jax.random.key(15), truth, noise, designs, dz.StudyOptions(m=M, intervals=True)
    )
    predicted = [row.screen.nb_width[0] for row in rows]
    simulated = [row.result.nb_width for row in rows]
    rho, p = spearmanr(predicted, simulated, alternative="greater")
    assert p < 0.01, (rho, predicted, simulated)


def test_greedy_exchange_improves_on_its_log_spaced_start():
    """Beyond max_subsets the search swaps points greedily: its best design is never worse than
    the log-spaced design it starts from, and at most the exhaustive optimum's quality."""
    truth = dz.Truth("alpha_n", (30.0, 0.2, 16.0))
    cand = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    greedy = dz.search_designs(
        truth, dz.Noise(), k=5, total_questions=5000, candidates=cand, max_subsets=0, top=1
    )
    full = dz.search_designs(truth, dz.Noise(), k=5, total_questions=5000, candidates=cand, top=1)
    start = dz.fisher_screen(truth, [dz.Design.equal((1, 8, 32, 128, 512), 5000)], dz.Noise())
    assert greedy.method == "greedy exchange" and full.method == "exhaustive"
    assert full.screen.nb_width[0] <= greedy.screen.nb_width[0] <= start.nb_width[0]
