"""Latency of one small fit (issue 20): the closed-form profile path compiles a few programs, not
one per host operation (each such program is traced, lowered and looked up in every process).
"""

import logging

import jax
import numpy as np
import pytest

from tokenscale_sim.fit import curves_from_arrays
from tokenscale_sim.fit.engine.buckets import pad_curves_to_bucket
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.engine.solver import solve_batch, start_grid
from tokenscale_sim.fit.inference.likelihood import t_quantile
from tokenscale_sim.fit.inference.profile import profile_intervals
from tokenscale_sim.fit.laws.models import get_model


class _CompileLog(logging.Handler):
    """Collects JAX's ``Compiling ...`` log lines (``jax_log_compiles``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if text.startswith("Compiling "):
            self.names.append(text.split(" ")[1])


@pytest.mark.parametrize(
    "law",
    ["powerlaw", pytest.param("alpha_n", marks=pytest.mark.slow)],  # alpha_n: ~4 s busy
)
def test_profile_intervals_compile_a_few_programs(law):
    # 13 points: a shape of its own; the in-memory caches are cleared below all the same, so
    # every program of the interval pass is compiled (or loaded from disk) here whatever ran before
    n = np.geomspace(1.0, 4096.0, 13)
    y = 2.0 * n**0.2 * (1 + 0.01 * np.sin(n))
    data = pad_curves_to_bucket(curves_from_arrays(n, y).arrays)
    model, opts = get_model(law), FitOptions()
    u_hat = solve_batch(model, opts, data, start_grid(model, data)).u  # no intervals yet
    t_quantile(0.5 + opts.level / 2, 13.0 - model.n_params)  # cached from here on
    jax.clear_caches()
    log = _CompileLog()
    logger = logging.getLogger("jax")
    logger.addHandler(log)
    try:
        with jax.log_compiles(True):
            profile_intervals(model, opts, data, u_hat)
    finally:
        logger.removeHandler(log)
    # at the estimate, two ellipsoid passes (one program), the n_b grid's span, the natural ends,
    # the law's Jacobian (once per law); op by op this took 31 (power law) and 43 (alpha_n) programs
    assert 1 <= len(log.names) <= 6, log.names
