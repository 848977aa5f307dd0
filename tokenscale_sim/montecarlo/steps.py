"""What one chunk of replicates computes on the devices: the jitted, sharded step of a run.

``step(key, ids) -> (len(ids), S, n_max)`` draws replicate ``i`` from ``fold_in(key, i)`` and
returns its per-replicate statistics, ``S`` = 7 rows (:data:`ALL_STATS`) or 2 for
divergence-only runs (:data:`DIVERGENCE_STATS`):

    [D(n), D(n)^2, psi_eq(n), psi_AA(n), psi_BB(n), psi_AB(n), Upsilon-hat(n)]

as defined by :func:`tokenscale_sim.divergence.branch_statistics`. The ``ids`` vector is
sharded over the replicate axis of a one-axis mesh (``jax.sharding.NamedSharding``); XLA
partitions the vmapped computation. Steps are cached per (structure, n_max, d, token model,
statistics, devices): new keys, chunks of the same size and resumed runs do not recompile.

Memory: a direct draw keeps about :data:`WORK_FACTOR` copies of the ``2 n_max d`` token
embeddings of each replicate alive (:func:`replicate_bytes`); the chunk is sized from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tokenscale_sim.divergence import branch_statistics, divergence
from tokenscale_sim.exact import TokenModel
from tokenscale_sim.montecarlo.sampling import SamplingPlan

__all__ = ["ALL_STATS", "DIVERGENCE_STATS", "WORK_FACTOR", "Step", "replicate_bytes", "step"]

ALL_STATS = ("divergence", "squared_divergence", "psi_eq", "psi_aa", "psi_bb", "psi_ab", "upsilon")
"""Per-replicate statistics of a full-token run, in row order."""
DIVERGENCE_STATS = ALL_STATS[:2]
"""Per-replicate statistics of a divergence-only run."""
WORK_FACTOR = 8
"""Device bytes per token-embedding entry kept alive while a chunk runs, in units of the
float itemsize (measured on CPU and GPU for the direct samplers; a safe upper bound)."""

Step = Callable[[jax.Array, jax.Array], jax.Array]

_CACHE: dict[tuple[Any, ...], tuple[Step, NamedSharding]] = {}
_CACHE_SIZE = 16


def replicate_bytes(n_max: int, d: int, itemsize: int) -> int:
    """Estimated device memory of one replicate of a direct draw:
    ``2 n_max d itemsize WORK_FACTOR`` bytes."""
    return 2 * n_max * d * itemsize * WORK_FACTOR


def _replicate(
    plan: SamplingPlan, d: int, tokens: TokenModel, divergence_only: bool
) -> Callable[[jax.Array], jax.Array]:
    """``one(key) -> (S, n_max)``: one replicate's statistics."""
    if divergence_only and tokens.kind == "gaussian":  # half the normals: h^A - h^B directly
        diff = plan.difference_sampler(d)

        def one_difference(key: jax.Array) -> jax.Array:
            div = jnp.linalg.norm(jnp.cumsum(diff(key), axis=0), axis=-1)
            return jnp.stack([div, div**2])

        return one_difference
    sample = plan.token_sampler(d, tokens)

    def one(key: jax.Array) -> jax.Array:
        h = sample(key)
        if divergence_only:
            div = divergence(h)
            return jnp.stack([div, div**2])
        s = branch_statistics(h)
        return jnp.stack(
            [s.divergence, s.divergence**2, s.psi_eq, s.psi_aa, s.psi_bb, s.psi_ab, s.upsilon]
        )

    return one


def step(
    plan: SamplingPlan,
    d: int,
    tokens: TokenModel,
    divergence_only: bool,
    devices: Sequence[Any],
) -> tuple[Step, NamedSharding]:
    """The jitted ``step(key, ids) -> (len(ids), S, n_max)`` and the sharding of ``ids``.

    Replicate ``i`` of ``ids`` is drawn from ``jax.random.fold_in(key, i)``. Cached per
    setting (the plan only builds a missing entry).
    """
    devices = tuple(devices)
    cache_key = (plan.structure, plan.n_max, d, tokens, divergence_only, devices)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    one = _replicate(plan, d, tokens, divergence_only)

    def replicate(key: jax.Array, i: jax.Array) -> jax.Array:
        return one(jax.random.fold_in(key, i))

    mesh = Mesh(np.asarray(devices), ("replicates",))
    sharded = NamedSharding(mesh, PartitionSpec("replicates"))
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        jax.vmap(replicate, in_axes=(None, 0)),
        in_shardings=(replicated, sharded),
        out_shardings=sharded,
    )
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[cache_key] = (jitted, sharded)
    return jitted, sharded
