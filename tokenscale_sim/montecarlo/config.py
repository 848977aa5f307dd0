"""The configuration of a Monte Carlo run and the plan it implies, validated before any work.

- :class:`SimulationConfig`: everything that sets a run's size and outputs, frozen and validated
  once, in NumPy, when it is made;
- :func:`run_plan`: the structure's sampling plan (validated once), the method that computes
  the replicates (direct samplers or the width-free gram recursion) and the chunk that fits the
  memory budget. :func:`tokenscale_sim.montecarlo.simulation.simulate` and the CLI call it
  before touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from tokenscale_sim.montecarlo import sampling, steps
from tokenscale_sim.montecarlo.steps import ALL_STATS, DIVERGENCE_STATS
from tokenscale_sim.runtime.validation import check_real
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import TokenModel, as_token_model

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_MAX_CHUNK_BYTES",
    "EXACT_PSI_MAX_N",
    "RunPlan",
    "SimulationConfig",
    "run_plan",
]

DEFAULT_MAX_CHUNK_BYTES = 4 * 2**30
"""Default limit on the estimated device memory of one chunk (4 GiB)."""
DEFAULT_CHUNK = 256
"""Largest chunk chosen automatically (more replicates per step gain little past it)."""
EXACT_PSI_MAX_N = 1024
"""Largest n_max for which :func:`simulate` computes exact psi curves by default for a structure
that is not stationary (they build the dense 2n x 2n Sigma). Stationary structures
(``Structure.stationary``: exchangeable, decaying, shared) get them in O(n_max) at any n_max."""


def _count(param: str, value: object) -> int:
    return st.check_count("SimulationConfig", param, value)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that sets the size and the outputs of a run: frozen, validated once.

    Attributes:
        n_max: tokens per branch. d: embedding width. m: replicate branch pairs (all >= 1).
        chunk: replicates per device step (rounded up to a multiple of the device count), or
            None: the largest chunk up to :data:`DEFAULT_CHUNK` (and ``m``) whose estimated
            memory fits ``max_chunk_bytes``.
        tokens: a :class:`~tokenscale_sim.structures.exact.TokenModel` or its kind (stored as the
        model). divergence_only: only D(n) and D(n)^2 (Gaussian tokens then use the difference
            sampler: different draws, same distribution).
        confidence: level of the normal-approximation band (0 < confidence < 1).
        exact_psi: compute the exact expected-cosine psi curves; None: for stationary
            structures always, for others when ``n_max <= EXACT_PSI_MAX_N``.
        max_chunk_bytes: limit on one chunk's estimated device memory
            (:func:`tokenscale_sim.montecarlo.steps.replicate_bytes` per replicate).
        sampler: ``"auto"`` (the width-free gram method where it serves the structure and is
            the faster one, else the direct samplers), ``"gram"`` (force it) or ``"direct"``
            (forbid it); :func:`tokenscale_sim.montecarlo.steps.choose_method`.

    Raises:
        ValueError: naming the parameter, the bound and the value.

    >>> SimulationConfig(n_max=8, d=32, m=64).tokens
    TokenModel(kind='gaussian', df=5.0)
    """

    n_max: int
    d: int
    m: int
    chunk: int | None = None
    tokens: TokenModel | str = "gaussian"
    divergence_only: bool = False
    confidence: float = 0.95
    exact_psi: bool | None = None
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES
    sampler: str = "auto"

    def __post_init__(self) -> None:
        for name in ("n_max", "d", "m"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        if self.chunk is not None:
            object.__setattr__(self, "chunk", _count("chunk", self.chunk))
        try:
            object.__setattr__(self, "tokens", as_token_model(self.tokens))
        except (TypeError, ValueError) as err:
            raise type(err)(f"SimulationConfig: tokens: {err}") from None
        confidence = check_real("SimulationConfig", "confidence", self.confidence, 0, 1,
                                open_lo=True, open_hi=True)  # fmt: skip
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "max_chunk_bytes", _count("max_chunk_bytes", self.max_chunk_bytes))
        if self.sampler not in steps.METHODS:
            raise st.param_error(
                "SimulationConfig", "sampler", f"one of {steps.METHODS}", self.sampler
            )
        if self.m + (self.chunk or DEFAULT_CHUNK) > 2**32:
            raise st.param_error("SimulationConfig", "m", "<= 2^32 - chunk (uint32 ids)", self.m)

    @property
    def token_model(self) -> TokenModel:
        """``tokens`` as a :class:`~tokenscale_sim.structures.exact.TokenModel` (always, after
        init)."""
        assert isinstance(self.tokens, TokenModel)
        return self.tokens

    @property
    def stats(self) -> tuple[str, ...]:
        """The per-replicate statistics of this run (row order of the accumulators)."""
        return DIVERGENCE_STATS if self.divergence_only else ALL_STATS

    def chunk_for(self, devices: int, per_replicate: int | None = None) -> int:
        """Replicates per step for ``devices`` devices, a multiple of ``devices``.

        ``per_replicate``: estimated bytes of one replicate (default: a direct draw,
        ``2 n_max d itemsize WORK_FACTOR``; :func:`run_plan` gives the method's own).

        Raises:
            ValueError: an explicit chunk, or a single replicate per device, whose estimated
                memory exceeds ``max_chunk_bytes`` (with the estimate and the limit).
        """
        itemsize = jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64)).itemsize
        per = per_replicate or 2 * self.n_max * self.d * itemsize * steps.WORK_FACTOR
        if self.chunk is not None:
            chunk = -(-self.chunk // devices) * devices
            if chunk * per > self.max_chunk_bytes:
                raise ValueError(
                    f"simulate: chunk must keep chunk * {per} bytes (per replicate, "
                    f"x{steps.WORK_FACTOR} working copies) <= max_chunk_bytes = "
                    f"{self.max_chunk_bytes}, got "
                    f"{chunk * per} bytes for chunk = {chunk}; lower chunk or leave it unset"
                )
            return chunk
        fits = self.max_chunk_bytes // per // devices * devices
        if fits < devices:
            raise ValueError(
                f"simulate: one replicate per device needs {per} bytes (x{steps.WORK_FACTOR} "
                f"working copies), more than max_chunk_bytes = {self.max_chunk_bytes}; "
                "raise max_chunk_bytes or lower n_max or d"
            )
        wanted = -(-min(DEFAULT_CHUNK, self.m) // devices) * devices
        return min(wanted, fits)


class RunPlan(NamedTuple):
    """How a run computes its replicates: the structure's sampling plan, the method
    (``"direct"`` or ``"gram"``), the chunk and a note on the gram method (for metadata)."""

    sampling: sampling.SamplingPlan
    method: str
    chunk: int
    gram: str


def run_plan(
    structure: st.Structure | sampling.SamplingPlan, config: SimulationConfig, devices: int
) -> RunPlan:
    """Validate ``structure`` once (its sampling plan), choose the method and size the chunk:
    every input error of a run, before any work or file access.

    >>> from tokenscale_sim import structures
    >>> plan = run_plan(structures.decaying(4.0), SimulationConfig(n_max=576, d=4096, m=10), 1)
    >>> plan.method, plan.chunk
    ('gram', 10)
    """
    plan = _plan(structure, config.n_max)
    tokens, only = config.token_model, config.divergence_only
    method = steps.choose_method(plan, config.d, tokens, only, config.sampler)
    itemsize = jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64)).itemsize
    per = steps.replicate_bytes(plan, config.d, itemsize, method, tokens, only)
    chunk = config.chunk_for(devices, per)
    return RunPlan(plan, method, chunk, steps.gram_note(plan, config.d, tokens, only))


def _plan(structure: st.Structure | sampling.SamplingPlan, n_max: int) -> sampling.SamplingPlan:
    if not isinstance(structure, sampling.SamplingPlan):
        return sampling.plan(structure, n_max, caller="simulate")
    if structure.n_max != n_max:
        raise ValueError(
            f"simulate: a sampling plan must be built for n_max = {n_max}, got {structure.n_max}"
        )
    return structure
