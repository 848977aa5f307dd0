"""Test configuration (tests and doctests): float64 is switched on here, never at import.

Compiled programs are also kept on disk (JAX's persistent compilation cache, in
``.pytest_cache/jax-compilation`` unless ``TOKENSCALE_TEST_JAX_CACHE`` names another folder): the
two xdist workers and the test files that compile the same program (tests/conftest.py drops the
in-memory caches after each file) load it instead of compiling it again. The cache is keyed on
the program, JAX's version and its flags, so it can only save time, never change a result.
The CLI's own cache (``TOKENSCALE_CACHE_DIR``) points at the same folder during the tests.
"""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
TEST_CACHE = os.environ.get(
    "TOKENSCALE_TEST_JAX_CACHE", str(Path(__file__).parent / ".pytest_cache" / "jax-compilation")
)
jax.config.update("jax_compilation_cache_dir", TEST_CACHE)
# the CLI (run in-process or as a subprocess by the tests) keeps its programs there too, never in
# the user's own cache folder
os.environ["TOKENSCALE_CACHE_DIR"] = TEST_CACHE
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


@pytest.fixture
def float32():
    """Run one test with float64 switched off (the float32 smoke pass)."""
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)
