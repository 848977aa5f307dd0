"""What one chunk of replicates computes on the devices: the jitted, sharded step of a run.

``step(key, ids) -> (len(ids), S, n_max)`` draws replicate ``i`` from ``fold_in(key, i)`` and
returns its per-replicate statistics, ``S`` = 7 rows (:data:`ALL_STATS`) or 2 for
divergence-only runs (:data:`DIVERGENCE_STATS`):

    [D(n), D(n)^2, psi_eq(n), psi_AA(n), psi_BB(n), psi_AB(n), Upsilon-hat(n)]

as defined by :func:`tokenscale_sim.theory.divergence.branch_statistics`. The ``ids`` vector is
sharded over the replicate axis of a one-axis mesh (``jax.sharding.NamedSharding``); XLA
partitions the vmapped computation. Steps are cached per (structure, n_max, d, token model,
statistics, devices): new keys, chunks of the same size and resumed runs do not recompile.

Two methods compute a replicate (:func:`choose_method`):

- ``"direct"``: draw the ``2 n_max d`` token embeddings with the structure's sampling plan and
  reduce them (:func:`tokenscale_sim.theory.divergence.branch_statistics`); cost ``O(n_max d)``;
- ``"gram"``: the width-free exact recursion of :mod:`tokenscale_sim.montecarlo.gram` (cost
  independent of d) for structures with a small linear state (Identity, Ones and Exponential
  kernels), chosen automatically when :func:`~tokenscale_sim.montecarlo.gram.prefer_gram` says
  it is the faster one. Its draws differ from the direct samplers' (same distribution).

Memory (:func:`replicate_bytes`): a direct draw keeps about :data:`WORK_FACTOR` copies of the
``2 n_max d`` token embeddings of each replicate alive; the gram method keeps its ``(S, n_max)``
output and one block of random numbers. The chunk is sized from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tokenscale_sim.montecarlo import gram
from tokenscale_sim.montecarlo.sampling import SamplingPlan
from tokenscale_sim.structures.exact import TokenModel
from tokenscale_sim.theory.divergence import branch_statistics, divergence

__all__ = [
    "ALL_STATS",
    "DIVERGENCE_STATS",
    "METHODS",
    "WORK_FACTOR",
    "Step",
    "choose_method",
    "gram_note",
    "replicate_bytes",
    "step",
]

METHODS = ("auto", "direct", "gram")
"""How replicates are computed: chosen automatically, or forced (:func:`choose_method`)."""

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


def choose_method(
    plan: SamplingPlan, d: int, tokens: TokenModel, divergence_only: bool, sampler: str
) -> str:
    """``"gram"`` or ``"direct"`` for a run.

    ``sampler="auto"`` takes the gram method where it serves the structure and
    :func:`~tokenscale_sim.montecarlo.gram.prefer_gram` finds it faster (``e d >= c k^2``: state
    dimension k small against the width d); ``"gram"`` forces it (``ValueError`` for a
    structure it cannot serve); ``"direct"`` forbids it.
    """
    if sampler not in METHODS:
        raise ValueError(f"simulate: sampler must be one of {METHODS}, got {sampler!r}")
    if sampler == "direct":
        return "direct"
    served = gram.gram_plan(plan.structure, plan.n_max, tokens, divergence_only) is not None
    if sampler == "gram":
        if not served:
            kinds = [type(t.kernel).__name__ for t in plan.structure.terms]
            raise ValueError(
                "simulate: sampler 'gram' serves structures with Identity, Ones and Exponential "
                f"kernels only, got kernels {kinds}"
            )
        return "gram"
    fast = served and gram.prefer_gram(plan.structure, plan.n_max, d, tokens, divergence_only)
    return "gram" if fast else "direct"


def gram_note(plan: SamplingPlan, d: int, tokens: TokenModel, divergence_only: bool) -> str:
    """Why the gram method is or is not available for a run (for metadata and docs)."""
    k = gram.gram_state_dim(plan.structure, plan.n_max, tokens, divergence_only)
    if k is None:
        kinds = sorted({type(t.kernel).__name__ for t in plan.structure.terms})
        return f"not served (kernels {kinds}; gram needs Identity, Ones, Exponential)"
    faster = gram.prefer_gram(plan.structure, plan.n_max, d, tokens, divergence_only)
    return f"state dimension k = {k}; {'faster' if faster else 'slower'} than direct at d = {d}"


def replicate_bytes(
    plan: SamplingPlan,
    d: int,
    itemsize: int,
    method: str = "direct",
    tokens: TokenModel | None = None,
    divergence_only: bool = False,
) -> int:
    """Estimated device memory of one replicate, in bytes.

    direct: ``2 n_max d itemsize WORK_FACTOR``; gram: its ``(7, n_max)`` output plus one block
    of random numbers and the ``k x k`` state, ``(7 n_max + B (k + q) q + k^2) itemsize
    WORK_FACTOR`` (B positions per block), independent of d.
    """
    if method != "gram":
        return 2 * plan.n_max * d * itemsize * WORK_FACTOR
    gplan = gram.gram_plan(plan.structure, plan.n_max, tokens or TokenModel(), divergence_only)
    assert gplan is not None
    k, q = gplan.k, gplan.q
    entries = len(ALL_STATS) * plan.n_max + gram.BLOCK * (k + q) * max(q, 1) + k * k
    return entries * itemsize * WORK_FACTOR


def _replicate(
    plan: SamplingPlan, d: int, tokens: TokenModel, divergence_only: bool, method: str
) -> Callable[[jax.Array], jax.Array]:
    """``one(key) -> (S, n_max)``: one replicate's statistics."""
    if method == "gram":
        gplan = gram.gram_plan(plan.structure, plan.n_max, tokens, divergence_only)
        assert gplan is not None
        return gram.gram_sampler(gplan, plan.n_max, d)
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
    method: str = "direct",
) -> tuple[Step, NamedSharding]:
    """The jitted ``step(key, ids) -> (len(ids), S, n_max)`` and the sharding of ``ids``.

    Replicate ``i`` of ``ids`` is drawn from ``jax.random.fold_in(key, i)`` by ``method``
    (``"direct"`` or ``"gram"``). Cached per setting (the plan only builds a missing entry).
    """
    devices = tuple(devices)
    cache_key = (plan.structure, plan.n_max, d, tokens, divergence_only, devices, method)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    one = _replicate(plan, d, tokens, divergence_only, method)

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
