"""The replicate accumulators of :func:`tokenscale_sim.montecarlo.simulation.simulate` and their
life cycle: float64 moments merged in fixed blocks of :data:`BLOCK` replicates (Chan, in
replicate order, so the result does not depend on chunk size or device count), checkpoint
files, and the multi-process plumbing (all-gather of chunk statistics, agreement check,
process 0's state broadcast to every process).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from tokenscale_sim.montecarlo.moments import RunningMoments, block_moments, merge

BLOCK = 16
"""Replicates per float64 accumulation block (fixed: part of the reproducible layout)."""


class SimulationState(NamedTuple):
    """Accumulators after a whole number of chunks (pickle-free; see :func:`save_state`).

    Attributes:
        count: replicates merged into ``mean``/``m2`` (a multiple of :data:`BLOCK`).
        mean: ``(S, n_max)`` float64 running means. m2: ``(S, n_max)`` sums of squared deviations.
        pending: ``(p, S, n_max)`` float64 per-replicate values of the unfinished block, p < BLOCK.
        fingerprint: hash of everything that must match on resume.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray
    pending: np.ndarray
    fingerprint: str

    @property
    def done(self) -> int:
        """Replicates drawn so far (merged plus pending)."""
        return self.count + self.pending.shape[0]


def merge_block(
    count: int, mean: np.ndarray, m2: np.ndarray, block: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge a block of per-replicate values ``(b, ...)`` into (count, mean, M2) (Chan)."""
    merged = merge(RunningMoments(count, mean, m2), block_moments(block))
    return int(merged.count), np.asarray(merged.mean), np.asarray(merged.m2)


def absorb(state: SimulationState, values: np.ndarray) -> SimulationState:
    """Add per-replicate values ``(r, S, n)`` in replicate order, merging whole blocks."""
    buf = np.concatenate([state.pending, values], axis=0)
    whole = (buf.shape[0] // BLOCK) * BLOCK
    count, mean, m2 = state.count, state.mean, state.m2
    for start in range(0, whole, BLOCK):
        count, mean, m2 = merge_block(count, mean, m2, buf[start : start + BLOCK])
    return SimulationState(count, mean, m2, buf[whole:], state.fingerprint)


def agree_across_processes(what: str) -> None:
    """Raise on every process unless all processes passed the same ``what`` (one all-gather)."""
    digest = np.asarray(zlib.crc32(what.encode()), dtype=np.uint32)
    digests = np.asarray(multihost_utils.process_allgather(digest))
    if np.any(digests != digests[0]):
        raise ValueError(
            "simulate: every process must pass the same key, structure and settings in a "
            f"multi-process run, got differing ones (digests {digests.tolist()} by process)"
        )


def state_from_process_0(
    state: SimulationState | None, fingerprint: str, shape: tuple[int, int]
) -> SimulationState | None:
    """Process 0's ``state`` (or None) on every process. Float64 travels as pairs of uint32, so
    nothing is rounded when x64 is off; a state of another run arrives as an empty fingerprint
    (refused by the caller on every process)."""
    have = jax.process_index() == 0 and state is not None
    head = np.zeros(4, dtype=np.uint32)
    if have:
        assert state is not None
        head[:] = (1, state.count, state.pending.shape[0], state.fingerprint == fingerprint)
    head = np.asarray(multihost_utils.broadcast_one_to_all(head))
    if not head[0]:
        return None
    count, rows, same = int(head[1]), int(head[2]), bool(head[3])
    if not same:
        return SimulationState(
            count, np.zeros(shape), np.zeros(shape), np.zeros((rows, *shape)), ""
        )
    size = (2 + rows) * shape[0] * shape[1]
    payload = np.zeros(size, dtype=np.float64)
    if have:
        assert state is not None
        payload = np.concatenate([state.mean.ravel(), state.m2.ravel(), state.pending.ravel()])
    words = np.asarray(multihost_utils.broadcast_one_to_all(payload.view(np.uint32)))
    values = words.astype(np.uint32).view(np.float64)
    mean, m2, pending = np.split(values, [shape[0] * shape[1], 2 * shape[0] * shape[1]])
    return SimulationState(
        count, mean.reshape(shape), m2.reshape(shape), pending.reshape(rows, *shape), fingerprint
    )


def fetch(out: jax.Array) -> np.ndarray:
    """A chunk's statistics as float64 NumPy on this process, all-gathered across processes."""
    if out.is_fully_addressable:
        return np.asarray(out, dtype=np.float64)
    return np.asarray(multihost_utils.process_allgather(out, tiled=True), dtype=np.float64)


_FIELDS = ("count", "mean", "m2", "pending", "fingerprint")


def _precision() -> str:
    return "float64" if jax.config.read("jax_enable_x64") else "float32"


def save_state(path: str | Path, state: SimulationState) -> Path:
    """Write a checkpoint atomically as ``.npz`` (via a temporary file and rename), with the
    precision (float64 or float32) of the run that drew it."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(
        tmp,
        count=state.count,
        mean=state.mean,
        m2=state.m2,
        pending=state.pending,
        fingerprint=np.asarray(state.fingerprint),
        precision=np.asarray(_precision()),
    )
    tmp.replace(p)
    return p


def load_state(path: str | Path) -> SimulationState:
    """Read a checkpoint written by :func:`save_state` (never unpickling anything).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not a valid checkpoint (empty, truncated, not an
            ``.npz``, keys or shapes missing) or when it was written at another precision than
            the current one (``jax_enable_x64``): replicates of two precisions never mix.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"load_state: no such checkpoint {str(p)!r}")

    def invalid(why: str) -> ValueError:
        return ValueError(f"load_state: {str(p)!r} is not a valid checkpoint ({why})")

    with p.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise invalid("the file is empty")
    if head != b"PK\x03\x04":
        raise invalid("not an .npz archive")
    try:  # np.load gets an open file: a damaged archive cannot leak the handle
        with p.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            missing = [k for k in _FIELDS if k not in z.files]
            if missing:
                raise invalid(f"missing {', '.join(missing)}")
            saved = str(z["precision"]) if "precision" in z.files else None
            state = SimulationState(
                int(z["count"]), z["mean"], z["m2"], z["pending"], str(z["fingerprint"])
            )
    except ValueError as err:
        if str(err).startswith("load_state:"):
            raise
        raise invalid("an entry is not a plain numeric array") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError):
        raise invalid("truncated or damaged archive") from None
    shape = state.mean.shape
    if (
        len(shape) != 2
        or state.m2.shape != shape
        or state.pending.shape[1:] != shape
        or state.count < 0
        or state.count % BLOCK
        or not all(a.dtype == np.float64 for a in (state.mean, state.m2, state.pending))
    ):
        raise invalid("inconsistent shapes or counts")
    if saved is not None and saved != _precision():
        raise ValueError(
            f"load_state: {str(p)!r} was written by a {saved} run and cannot be resumed in "
            f"{_precision()}; resume it {'with' if saved == 'float32' else 'without'} --float32"
        )
    return state
