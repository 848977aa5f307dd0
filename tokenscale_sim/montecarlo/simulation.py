"""Monte Carlo studies of D(n) and psi(n): streaming, reproducible, sharded, resumable.

``simulate(key, structure, n_max=..., d=..., m=...)`` draws ``m`` replicate branch pairs and
returns, for every n = 1..n_max, mean / std / SE / confidence band of D(n), D(n)^2 and of the
sampled psi_eq, psi_AA, psi_BB, psi_AB and Upsilon-hat, side by side with the exact curves of
the same structure (exact Gaussian E[D], E[D^2] of the token model, the bound sqrt(E[D^2]) =
sqrt(2 Upsilon), exact expected cosines), plus metadata.

Design (DESIGN.md, "Monte Carlo at scale"):

- Replicate ``i`` is drawn from ``jax.random.fold_in(key, i)``: the draws do not depend on the
  chunk size or the number of devices.
- Replicates stream through in chunks of ``chunk`` (padded to a multiple of the device count; the
  last chunk is padded too and the extra replicates dropped, so one compilation serves all). The
  chunk's index vector is sharded over the replicate axis with ``jax.sharding.NamedSharding``
  (one mesh axis ``"replicates"`` over ``devices``); XLA partitions the vmapped computation.
  Device memory is ``O(chunk * n_max * d)``, flat in ``m``.
- The next chunk is dispatched before the host pulls the current one, so device work overlaps
  the transfer and the host-side merge.
- Per-replicate statistics (``(S, n_max)`` values, ``S`` = 7 or 2) come back to the host and are
  merged in float64 with Chan's parallel update over fixed blocks of :data:`BLOCK` consecutive
  replicates (a block straddling two chunks waits in ``pending``). The merge order is therefore
  the same for every chunk size and device count. The random draws are bitwise identical; the
  per-replicate statistics may differ in the last bits because XLA vectorises different batch
  shapes differently, so results agree to ~1e-15 relative (bitwise for equal chunk and devices).
- ``checkpoint(state)`` is called every ``checkpoint_seconds``, on interruption and at the end;
  passing that :class:`SimulationState` back as ``state=`` resumes to the identical result
  (``m`` may be raised on resume; everything else must match, checked by a fingerprint).
  :func:`save_state`/:func:`load_state` store it as ``.npz`` (a departure from "only cli/files touch
  files": checkpoints belong to the engine users run for hours).

Several processes (multi-host), through JAX's own machinery (``jax.distributed``, ``jax.sharding``,
``jax.experimental.multihost_utils``), with no scheduler of ours:

- Every process runs ``jax.distributed.initialize(...)`` first and then calls :func:`simulate`
  with the same arguments (``devices`` default: the global ``jax.devices()``, the same list on
  every process). The mesh then spans all processes; each chunk's replicate ids are one global
  ``jax.Array`` built with ``jax.make_array_from_callback`` (every process fills only the shards
  of its own devices), and the per-replicate statistics of the chunk are all-gathered with
  ``multihost_utils.process_allgather``, so every process merges the same values in the same
  order and ends with the identical result, equal (to ~1e-15 relative) to a single-process run
  with the same key.
- At the start one small all-gather checks that the key, structure and settings agree on every
  process (``ValueError`` otherwise), and ``state`` is taken from process 0 (broadcast with
  ``multihost_utils.broadcast_one_to_all``), so only process 0 needs the checkpoint file.
- Only process 0 shows the progress bar and calls ``checkpoint`` (the CLI writes files on
  process 0 only).
- On CPU, cross-process collectives use gloo (``jax_cpu_collectives_implementation``, default
  ``"gloo"`` in jax 0.10); ``tests/test_distributed.py`` runs two local processes of two CPU
  devices each against a single-process run.
- A process given only its own local devices (``devices=jax.local_devices()``) runs the whole
  simulation by itself, without collectives.
"""

from __future__ import annotations

import functools
import hashlib
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from tokenscale_sim import files, theory
from tokenscale_sim import structures as st
from tokenscale_sim.divergence import branch_statistics, divergence
from tokenscale_sim.montecarlo.checkpoints import (
    BLOCK,
    SimulationState,
    absorb,
    agree_across_processes,
    fetch,
    load_state,
    merge_block,
    save_state,
    state_from_process_0,
)
from tokenscale_sim.montecarlo.sampling import (
    TokenModel,
    _as_tokens,
    _check_size,
    _validated,
    difference_sampler,
    expected_squared_divergence,
    sampler_methods,
    token_sampler,
)

