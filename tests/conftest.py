"""Suite-wide fixtures."""

import jax
import pytest

from tokenscale_sim.runtime import stored_programs


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs_after_each_file():
    """Keep a worker's memory flat over the suite: the programs one test file compiled are
    rarely reused by the next, so JAX's caches are cleared when a file is done."""
    yield
    jax.clear_caches()
    stored_programs.forget_loaded()
