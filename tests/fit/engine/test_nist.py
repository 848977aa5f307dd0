"""NIST StRD nonlinear-regression certification of the engine (plain least squares on y).

From both NIST starts, every fit is either correct (>= 6 significant digits in every parameter,
>= 4 in every standard error, the certified residual sum of squares) or reported not converged.
Which fits converge is pinned too, so that a regression to "never converged" cannot pass.
"""

import re
from functools import partial
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.fit import CurveArrays, FitOptions, fit_arrays
from tokenscale_sim.fit.data.nist import NIST_PROBLEMS, load_nist, lre

jax.config.update("jax_enable_x64", True)

NOT_CONVERGED = {
    ("Lanczos1", 1),  # parameters right to 10 digits, but RSS ~1e-25 is float64 rounding: the
    ("Lanczos1", 2),  # standard errors are good to ~3 digits only, so the fit is not "converged"
    ("BoxBOD", 1),  # b2 runs off to infinity on the plateau of b1 (1 - exp(-b2 x)); SciPy's
    # MINPACK (least_squares method="lm") stops there too, after 3 evaluations
}
FAST = ("Misra1a", "MGH09")


@partial(jax.jit, static_argnums=0)
def rss_at(law, theta, x, y):
    """Residual sum of squares of ``law`` at natural parameters ``theta``: one compiled program
    per law, shared by both tests (evaluated op by op, each operation compiled on its own)."""
    return jnp.sum((y - law.predict(law.unconstrained(theta), x)) ** 2)


@pytest.mark.parametrize("name", NIST_PROBLEMS)
def test_nist_files_parse(name):
    p = load_nist(name)
    text = resources.files("tokenscale_sim").joinpath(f"data/nist/{name}.dat").read_text()
    m = int(re.findall(r"Number of Observations:\s+(\d+)", text)[0])
    k = len(p.params)
    assert p.x.shape == p.y.shape == (m,)
    assert p.starts.shape == (2, k) and p.certified.shape == p.certified_se.shape == (k,)
    assert p.params == tuple(f"b{i + 1}" for i in range(k))
    assert "[" not in p.expression and " e" not in p.expression.replace("exp", "")
    # the parsed law at the certified values gives the certified RSS: model and data both right
    # (not for Lanczos1: its RSS ~1e-25 is below what 11-digit certified values reproduce)
    rss = float(rss_at(p.model(), p.certified, p.x, p.y))
    assert lre(rss, p.certified_rss) > 6 or (name == "Lanczos1" and rss < 1e-20)


def test_load_nist_rejects_unknown_name():
    with pytest.raises(ValueError, match="load_nist: name must be one of"):
        load_nist("Bennett5")
    with pytest.raises(ValueError, match="start must be 1 or 2"):
        load_nist("Misra1a").model(3)
    assert load_nist("Misra1a").model(1).name == "Misra1a/start1"


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in NIST_PROBLEMS]
)
def test_nist_certified_values_from_both_starts(name):
    p = load_nist(name)
    one = np.ones((1, p.x.size))
    data = CurveArrays(p.x[None], p.y[None], one, one, one)
    law = p.model()  # one law, both starts as grid rows: the two fits share a compiled program
    grid = np.asarray(law.grid(1.0, 2.0))
    np.testing.assert_array_equal(grid, p.starts)  # all parameters free: v is the start itself
    for start in (1, 2):
        res = fit_arrays(law, data, FitOptions(loss="linear"), v_grid=grid[start - 1 : start])
        converged = bool(res.converged[0])
        assert converged == ((name, start) not in NOT_CONVERGED), (name, start)
        if not converged:
            continue
        rss = float(rss_at(law, res.estimates[0], p.x, p.y))
        digits = (lre(res.estimates[0], p.certified), lre(res.se[0], p.certified_se))
        assert digits[0].min() >= 6, (name, start, digits)
        assert digits[1].min() >= 4, (name, start, digits)
        assert lre(rss, p.certified_rss) >= 6, (name, start, rss)
