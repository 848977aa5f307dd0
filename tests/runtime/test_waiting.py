"""Results are awaited with signal handlers still running (runtime.waiting)."""

import signal

import jax
import jax.numpy as jnp
import pytest

from tokenscale_sim.runtime.waiting import interruptible


class Stop(Exception):
    pass


def _raise(signum, frame):
    raise Stop


@jax.jit
def _long(x):  # 100 dependent 1000 x 1000 products: about a second; XLA runs it in its threads
    return jax.lax.fori_loop(0, 100, lambda i, v: jnp.tanh(v @ v), x)


def test_a_signal_is_handled_before_the_computation_ends():
    x = jnp.full((1000, 1000), 1e-3, jnp.float32)
    _long.lower(x).compile()  # compiled first: the timer then times the computation alone
    result = _long(x)  # dispatched: JAX returns at once
    assert not result.is_ready()
    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, 0.02)
    try:
        with pytest.raises(Stop):
            interruptible({"r": result})
        assert not result.is_ready()  # the handler ran while XLA still worked
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    result.block_until_ready()


def test_ready_values_and_non_arrays_pass_through():
    tree = {"a": jnp.arange(3.0), "b": [1, "x"], "c": None}
    assert interruptible(tree) is tree


def test_compiled_fits_return_through_interruptible(monkeypatch):
    """StoredProgram (solve_batch, solve_and_summarize) awaits its results there: every fit,
    bootstrap, transition test, compare block and design fit is Ctrl-C-able."""
    from tokenscale_sim import fit
    from tokenscale_sim.runtime import stored_programs

    seen = []
    monkeypatch.setattr(stored_programs, "interruptible", lambda tree: seen.append(tree) or tree)
    curves = fit.curves_from_arrays([1.0, 2.0, 4.0, 8.0], [2.0, 1.7, 1.5, 1.3])
    fit.fit_curves(curves, "powerlaw")
    assert seen  # the fit's compiled program returned through it
