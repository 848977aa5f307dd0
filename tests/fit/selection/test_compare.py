"""Which law? ``fit.compare`` and ``fit.curvature`` on synthetic curves whose answer is known,
against NumPy/SciPy references and a brute-force loop of single fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tokenscale_sim.fit import FitOptions, curves_from_arrays, get_model
from tokenscale_sim.fit.data.curves import CurveArrays, curves_from_points
from tokenscale_sim.fit.engine.solver import solve_batch
from tokenscale_sim.fit.inference.likelihood import akaike_weights
from tokenscale_sim.fit.selection.compare import compare_laws, information_criteria, skipped_summary
from tokenscale_sim.fit.selection.curvature import curvature_test, fisher_combination, sign_test

N = np.array([1.0, 8, 16, 32, 64, 128, 256, 384, 512, 768])  # the paper's token counts
LAWS = ("powerlaw", "alpha_n", "broken")


def _noisy(seed, clean, sigma):
    rng = np.random.default_rng(seed)
    return clean * np.exp(sigma * rng.standard_normal(clean.shape))


def test_information_criteria_match_a_scipy_likelihood():
    rng = np.random.default_rng(1)
    for m, p in ((10, 2), (10, 3), (8, 5), (25, 4)):
        r = 0.1 * rng.standard_normal(m)
        rss = float(np.sum(r**2))
        loglik = np.sum(stats.norm.logpdf(r, scale=np.sqrt(rss / m)))  # the Gaussian MLE
        k = p + 1
        aic = -2 * loglik + 2 * k
        aicc, bic = information_criteria(rss, m, p)
        assert aicc == pytest.approx(aic + 2 * k * (k + 1) / (m - k - 1), rel=1e-12)
        assert bic == pytest.approx(-2 * loglik + k * np.log(m), rel=1e-12)
    aicc, _ = information_criteria(1.0, 7, 5)  # m = k + 1: undefined
    assert aicc == np.inf
    crit = np.array([[3.0, 1.0, 7.0], [np.inf, 0.0, np.inf]])
    w = akaike_weights(crit)
    ref = np.exp(-(crit[0] - 1.0) / 2)
    np.testing.assert_allclose(w[0], ref / ref.sum(), rtol=1e-14)
    np.testing.assert_array_equal(w[1], [0.0, 1.0, 0.0])


def test_leave_one_out_and_holdout_match_a_loop_of_single_fits():
    """Every LOO and hold-out row of the batched program equals a fit of that sub-curve alone."""
    n = N[:8]
    y = np.stack(
        [
            _noisy(0, 3 * n**0.2, 0.02),
            _noisy(1, 50 - 40 * n**-0.4, 0.01),
            _noisy(2, np.exp(0.1 * np.log(n) + 0.02 * np.log(n) ** 2), 0.02),
        ]
    )
    laws = ("powerlaw", "alpha_n")
    opts = FitOptions()
    cs = curves_from_arrays(n, y)
    c = compare_laws(jax.random.key(0), cs, laws, holdout_last=1, bootstrap=0, opts=opts)
    for j, name in enumerate(laws):
        model = get_model(name)
        grid = jnp.asarray(model.grid(float(n.min()), float(n.max())))

        def fit_predict(keep, g, model=model, grid=grid):
            ones = np.ones(int(keep.sum()))
            arrays = (n[keep], y[g][keep], ones, ones, ones)
            d = CurveArrays(*(jnp.asarray(x[None]) for x in arrays))
            u = solve_batch(model, opts, d, grid).u[0]
            return np.asarray(model.log_predict(u, jnp.asarray(n)))

        for g in range(len(y)):
            loo = []
            for i in range(len(n)):
                keep = np.arange(len(n)) != i
                loo.append(np.log(y[g, i]) - fit_predict(keep, g)[i])
            assert c.loo_rmse[g, j] == pytest.approx(np.sqrt(np.mean(np.square(loo))), rel=1e-6)
            # hold-out of the largest n: the LOO fit without the last point, one step ahead
            assert c.extrap_rmse[g, j] == pytest.approx(abs(loo[-1]), rel=1e-6)


@pytest.mark.slow
def test_power_law_data_power_law_wins_and_extrapolates_best():
    exponents = np.linspace(-0.4, -0.05, 24)
    y = np.stack([_noisy(s, 2.0 * N ** (-a), 0.03) for s, a in enumerate(exponents)])
    c = compare_laws(jax.random.key(1), curves_from_arrays(N, y), LAWS, bootstrap=20)
    pl = c.laws.index("powerlaw")
    for g in range(len(y)):  # the power law is least squares of ln S on ln n
        coef = np.polyfit(np.log(N), np.log(y[g]), 1)
        rss = np.sum((np.log(y[g]) - np.polyval(coef, np.log(N))) ** 2)
        assert c.rss[g, pl] == pytest.approx(rss, rel=1e-8)
    assert np.mean(c.winner.aicc == pl) >= 0.75
    assert c.pooled.weight[pl] > 0.99
    assert np.all(c.pooled.extrap_rmse[pl] <= c.pooled.extrap_rmse + 1e-12)
    assert c.pooled.boot_share[pl] > 0.5
    assert np.all(c.status != "non_finite")


@pytest.mark.slow
def test_saturating_data_broken_law_extrapolates_better_than_power_law():
    ceilings = np.linspace(60.0, 90.0, 16)
    y = np.stack([_noisy(s, top - 0.7 * top * N**-0.6, 0.005) for s, top in enumerate(ceilings)])
    c = compare_laws(jax.random.key(2), curves_from_arrays(N, y), LAWS, bootstrap=0)
    pl, br = c.laws.index("powerlaw"), c.laws.index("broken")
    assert np.mean(c.extrap_rmse[:, br] < c.extrap_rmse[:, pl]) >= 0.75
    assert c.pooled.extrap_rmse[br] < 0.5 * c.pooled.extrap_rmse[pl]
    assert np.mean(c.winner.aicc == br) >= 0.75
    assert c.shape.n_holds == 0  # concave while rising: the theory's sign fails everywhere


def test_curvature_sign_and_p_values_on_convex_and_concave_curves():
    x = np.log(N)
    convex = np.stack([_noisy(s, np.exp(0.1 * x + 0.02 * x**2), 0.02) for s in range(8)])
    falling = np.stack([_noisy(s, np.exp(-0.1 * x - 0.02 * x**2), 0.02) for s in range(8, 12)])
    concave = np.stack([_noisy(s, 70 - 50 * N**-0.5, 0.01) for s in range(12, 20)])
    y = np.concatenate([convex, falling, concave])
    key = jax.random.key(3)
    r = curvature_test(key, curves_from_arrays(N, y), m=399)
    assert np.all(r.expected_sign[:8] == 1) and np.all(r.expected_sign[8:12] == -1)
    assert np.all(r.holds[:12]) and not np.any(r.holds[12:])  # falling + concave: theory holds
    assert np.all(r.p_value[:12] < 0.01) and np.all(r.p_value[12:] > 0.9)
    assert np.all(r.p_t[:12] < 0.01) and np.all(r.p_t[12:] > 0.9)
    assert np.sum((r.ci_low[:8] < 0.02) & (r.ci_high[:8] > 0.02)) >= 6  # 95 % intervals
    assert r.n_holds == 12 and r.n_curves == 20
    assert r.sign_test_p == pytest.approx(sign_test(12, 20))
    conv = curvature_test(key, curves_from_arrays(N, y), m=399, direction="convex")
    assert np.all(conv.holds[:8]) and not np.any(conv.holds[8:12])
    assert r.fisher_p < 1e-6 and r.fisher_stat == pytest.approx(-2 * np.sum(np.log(r.p_value)))
    assert r.pooled == pytest.approx(np.mean(r.expected_sign * r.curvature))
    assert r.pooled_low < r.pooled < r.pooled_high


@pytest.mark.slow
def test_curvature_test_level_under_straight_lines_is_nominal():
    rng = np.random.default_rng(4)
    count = 2000
    slopes = rng.uniform(-0.3, 0.3, count)
    y = np.exp(slopes[:, None] * np.log(N)[None, :] + 0.05 * rng.standard_normal((count, len(N))))
    r = curvature_test(jax.random.key(4), curves_from_arrays(N, y), m=199)
    se = np.sqrt(0.05 * 0.95 / count)
    for p in (r.p_value, r.p_t):
        assert abs(np.mean(p <= 0.05) - 0.05) < 4 * se
    assert abs(np.mean(r.holds) - 0.5) < 4 * np.sqrt(0.25 / count)


def test_fisher_combination_matches_scipy():
    p = np.array([0.2, 0.03, 0.5, 0.9, 0.01])
    x, pf = fisher_combination(p)
    ref_stat, ref_p = stats.combine_pvalues(p, method="fisher")
    assert x == pytest.approx(ref_stat, rel=1e-12)
    assert pf == pytest.approx(ref_p, rel=1e-10)
    assert sign_test(7, 10) == pytest.approx(stats.binomtest(7, 10, 0.5, "greater").pvalue)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout_last": 8}, r"no curve can be compared: curves of \[10\] points"),
        ({"holdout_last": -1}, "holdout_last must be an integer >= 0, got -1"),
        ({"bootstrap": 1}, "bootstrap must be 0 or >= 2"),
        ({"laws": ["powerlaw", "powerlaw"]}, "laws must be distinct"),
        ({"laws": []}, "at least one law"),
        ({"laws": ["nope"]}, "model must be one of"),
        ({"opts": FitOptions(loss="linear")}, "loss must be 'log'"),
    ],
)
def test_compare_laws_refuses_bad_input(kwargs, match):
    kwargs = {"laws": LAWS, **kwargs}
    with pytest.raises(ValueError, match=match):
        compare_laws(jax.random.key(0), curves_from_arrays(N, 2 * N**0.2), **kwargs)


def test_bad_keys_and_curves_are_refused():
    cs = curves_from_arrays(N, 2 * N**0.2)
    with pytest.raises(TypeError, match="compare_laws: key must be a JAX PRNG key or an int"):
        compare_laws("0", cs)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="curves must be a CurveSet"):
        curvature_test(jax.random.key(0), [N, N])  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="at least 4 distinct n"):
        curvature_test(jax.random.key(0), curves_from_arrays(N[:3], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="direction must be one of"):
        curvature_test(jax.random.key(0), cs, direction="up")


def test_compare_runs_in_float32(float32):
    y = np.stack([_noisy(s, 2.0 * N**0.3, 0.02) for s in range(3)])
    c = compare_laws(jax.random.key(5), curves_from_arrays(N, y), ("powerlaw",), bootstrap=10)
    assert np.all(np.isfinite(c.aicc)) and np.all(c.winner.aicc == 0)
    assert np.all(c.boot_share == 1.0) and np.all(c.extrap_rmse < 0.1)


def _ols_predict(n, y, keep):
    """The power law is OLS of ln S on ln n: its prediction of ln S at every n from ``keep``."""
    coef = np.polyfit(np.log(n[keep]), np.log(y[keep]), 1)
    return np.polyval(coef, np.log(n))


def test_replicates_leave_one_distinct_n_out_and_hold_out_the_largest_distinct_n():
    """Replicates are points: LOO drops one distinct n with all its replicates, the hold-out
    drops the K largest distinct n; checked against OLS of ln S on ln n (the power law)."""
    n = np.array([1.0, 1, 8, 8, 8, 32, 64, 128, 128, 512, 512, 768])
    y = _noisy(3, 2.0 * n**0.25, 0.03)
    cs = curves_from_arrays(n, y)
    c = compare_laws(jax.random.key(0), cs, ("powerlaw",), holdout_last=2, bootstrap=0)
    log_y = np.log(y)
    loo = np.concatenate([(log_y - _ols_predict(n, y, n != x))[n == x] for x in np.unique(n)])
    assert c.loo_rmse[0, 0] == pytest.approx(np.sqrt(np.mean(loo**2)), rel=1e-8)
    held = n >= 512  # the two largest distinct n: 4 points
    ext = (log_y - _ols_predict(n, y, ~held))[held]
    assert c.extrap_rmse[0, 0] == pytest.approx(np.sqrt(np.mean(ext**2)), rel=1e-8)
    assert c.n_cut[0] == 128 and c.n_points[0] == 12 and c.status[0, 0] == "ok"
    rss = np.sum((log_y - _ols_predict(n, y, n > 0)) ** 2)
    assert c.rss[0, 0] == pytest.approx(rss, rel=1e-8)


def test_mixed_collection_skips_laws_with_too_few_points_per_curve():
    """Curves of 3, 4, 7 and 10 points: per curve a law that keeps no more points than
    parameters in some fit is skipped with a status; pooled numbers are medians over the rest."""
    sizes = {"three": [1, 8, 64], "four": [1, 16, 128, 768], "seven": [1, 4, 16, 64, 128, 256, 768]}
    sizes["ten"] = N.tolist()
    points = {}
    for s, (name, ns) in enumerate(sizes.items()):
        ns = np.asarray(ns, float)
        y = _noisy(s, 2.0 * ns**0.2, 0.02)
        points[(name,)] = [(a, b, 1.0, 1.0) for a, b in zip(ns, y, strict=True)]
    cs = curves_from_points(points, ("curve",))
    laws = ("powerlaw", "broken")
    c = compare_laws(jax.random.key(0), cs, laws, holdout_last=2, bootstrap=0)
    skipped = c.status == "too few points"
    # powerlaw (2): 4 - 2 held = 2 points left; broken (5): 7 - 2 = 5 left
    np.testing.assert_array_equal(
        skipped, [[True, True], [True, True], [False, True], [False, False]]
    )
    assert np.all(np.isnan(c.loo_rmse[skipped])) and np.all(np.isfinite(c.loo_rmse[~skipped]))
    assert not np.any(c.weight[skipped] > 0) and not c.converged[skipped].any()
    assert list(c.winner.aicc[:2]) == [-1, -1]
    np.testing.assert_array_equal(c.pooled.n_compared, [2, 1])
    assert c.pooled.n_common == 1  # only the 10-point curve has every law
    assert c.pooled.loo_rmse[0] == pytest.approx(np.median(c.loo_rmse[2:, 0]))
    assert c.pooled.aicc[1] == pytest.approx(c.aicc[3, 1])
    line = skipped_summary(c)
    assert "powerlaw (2 parameters) on 2 curve(s) of 3/4 points" in line
    assert "broken (5 parameters) on 3 curve(s) of 3/4/7 points" in line
    # no extrapolation: the 4-point curve now takes the power law (leave-one-out keeps 3)
    c0 = compare_laws(jax.random.key(0), cs, ("powerlaw",), holdout_last=0, bootstrap=0)
    np.testing.assert_array_equal(c0.status[:, 0] == "too few points", [True, False, False, False])
    assert np.all(np.isnan(c0.extrap_rmse)) and np.all(c0.winner.extrapolation == -1)
    assert np.isfinite(c0.loo_rmse[1:, 0]).all() and "no hold-out" in skipped_summary(c0)
    assert c.shape.n_curves == 3 and np.isnan(c.shape.curvature[0])  # 3 points: no shape test


def test_a_law_running_off_to_infinity_is_reported_runaway():
    """A saturating law on a rising power-law curve has no finite optimum (S_inf, A -> inf,
    a -> 0): compare's fits stop it by the run-away rule and say so (status ``runaway``, not
    converged) while the power law fits."""
    n = np.geomspace(1, 512, 10)
    y = 2 * n**0.3 * np.exp(0.01 * np.sin(5 * np.log(n)))
    c = compare_laws(jax.random.key(0), curves_from_arrays(n, y), ["powerlaw", "saturating"],
                     bootstrap=0)  # fmt: skip
    assert c.status[0, 0] == "ok" and c.converged[0, 0]
    assert c.status[0, 1] == "runaway" and not c.converged[0, 1]