__all__ = [
    "BLOCK",
    "DEFAULT_MAX_CHUNK_BYTES",
    "ExactCurves",
    "Moments",
    "SimulationPlan",
    "SimulationResult",
    "SimulationState",
    "check_simulation",
    "load_state",
    "result_columns",
    "save_state",
    "simulate",
]

DEFAULT_MAX_CHUNK_BYTES = 4 * 2**30
"""Default limit on the estimated device memory of one chunk (4 GiB)."""

ALL_STATS = ("divergence", "squared_divergence", "psi_eq", "psi_aa", "psi_bb", "psi_ab", "upsilon")
DIVERGENCE_STATS = ALL_STATS[:2]
EXACT_PSI_MAX_N = 1024
"""Largest n_max for which :func:`simulate` computes exact psi curves by default for a structure
that is not stationary (they build the dense 2n x 2n Sigma). Stationary structures
(``Structure.stationary``: exchangeable, decaying, shared) get them in O(n_max) at any n_max."""

_LAYOUT_VERSION = 1
_WORK_FACTOR = 8  # device bytes per token-embedding entry kept alive while a chunk runs


class Moments(NamedTuple):
    """Sample moments over replicates of one statistic, each ``(n_max,)`` float64.

    ``se = std / sqrt(m)``; the band is ``mean -/+ z se`` with ``z`` the normal quantile of the
    confidence level. NaN where the statistic is undefined (pairwise psi's at n = 1).
    """

    mean: np.ndarray
    std: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


class ExactCurves(NamedTuple):
    """Exact curves of the structure and token model, each ``(n_max,)`` float64.

    Attributes:
        v: v_n = 2 Upsilon(n) with population psi's (E[D^2] of Gaussian tokens).
        mean_squared: exact E[D(n)^2] of the token model
            (:func:`tokenscale_sim.montecarlo.sampling.expected_squared_divergence`).
        bound: sqrt(mean_squared) >= E[D(n)] (Jensen); the bound sqrt(2 Upsilon).
        gaussian_mean: exact E[D(n)] for Gaussian tokens (the oracle; approximate otherwise).
        gaussian_std: exact std of D(n) for Gaussian tokens.
        psi_eq, psi_aa, psi_bb, psi_ab: exact expectations of the sampled cosine averages
            (``Structure.expected_cosine_psi``; pairwise ones NaN at n = 1), or None when
            ``exact_psi=False``.
        upsilon: Upsilon(n) at those expected psi's (= E[Upsilon-hat]), or None.
    """

    v: np.ndarray
    mean_squared: np.ndarray
    bound: np.ndarray
    gaussian_mean: np.ndarray
    gaussian_std: np.ndarray
    psi_eq: np.ndarray | None
    psi_aa: np.ndarray | None
    psi_bb: np.ndarray | None
    psi_ab: np.ndarray | None
    upsilon: np.ndarray | None


class SimulationResult(NamedTuple):
    """What :func:`simulate` returns. Sampled statistics are :class:`Moments` over n = 1..n_max.

    The psi fields and ``upsilon`` are None for ``divergence_only`` runs. ``metadata`` holds the
    seed/key, structure, parameters, sampler methods, versions and devices.
    """

    n: np.ndarray
    m: int
    divergence: Moments
    squared_divergence: Moments
    psi_eq: Moments | None
    psi_aa: Moments | None
    psi_bb: Moments | None
    psi_ab: Moments | None
    upsilon: Moments | None
    exact: ExactCurves
    metadata: dict[str, Any]


def _moments(state: SimulationState, confidence: float) -> list[Moments]:
    count, mean, m2 = state.count, state.mean, state.m2
    if state.pending.shape[0]:
        count, mean, m2 = merge_block(count, mean, m2, state.pending)
    var = m2 / (count - 1) if count > 1 else np.full_like(m2, np.nan)
    std = np.sqrt(var)
    se = std / math.sqrt(count)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    return [
        Moments(mean[s], std[s], se[s], mean[s] - z * se[s], mean[s] + z * se[s])
        for s in range(mean.shape[0])
    ]


