"""Monte Carlo studies of D(n) and psi(n): streaming, reproducible, sharded, resumable.

``simulate(key, structure, SimulationConfig(n_max=..., d=..., m=...))`` draws ``m`` replicate
branch pairs and returns, for every n = 1..n_max, mean / std / SE / confidence band of D(n),
D(n)^2 and of the sampled psi_eq, psi_AA, psi_BB, psi_AB and Upsilon-hat, side by side with
the exact curves of the same structure (exact Gaussian E[D], E[D^2] of the token model, the
bound sqrt(E[D^2]) = sqrt(2 Upsilon), exact expected cosines;
:func:`tokenscale_sim.structures.exact.exact_curves`), plus metadata.

A run is one frozen :class:`SimulationConfig` (validated once, in NumPy, when it is made), one
:func:`tokenscale_sim.montecarlo.sampling.plan` of the structure (validated and factored once;
the sampler, the reported methods and the exact curves reuse it) and the jitted step of
:mod:`tokenscale_sim.montecarlo.steps`.

Design (DESIGN.md, "Monte Carlo at scale"):

- Replicate ``i`` is drawn from ``jax.random.fold_in(key, i)``: the draws do not depend on the
  chunk size or the number of devices.
- - Replicates stream through in chunks of ``chunk`` (by default the largest chunk up to
  :data:`DEFAULT_CHUNK` whose estimated memory fits ``max_chunk_bytes``; padded to a multiple of the
  device count; the last chunk is padded too and the extra replicates dropped, so one compilation
  serves all). The chunk's index vector is sharded over the replicate axis with
  ``jax.sharding.NamedSharding`` (one mesh axis ``"replicates"`` over ``devices``); XLA partitions
  the vmapped computation. Device memory is ``O(chunk * n_max * d)``, flat in ``m``.
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
  ``"gloo"`` in jax 0.10); ``tests/montecarlo/test_distributed.py`` runs two local processes of two
  CPU devices each against a single-process run.
- A process given only its own local devices (``devices=jax.local_devices()``) runs the whole
  simulation by itself, without collectives.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from tokenscale_sim.montecarlo import sampling, steps
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
from tokenscale_sim.montecarlo.config import (
    DEFAULT_CHUNK,
    DEFAULT_MAX_CHUNK_BYTES,
    EXACT_PSI_MAX_N,
    RunPlan,
    SimulationConfig,
    run_plan,
)
from tokenscale_sim.montecarlo.moments import Moments, RunningMoments, summarize
from tokenscale_sim.montecarlo.steps import ALL_STATS
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import as_key
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import ExactCurves, exact_curves

__all__ = [
    "ALL_STATS",
    "BLOCK",
    "DEFAULT_CHUNK",
    "DEFAULT_MAX_CHUNK_BYTES",
    "ExactCurves",
    "Moments",
    "RunPlan",
    "SimulationConfig",
    "SimulationResult",
    "SimulationState",
    "load_state",
    "result_columns",
    "run_plan",
    "save_state",
    "simulate",
]

_LAYOUT_VERSION = 2  # 2: the precision is part of the fingerprint


class SimulationResult(NamedTuple):
    """What :func:`simulate` returns. Sampled statistics are :class:`Moments` over n = 1..n_max.

    The psi fields and ``upsilon`` are None for ``divergence_only`` runs. ``metadata`` holds the
    seed/key, the structure (:meth:`~tokenscale_sim.structures.terms.Structure.describe`), the
    settings, sampler methods, versions and devices; ``config`` is the run's configuration.
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
    config: SimulationConfig


def _final_moments(state: SimulationState, confidence: float) -> list[Moments]:
    count, mean, m2 = state.count, state.mean, state.m2
    if state.pending.shape[0]:
        count, mean, m2 = merge_block(count, mean, m2, state.pending)
    every = summarize(RunningMoments(count, mean, m2), confidence)
    return [Moments(*(field[s] for field in every)) for s in range(mean.shape[0])]


