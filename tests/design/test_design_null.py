"""The null design (beta = 0) and other edge truths: the Fisher screen reports what it can, the
power simulation runs as for any truth, and the transition test holds its level.

Independent references: the screen's widths against NumPy inverses of the identified block of the
information matrix; the level against the binomial Monte Carlo error of a rejection rate.
"""

import csv
import json

import jax
import numpy as np
import pytest
from scipy.stats import norm

from tokenscale_sim import design as dz
from tokenscale_sim.cli import main

NULL = dz.Truth("alpha_n", (30.0, 0.0, 16.0))
LEVEL = 0.05
Z95 = norm.ppf(0.975)


def _info(truth, design, noise):
    """J (K, 3), weights (K,) and I = J' W J of the alpha(n) law (closed-form Jacobian)."""
    n = np.asarray(design.n, float)
    jac = np.asarray(dz.alpha_n_jacobian(n, *truth.params))
    w = 1.0 / np.asarray(dz.log_score_variance(truth.log_score(n), design.questions, noise))
    return jac, w, jac.T @ (w[:, None] * jac)


def test_screen_at_beta_zero_gives_identified_widths_and_no_nb_width():
    design, noise = dz.paper_design(30_000), dz.Noise()
    s = dz.fisher_screen(NULL, [design], noise)
    jac, w, info = _info(NULL, design, noise)
    assert np.all(jac[:, 2] == 0)  # n_b has no effect on the curve at beta = 0
    assert s.identified.tolist() == [[True, True, False]]
    assert np.isnan(s.nb_width[0])
    cov = np.linalg.inv(info[:2, :2])  # the identified block
    np.testing.assert_allclose(s.beta_width[0], 2 * Z95 * np.sqrt(cov[1, 1]), rtol=1e-10)
    np.testing.assert_allclose(s.log_det[0], np.linalg.slogdet(info[:2, :2])[1], rtol=1e-10)
    # unweighted fit: the sandwich of the identified block
    plain = dz.fisher_screen(NULL, [design], noise, weighted=False)
    a_inv = np.linalg.inv(jac[:, :2].T @ jac[:, :2])
    sandwich = a_inv @ (jac[:, :2].T @ (jac[:, :2] / w[:, None])) @ a_inv
    np.testing.assert_allclose(plain.beta_width[0], 2 * Z95 * np.sqrt(sandwich[1, 1]), rtol=1e-10)


def test_screen_equals_the_plain_inverse_when_every_parameter_is_identified():
    truth, design, noise = dz.Truth("alpha_n", (30.0, 0.2, 16.0)), dz.paper_design(), dz.Noise()
    s = dz.fisher_screen(truth, [design], noise)
    _, _, info = _info(truth, design, noise)
    cov = np.linalg.inv(info)
    assert s.identified.all()
    np.testing.assert_allclose(s.nb_width[0], 2 * Z95 * np.sqrt(cov[2, 2]), rtol=1e-9)
    np.testing.assert_allclose(s.beta_width[0], 2 * Z95 * np.sqrt(cov[1, 1]), rtol=1e-9)
    np.testing.assert_allclose(s.log_det[0], np.linalg.slogdet(info)[1], rtol=1e-10)


def test_nb_width_grows_without_bound_as_beta_goes_to_zero():
    """Near beta = 0 n_b is identified in name only: its screen width grows like 1/beta."""
    design, noise = dz.paper_design(30_000), dz.Noise()
    widths = [
        dz.fisher_screen(dz.Truth("alpha_n", (30.0, b, 16.0)), [design], noise).nb_width[0]
        for b in (1e-2, 1e-3, 1e-4)
    ]
    np.testing.assert_allclose(np.diff(np.log10(widths)), [1.0, 1.0], atol=0.05)


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ((30.0, 0.0, 16.0), "not identifiable at beta = 0"),
        ((30.0, 0.05, 0.0), "not identifiable at n_b = 0 (a pure power law)"),
        ((30.0, 0.05, 1e300), "not identifiable at n_b = 1e+300 (a pure power law on the design)"),
    ],
    ids=["beta=0", "n_b=0", "n_b=1e300"],
)
def test_edge_truths_screen_search_and_notes(params, note):
    truth, noise = dz.Truth("alpha_n", params), dz.Noise()
    s = dz.fisher_screen(truth, [dz.paper_design(30_000)], noise)
    assert s.identified[0].tolist() == [True, True, False]
    assert np.isnan(s.nb_width[0]) and np.isfinite(s.beta_width[0])
    assert dz.identification_note(truth, "n_b", False) == note
    cand = dz.DEFAULT_CANDIDATES
    assert dz.criterion_problem(truth, noise, "nb_width", cand, 3000) == f"n_b is {note}"
    assert dz.criterion_problem(truth, noise, "d", cand, 3000) == ""
    with pytest.raises(ValueError, match="cannot rank designs; use 'd'"):
        dz.search_designs(truth, noise, k=10, total_questions=30_000)
    found = dz.search_designs(truth, noise, k=10, total_questions=30_000, criterion="d", top=2)
    assert np.all(np.isfinite(found.screen.log_det)) and np.all(np.diff(-found.screen.log_det) >= 0)


