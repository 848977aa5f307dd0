r"""Many iterative problems in a fixed pool of vmapped lanes: a finished problem hands its lane
to the next one.

A ``lax.while_loop`` under ``vmap`` runs until its slowest lane stops: fitting N problems in
chunks of L lanes costs ``sum over chunks of (L x the chunk's longest run)``, so one run-away fit
(a law crawling towards a limit at infinity for its whole step budget) makes its chunk pay that
budget for every lane. :func:`drain` keeps L lanes busy instead: every pass of one loop steps
every lane once, and a lane whose problem is finished writes its result and loads the next
problem of the queue. The cost is about ``sum of all runs / L`` passes plus the longest single
run (the tail), whatever the mix of short and long problems.

The step must cost the same in every state (e.g. one residual-and-Jacobian evaluation:
:func:`tokenscale_sim.fit.engine.polish.lm_step`), so that no pass is spent on bookkeeping. Each
problem's sequence of states is exactly what a loop over that problem alone computes, so the
results do not depend on the pool size or on which lane ran a problem (up to XLA's rounding of
batched operations, ~1e-16 relative).

With at least as many lanes as problems nothing is ever handed on, and :func:`drain` is a plain
vmapped ``while_loop`` per problem: the same states from a smaller program (a one-curve fit of a
three-parameter law, starts and choice included: 0.76-0.86 s of XLA compile instead of 1.02 s on
a 2-core CPU; compiling is most of what a first fit of a new law costs), and :func:`over_rows`
drops the batch axis altogether for a single problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def over_rows(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.vmap(fn)(*args)`` over the leading axis of ``args`` (pytrees of arrays (N, ...)),
    but without any batch axis when N is 1: the same values from a smaller program, which traces
    and compiles faster (a one-curve fit of a three-parameter law by Levenberg-Marquardt: about
    0.3 s less of the first run's 2 s on a 2-core CPU).

    >>> import jax.numpy as jnp
    >>> over_rows(lambda a, b: a * b, jnp.array([[1.0, 2.0]]), jnp.array([3.0])).tolist()
    [[3.0, 6.0]]
    """
    if jax.tree.leaves(args)[0].shape[0] == 1:
        only = fn(*jax.tree.map(lambda a: a[0], args))
        return jax.tree.map(lambda x: x[None], only)
    return jax.vmap(fn)(*args)


def drain(
    start: Callable[[Any], Any],
    step: Callable[[Any, Any], Any],
    finished: Callable[[Any], Any],
    result: Callable[[Any], Any],
    problems: Any,
    lanes: int,
) -> Any:
    """Run every problem of ``problems`` to the end in ``lanes`` vmapped lanes -> results (N, ...).

    Args:
        start: ``problem -> state`` (cheap: no evaluation; the first ``step`` does that).
        step: ``(state, problem) -> state``, one pass; must leave a finished state finished.
        finished: ``state -> bool`` scalar.
        result: ``state -> pytree`` of one problem's outputs.
        problems: a pytree of arrays with a leading axis of N problems.
        lanes: pool size L (at most N lanes are used).

    >>> import jax.numpy as jnp
    >>> halve = drain(lambda x: x, lambda s, x: jnp.where(s > 1, s / 2, s), lambda s: s <= 1,
    ...               lambda s: s, jnp.array([1.0, 8.0, 2.0, 1024.0, 4.0]), lanes=2)
    >>> [float(v) for v in halve]
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    n = jax.tree.leaves(problems)[0].shape[0]
    pool = max(1, min(int(lanes), n))
    if pool == n:  # a lane for every problem: nothing is handed on, so plain vmapped loops

        def run(problem):
            state = jax.lax.while_loop(
                lambda s: ~finished(s), lambda s: step(s, problem), start(problem)
            )
            return result(state)

        return over_rows(run, problems)

    def take(idx):
        return jax.tree.map(lambda a: a[jnp.minimum(idx, n - 1)], problems)

    idx = jnp.arange(pool)
    states = jax.vmap(start)(take(idx))
    shapes = jax.eval_shape(jax.vmap(result), states)
    outputs = jax.tree.map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shapes)

    def body(carry):
        states, idx, queued, outputs = carry
        states = jax.vmap(step)(states, take(idx))
        done = jax.vmap(finished)(states) & (idx < n)
        out = jax.vmap(result)(states)
        slot = jnp.where(done, idx, n)  # index n: dropped
        outputs = jax.tree.map(lambda o, x: o.at[slot].set(x, mode="drop"), outputs, out)
        nxt = queued + jnp.cumsum(done) - 1  # the next problems, in lane order
        load = done & (nxt < n)
        idx = jnp.where(done, jnp.where(load, nxt, n), idx)  # index n: an idle lane
        fresh = jax.vmap(start)(take(idx))
        states = jax.tree.map(
            lambda f, s: jnp.where(jnp.reshape(load, (-1,) + (1,) * (s.ndim - 1)), f, s),
            fresh,
            states,
        )
        return states, idx, queued + jnp.sum(done), outputs

    # every problem is done once `queued` (problems handed out, idle lanes counted) is n + pool
    carry = (states, idx, jnp.asarray(pool), outputs)
    return jax.lax.while_loop(lambda c: c[2] < n + pool, body, carry)[3]
