"""Test configuration (tests and doctests): float64 is switched on here, never at import."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def float32():
    """Run one test with float64 switched off (the float32 smoke pass)."""
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)
