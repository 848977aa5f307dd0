"""Measure psi(n), D(n) and the divergence law on real hidden states, streamed over pairs.

For every ``n = 1..N`` the per-pair statistics of
:func:`tokenscale_sim.theory.divergence.branch_statistics` are averaged over the pairs that have at
least ``n`` tokens (Chan/Welford merges in float64, so memory does not grow with the number of
pairs); standard errors are ``std / sqrt(count)`` across pairs. From the mean curves:

    Upsilon(n) = n (1 - psi_eq) + n (n - 1) (psi_AABB - psi_AB)      (= mean of Upsilon-hat)
    bound(n)   = sqrt(2 Upsilon(n))  >= mean D(n)  (Jensen; exact per sample for unit tokens)
    n_b(n)     = (1 - psi_eq(n)) / Delta(n) - 1,   Delta = psi_AABB - psi_AB
    n_b        = the fixed point n_b(n) = n (where the quadratic part of Upsilon overtakes)

and the divergence law ``mean D(n) ~ lambda * sqrt(Upsilon(n))`` fitted with
:mod:`tokenscale_sim.fit`. psi_AA, psi_BB, psi_AB (hence Delta and n_b(n)) are undefined at
``n = 1``: they are reported as missing (NaN in arrays, empty in CSV, null in JSON) and never enter
a fit; Upsilon(1) = 1 - psi_eq(1) is defined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.hidden.arrays import HiddenSource, PairChunk, from_arrays, iter_pairs
from tokenscale_sim.montecarlo.moments import (
    Moments,
    RunningMoments,
    block_moments,
    merge,
    summarize,
)
from tokenscale_sim.runtime.validation import check_count, check_real
from tokenscale_sim.theory import closed_forms as theory
from tokenscale_sim.theory import divergence

if TYPE_CHECKING:
    from tokenscale_sim.fit import FitResult

FIELDS = ("divergence", "psi_eq", "psi_aa", "psi_bb", "psi_ab", "psi_aabb", "delta", "upsilon")
"""Per-pair statistics averaged over pairs: the leading axis of the accumulated moments."""


def pair_statistics(chunk: PairChunk, *, normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair statistics of one chunk and where they are defined.

    Args:
        chunk: (c, 2, n, d) hidden states with lengths.
        normalise: compute D(n) on unit-normalised tokens (then D^2 = 2 Upsilon-hat exactly).

    Returns:
        values (F, c, n) float64 in the order of :data:`FIELDS`, valid (F, c, n) bool: n within
        the pair's length, and n >= 2 for the pairwise fields.
    """
    hidden = jnp.asarray(chunk.hidden)
    hidden = divergence.unit_normalise(hidden) if normalise else hidden
    s = _branch_statistics(hidden)
    psi_aabb = (s.psi_aa + s.psi_bb) / 2
    stats = (
        s.divergence,
        s.psi_eq,
        s.psi_aa,
        s.psi_bb,
        s.psi_ab,
        psi_aabb,
        psi_aabb - s.psi_ab,
        s.upsilon,
    )
    values = np.stack([np.asarray(v, dtype=np.float64) for v in stats])
    n = values.shape[-1]
    within = np.arange(1, n + 1) <= chunk.lengths[:, None]
    pairwise = np.array([name in FIELDS[2:7] for name in FIELDS])[:, None, None]
    valid = within[None] & ~(pairwise & (np.arange(1, n + 1) == 1))
    return values, np.broadcast_to(valid, values.shape)


_branch_statistics = jax.jit(divergence.branch_statistics)


class BootSums(NamedTuple):
    """Poisson-bootstrap sums over pairs (replicate b gives pair p the weight w_bp ~ Poisson(1)).

    Attributes:
        weight: (B, N) sum of weights of the pairs with at least n tokens.
        divergence: (B, N) weighted sum of D(n).
        upsilon: (B, N) weighted sum of Upsilon-hat(n).
    """

    weight: np.ndarray
    divergence: np.ndarray
    upsilon: np.ndarray