def _fingerprint(key: jax.Array, structure: st.Structure, layout: dict[str, Any]) -> str:
    with np.printoptions(threshold=sys.maxsize, precision=17):
        text = repr((repr(structure), np.asarray(jax.random.key_data(key)).tolist(), layout))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _step(
    structure: st.Structure,
    n_max: int,
    d: int,
    tokens: TokenModel,
    divergence_only: bool,
    devices: tuple[Any, ...],
) -> tuple[Callable[[jax.Array, jax.Array], jax.Array], NamedSharding]:
    """Jitted ``step(key, ids) -> (len(ids), S, n_max)``: statistics of replicates ``ids``, each
    drawn from ``fold_in(key, i)``, with ``ids`` sharded over ``devices`` (cached per setting,
    so new keys, chunks of the same size and resumed runs do not recompile)."""
    if divergence_only and tokens.kind == "gaussian":
        diff = difference_sampler(structure, n_max, d)

        def one(key: jax.Array, i: jax.Array) -> jax.Array:
            div = jnp.linalg.norm(jnp.cumsum(diff(jax.random.fold_in(key, i)), axis=0), axis=-1)
            return jnp.stack([div, div**2])

    else:
        sample = token_sampler(structure, n_max, d, tokens)

        def one(key: jax.Array, i: jax.Array) -> jax.Array:
            h = sample(jax.random.fold_in(key, i))
            if divergence_only:
                div = divergence(h)
                return jnp.stack([div, div**2])
            s = branch_statistics(h)
            return jnp.stack(
                [s.divergence, s.divergence**2, s.psi_eq, s.psi_aa, s.psi_bb, s.psi_ab, s.upsilon]
            )

    mesh = Mesh(np.asarray(devices), ("replicates",))
    sharded = NamedSharding(mesh, PartitionSpec("replicates"))
    replicated = NamedSharding(mesh, PartitionSpec())
    step = jax.jit(
        jax.vmap(one, in_axes=(None, 0)), in_shardings=(replicated, sharded), out_shardings=sharded
    )
    return step, sharded


def _exact_curves(
    structure: st.Structure, n_max: int, d: int, tokens: TokenModel, exact_psi: bool
) -> ExactCurves:
    v = np.asarray(structure.v(n_max), dtype=np.float64)
    mean_sq = expected_squared_divergence(structure, n_max, d, tokens)
    psi: list[np.ndarray | None] = [None] * 4
    ups = None
    if exact_psi:
        curves = structure.expected_cosine_psi(n_max, d)
        eq, aa, bb, ab = (
            np.asarray(getattr(curves, f), dtype=np.float64)
            for f in ("psi_eq", "psi_aa", "psi_bb", "psi_ab")
        )
        psi = [eq, aa, bb, ab]
        n = np.arange(1, n_max + 1, dtype=np.float64)
        ups = np.asarray(theory.upsilon(n, eq, (aa + bb) / 2, ab), dtype=np.float64)
    return ExactCurves(
        v=v,
        mean_squared=mean_sq,
        bound=np.sqrt(np.clip(mean_sq, 0.0, None)),
        gaussian_mean=np.asarray(structure.gaussian_mean_divergence(n_max, d), dtype=np.float64),
        gaussian_std=np.asarray(theory.gaussian_divergence_std(v, d), dtype=np.float64),
        psi_eq=psi[0],
        psi_aa=psi[1],
        psi_bb=psi[2],
        psi_ab=psi[3],
        upsilon=ups,
    )


class SimulationPlan(NamedTuple):
    """Validated, normalised settings of a run (see :func:`check_simulation`)."""

    n_max: int
    d: int
    m: int
    chunk: int
    tokens: TokenModel
    devices: tuple[Any, ...]
    chunk_bytes: int