def _fingerprint(
    key: jax.Array, structure: st.Structure, config: SimulationConfig, method: str
) -> str:
    tokens = config.token_model
    layout = {
        "v": _LAYOUT_VERSION,
        "block": BLOCK,
        "n_max": config.n_max,
        "d": config.d,
        "tokens": [tokens.kind, tokens.df],
        "stats": list(config.stats),
        "x64": bool(jax.config.read("jax_enable_x64")),  # replicates of two precisions never mix
        "method": method,  # gram and direct draws differ: never mixed in one run
    }
    with np.printoptions(threshold=sys.maxsize, precision=17):
        text = repr((repr(structure), np.asarray(jax.random.key_data(key)).tolist(), layout))
    return hashlib.sha256(text.encode()).hexdigest()


def _devices(devices: Sequence[Any] | None) -> tuple[Any, ...]:
    devs = tuple(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("simulate: devices must name at least one device, got []")
    owners = sorted({int(dev.process_index) for dev in devs})
    if jax.process_index() not in owners:
        raise ValueError(
            f"simulate: devices must include a device of this process ({jax.process_index()}), "
            f"got devices of processes {owners}"
        )
    return devs


def _initial_state(
    state: SimulationState | None, fingerprint: str, config: SimulationConfig
) -> SimulationState:
    zeros = np.zeros((len(config.stats), config.n_max))
    if state is None:
        return SimulationState(0, zeros, zeros.copy(), np.zeros((0, *zeros.shape)), fingerprint)
    if state.fingerprint != fingerprint:
        raise ValueError(
            "simulate: state must come from a run with the same key, structure, n_max, d, tokens, "
            "divergence_only, precision and method; got a checkpoint of a different run"
        )
    if state.done > config.m:
        raise ValueError(
            f"simulate: m must be >= the {state.done} replicates in state, got {config.m}"
        )
    return state


def _run_chunks(
    key: jax.Array,
    step: steps.Step,
    sharding: Any,
    state: SimulationState,
    *,
    m: int,
    chunk: int,
    bar: tqdm,
    save: Callable[[SimulationState], object] | None,
    every: float,
) -> SimulationState:
    """Stream chunks through ``step`` into ``state``; the device works on the next chunk while
    the host merges the current one. Checkpoints every ``every`` seconds and on interruption."""

    def launch(start: int) -> tuple[int, jax.Array] | None:
        if start >= m:
            return None
        ids = np.arange(start, start + chunk, dtype=np.uint32)
        return start, step(key, jax.make_array_from_callback((chunk,), sharding, ids.__getitem__))

    last_save = time.monotonic()
    try:
        in_flight = launch(state.done)
        while in_flight is not None:
            start, out = in_flight
            in_flight = launch(start + chunk)
            take = min(chunk, m - start)
            state = absorb(state, fetch(out)[:take])
            bar.update(take)
            if save is not None and time.monotonic() - last_save >= every:
                save(state)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if save is not None:
            save(state)
        raise
    if save is not None:
        save(state)
    return state


def simulate(
    key: jax.Array | int,
    structure: st.Structure | sampling.SamplingPlan,
    config: SimulationConfig,
    *,
    devices: Sequence[Any] | None = None,
    progress: bool = False,
    state: SimulationState | None = None,
    checkpoint: Callable[[SimulationState], object] | None = None,
    checkpoint_seconds: float = 60.0,
    metadata: dict[str, Any] | None = None,
) -> SimulationResult:
    """Monte Carlo of D(n) and psi(n), n = 1..n_max, over ``config.m`` replicate branch pairs.

    Args:
        key: a JAX PRNG key or an int seed (:func:`~tokenscale_sim.runtime.validation.as_key`);
            replicate i uses ``fold_in(key, i)``.
        structure: the token correlation structure (validated once, by its sampling plan), or
            its :class:`~tokenscale_sim.montecarlo.sampling.SamplingPlan` for ``config.n_max``
            (built by a caller that validated it before, e.g. the CLI).
        config: the run's :class:`SimulationConfig`.
        devices: devices to shard the replicate axis over (default: all of ``jax.devices()``,
            which spans every process after ``jax.distributed.initialize``).
        progress: show a tqdm progress bar (stderr; on process 0 only).
        state: a :class:`SimulationState` from ``checkpoint`` / :func:`load_state` to resume.
        checkpoint: called with the state after a chunk once ``checkpoint_seconds`` have passed
            since the last call, on interruption (``KeyboardInterrupt``) and at the end; on
            process 0 only.
        checkpoint_seconds: minimum seconds between periodic checkpoints (0: every chunk).
        metadata: extra entries for ``result.metadata`` (e.g. the seed).

    Returns:
        :class:`SimulationResult`.

    Raises:
        TypeError: a key that is neither a JAX PRNG key nor an int seed.
        ValueError: a structure that fails validation, a chunk beyond ``max_chunk_bytes``, a
            ``state`` of another run (another key, structure, size, token model or precision),
            or processes of a multi-process run that disagree on the arguments.

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> s = structures.exchangeable(0.5, 0.3, psi_ab=0.1)
        >>> r = simulate(jax.random.key(0), s, SimulationConfig(n_max=8, d=32, m=64))
        >>> r.divergence.mean.shape, r.m
        ((8,), 64)
        >>> bool(abs(r.divergence.mean[-1] - r.exact.gaussian_mean[-1]) < 5 * r.divergence.se[-1])
        True
    """
    key = as_key("simulate", key)
    devs = _devices(devices)
    run = run_plan(structure, config, len(devs))
    plan, chunk = run.sampling, run.chunk
    structure = plan.structure
    fingerprint = _fingerprint(key, structure, config, run.method)
    exact_psi = config.exact_psi
    if exact_psi is None:
        exact_psi = config.n_max <= EXACT_PSI_MAX_N or structure.stationary
    processes = len({dev.process_index for dev in devs})
    if processes > 1:
        ids = [(dev.process_index, dev.id) for dev in devs]
        agree_across_processes(repr((fingerprint, config, chunk, ids, exact_psi)))
        state = state_from_process_0(state, fingerprint, (len(config.stats), config.n_max))
    state = _initial_state(state, fingerprint, config)
    lead = jax.process_index() == 0
    step, sharding = steps.step(
        plan, config.d, config.token_model, config.divergence_only, devs, run.method
    )
    bar = tqdm(
        total=config.m,
        initial=state.done,
        disable=not (progress and lead),
        unit="rep",
        desc="simulate",
    )
    try:
        state = _run_chunks(
            key,
            step,
            sharding,
            state,
            m=config.m,
            chunk=chunk,
            bar=bar,
            save=checkpoint if lead else None,
            every=checkpoint_seconds,
        )
    finally:
        bar.close()

    by_name: dict[str, Moments | None] = dict.fromkeys(ALL_STATS)
    by_name.update(zip(config.stats, _final_moments(state, config.confidence), strict=True))
    tokens = config.token_model
    meta = files.run_metadata(
        structure=structure.describe(),
        n_max=config.n_max,
        d=config.d,
        m=config.m,
        chunk=chunk,
        tokens=tokens.kind,
        df=tokens.df,
        divergence_only=config.divergence_only,
        confidence=config.confidence,
        key_data=np.asarray(jax.random.key_data(key)).tolist(),
        method=run.method,
        sampler=[f"gram({run.gram})"] if run.method == "gram" else list(plan.methods),
        gram=run.gram,
        fast_path=config.divergence_only and tokens.kind == "gaussian",
        sharded_over=[str(dev) for dev in devs],
        processes=processes,
        block=BLOCK,
    )
    meta.update(metadata or {})
    exact = exact_curves(
        structure,
        config.n_max,
        config.d,
        tokens,
        psi=exact_psi and not config.divergence_only,
        validated=True,
    )
    return SimulationResult(
        n=np.arange(1, config.n_max + 1),
        m=config.m,
        exact=exact,
        metadata=meta,
        config=config,
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
    cols.update(result.exact.columns())
    return cols
