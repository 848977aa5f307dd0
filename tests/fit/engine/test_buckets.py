"""Shape buckets (``fit.buckets``): a similar data set reuses the compiled fit, same results."""

import jax
import numpy as np
import pytest

from tokenscale_sim.fit import curves_from_arrays, fit_curves
from tokenscale_sim.fit.engine.buckets import bucket_size, pad_curves_to_bucket


def test_bucket_sizes_are_few_and_waste_at_most_a_third():
    sizes = [bucket_size(x) for x in range(1, 5000)]
    assert all(s >= x for x, s in zip(range(1, 5000), sizes, strict=True))
    assert max(s / x for x, s in zip(range(1, 5000), sizes, strict=True)) <= 1.5  # padding <= 1/3
    assert len(set(sizes)) == 25  # 1, 2, 3, 4, 6, 8, ..., 4096, 6144


def _curves(g: int):
    n = np.geomspace(1, 512, 10)
    slopes = np.linspace(0.1, 0.4, g)[:, None]
    y = 2 * n**slopes * np.exp(0.01 * np.sin(3 * np.log(n) + slopes))
    return curves_from_arrays(n, y)


def test_padding_repeats_the_last_curve_and_keeps_the_rest():
    a = _curves(5).arrays
    padded = pad_curves_to_bucket(a)
    assert padded.y.shape == (6, 10)
    np.testing.assert_array_equal(np.asarray(padded.y[:5]), a.y)
    np.testing.assert_array_equal(np.asarray(padded.weight[5]), a.weight[4])


@pytest.fixture
def compilations():
    """Count XLA compilations while the test runs (JAX's own monitoring event)."""
    seen = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listen)


@pytest.mark.slow
def test_a_similar_number_of_curves_reuses_the_compiled_fit(compilations):
    six = fit_curves(_curves(6), "powerlaw")
    before = len(compilations)
    five = fit_curves(_curves(5), "powerlaw")  # 5 curves: the bucket of 6, nothing to compile
    assert len(compilations) == before
    assert five.estimates.shape == (5, 2) and five.converged.shape == (5,)
    # the same fits as one curve at a time (unpadded: bucket_size(1) == 1)
    for g in (0, 4):
        c = _curves(5).curve(g)
        alone = fit_curves(curves_from_arrays(c.n, c.y), "powerlaw")
        np.testing.assert_allclose(five.estimates[g], alone.estimates[0], rtol=1e-12)
        np.testing.assert_allclose(five.ci_high[g], alone.ci_high[0], rtol=1e-12)
    assert six.estimates.shape == (6, 2)