def check_simulation(
    structure: st.Structure,
    *,
    n_max: int,
    d: int,
    m: int,
    chunk: int = 256,
    tokens: TokenModel | str = "gaussian",
    confidence: float = 0.95,
    devices: Sequence[Any] | None = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> SimulationPlan:
    """Validate the arguments of :func:`simulate` in NumPy, before any tracing or file access.

    ``chunk`` is rounded up to a multiple of the device count. The estimated device memory of
    one chunk, ``chunk * 2 * n_max * d * itemsize * 8`` bytes, must not exceed
    ``max_chunk_bytes``.

    Raises:
        ValueError: naming the function, the parameter, the bound and the value.
    """
    n_max, d = _validated("simulate", structure, n_max, d)
    m = _check_size("simulate", "m", m)
    chunk = _check_size("simulate", "chunk", chunk)
    tokens = _as_tokens(tokens)
    if not 0 < confidence < 1:
        raise ValueError(f"simulate: confidence must be in (0, 1), got {confidence}")
    devs = tuple(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("simulate: devices must name at least one device, got []")
    owners = sorted({int(dev.process_index) for dev in devs})
    if jax.process_index() not in owners:
        raise ValueError(
            f"simulate: devices must include a device of this process ({jax.process_index()}), "
            f"got devices of processes {owners}"
        )
    chunk = -(-chunk // len(devs)) * len(devs)
    if m + chunk > 2**32:
        raise ValueError(f"simulate: m must be <= 2^32 - chunk (uint32 replicate ids), got {m}")
    itemsize = jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64)).itemsize
    chunk_bytes = chunk * 2 * n_max * d * itemsize * _WORK_FACTOR
    if chunk_bytes > max_chunk_bytes:
        raise ValueError(
            f"simulate: chunk must keep chunk * 2 * n_max * d * {itemsize} * {_WORK_FACTOR} <= "
            f"max_chunk_bytes = {max_chunk_bytes}, got {chunk_bytes} bytes for chunk = {chunk}; "
            "lower chunk"
        )
    return SimulationPlan(n_max, d, m, chunk, tokens, devs, chunk_bytes)


def simulate(
    key: jax.Array,
    structure: st.Structure,
    *,
    n_max: int,
    d: int,
    m: int,
    chunk: int = 256,
    tokens: TokenModel | str = "gaussian",
    divergence_only: bool = False,
    confidence: float = 0.95,
    exact_psi: bool | None = None,
    devices: Sequence[Any] | None = None,
    progress: bool = False,
    state: SimulationState | None = None,
    checkpoint: Callable[[SimulationState], object] | None = None,
    checkpoint_seconds: float = 60.0,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    metadata: dict[str, Any] | None = None,
) -> SimulationResult:
    """Monte Carlo of D(n) and psi(n), n = 1..n_max, over ``m`` replicate branch pairs.

    Args:
        key: a JAX PRNG key (``jax.random.key(seed)``); replicate i uses ``fold_in(key, i)``.
        structure: the token correlation structure.
        n_max: tokens per branch. d: embedding width. m: replicates (all >= 1).
        chunk: replicates per device step (rounded up to a multiple of the device count).
        tokens: ``"gaussian"``, ``"unit"``, ``"student-t"`` or a :class:`TokenModel`.
        divergence_only: only D(n) and D(n)^2 (Gaussian tokens then use the half-normals
            difference sampler: different draws, same distribution).
        confidence: level of the normal-approximation band (0 < confidence < 1).
        exact_psi: compute the exact expected-cosine psi curves (``O(n_max)`` for stationary
            structures, else ``O(n_max^2)`` memory); None: for stationary structures always,
            for others when ``n_max <= EXACT_PSI_MAX_N``.
        devices: devices to shard the replicate axis over (default: all of ``jax.devices()``,
            which spans every process after ``jax.distributed.initialize``; see the module
            docstring for multi-process runs).
        progress: show a tqdm progress bar (stderr; on process 0 only).
        state: a :class:`SimulationState` from ``checkpoint`` / :func:`load_state` to resume
            (multi-process: process 0's, broadcast to the others).
        checkpoint: called with the state after a chunk once ``checkpoint_seconds`` have passed
            since the last call, on interruption (``KeyboardInterrupt``) and at the end; on
            process 0 only.
        checkpoint_seconds: minimum seconds between periodic checkpoints (0: every chunk).
        max_chunk_bytes: limit on one chunk's estimated device memory (:func:`check_simulation`).
        metadata: extra entries for ``result.metadata`` (e.g. the seed).

    Returns:
        :class:`SimulationResult`.

    Raises:
        ValueError: bad sizes, a structure that fails validation, a chunk beyond
            ``max_chunk_bytes``, a ``state`` from another configuration, or processes of a
            multi-process run that disagree on the arguments.

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> s = structures.exchangeable(0.5, 0.3, psi_ab=0.1)
        >>> r = simulate(jax.random.key(0), s, n_max=8, d=32, m=64, chunk=32)
        >>> r.divergence.mean.shape, r.m
        ((8,), 64)
        >>> bool(abs(r.divergence.mean[-1] - r.exact.gaussian_mean[-1]) < 5 * r.divergence.se[-1])
        True
    """
    plan = check_simulation(
        structure,
        n_max=n_max,
        d=d,
        m=m,
        chunk=chunk,
        tokens=tokens,
        confidence=confidence,
        devices=devices,
        max_chunk_bytes=max_chunk_bytes,
    )
    n_max, d, m, chunk, tokens = plan.n_max, plan.d, plan.m, plan.chunk, plan.tokens
    stats = DIVERGENCE_STATS if divergence_only else ALL_STATS
    layout = {
        "v": _LAYOUT_VERSION,
        "block": BLOCK,
        "n_max": n_max,
        "d": d,
        "tokens": [tokens.kind, tokens.df],
        "stats": list(stats),
    }
    fingerprint = _fingerprint(key, structure, layout)
    if exact_psi is None:
        exact_psi = n_max <= EXACT_PSI_MAX_N or bool(getattr(structure, "stationary", False))
    if len({dev.process_index for dev in plan.devices}) > 1:
        devs = [(dev.process_index, dev.id) for dev in plan.devices]
        agree_across_processes(repr((fingerprint, m, chunk, devs, confidence, exact_psi)))
        state = state_from_process_0(state, fingerprint, (len(stats), n_max))
    lead = jax.process_index() == 0
    save = checkpoint if lead else None
    zeros = np.zeros((len(stats), n_max))
    if state is None:
        state = SimulationState(0, zeros, zeros.copy(), np.zeros((0, *zeros.shape)), fingerprint)
    elif state.fingerprint != fingerprint:
        raise ValueError(
            "simulate: state must come from a run with the same key, structure, n_max, d, tokens "
            "and divergence_only; got a checkpoint of a different run"
        )
    elif state.done > m:
        raise ValueError(f"simulate: m must be >= the {state.done} replicates in state, got {m}")

    step, sharding = _step(structure, n_max, d, tokens, divergence_only, plan.devices)
    bar = tqdm(
        total=m, initial=state.done, disable=not (progress and lead), unit="rep", desc="simulate"
    )
    last_save = time.monotonic()

    def launch(start: int) -> tuple[int, jax.Array] | None:
        """Dispatch the chunk starting at replicate ``start`` (asynchronously), if any is left."""
        if start >= m:
            return None
        every = np.arange(start, start + chunk, dtype=np.uint32)
        ids = jax.make_array_from_callback((chunk,), sharding, lambda index: every[index])
        return start, step(key, ids)

    try:
        in_flight = launch(state.done)
        while in_flight is not None:
            start, out = in_flight
            in_flight = launch(start + chunk)  # the device works on the next chunk meanwhile
            take = min(chunk, m - start)
            values = fetch(out)[:take]
            state = absorb(state, values)
            bar.update(take)
            if save is not None and time.monotonic() - last_save >= checkpoint_seconds:
                save(state)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if save is not None:
            save(state)
        raise
    finally:
        bar.close()
    if save is not None:
        save(state)

    moments = _moments(state, confidence)
    by_name: dict[str, Moments | None] = dict.fromkeys(ALL_STATS)
    by_name.update(zip(stats, moments, strict=True))
    meta = files.run_metadata(
        structure=repr(structure),
        structure_name=getattr(structure, "name", None),
        structure_params=dict(getattr(structure, "params", ())),
        n_max=n_max,
        d=d,
        m=m,
        chunk=chunk,
        tokens=tokens.kind,
        df=tokens.df,
        divergence_only=divergence_only,
        confidence=confidence,
        key_data=np.asarray(jax.random.key_data(key)).tolist(),
        sampler=list(sampler_methods(structure, n_max)),
        fast_path=divergence_only and tokens.kind == "gaussian",
        sharded_over=[str(dev) for dev in plan.devices],
        processes=len({dev.process_index for dev in plan.devices}),
        block=BLOCK,
    )
    meta.update(metadata or {})
    return SimulationResult(
        n=np.arange(1, n_max + 1),
        m=m,
        exact=_exact_curves(structure, n_max, d, tokens, exact_psi and not divergence_only),
        metadata=meta,
        **by_name,  # type: ignore[arg-type]
    )


def result_columns(result: SimulationResult) -> dict[str, np.ndarray]:
    """Flat ``{column: (n_max,) array}`` of a result (for CSV / ``.npz``); None fields skipped.

    Columns: ``n``, then ``<stat>_<moment>`` for each sampled statistic (e.g.
    ``divergence_mean``, ``psi_ab_se``), then ``exact_<curve>``.
    """
    cols: dict[str, np.ndarray] = {"n": np.asarray(result.n)}
    for name in ALL_STATS:
        mom = getattr(result, name)
        if mom is not None:
            cols.update({f"{name}_{k}": np.asarray(v) for k, v in mom._asdict().items()})
    cols.update(
        {f"exact_{k}": np.asarray(v) for k, v in result.exact._asdict().items() if v is not None}
    )
    return cols
