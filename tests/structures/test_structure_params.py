"""Named parameters in structure files: the jax.numpy curves of any parametrised file against
the NumPy exact ones, the file read unchanged at its values, sweeps and calibrations of any file,
and "which structure?" on simulated truth."""

import numpy as np
import pytest

from tokenscale_sim.montecarlo import sweep
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures import exact
from tokenscale_sim.structures.calibrate_file import calibrate_file
from tokenscale_sim.structures.files import load_structure, structure_from_data
from tokenscale_sim.structures.params import param_file_from_data, read_param_file
from tokenscale_sim.structures.which import CANDIDATES, candidate_paths, rank

PARAM_FILE = """name = "pl"
[[terms]]
weight = { param = "w", value = 0.6, min = 0.0, max = 1.0 }
coupling = { param = "c", value = 0.3, min = -1.0, max = 1.0 }
kernel = { kind = "powerlaw", gamma = { param = "g", value = 0.8, min = 0.01, max = 10 } }
[[terms]]
weight = { param = "s", value = 0.1, min = 0.0, max = 1.0 }
branch = [[1.0, 1.0], [1.0, 1.0]]
kernel = "ones"
[[terms]]
weight = "rest"
branch = [[1.0, 0.2], [0.2, 1.0]]
kernel = { kind = "identity" }
"""


def random_point(pf, rng):
    """A random valid point of a candidate file (weights on the simplex, others in bounds)."""
    for _ in range(1000):
        theta = np.array([rng.uniform(max(p.lo, -1), min(p.hi, 20)) for p in pf.params.values()])
        weights = [i for i, k in enumerate(pf.names) if "weight" in k or k in ("shared", "image")]
        theta[weights] = rng.dirichlet(np.ones(len(weights) + 1))[:-1]
        if pf.check(theta):
            return theta
    raise AssertionError("no valid point")


@pytest.mark.parametrize("name", CANDIDATES)
def test_jax_curves_equal_numpy_exact(name):
    pf = read_param_file(candidate_paths((name,))[0])
    rng = np.random.default_rng(3)
    for _ in range(3):
        theta = random_point(pf, rng)
        s = pf.structure(dict(zip(pf.names, theta.tolist(), strict=True)))
        v, eq, aabb, ab = (np.asarray(x) for x in pf.curves(theta, 50))
        psi = s.psi(50)
        np.testing.assert_allclose(v, s.v(50), rtol=1e-10, atol=1e-10)
        for got, want in ((eq, psi.psi_eq), (aabb, psi.psi_aabb), (ab, psi.psi_ab)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, equal_nan=True)


def test_a_parametrised_file_is_a_structure_file_at_its_values(tmp_path):
    (tmp_path / "pl.toml").write_text(PARAM_FILE)
    s = load_structure(tmp_path / "pl.toml")  # what theory and simulate read
    rest = 1 - 0.6 - 0.1
    assert s.terms[2].c[0, 1] == pytest.approx(0.2 * rest)
    pf = read_param_file(tmp_path / "pl.toml")
    assert pf.names == ("w", "c", "g", "s")
    v = np.asarray(pf.curves(pf.values, 20)[0])
    np.testing.assert_allclose(v, s.v(20), rtol=1e-12)
    again = param_file_from_data(__import__("tomllib").loads(pf.toml({"w": 0.5})))
    assert again.params["w"].value == 0.5 and again.params["w"].hi == 1.0
    with pytest.raises(ValueError, match="parameter w must be finite and in"):
        pf.structure({"w": 1.5})
    with pytest.raises(ValueError, match="rest"):
        pf.structure({"w": 0.95})  # 0.95 + 0.1 > 1: the rest would be negative


@pytest.mark.parametrize(
    ("term", "match"),
    [({"weight": {"param": "w", "value": 2.0, "min": 0, "max": 1}}, "must be finite and in"),
     ({"weight": {"param": "1w", "value": 0.5}}, "must be a name"),
     ({"weight": {"param": "w"}}, "needs a value"),
     ({"weight": {"param": "w", "value": 0.5, "step": 1}}, "fields among")],
)  # fmt: skip
def test_bad_parameter_tables(term, match):
    data = {"terms": [{"coupling": 0.0, "kernel": "identity", **term}]}
    with pytest.raises(ValueError, match=match):
        structure_from_data(data)