def pair_weights(start: int, pairs: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, pairs) Poisson(1) weights; pair p's column depends only on (seed, start + p).

    So the bootstrap is the same for any chunk size and streams like the moments.
    """
    return np.stack(
        [np.random.default_rng((seed, start + p)).poisson(1.0, replicates) for p in range(pairs)],
        axis=1,
    ).astype(np.float64)


def _boot_chunk(values: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> BootSums:
    within = valid[0]  # (c, N): n within each pair's length
    w = weights[:, :, None] * within[None]  # (B, c, N)
    d = np.where(within, values[0], 0.0)
    u = np.where(within, values[FIELDS.index("upsilon")], 0.0)
    return BootSums(w.sum(axis=1), np.einsum("bcn,cn->bn", w, d), np.einsum("bcn,cn->bn", w, u))


class Accumulated(NamedTuple):
    """What :func:`accumulate` keeps while streaming: moments and, optionally, bootstrap sums."""

    moments: RunningMoments
    boot: BootSums | None


def accumulate_step(
    acc: Accumulated | None, chunk: PairChunk, options: MeasureOptions
) -> Accumulated:
    """``acc`` (None before the first chunk) with one more chunk of pairs merged in."""
    values, valid = pair_statistics(chunk, normalise=options.normalise)
    part = block_moments(values, valid, axis=1)
    sums = None
    if options.bootstrap:
        w = pair_weights(chunk.start, len(chunk.lengths), options.bootstrap, options.seed)
        sums = _boot_chunk(values, valid, w)
    if acc is None:
        return Accumulated(part, sums)
    if sums is not None and acc.boot is not None:
        sums = BootSums(*(a + b for a, b in zip(acc.boot, sums, strict=True)))
    return Accumulated(merge(acc.moments, part), sums)


def accumulate(chunks: Iterable[PairChunk], options: MeasureOptions) -> Accumulated:
    """Stream chunks of pairs into per-n moments of :data:`FIELDS` (and :class:`BootSums`
    when ``options.bootstrap`` replicates are asked for), in O(B N + F N) memory."""
    acc: Accumulated | None = None
    for chunk in chunks:
        acc = accumulate_step(acc, chunk, options)
    if acc is None:
        raise ValueError("accumulate: expected at least one chunk of pairs, got none")
    return acc


FEW_PAIRS = 20
"""Below this many pairs the pair bootstrap under-covers (benchmarks/README.md, coverage.py)."""
FEW_PAIRS_NOTE = (
    f"; with fewer than {FEW_PAIRS} pairs it under-covers (0.86 measured at 6 pairs, 0.93-0.94 at "
    "20-60; benchmarks/README.md): measure more pairs"
)
"""Appended to ``lambda_ci_status`` of a pair bootstrap over fewer than :data:`FEW_PAIRS` pairs."""


class Measurement(NamedTuple):
    """psi(n), D(n) and the divergence law measured over branch pairs (one layer).

    Attributes:
        n: (N,) token counts 1..N.
        count: (N,) pairs contributing at each n.
        curves: one :class:`~tokenscale_sim.montecarlo.moments.Moments` per name in :data:`FIELDS`
            (D, psi's, Delta, Upsilon-hat): mean over pairs, std across pairs, se, band.
        bound: (N,) sqrt(2 Upsilon(n)) from the mean psi's.
        ratio: (N,) mean D(n) / bound(n) (<= 1 for unit-normalised tokens, by Jensen).
        n_b_curve: (N,) n_b(n) = (1 - psi_eq(n))/Delta(n) - 1 (NaN at n = 1, inf at Delta = 0).
        transition: :class:`~tokenscale_sim.theory.closed_forms.TransitionPoint`, fixed point of
        n_b_curve. fit: :class:`tokenscale_sim.fit.FitResult` of mean D ~ lambda sqrt(Upsilon) (one
        curve;
            ``estimates[0, 0]`` is lambda), None when not requested.
        law: (N,) the fitted lambda * sqrt(Upsilon(n)) (NaN without a fit).
        lambda_pairs: :class:`PairBootstrap` interval of lambda over resampled pairs (None when
            the fit or the bootstrap is off).
        normalised: whether D was computed on unit-normalised tokens.
        pairs: number of branch pairs; d: hidden width.
    """

    n: np.ndarray
    count: np.ndarray
    curves: dict[str, Moments]
    bound: np.ndarray
    ratio: np.ndarray
    n_b_curve: np.ndarray
    transition: theory.TransitionPoint
    fit: FitResult | None
    law: np.ndarray
    lambda_pairs: PairBootstrap | None
    normalised: bool
    pairs: int
    d: int


def summarise(acc: Accumulated, options: MeasureOptions, *, pairs: int, d: int) -> Measurement:
    """Turn streamed sums into a :class:`Measurement` (and fit the divergence law)."""
    count = np.asarray(acc.moments.count)  # (F, N) with masks
    summary = summarize(acc.moments, options.level)
    curves = {name: Moments(*(field[i] for field in summary)) for i, name in enumerate(FIELDS)}
    n = np.arange(1, count.shape[-1] + 1)
    upsilon = curves["upsilon"].mean
    bound = np.asarray(theory.divergence_bound(upsilon), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = curves["divergence"].mean / bound
    delta = curves["delta"].mean
    n_b_curve = theory.transition_curve(curves["psi_eq"].mean, delta)
    transition = theory.fixed_point(n.astype(np.float64), n_b_curve, delta)
    result = boot = None
    if options.fit:
        mean_d = curves["divergence"].mean
        # resampling one pair only repeats it: a zero-width interval that says nothing
        sums = acc.boot if np.min(count[0]) >= 2 else None
        result, boot = fit_with_bootstrap(n, mean_d, upsilon, sums, options)
    lam = float(result.estimates[0, 0]) if result is not None else np.nan
    return Measurement(
        n,
        count[0],
        curves,
        bound,
        ratio,
        n_b_curve,
        transition,
        result,
        lam * np.sqrt(np.where(upsilon > 0, upsilon, np.nan)),
        boot,
        options.normalise,
        pairs,
        d,
    )


def measurement_summary(m: Measurement) -> dict:
    """The per-layer numbers a report shows (plain data for JSON/CSV): pairs, sizes, the Delta
    range, the transition point and its status, mean D / bound, and lambda with its intervals
    (the fit's and, with a pair bootstrap, over resampled pairs)."""
    delta = m.curves["delta"].mean[1:]
    out: dict = {
        "pairs": m.pairs,
        "n_max": int(m.n[-1]),
        "d": m.d,
        "normalised": m.normalised,
        "delta_min": float(np.nanmin(delta)) if delta.size else None,
        "delta_max": float(np.nanmax(delta)) if delta.size else None,
        "delta_positive_all_n": bool(np.all(delta > 0)) if delta.size else None,
        "n_b": m.transition.n_b,
        "n_b_status": m.transition.status,
        "n_b_at_n_max": float(m.n_b_curve[-1]),
        "ratio_at_n_max": float(m.ratio[-1]),
        "ratio_min": float(np.nanmin(m.ratio)),
    }
    if m.fit is not None:
        out.update(
            {
                "lambda": float(m.fit.estimates[0, 0]),
                # the fit's own interval treats the n points of one cumulative curve as
                # independent: it held the truth in only 12-18 % of simulated measurements
                # (hidden.coverage, README); lambda_ci is the pair bootstrap's
                "lambda_ci": None,
                "lambda_ci_status": "no pair bootstrap (--bootstrap 0 or fewer than 2 pairs)",
                "lambda_ci_points": [float(m.fit.ci_low[0, 0]), float(m.fit.ci_high[0, 0])],
                "lambda_level": m.fit.level,
                "fit_loss": m.fit.loss_name,
                "fit_converged": bool(m.fit.converged[0]),
                "fit_r2_linear": float(m.fit.r2_linear[0]),
            }
        )
    if m.lambda_pairs is not None:
        out["lambda_ci"] = [m.lambda_pairs.low, m.lambda_pairs.high]
        out["lambda_ci_status"] = "pair bootstrap" + (FEW_PAIRS_NOTE if m.pairs < FEW_PAIRS else "")
        out["bootstrap_replicates"] = len(m.lambda_pairs.lambdas)
    return out


def fit_law(
    n: np.ndarray,
    mean_d: np.ndarray,
    upsilon: np.ndarray,
    options: MeasureOptions | None = None,
):
    """Fit mean D(n) ~ lambda sqrt(Upsilon(n)) over the n where both are finite and positive.

    Uses :func:`tokenscale_sim.fit.fit_divergence` with Upsilon given per n, with
    ``options.loss`` (default: the authors' unweighted squared error in linear
    space) and ``options.level``.

    Args:
        n: (N,) token counts. mean_d, upsilon: (N,) or (G, N) curves (fitted independently; the
            n used are those valid in every curve).
        options: :class:`MeasureOptions` (``loss``, ``level``); default ``MeasureOptions()``.

    Returns:
        :class:`tokenscale_sim.fit.FitResult` with G curves; ``estimates[g, 0]`` is lambda,
        ``ci_low``/``ci_high`` the fit's interval.
    """
    from tokenscale_sim import fit as fitting

    options = options or MeasureOptions()
    mean_d, upsilon = np.atleast_2d(mean_d), np.atleast_2d(upsilon)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(mean_d) & (mean_d > 0) & np.isfinite(upsilon) & (upsilon > 0)
    use = ok.all(axis=0)
    if use.sum() < 2:
        raise ValueError(
            f"fit_law: need at least 2 n with finite positive mean D and Upsilon, got {use.sum()}"
        )
    opts = fitting.FitOptions(loss=options.loss, level=options.level)
    return fitting.fit_divergence(n[use], mean_d[:, use], upsilon=upsilon[:, use], opts=opts)


class PairBootstrap(NamedTuple):
    """Percentile interval of lambda over Poisson-resampled pairs.

    Attributes:
        lambdas: (B',) lambda refitted on each kept replicate's mean D(n) and mean Upsilon(n).
        low, high: percentile bounds at ``level``.
        level: confidence level.
    """

    lambdas: np.ndarray
    low: float
    high: float
    level: float


def fit_with_bootstrap(
    n: np.ndarray,
    mean_d: np.ndarray,
    upsilon: np.ndarray,
    boot: BootSums | None,
    options: MeasureOptions,
) -> tuple[FitResult, PairBootstrap | None]:
    """Fit the mean curve and every bootstrap replicate in one vmapped call.

    Replicates that drew no pair reaching some n (weight 0 there) are fitted on a copy of the
    mean curve, to keep one array shape (one compilation), and dropped; the bootstrap is None
    when fewer than 2 remain (too few pairs to resample).

    Args:
        n: (N,). mean_d, upsilon: (N,) mean curves. boot: :class:`BootSums` or None.

    Returns:
        (fit of the mean curve, :class:`PairBootstrap` or None).
    """
    rows_d, rows_u, keep = mean_d[None], upsilon[None], np.zeros(0, bool)
    if boot is not None:
        keep = np.asarray(boot.weight > 0).all(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rep_d = np.where(keep.reshape(-1, 1), boot.divergence / boot.weight, mean_d)
            rep_u = np.where(keep.reshape(-1, 1), boot.upsilon / boot.weight, upsilon)
        rows_d, rows_u = np.concatenate([rows_d, rep_d]), np.concatenate([rows_u, rep_u])
    res = fit_law(n, rows_d, rows_u, options)
    first = res.curve(0)
    if keep.sum() < 2:
        return first, None
    lambdas = res.estimates[1:, 0][keep]
    tail = 100 * (1 - options.level) / 2
    low, high = np.percentile(lambdas, [tail, 100 - tail])
    return first, PairBootstrap(lambdas, float(low), float(high), options.level)


@dataclass(frozen=True)
class MeasureOptions:
    """How :func:`measure` reads and summarises hidden states.

    Attributes:
        chunk: pairs read and processed at once (memory O(chunk * n * d)).
        normalise: unit-normalise tokens before D(n) (cosines do not depend on it); then
            D(n)^2 = 2 Upsilon-hat(n) per pair and mean D <= sqrt(2 Upsilon). Without it D is in
            the units of the hidden states and lambda absorbs their typical norm.
        fit: fit the divergence law mean D ~ lambda sqrt(Upsilon).
        loss: fit loss (``"linear"``: the authors' unweighted squared error; see
            :data:`tokenscale_sim.fit.LOSSES`).
        level: confidence level of the intervals of lambda.
        bootstrap: replicates of the pair bootstrap of lambda (0: off). The fit's own interval
            treats the N points of one mean curve as independent, which they are not (every
            D(n) shares the first tokens); resampling pairs (Poisson weights, streamed) gives the
            interval that reflects which pairs were measured.
        seed: seed of the pair bootstrap (pair p's weights depend on (seed, p) only).
    """

    chunk: int = 64
    normalise: bool = True
    fit: bool = True
    loss: str = "linear"
    level: float = 0.95
    bootstrap: int = 200
    seed: int = 0

    def __post_init__(self):
        fn = "MeasureOptions"
        object.__setattr__(self, "chunk", check_count(fn, "chunk", self.chunk))
        object.__setattr__(self, "bootstrap", check_count(fn, "bootstrap", self.bootstrap, 0))
        object.__setattr__(self, "seed", check_count(fn, "seed", self.seed, 0))
        object.__setattr__(
            self, "level", check_real(fn, "level", self.level, 0, 1, open_lo=True, open_hi=True)
        )
        if self.bootstrap == 1:
            raise ValueError(
                f"MeasureOptions: bootstrap must be 0 (off) or >= 2 replicates, got "
                f"{self.bootstrap!r}"
            )


def measure(source: HiddenSource, options: MeasureOptions | None = None) -> Measurement:
    """psi(n) curves with standard errors, mean/std of D(n), the lambda*sqrt(Upsilon) fit, n_b.

    Args:
        source: hidden states from :func:`~tokenscale_sim.hidden.arrays.open_hidden` or
            :func:`~tokenscale_sim.hidden.arrays.from_arrays`, (pairs, 2, n, d).
        options: :class:`MeasureOptions`.

    Returns:
        :class:`Measurement`, curves of shape (n,).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> m = measure(from_arrays(rng.normal(size=(4, 2, 6, 8))), MeasureOptions(fit=False))
        >>> float(m.curves["psi_aa"].mean[0]), bool(np.all(m.ratio <= 1))  # psi_AA(1) missing
        (nan, True)
    """
    options = options or MeasureOptions()
    acc = accumulate(iter_pairs(source, options.chunk), options)
    return summarise(acc, options, pairs=source.pairs, d=source.d)


def measure_streamed(
    chunks: Iterable[Mapping[int, PairChunk]], options: MeasureOptions | None = None
) -> dict[int, Measurement]:
    """:func:`measure` of several layers in one pass: each item holds the same pairs' chunk at
    every layer (one forward pass of a model gives them all), merged into one accumulator per
    layer, so memory stays O(layers * (F N + B N)) however many pairs stream by.

    Returns:
        {layer: :class:`Measurement`}.
    """
    options = options or MeasureOptions()
    accs: dict[int, Accumulated] = {}
    pairs, d = 0, 0
    for by_layer in chunks:
        for layer, chunk in by_layer.items():
            accs[layer] = accumulate_step(accs.get(layer), chunk, options)
            pairs, d = chunk.start + len(chunk.lengths), chunk.hidden.shape[-1]
    if not accs:
        raise ValueError("measure_streamed: expected at least one chunk of pairs, got none")
    return {layer: summarise(acc, options, pairs=pairs, d=d) for layer, acc in accs.items()}


def measure_layers(
    hidden: np.ndarray,
    layers: Sequence[int],
    options: MeasureOptions | None = None,
    *,
    name: str = "vit-s",
) -> dict[int, Measurement]:
    """:func:`measure` for each leading slice of (layers, pairs, 2, n, d) hidden states.

    Returns:
        {layer: :class:`Measurement`}.
    """
    if len(hidden) != len(layers):
        raise ValueError(
            f"measure_layers: hidden must have one slice per layer, got {len(hidden)} slices for "
            f"{len(layers)} layers"
        )
    return {
        layer: measure(from_arrays(h, name=f"{name} layer {layer}"), options)
        for layer, h in zip(layers, hidden, strict=True)
    }
