"""Starting values of a law given no starts: defaults by transform, scaled by the data's |x|.

The issue's case: ``tokenscale fit data.csv --x-col dose --y-col response --loss linear --law
"b1 * (1 - exp(-b2 * x))"`` (NIST's Misra1a) ended ``converged NO`` with an interval of 1e15
from the unscaled start b2 = 0.5 (``exp(-0.5 x)`` is 0 on x of hundreds: no slope to follow).
"""

import jax
import numpy as np
import pytest

from tokenscale_sim import fit
from tokenscale_sim.fit.data.nist import load_nist, lre
from tokenscale_sim.fit.laws.starts import default_values, start_table


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", ["Misra1a", "BoxBOD"])
def test_a_law_without_starts_fits_the_standard_problem(name):
    """NIST's exponential-rise problems (x up to 790 and 10) from no start at all: the
    certified values to 8 digits, converged."""
    problem = load_nist(name)
    law = fit.parse_law(problem.expression, predictor="x")  # b1 linear, b2 nonlinear
    res = fit.fit_curves(
        fit.curves_from_arrays(problem.x, problem.y), law, fit.FitOptions(loss="linear")
    )
    got = np.array([res.params[p].value for p in problem.params])
    assert bool(res.converged[0])
    assert np.min(lre(got, problem.certified)) > 8


def test_defaults_follow_the_data_scale_only_where_a_transform_is_unbounded():
    assert default_values("positive", None) == [0.1, 1.0, 10.0]  # as before without data
    assert default_values("free", 1e3) == [-1.0, -1e-3, 1e-3, 0.5, 2.0]
    assert default_values((0.0, np.inf), 100.0) == [0.01, 0.1, 1.0, 10.0, 100.0]
    assert default_values((-np.inf, 1.0), 10.0) == [0.9, 0.9, 0.0, -9.0, -9.0]
    assert default_values((0.0, 1.0), 1e6) == [0.2, 0.5, 0.8]  # finite bounds: their own scale


def test_given_starts_are_kept_and_only_the_missing_parameters_are_scaled():
    specs = {"a": "free", "b": "positive"}
    table = start_table({"a": [0.3]}, ("a", "b"), ["a", "b"], specs, scale=50.0)
    np.testing.assert_allclose(table[:, 0], 0.3)
    np.testing.assert_allclose(np.sort(table[:, 1]), [0.02, 0.1, 1.0, 10.0, 50.0])
    many = {p: "free" for p in "abcde"}  # past SCALED_DEFAULTS_MAX: three each, 3**5 rows
    assert start_table({}, tuple(many), list(many), many, scale=50.0).shape == (243, 5)


def test_a_law_with_all_its_starts_uses_exactly_them():
    law = fit.parse_law("b1 * (1 - exp(-b2 * x))", predictor="x", starts={"b2": 1e-4})
    np.testing.assert_allclose(law.grid(77.0, 790.0), [[1e-4]])  # b2 free: v is b2 itself