def test_sweep_of_the_shipped_family_file_equals_the_family_sweep():
    pf = read_param_file(candidate_paths(("sequence-decay",))[0])
    axes = {"length": np.array([1.0, 5.0, 40.0]), "image": np.array([0.0, 0.1, 0.3])}
    fixed = {"shared": 0.1, "weight": 0.4, "coupling": 0.3, "local_coupling": 0.0}
    a = sweep.sweep(sweep.make_grid(axes, fixed, n_max=64), at=32)
    b = sweep.sweep(sweep.make_grid(axes, fixed, n_max=64, file=pf), at=32, file=pf)
    for col in ("n_b", "slope_at", "mean_d_at", "psi_eq_at", "delta_at", "bound_slope"):
        np.testing.assert_allclose(b.columns[col], a.columns[col], rtol=1e-10, equal_nan=True)
    assert list(b.columns["n_b_status"]) == list(a.columns["n_b_status"])
    bad = sweep.make_grid({"weight": np.array([0.5, 0.95])}, {"shared": 0.1}, n_max=8, file=pf)
    assert sweep.sweep(bad, file=pf).columns["valid"].tolist() == [True, False]
    with pytest.raises(ValueError, match="parameter length must be finite and in"):
        sweep.make_grid({"length": np.array([1.0, 1e6])}, file=pf)


def test_which_structure_finds_the_truth_and_recovers_it():
    """Simulated psi curves of a known sequence-decay point (iid noise, sd 0.002): the truth
    wins on AICc, and every parameter lies in its (Wald, honest for iid noise) interval."""
    paths = candidate_paths(("exchangeable", "sequence-decay"))
    pfs = [read_param_file(p) for p in paths]
    truth = {"shared": 0.15, "image": 0.25, "weight": 0.4, "coupling": 0.5, "length": 6.0,
             "local_coupling": 0.2}  # fmt: skip
    pf = pfs[1]
    theta = np.array([truth[k] for k in pf.names])
    _, eq, aabb, ab = (np.asarray(x) for x in pf.curves(theta, 60))
    noise = 0.002 * np.random.default_rng(1).normal(size=(3, 60))
    data = cb.PsiData(np.arange(1, 61), np.stack([eq, aabb, ab]) + noise)
    cals = [calibrate_file(p, data, n_fit=40) for p in pfs]
    d = 64
    measured_d = np.asarray(exact.exact_curves(pf.structure(truth), 60, d).gaussian_mean)
    rows = rank(cals, measured_d, d)
    assert rows[0]["name"] == "sequence-decay" and rows[1]["delta_aicc"] > 20
    cal = cals[1]
    inside = (cal.ci_low <= theta) & (theta <= cal.ci_high)
    assert inside.all(), (cal.values, cal.ci_low, cal.ci_high)
    assert rows[0]["d_rms_rel_beyond"] < 0.01


@pytest.mark.slow
def test_interval_coverage_over_repeated_simulations():
    """Coverage of the calibrated intervals of a known sequence-decay structure over 20
    simulated measurements (iid noise, sd 0.003: the Wald intervals' own model): every parameter
    covered in at least 70 % of them at nominal 95 % (the fast sibling is the test above)."""
    pf = read_param_file(candidate_paths(("sequence-decay",))[0])
    truth = np.array([0.15, 0.25, 0.4, 0.5, 6.0, 0.2])  # pf.names order
    _, eq, aabb, ab = (np.asarray(x) for x in pf.curves(truth, 48))
    clean = np.stack([eq, aabb, ab])
    rng = np.random.default_rng(7)
    covered = np.zeros(len(truth))
    reps = 20
    for _ in range(reps):
        data = cb.PsiData(np.arange(1, 49), clean + 0.003 * rng.normal(size=clean.shape))
        cal = calibrate_file(pf, data, n_fit=48)
        covered += (cal.ci_low <= truth) & (truth <= cal.ci_high)
    assert np.all(covered / reps >= 0.7), dict(zip(pf.names, covered / reps, strict=True))
