"""Long curves: fit memory grows linearly in the number of points (no m x m matrices).

A curve of 200,000 points once asked for 320 GB: the Gauss-Newton covariance took the Jacobian
by reverse mode, which seeds one cotangent per point (an m x m identity). The fast test checks
the compiled program's temporary memory per point; the slow one fits 200,000 points of a user
law in a subprocess whose address space is capped at 4 GiB.
"""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from tokenscale_sim.fit.inference.likelihood import delta_method_se

jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("m", [5_000, 50_000])
def test_standard_errors_use_memory_linear_in_points(m):
    x = jnp.linspace(1.0, 100.0, m)
    y = 2.0 * x**0.3

    def se(u):
        resid = lambda v: y - v[0] * x ** v[1]  # noqa: E731
        return delta_method_se(resid, lambda v: v, u, jnp.zeros(2, bool), 1.0)

    compiled = jax.jit(se).lower(jnp.array([2.0, 0.3])).compile()
    analysis = compiled.memory_analysis()
    assert analysis is not None
    temp = analysis.temp_size_in_bytes
    assert temp < 200 * m, temp  # an m x m matrix would be 8 m^2 bytes (20 GB at 50,000)


@pytest.mark.slow
def test_fit_of_200000_points_under_a_4_gib_address_space(tmp_path):
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import numpy as np, jax
        jax.config.update("jax_enable_x64", True)
        from tokenscale_sim.fit import FitOptions, curves_from_arrays, fit_curves
        from tokenscale_sim.fit.laws.expression import parse_law
        m = 200_000
        x = np.linspace(1, 100, m)
        y = 3 * np.exp(-0.05 * x) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(m)
        law = parse_law("a*exp(-b*x)+c", predictor="x", params=("a", "b", "c"))
        res = fit_curves(curves_from_arrays(x, y), law, FitOptions(loss="linear"))
        assert res.converged[0], res
        truth = np.array([{"a": 3.0, "b": 0.05, "c": 0.5}[p] for p in res.params])
        z = (res.estimates[0] - truth) / res.se[0]  # within 5 standard errors
        assert np.all(np.abs(z) < 5), (res.estimates[0], res.se[0])
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
