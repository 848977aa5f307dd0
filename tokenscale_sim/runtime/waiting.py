"""Waiting for XLA without deafness to Ctrl-C.

JAX dispatches a computation and returns at once; the wait happens where a result is read
(``np.asarray``), inside C++, where Python runs no signal handler until the whole computation
has ended: a ``compare`` block of 8,192 bootstrap fits let SIGINT/SIGTERM wait a minute.
:func:`interruptible` waits instead in short sleeps, between which Python runs the handler
(:func:`tokenscale_sim.cli.catch_stop_signals` raises there, the staging folder is removed and
the process ends while XLA's threads still work). Every compiled fit
(:class:`~tokenscale_sim.runtime.stored_programs.StoredProgram`: ``solve_batch``,
``solve_and_summarize``) returns through it.
"""

from __future__ import annotations

import time
from typing import TypeVar

T = TypeVar("T")

FIRST_POLL_S = 1e-3
"""First sleep between readiness checks; doubled each time up to :data:`LAST_POLL_S`."""
LAST_POLL_S = 0.05
"""Longest sleep: a signal is handled within 50 ms, a quick program waits at most 1 ms extra."""


def interruptible(tree: T) -> T:
    """Return ``tree`` (a pytree) once every concrete JAX array in it is computed, sleeping
    between checks so that signal handlers run meanwhile. Tracers and non-arrays are ignored
    (under ``jit`` nothing is waited for).

    >>> import jax.numpy as jnp
    >>> out = interruptible({"a": jnp.arange(3.0) * 2, "b": 1})
    >>> out["a"].tolist(), out["b"]
    ([0.0, 2.0, 4.0], 1)
    """
    import jax  # here, not at import: `tokenscale --help` loads no JAX

    pending = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]
    pause = FIRST_POLL_S
    while pending:
        pending = [x for x in pending if not x.is_ready()]
        if pending:
            time.sleep(pause)
            pause = min(2 * pause, LAST_POLL_S)
    return tree
