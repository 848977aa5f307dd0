"""Replicate curves per second of the width-free gram method against the direct samplers.

Run: ``python benchmarks/bench_gram.py [--quick] [--out FILE]``.

A replicate curve is one replicate's statistics for n = 1..n_max: ``(7, n)`` full-token
(D, D^2, psi_eq, psi_AA, psi_BB, psi_AB, Upsilon-hat) or ``(2, n)`` divergence-only, Gaussian
tokens, float32, ``jax.vmap`` over keys, jitted, compile excluded, best of interleaved repeats.

- ``gram``: :func:`tokenscale_sim.montecarlo.gram.gram_statistics_sampler`.
- ``direct``: what ``simulate`` runs today: ``branch_statistics(token_sampler(...)(key))``
  full-token, ``|cumsum(difference_sampler(...)(key))|`` divergence-only.
- ``raw normal``: ``jax.random.normal`` for the normals a direct sampler needs (``2 n d``
  full-token, ``n d`` divergence-only): the limit of any sampler that draws the tokens.

The second table measures the crossover: at n = 1024 the direct rate falls like 1/d while the
gram rate depends on the state dimension k only; ``d* `` is the width where they are equal
(interpolated in log d), and ``e d* / k^2`` (``e`` = 2 full-token, 1 divergence-only) is the
constant of :func:`prefer_gram`.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench_sampling import best_time, machine  # noqa: E402

from tokenscale_sim import structures as st  # noqa: E402
from tokenscale_sim.montecarlo.gram import (  # noqa: E402
    gram_state_dim,
    gram_statistics_sampler,
    prefer_gram,
)
from tokenscale_sim.montecarlo.sampling import difference_sampler, token_sampler  # noqa: E402
from tokenscale_sim.theory.divergence import branch_statistics  # noqa: E402

STRUCTURES = {
    "ar1 (decaying)": lambda: st.decaying(8.0, coupling=0.3),
    "exchangeable": lambda: st.exchangeable(0.5, 0.3, psi_ab=0.1),
    "ar1 + exchangeable + shared": lambda: (
        0.5 * st.decaying(8.0, 0.3) + 0.3 * st.exchangeable(0.5, 0.3, psi_ab=0.1) + st.shared(0.2)
    ),
}
FLOATS_PER_CALL = 2**23  # direct batches sized to about this many token entries


def direct_one(structure, n: int, d: int, divergence_only: bool):
    if divergence_only:
        diff = difference_sampler(structure, n, d)

        def one_diff(key):
            div = jnp.linalg.norm(jnp.cumsum(diff(key), axis=0), axis=-1)
            return jnp.stack([div, div**2])

        return one_diff
    sample = token_sampler(structure, n, d)

    def one(key):
        s = branch_statistics(sample(key))
        return jnp.stack(
            [s.divergence, s.divergence**2, s.psi_eq, s.psi_aa, s.psi_bb, s.psi_ab, s.upsilon]
        )

    return one


def runner(one, batch: int):
    keys = jax.random.split(jax.random.key(0), batch)
    f = jax.jit(jax.vmap(one))
    jax.block_until_ready(f(keys))
    return lambda: jax.block_until_ready(f(keys))


def rates(runners: dict, batches: dict, rounds: int) -> dict:
    """Replicates/s of every runner, ``rounds`` interleaved rounds, best time kept."""
    best = dict.fromkeys(runners, math.inf)
    for _ in range(rounds):
        for name, run in runners.items():
            best[name] = min(best[name], best_time(run, min_total=0.3, min_repeats=1))
    return {name: batches[name] / t for name, t in best.items()}


def compare(name: str, n: int, d: int, divergence_only: bool, rounds: int) -> dict:
    structure = STRUCTURES[name]()
    entries = 1 if divergence_only else 2
    batch = max(1, FLOATS_PER_CALL // (entries * n * d))
    gram_batch = 256
    runners = {
        "gram": runner(gram_statistics_sampler(structure, n, d, "gaussian", divergence_only),
                       gram_batch),
        "direct": runner(direct_one(structure, n, d, divergence_only), batch),
        "raw normal": runner(
            lambda key: jax.random.normal(key, (entries, n, d), jnp.float32), batch
        ),
    }  # fmt: skip
    batches = {"gram": gram_batch, "direct": batch, "raw normal": batch}
    out = rates(runners, batches, rounds)
    out["k"] = gram_state_dim(structure, n, "gaussian", divergence_only)
    return out


def crossover(name: str, n: int, divergence_only: bool, widths, rounds: int) -> dict:
    """Gram rate (any d: it does not depend on d) and direct rates at each width."""
    structure = STRUCTURES[name]()
    entries = 1 if divergence_only else 2
    gram = runner(gram_statistics_sampler(structure, n, 64, "gaussian", divergence_only), 256)
    runners, batches = {"gram": gram}, {"gram": 256}
    for d in widths:
        batch = max(1, FLOATS_PER_CALL // (entries * n * d))
        runners[d] = runner(direct_one(structure, n, d, divergence_only), batch)
        batches[d] = batch
    r = rates(runners, batches, rounds)
    direct = np.array([r[d] for d in widths])
    logd, logr = np.log(widths), np.log(direct / r["gram"])
    below = np.nonzero(logr < 0)[0]  # direct slower than gram
    if below.size == 0:
        star = math.inf
    elif below[0] == 0:
        star = float(widths[0])
    else:
        i = below[0]
        t = logr[i - 1] / (logr[i - 1] - logr[i])
        star = float(math.exp(logd[i - 1] + t * (logd[i] - logd[i - 1])))
    k = gram_state_dim(structure, n, "gaussian", divergence_only)
    return {
        "gram": r["gram"],
        "direct": dict(zip(widths, direct, strict=True)),
        "d_star": star,
        "k": k,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Replicate curves per second of the gram method")
    parser.add_argument("--quick", action="store_true", help="n = 256, one round")
    parser.add_argument("--out", default=str(HERE / "results_gram.md"))
    args = parser.parse_args(argv)
    n = 256 if args.quick else 1024
    rounds = 1 if args.quick else 2
    lines = [
        "# Gram method: replicate curves per second (float32, Gaussian tokens)",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine()}",
        "",
        f"n = {n}; rates in replicate curves/s; ratios measured in the same run.",
        "",
        "| structure | statistics | k | d | gram | direct | raw normal | gram/direct "
        "| gram/raw normal | auto picks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("ar1 (decaying)", "exchangeable"):
        for divergence_only in (False, True):
            for d in (128, 1024, 4096):
                r = compare(name, n, d, divergence_only, rounds)
                chosen = prefer_gram(STRUCTURES[name](), n, d, "gaussian", divergence_only)
                auto = "gram" if chosen else "direct"
                kind = "D only" if divergence_only else "full"
                row = (f"| {name} | {kind} | {r['k']} | {d} | {r['gram']:.4g} | {r['direct']:.4g} "
                       f"| {r['raw normal']:.4g} | {r['gram'] / r['direct']:.3g} "
                       f"| {r['gram'] / r['raw normal']:.3g} | {auto} |")  # fmt: skip
                print(row, flush=True)
                lines.append(row)
    widths = (2, 4, 8, 16, 32, 64, 128)
    lines += [
        "",
        f"Crossover (n = {n}): direct rate at each d; d* where direct = gram.",
        "",
        "| structure | statistics | k | gram | "
        + " | ".join(f"direct d={d}" for d in widths)
        + " | d* | e d*/k^2 | auto picks gram from d |",
        "|---|---|---|---|" + "---|" * len(widths) + "---|---|---|",
    ]
    for name, divergence_only in (
        ("ar1 (decaying)", True),
        ("exchangeable", False),
        ("ar1 + exchangeable + shared", False),
    ):
        c = crossover(name, n, divergence_only, widths, rounds)
        kind = "D only" if divergence_only else "full"
        cells = " | ".join(f"{c['direct'][d]:.4g}" for d in widths)
        entries = 1 if divergence_only else 2
        structure = STRUCTURES[name]()
        auto = next(d for d in range(1, 10**4) if prefer_gram(structure, n, d, "gaussian",
                                                               divergence_only))  # fmt: skip
        row = (f"| {name} | {kind} | {c['k']} | {c['gram']:.4g} | {cells} | {c['d_star']:.3g} "
               f"| {entries * c['d_star'] / c['k'] ** 2:.3g} | {auto} |")  # fmt: skip
        print(row, flush=True)
        lines.append(row)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
