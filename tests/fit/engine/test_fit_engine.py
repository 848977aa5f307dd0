"""Fit engine: log-log OLS, exact recovery, scipy agreement, jit/vmap/grad, boundaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import curve_fit

from tokenscale_sim.fit import (
    CurveArrays,
    FitOptions,
    curves_from_arrays,
    fit_curves,
    fit_divergence,
    get_model,
    load_paper_scores,
)
from tokenscale_sim.fit.engine import solver as engine
from tokenscale_sim.fit.laws.models import alpha_curve
from tokenscale_sim.theory import closed_forms as theory

N = np.array([1, 8, 16, 32, 64, 128, 256, 384, 512, 768], float)


@pytest.fixture(scope="module")
def paper():
    return load_paper_scores(exact_only=True)


@pytest.fixture(scope="module")
def paper_alpha_n(paper):
    return fit_curves(paper, "alpha_n")


def test_powerlaw_equals_polyfit_on_every_exact_paper_curve(paper):
    res = fit_curves(paper, "powerlaw")
    assert len(paper.keys) == 36
    for g in range(len(paper.keys)):
        c = paper.curve(g)
        slope, intercept = np.polyfit(np.log(c.n), np.log(c.y), 1)
        np.testing.assert_allclose(res.estimates[g, 0], np.exp(intercept), rtol=1e-8)
        np.testing.assert_allclose(res.estimates[g, 1], -slope, rtol=0, atol=1e-8)
    assert res.converged.all()
    assert np.all(res.boundary == -1)


def _truth_curves():
    n = np.geomspace(1, 2000, 40)
    ups = np.asarray(theory.upsilon(n, 0.5 - 0.1 / n, 0.3 + 0.05 * np.exp(-n / 50), 0.25))
    return {
        "powerlaw": (n, np.array([3.0, -0.4]), None),
        "alpha_n": (n, np.array([2.0, 0.8, 20.0]), None),
        "divergence_const": (n, np.array([0.3, 15.0]), None),
        "divergence_measured": (n, np.array([0.9]), ups),
        "broken": (n, np.array([5.0, -0.2, -0.8, 40.0, 0.3]), None),
    }


@pytest.mark.parametrize("name", list(_truth_curves()))
def test_noise_free_recovery(name):
    n, theta, aux = _truth_curves()[name]
    model = get_model(name)
    u = model.unconstrained(jnp.asarray(theta))
    y = np.exp(np.asarray(model.log_predict(u, jnp.asarray(n), None if aux is None else aux)))
    res = fit_curves(curves_from_arrays(n, y, aux=aux), model)
    np.testing.assert_allclose(res.estimates[0], theta, rtol=1e-6)
    assert res.converged[0]
    assert res.r2_log[0] > 1 - 1e-12
    if model.nb_index is not None:
        assert res.boundary[0] == 0


def test_alpha_n_agrees_with_scipy_curve_fit(paper, paper_alpha_n):
    def f(x, log_c, beta, log_nb):
        return np.asarray(theory.log_score(x, log_c, beta, np.exp(log_nb)))

    res = paper_alpha_n
    interior = np.flatnonzero(res.boundary == 0)
    assert len(interior) >= 10
    compared = 0
    for g in interior:
        c = paper.curve(g)
        p, _ = curve_fit(f, c.n, np.log(c.y), p0=res.u[g] + 0.1, ftol=1e-15, xtol=1e-15, gtol=1e-15)
        rss = [np.sum((np.log(c.y) - f(c.n, *u)) ** 2) for u in (res.u[g], p)]
        assert rss[0] <= rss[1] + 1e-14  # never a worse optimum than scipy's
        theta = np.array([np.exp(p[0]), p[1], np.exp(p[2])])
        # flat likelihoods in n_b (RealWorldQA: beta ~ 0.006) let both stop on a plateau
        np.testing.assert_allclose(res.estimates[g], theta, rtol=1e-4)
        compared += np.allclose(res.estimates[g], theta, rtol=1e-6, atol=0)
    assert compared >= 0.8 * len(interior)


def test_broken_agrees_with_scipy_on_noisy_curve():
    rng = np.random.default_rng(3)
    n = np.geomspace(1, 4000, 30)
    model = get_model("broken")
    theta = np.array([4.0, -0.1, -0.7, 60.0, 0.5])
    lp = np.asarray(model.log_predict(model.unconstrained(jnp.asarray(theta)), jnp.asarray(n)))
    y = np.exp(lp + 0.01 * rng.standard_normal(n.size))
    res = fit_curves(curves_from_arrays(n, y), model)

    def f(x, *u):
        return np.asarray(model.log_predict(jnp.asarray(u), jnp.asarray(x)))

    p, _ = curve_fit(f, n, np.log(y), p0=res.u[0] + 0.05, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(
        res.estimates[0], np.asarray(model.natural(jnp.asarray(p))), rtol=1e-5
    )


def test_saturating_paper_curves_are_reported_at_a_boundary(paper, paper_alpha_n):
    """THEORY.md: concave (saturating) curves put alpha(n) on a boundary: say so, no fake n_b."""
    res = paper_alpha_n
    curvature = np.array(
        [np.polyfit(np.log(paper.curve(g).n), np.log(paper.curve(g).y), 2)[0] for g in range(36)]
    )
    concave = curvature < -0.02  # clearly saturating (quadratic term of ln S in ln n)
    assert concave.sum() >= 6
    assert np.all(res.boundary[concave] > 0)
    assert np.mean(res.boundary[curvature < 0] > 0) > 0.7
    for g in np.flatnonzero(res.boundary > 0):
        assert res.estimates[g, 2] in (0.0, np.inf)  # exactly the limit, not an arbitrary number
        assert res.converged[g]
        # the limit is the power law: slope beta (n_b = 0) or beta/2 (n_b = inf)
        slope = -fit_curves(paper, "powerlaw").estimates[g, 1]
        factor = 1.0 if res.boundary[g] == 1 else 2.0
        np.testing.assert_allclose(res.estimates[g, 1], factor * slope, rtol=1e-8)
        assert res.ci_open[g, 2].any()
    # a convex curve (HallusionBench, question-queries variant) gets an interior n_b
    g = paper.keys.index(("vision_question_queries", "HallusionBench", "Overall"))
    assert res.boundary[g] == 0 and 1 < res.estimates[g, 2] < 768


def test_profile_interval_of_nb_brackets_truth_or_is_open():
    rng = np.random.default_rng(0)
    n = np.geomspace(1, 4096, 30)
    y = np.exp(np.asarray(theory.log_score(n, 0.5, 1.0, 30.0)) + 0.01 * rng.standard_normal(30))
    res = fit_curves(curves_from_arrays(n, y), "alpha_n")
    assert res.ci_low[0, 2] < 30.0 < res.ci_high[0, 2]
    assert not res.ci_open[0, 2].any()
    flat = np.exp(0.3 * np.log(n) + 0.05 * rng.standard_normal(30))  # pure power law
    res = fit_curves(curves_from_arrays(n, flat), "alpha_n")
    assert res.ci_open[0, 2].any()


def test_losses_linear_weighted_huber_recover_noise_free():
    n = np.geomspace(1, 1000, 15)
    y = 2.0 * n**0.25
    for loss in ("linear", "weighted", "huber"):
        # huber fits ln y unweighted: sigma given to it would be unused (and warned about)
        cs = curves_from_arrays(n, y, se=None if loss == "huber" else 0.01 * y)
        res = fit_curves(cs, "powerlaw", FitOptions(loss=loss))
        np.testing.assert_allclose(res.estimates[0], [2.0, -0.25], rtol=1e-6)


def test_weighted_loss_matches_curve_fit_with_absolute_sigma():
    rng = np.random.default_rng(1)
    n = np.geomspace(1, 1000, 15)
    se = 0.02 * 2 * n**0.25
    y = 2 * n**0.25 + se * rng.standard_normal(15)
    res = fit_curves(curves_from_arrays(n, y, se=se), "powerlaw", FitOptions(loss="weighted"))
    p, cov = curve_fit(
        lambda x, c, a: c * x ** (-a),
        n,
        y,
        p0=[2, -0.25],
        sigma=se,
        absolute_sigma=True,
        ftol=1e-15,
        xtol=1e-15,
        gtol=1e-15,
    )
    np.testing.assert_allclose(res.estimates[0], p, rtol=1e-7)
    np.testing.assert_allclose(res.se[0], np.sqrt(np.diag(cov)), rtol=1e-4)


def test_gradients_finite_and_jit_vmap():
    model = get_model("alpha_n")
    n = jnp.asarray(N)
    y = jnp.exp(theory.log_score(n, 0.1, 0.5, 10.0))
    data = CurveArrays(n, y, jnp.ones_like(n), jnp.ones_like(n), jnp.ones_like(n))
    opts = FitOptions()
    for u in ([0.1, 0.5, 2.3], [0.0, 0.3, -25.0], [0.0, 0.3, 30.0]):
        g = jax.grad(lambda uu: engine.objective(model, opts, uu, data))(jnp.asarray(u))
        assert np.all(np.isfinite(g))
    batch = CurveArrays(*(jnp.stack([x, x]) for x in data))
    sol = engine.solve_batch(model, opts, batch, engine.start_grid(model, batch))
    assert sol.u.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(sol.u[0]), [0.1, 0.5, np.log(10.0)], atol=1e-7)
    f = jax.jit(jax.vmap(lambda nn: alpha_curve("alpha_n", jnp.array([1.0, 1.0, 2.0]), nn)))
    assert np.all(np.isfinite(np.asarray(f(jnp.stack([n, n])))))


def test_alpha_curve_limits():
    n = jnp.asarray(N)
    np.testing.assert_allclose(alpha_curve("alpha_n", jnp.array([1.0, 1.0, jnp.inf]), n)[0], -0.5)
    np.testing.assert_allclose(alpha_curve("alpha_n", jnp.array([1.0, 1.0, 0.0]), n)[0], -1.0)
    np.testing.assert_allclose(alpha_curve("powerlaw", jnp.array([1.0, 0.3]), n)[0], 0.3)
    br = np.asarray(alpha_curve("broken", jnp.array([1.0, 0.2, 0.2, 10.0, 0.5]), n))
    np.testing.assert_allclose(br, 0.2, atol=1e-12)


def test_float32_smoke(float32):
    n = np.geomspace(1, 768, 10)
    res = fit_curves(curves_from_arrays(n, 2.0 * n**0.3), "powerlaw")
    np.testing.assert_allclose(res.estimates[0], [2.0, -0.3], rtol=1e-4)


@pytest.mark.slow
def test_fit_divergence_measured_psi_and_constant_psi():
    n = np.arange(1.0, 129.0)
    psi_eq = 0.5 - 0.1 / n
    psi_aabb = 0.3 + 0.05 * np.exp(-n / 50)
    ups = np.asarray(theory.upsilon(n, psi_eq, psi_aabb, 0.25))
    d = 0.8 * np.sqrt(ups)
    res = fit_divergence(n, d, psi_eq, psi_aabb, 0.25)
    assert res.param_names == ("lambda",) and res.loss_name == "linear"
    np.testing.assert_allclose(res.estimates[0], [0.8], rtol=1e-8)
    # the authors' linear least squares has a closed form for lambda: <D, s> / <s, s>
    rng = np.random.default_rng(2)
    noisy = d * (1 + 0.05 * rng.standard_normal(n.size))
    s = np.sqrt(ups)
    lam = fit_divergence(n, noisy, psi_eq, psi_aabb, 0.25).estimates[0, 0]
    np.testing.assert_allclose(lam, noisy @ s / (s @ s), rtol=1e-8)
    const = fit_divergence(n, 0.2 * np.sqrt(n * (n + 7.0)))
    np.testing.assert_allclose(const.estimates[0], [0.2, 7.0], rtol=1e-6)
    with pytest.raises(ValueError, match="give all of psi_eq"):
        fit_divergence(n, d, psi_eq)
    with pytest.raises(ValueError, match="give all of psi_eq"):
        fit_divergence(n, d, psi_eq, psi_aabb, 0.25, upsilon=ups)
    # Upsilon given directly is the same fit as the psi's it comes from
    direct = fit_divergence(n, noisy, upsilon=ups).estimates[0, 0]
    np.testing.assert_allclose(direct, lam, rtol=1e-12)
    with pytest.raises(ValueError, match="Upsilon"):
        fit_divergence(n, d, np.full(n.size, 1.0), np.full(n.size, 0.1), 0.2)


def test_adam_warm_up_and_zoom_line_search_options():
    n = np.geomspace(1, 1000, 12)
    cs = curves_from_arrays(n, 2.0 * n**0.25)
    for opts in (
        FitOptions(loss="linear", adam_steps=20),
        FitOptions(loss="linear", linesearch="zoom"),
    ):
        res = fit_curves(cs, "powerlaw", opts)
        np.testing.assert_allclose(res.estimates[0], [2.0, -0.25], rtol=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        FitOptions(loss="l1")
    with pytest.raises(ValueError, match="level must be in"):
        FitOptions(level=1.0)
    with pytest.raises(ValueError, match="linesearch must be"):
        FitOptions(linesearch="wolfe")


@pytest.mark.parametrize("p", [1, 2, 3, 5, 9])
def test_damped_step_and_trust_region_match_numpy_least_squares(p):
    """The QR-reduced step equals NumPy's least squares of the augmented system
    ``[J; sqrt(lam) D] dx = [-r; 0]``, and the trust-region lambda puts ``|D dx|`` on ``delta``."""
    from tokenscale_sim.fit.engine.polish import damped_step, reduce, trust_region_lambda

    rng = np.random.default_rng(p)
    m = 4 * p + 3
    jac = rng.normal(size=(m, p)) * np.logspace(-3, 3, p)  # badly scaled columns
    r0 = rng.normal(size=m)
    red = reduce(lambda u: jnp.asarray(r0) + jnp.asarray(jac) @ u, jnp.zeros(p), jnp.zeros(p))
    d = np.linalg.norm(jac, axis=0)
    np.testing.assert_allclose(np.asarray(red.d), d, rtol=1e-12)
    for lam in (0.0, 1e-3, 0.7):
        z, _ = damped_step(red, lam)
        aug = np.vstack([jac, np.sqrt(lam) * np.diag(d)])
        ref = np.linalg.lstsq(aug, np.r_[-r0, np.zeros(p)], rcond=None)[0]
        np.testing.assert_allclose(np.asarray(z) / d, ref, rtol=1e-8, atol=1e-14)
    gn = np.linalg.norm(np.asarray(damped_step(red, 0.0)[0]))
    delta = 0.3 * gn
    lam = float(trust_region_lambda(red, jnp.asarray(delta)))
    assert lam > 0
    assert np.linalg.norm(np.asarray(damped_step(red, lam)[0])) == pytest.approx(delta, rel=0.1)
    assert float(trust_region_lambda(red, jnp.asarray(2 * gn))) == 0.0  # Gauss-Newton fits


def test_evaluation_budget_options_are_validated():
    """``max_nfev``: an integer in [0, MAX_NFEV] (0: MINPACK's 100 (p + 1), at least
    ``max_iter``); ``runaway``: a bool."""
    from tokenscale_sim.fit.engine.solver import evaluation_budget

    assert evaluation_budget(FitOptions(), 4) == 500
    assert evaluation_budget(FitOptions(max_iter=900), 4) == 900
    assert evaluation_budget(FitOptions(max_nfev=7), 4) == 7
    for bad in (-1, 10**8):
        with pytest.raises(ValueError, match=r"FitOptions: max_nfev must be an integer in \[0, "):
            FitOptions(max_nfev=bad)
    for bad in (1.5, True, "100"):  # not an integer at all: a TypeError, as for every option
        with pytest.raises(TypeError, match=r"FitOptions: max_nfev must be an integer in \[0, "):
            FitOptions(max_nfev=bad)
    with pytest.raises(TypeError, match="FitOptions: runaway must be True or False"):
        FitOptions(runaway=1)


@pytest.mark.parametrize("p", [1, 3, 6])
def test_gradient_cosine_matches_numpy(p):
    """MINPACK's orthogonality measure ``max_j |J_j' r| / (|J_j| |r|)`` from the QR-reduced
    problem equals NumPy's on the full Jacobian (with and without a running column scale)."""
    from tokenscale_sim.fit.engine.polish import _gradient_cosine, reduce

    rng = np.random.default_rng(p)
    m = 3 * p + 2
    jac = rng.normal(size=(m, p)) * np.logspace(0, 3, p)
    r0 = rng.normal(size=m)
    want = np.max(np.abs(jac.T @ r0) / np.linalg.norm(jac, axis=0)) / np.linalg.norm(r0)
    for scale in (np.zeros(p), 10.0 * np.linalg.norm(jac, axis=0)):
        red = reduce(lambda u: jnp.asarray(r0) + jnp.asarray(jac) @ u, jnp.zeros(p), scale)
        assert float(_gradient_cosine(red)) == pytest.approx(want, rel=1e-10)
    exact = reduce(lambda u: jnp.asarray(jac) @ u, jnp.zeros(p), np.zeros(p))
    assert float(_gradient_cosine(exact)) == 0.0  # r = 0: MINPACK's gnorm is 0
