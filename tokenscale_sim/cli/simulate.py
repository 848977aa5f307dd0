"""``tokenscale simulate``: Monte Carlo of D(n) and psi(n) for a correlation structure.

Draws --m replicate branch pairs (n-max tokens of width d each), streams them through in chunks
(--chunk, by default the largest up to 256 that fits --max-chunk-gb), and writes into --out:

  simulation.csv    one row per n: mean/std/se/ci of D, D^2, psi_eq, psi_AA, psi_BB, psi_AB,
                    Upsilon-hat, next to the exact curves (exact_gaussian_mean, exact_bound ...)
  simulation.npz    the same columns as arrays (+ metadata as a JSON string)
  result.json       metadata (seed, structure, parameters, sampler methods, versions, devices)
                    and every column
  checkpoint.npz    the accumulators: --resume continues an interrupted run (or extends --m)
                    to the same result an uninterrupted run gives
  simulation.png    with --plot

Nothing is overwritten without --overwrite; a folder holding another kind of run is refused.

Several processes (hosts) with --distributed: start the same command once per process; each calls
jax.distributed.initialize(), which reads

  JAX_COORDINATOR_ADDRESS  host:port of process 0's coordinator (read by JAX itself)
  JAX_NUM_PROCESSES        number of processes   (read by tokenscale, passed to JAX)
  JAX_PROCESS_ID           this process, 0..N-1  (read by tokenscale, passed to JAX)

or, where those are unset, detects them under SLURM, Open MPI, Kubernetes or Cloud TPU. The
replicates are sharded over the devices of all processes and every process computes the same
result; only process 0 shows the progress bar and writes --out (checkpoints included), so
--resume needs the checkpoint on process 0's file system only. On CPU the processes talk
through gloo collectives.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS, UsageError
from tokenscale_sim.cli._common import add_structure_args, positive_int, seed, structure_from_args
from tokenscale_sim.montecarlo.sampling import plan
from tokenscale_sim.montecarlo.simulation import (
    SimulationConfig,
    load_state,
    result_columns,
    run_plan,
    save_state,
    simulate,
)
from tokenscale_sim.montecarlo.steps import METHODS
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory, gib, key_from_seed, machine_memory
from tokenscale_sim.structures.exact import TOKEN_KINDS, TokenModel

KIND = "simulate"
CHECKPOINT = "checkpoint.npz"


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help=SUBCOMMANDS["simulate"],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_structure_args(p)
    g = p.add_argument_group("simulation")
    g.add_argument(
        "--n-max", type=positive_int, default=64, help="tokens per branch (default: %(default)s)"
    )
    g.add_argument(
        "--d", type=positive_int, default=256, help="embedding width (default: %(default)s)"
    )
    g.add_argument(
        "--m", type=positive_int, default=1000, help="replicate branch pairs (default: %(default)s)"
    )
    g.add_argument(
        "--chunk",
        type=positive_int,
        default=None,
        help="replicates per device step; memory grows with it (default: the largest up to 256 "
        "that fits --max-chunk-gb)",
    )
    g.add_argument("--seed", type=seed, default=0, help="PRNG seed (default: %(default)s)")
    g.add_argument(
        "--tokens",
        choices=TOKEN_KINDS,
        default="gaussian",
        help="token model: Gaussian (exact oracle), unit-normalised, or Student-t "
        "scale mixture (default: %(default)s)",
    )
    g.add_argument(
        "--df",
        type=float,
        default=5.0,
        help="Student-t degrees of freedom, > 2 (default: %(default)s)",
    )
    g.add_argument(
        "--divergence-only",
        action="store_true",
        help="only D(n) (Gaussian tokens: the half-normals difference fast path)",
    )
    g.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="level of the confidence band (default: %(default)s)",
    )
    g.add_argument(
        "--max-chunk-gb",
        type=float,
        default=4.0,
        help="refuse a chunk whose estimated memory exceeds this (default: %(default)s)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between checkpoints (default: %(default)s)",
    )
    g.add_argument(
        "--sampler",
        choices=METHODS,
        default="auto",
        help="auto: the width-free gram method where it serves the structure and is faster "
        "(Identity/Ones/Exponential kernels, d large against its state), else the direct "
        "samplers; gram: force it; direct: forbid it (default: %(default)s)",
    )
    g.add_argument("--float32", action="store_true", help="run in float32 (default: float64)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="DIR", help="output folder")
    o.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    o.add_argument("--overwrite", action="store_true", help="replace a previous simulate run")
    o.add_argument("--plot", action="store_true", help="also write simulation.png")
    o.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    o.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run with jax.distributed.initialize() (environment above); "
        "process 0 writes the files",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # --out is swapped in when this closes, on success
        result = _run(args, stack)
    if result is not None and not args.quiet:
        print(summary(result))
        print(f"wrote {args.out}/simulation.csv, simulation.npz, result.json")
    return 0


def _run(args: argparse.Namespace, stack: contextlib.ExitStack):
    import jax

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if not (math.isfinite(args.max_chunk_gb) and args.max_chunk_gb > 0):
        raise UsageError(f"--max-chunk-gb must be > 0, got {args.max_chunk_gb}")
    if args.max_chunk_gb * 2**30 > machine_memory():
        raise UsageError(
            f"--max-chunk-gb {args.max_chunk_gb:g} is more than the {gib(machine_memory())} of "
            "memory available on this machine; lower it"
        )
    accumulators = 7 * 8 * 24 * args.n_max  # float64 mean, M2, a pending block of 16, copies
    check_memory("simulate", "the accumulators", accumulators, "lower --n-max")
    if not args.checkpoint_every >= 0:
        raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    config = SimulationConfig(
        n_max=args.n_max,
        d=args.d,
        m=args.m,
        chunk=args.chunk,
        tokens=TokenModel(args.tokens, args.df),
        divergence_only=args.divergence_only,
        confidence=args.confidence,
        max_chunk_bytes=int(args.max_chunk_gb * 2**30),
        sampler=args.sampler,
    )
    if args.distributed:
        initialize_distributed()
    # every input error before any file is touched: the structure's plan, method and chunk
    sampling_plan = plan(structure_from_args(args), args.n_max, caller="simulate")
    run = run_plan(sampling_plan, config, len(jax.devices()))
    if not args.quiet and jax.process_index() == 0:
        print(work_line(run, config, args), file=sys.stderr)
    key = key_from_seed("simulate", args.seed)
    lead = jax.process_index() == 0
    out, state, failure = Path(args.out), None, None
    ckpt = out / CHECKPOINT
    if lead:
        try:  # outputs go to a staging folder; the previous run stays whole until the swap
            folder = stack.enter_context(
                files.output_folder(
                    args.out,
                    KIND,
                    overwrite=args.overwrite,
                    resume=args.resume,
                    checkpoint=CHECKPOINT,
                )
            )
            out, ckpt = folder.staging, folder.checkpoint or ckpt
            if args.resume and ckpt.exists():
                state = load_state(ckpt)
                if not args.quiet:
                    print(f"resuming from {state.done} replicates in {ckpt}", file=sys.stderr)
        except Exception as err:  # re-raised below, after telling the other processes
            failure = err
    if jax.process_count() > 1:  # every process stops when process 0 cannot use --out
        from jax.experimental import multihost_utils

        ok = multihost_utils.broadcast_one_to_all(np.asarray(failure is None, dtype=np.uint32))
        if not ok and failure is None:
            raise UsageError("process 0 could not prepare --out (see its error)")
    if failure is not None:
        raise failure

    result = simulate(
        key,
        sampling_plan,
        config,
        progress=not args.quiet,
        state=state,  # multi-process: process 0's, which alone calls checkpoint
        checkpoint=lambda s: save_state(ckpt, s),
        checkpoint_seconds=args.checkpoint_every,
        metadata={"seed": args.seed, "command": "tokenscale simulate"},
    )
    if not lead:
        return None
    write_result(out, result)
    if args.plot:
        from tokenscale_sim.plots.simulation import plot_simulation

        files.save_figure(plot_simulation(result), out / "simulation.png", dpi=120)
    return result


def initialize_distributed() -> None:
    """``jax.distributed.initialize()`` from the environment (module docstring); a no-op when
    this process already joined a distributed run."""
    import jax

    if jax.distributed.is_initialized():
        return
    settings: list[int | None] = []
    for var in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        text = os.environ.get(var)
        try:
            settings.append(int(text) if text else None)
        except ValueError:
            raise UsageError(f"--distributed: {var} must be an integer, got {text!r}") from None
    try:
        jax.distributed.initialize(num_processes=settings[0], process_id=settings[1])
    except (RuntimeError, ValueError, TypeError) as err:
        raise UsageError(
            f"--distributed: jax.distributed.initialize() failed: {err} (set "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run under SLURM, "
            "Open MPI, Kubernetes or Cloud TPU)"
        ) from err


def work_line(run, config, args: argparse.Namespace) -> str:
    """The run's size, said before it starts (a run of hours can be stopped at once): the
    replicates, tokens and width, the method and the chunks (each chunk is one compiled step,
    so the bar's rate and time left appear after the first)."""
    chunks = math.ceil(config.m / run.chunk)
    free = ", cost independent of d" if run.method == "gram" else ""
    resumed = "; a resumed run skips the replicates done" if args.resume else ""
    return (
        f"simulate: {config.m} replicates x 2 x {config.n_max} tokens x width {config.d} "
        f"({run.method} method{free}) in {chunks} chunk{'s' if chunks > 1 else ''} of "
        f"{run.chunk}{resumed}; the bar shows the rate and the time left after the first chunk "
        "(compilation included); Ctrl-C stops, --resume continues"
    )


def write_result(out: Path, result) -> None:
    """Write simulation.csv, simulation.npz and result.json of ``result`` into ``out``."""
    cols = result_columns(result)
    files.write_csv(out / "simulation.csv", cols)
    arrays: dict[str, Any] = {"metadata": np.asarray(json.dumps(result.metadata, default=str))}
    arrays.update(cols)
    files.write_npz(out / "simulation.npz", arrays)
    files.write_json(
        out / "result.json", {"metadata": result.metadata, "m": result.m, "columns": cols}
    )


def summary(result) -> str:
    """A few lines: D(n) at log-spaced n, sampled against exact."""
    n_max = len(result.n)
    rows = sorted({int(x) for x in np.unique(np.geomspace(1, n_max, 6).round())})
    lines = [f"{'n':>6} {'mean D':>10} {'se':>9} {'exact E[D]':>11} {'bound':>10}"]
    for n in rows:
        i = n - 1
        lines.append(
            f"{n:>6} {result.divergence.mean[i]:>10.5g} {result.divergence.se[i]:>9.2g} "
            f"{result.exact.gaussian_mean[i]:>11.5g} {result.exact.bound[i]:>10.5g}"
        )
    return "\n".join(lines)