def test_power_criterion_refuses_a_power_law_truth():
    assert "power law on the candidates" in dz.criterion_problem(
        NULL, dz.Noise(), "power", dz.DEFAULT_CANDIDATES, 3000
    )
    truth = dz.Truth("alpha_n", (30.0, 0.2, 16.0))
    assert dz.criterion_problem(truth, dz.Noise(), "power", dz.DEFAULT_CANDIDATES, 3000) == ""


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ((30.0, 0.1, -1.0), "needs n_b >= 0, got -1"),
        ((0.0, 0.1, 16.0), "needs c > 0, got 0"),
        ((100.0, 0.0, 16.0), "S\\(n\\) < 100"),  # c at the score bound
        ((99.99, 0.0, 16.0), "at least one expected right and one wrong answer"),
        ((1e-3, 0.1, 16.0), "at least one expected right and one wrong answer"),
    ],
)
def test_truths_outside_the_law_or_the_noise_are_one_clear_error(params, match):
    with pytest.raises(ValueError, match=match):
        dz.fisher_screen(dz.Truth("alpha_n", params), [dz.paper_design(30_000)], dz.Noise())


def _rejection_rates(m: int, designs):
    rows = dz.design_study(
        jax.random.key(26), NULL, dz.Noise(), designs, dz.StudyOptions(m=m, intervals=False)
    )
    return np.array([row.result.power for row in rows]), rows


def _designs(top: int):
    noise = dz.Noise()
    found = dz.search_designs(NULL, noise, k=10, total_questions=30000, criterion="d", top=top)
    return [*dz.reference_designs(10, 30_000), *found.designs]


def _rate_se(m: int) -> float:
    """SE of a rejection rate at the level: binomial over m experiments plus the simulated
    critical value's own error (m null experiments)."""
    return float(np.sqrt(LEVEL * (1 - LEVEL) * 2 / m))


@pytest.mark.slow
def test_null_design_holds_its_level_for_every_design():
    """beta = 0, binomial noise, 3000 questions per point, 400 experiments per design: the paper's,
    two log-spaced and two D-optimal designs each reject at 0.05 within 4 Monte Carlo SEs, and
    their mean within 3 SEs (the five designs are independent draws)."""
    rates, rows = _rejection_rates(400, _designs(2))
    assert all(row.result.converged_fraction > 0.99 for row in rows)
    se = _rate_se(400)
    assert np.all(np.abs(rates - LEVEL) < 4 * se), rates
    assert abs(rates.mean() - LEVEL) < 3 * se / np.sqrt(rates.size), rates


@pytest.mark.slow
def test_design_cli_at_beta_zero_writes_the_note_not_a_number(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["design", "--params", "30,0.0,16", "--questions", "3000", "--m", "20", "--top", "1",
            "--seed", "7", "--no-intervals", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "not identifiable at beta = 0" in printed.out
    assert "searching by D-optimality ('d') instead of 'nb_width'" in printed.err
    with (out / "design.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert {r["n_b_screen_status"] for r in rows} == {"not identifiable at beta = 0"}
    assert {r["ln_n_b_width_screen"] for r in rows} == {""}
    assert all(float(r["beta_width_screen"]) > 0 for r in rows)
    payload = json.loads((out / "design.json").read_text())
    assert all(r["ln_n_b_width_screen"] is None for r in payload["rows"])
