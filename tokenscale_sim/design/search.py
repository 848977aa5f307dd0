"""Design search: screen every K-subset of candidate token counts by Fisher information, then
confirm the best few, the paper's design and log-spaced designs by simulation.

Budgets: ``k`` token counts out of ``candidates`` and a total number of benchmark questions split
equally over them (for log-normal noise the questions do not matter). The screen is exhaustive
when there are at most ``max_subsets`` subsets, else a greedy exchange (Fedorov) from the best
log-spaced design: swap one point at a time for the best candidate until nothing improves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from tokenscale_sim.design.core import (
    PAPER_N,
    Design,
    Noise,
    Truth,
    check_setting,
    log_spaced,
    paper_design,
)
from tokenscale_sim.design.fisher import (
    CRITERIA,
    Screen,
    fisher_screen,
    identification_note,
    identified,
    noncentrality,
    point_terms,
    screen_arrays,
)
from tokenscale_sim.design.power import DesignResult, StudyOptions, simulate_design
from tokenscale_sim.runtime.validation import as_key

DEFAULT_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
"""Token counts the search chooses from by default (the paper's, powers of two, to 1024)."""


def _score(screen: Screen, criterion: str) -> np.ndarray:
    """Lower is better, for every criterion; designs identifying fewer parameters rank last."""
    if criterion == "nb_width":
        return np.where(np.isnan(screen.nb_width), np.inf, screen.nb_width)
    if criterion == "d":
        count = screen.identified.sum(-1)
        return np.where(count < count.max(), np.inf, -screen.log_det)
    return -screen.ncp


def criterion_problem(truth: Truth, noise: Noise, criterion: str, candidates, each: int) -> str:
    """Why ``criterion`` cannot rank designs at ``truth`` ("" when it can).

    ``nb_width`` needs ``n_b`` identified (not at ``beta = 0``, ``n_b = 0`` or ``n_b`` far beyond
    the candidates); ``power`` needs a truth that is not a power law on the candidates (the
    noncentrality is 0 for every design there). ``d`` ranks any truth.

    >>> null = Truth("alpha_n", (30.0, 0.0, 16.0))
    >>> criterion_problem(null, Noise(), "nb_width", (1, 8, 64, 512), 100)
    'n_b is not identifiable at beta = 0'
    """
    cand = np.unique(np.asarray(candidates, float))
    check_setting(truth, Design(tuple(cand), (each,) * cand.size), noise)
    log_s, jac, var = point_terms(truth, cand, np.full(cand.size, each), noise)
    law = truth.law
    if criterion == "nb_width" and law.nb_index is not None:
        ok = bool(identified(jac[None], 1.0 / var[None])[0, law.nb_index])
        return "" if ok else f"n_b is {identification_note(truth, 'n_b', ok)}"
    if criterion == "power":
        w = 1.0 / var
        ncp = float(noncentrality(np.log(cand)[None], log_s[None], w[None])[0])
        if ncp <= 1e-20 * w.sum():
            return "the truth is a power law on the candidates (no transition to detect)"
    return ""


class SearchResult(NamedTuple):
    """Designs ranked by the screen (best first) with their screen values (arrays aligned)."""

    designs: tuple[Design, ...]
    screen: Screen
    criterion: str
    subsets_screened: int
    method: str


def search_designs(
    truth: Truth,
    noise: Noise,
    *,
    k: int,
    total_questions: int,
    candidates: Sequence[float] = DEFAULT_CANDIDATES,
    criterion: str = "nb_width",
    top: int = 3,
    weighted: bool = True,
    max_subsets: int = 200_000,
) -> SearchResult:
    """The ``top`` designs of ``k`` points from ``candidates`` by the Fisher screen.

    >>> r = search_designs(Truth("alpha_n", (1.0, 1.0, 16.0)), Noise("lognormal", sigma=0.05),
    ...                    k=4, total_questions=4, candidates=(1, 4, 16, 64, 256), top=1)
    >>> len(r.designs[0].n), r.subsets_screened, r.method
    (4, 5, 'exhaustive')
    """
    if criterion not in CRITERIA:
        raise ValueError(f"search_designs: criterion must be one of {CRITERIA}, got {criterion!r}")
    cand = np.unique(np.asarray(candidates, float))
    if not 4 <= k <= cand.size:
        raise ValueError(f"search_designs: k must be in [4, {cand.size}] (candidates), got {k}")
    if criterion == "nb_width" and truth.law.nb_index is None:
        raise ValueError(f"search_designs: {truth.law.name} has no n_b; use criterion 'd'/'power'")
    each = int(total_questions) // k
    if each < 1:
        raise ValueError(f"search_designs: total_questions must be >= k, got {total_questions}")
    for ends in (cand[:k], cand[-k:]):  # scores inside (0, scale) at every candidate
        check_setting(truth, Design(tuple(float(x) for x in ends), (each,) * k), noise)
    problem = criterion_problem(truth, noise, criterion, cand, each)
    if problem:
        raise ValueError(
            f"search_designs: {problem}: criterion {criterion!r} cannot rank designs; use 'd'"
        )
    log_s, jac, var = point_terms(truth, cand, np.full(cand.size, each), noise)
    law = truth.law
    beta = law.params.index("beta") if "beta" in law.params else None

    screened = [0]

    def screen(idx):  # idx (S, k) -> Screen of those subsets
        screened[0] += idx.shape[0]
        return screen_arrays(
            np.log(cand)[idx], log_s[idx], jac[idx], var[idx], law.nb_index, beta, weighted
        )

    total = math.comb(cand.size, k)
    if total <= max_subsets:
        idx = np.array(list(itertools.combinations(range(cand.size), k)))
        method = "exhaustive"
    else:
        idx = _exchange(screen, criterion, cand, k)
        method = "greedy exchange"
    s = screen(idx)
    order = np.argsort(_score(s, criterion), kind="stable")[:top]
    designs = tuple(
        Design(tuple(float(x) for x in cand[idx[i]]), (each,) * k, f"{criterion}-optimal #{r + 1}")
        for r, i in enumerate(order)
    )
    picked = Screen(*(np.asarray(x)[order] for x in s))
    return SearchResult(designs, picked, criterion, screened[0], method)


def _exchange(screen, criterion: str, cand: np.ndarray, k: int) -> np.ndarray:
    """Greedy exchange from the log-spaced subset; returns the visited subsets' index rows."""
    targets = np.searchsorted(cand, np.geomspace(cand[0], cand[-1], k))
    start = np.unique(targets.clip(0, cand.size - 1))
    rest = [i for i in range(cand.size) if i not in set(start)]
    current = np.sort(np.concatenate([start, np.array(rest[: k - start.size], int)]))
    best = float(_score(screen(current[None]), criterion)[0])
    seen = [current]
    improved = True
    while improved:
        improved = False
        for pos in range(k):
            others = np.array([c for c in range(cand.size) if c not in set(current)], int)
            if others.size == 0:
                break
            trial = np.repeat(current[None], others.size, 0)
            trial[:, pos] = others
            trial = np.sort(trial, axis=1)
            sc = _score(screen(trial), criterion)
            j = int(np.argmin(sc))
            if sc[j] < best - 1e-12 * abs(best):
                best, current, improved = float(sc[j]), trial[j], True
                seen.append(current)
    return np.array(seen)


def reference_designs(k: int, total_questions: int, n_max: float = 768.0) -> tuple[Design, ...]:
    """The paper's design (when ``k`` = 10) and log-spaced designs on [1, n_max] and [4, n_max]."""
    out = [log_spaced(k, 1, n_max, total_questions), log_spaced(k, 4, n_max, total_questions)]
    if k == len(PAPER_N):
        out.insert(0, paper_design(total_questions))
    return tuple(out)


class StudyRow(NamedTuple):
    """One design of a study: its screen values and its simulated :class:`DesignResult`."""

    design: Design
    screen: Screen
    result: DesignResult


def design_study(
    key,
    truth: Truth,
    noise: Noise,
    designs: Sequence[Design],
    options: StudyOptions | None = None,
    tick: Callable[[int], object] | None = None,
) -> tuple[StudyRow, ...]:
    """Screen and simulate every design (``fold_in(key, i)`` for design ``i``); ``tick(1)`` is
    called after each design (a progress bar's ``update``)."""
    key = as_key("design_study", key)
    options = options or StudyOptions()
    weighted = options.weighting == "inverse_variance"
    rows = []
    for i, d in enumerate(designs):
        s = fisher_screen(truth, [d], noise, weighted=weighted, level=options.interval_level)
        result = simulate_design(jax.random.fold_in(key, i), truth, d, noise, options)
        rows.append(StudyRow(d, s, result))
        if tick is not None:
            tick(1)
    return tuple(rows)
