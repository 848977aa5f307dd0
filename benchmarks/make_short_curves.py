"""Write ``benchmarks/short_curves.csv``: 108 simulated token-count curves of 4 to 7 points.

A collection like those a researcher gathers from papers (a few token counts per model and
benchmark), for timing ``tokenscale compare`` where most curve x law pairs have too few points
(``bench_compare_short.py``). Fixed seed; every curve is one of three shapes with log-normal
noise of 1-3 %:

- power law ``S = c n^a`` (c in [0.2, 0.5], a in [0.02, 0.12]);
- saturating ``S = s - b n^-g`` (s in [0.6, 0.9], b in [0.1, 0.4], g in [0.2, 0.6]);
- log-linear ``S = a + b ln n`` (a in [0.2, 0.4], b in [0.01, 0.05]).

Each curve takes 4 to 7 distinct token counts (sorted) from 1, 4, 16, 36, 64, 144, 256, 576,
1024, 2304, 4096 (vision tokens per image in published sweeps).

    python benchmarks/make_short_curves.py [--curves 108] [--seed 37] [--out FILE]

The long CSV has columns ``curve, n, score``; read it with ``--group curve``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

TOKENS = np.array([1, 4, 16, 36, 64, 144, 256, 576, 1024, 2304, 4096], float)


def short_curves(count: int, seed: int) -> list[tuple[str, float, float]]:
    """``count`` curves as rows ``(curve, n, score)`` (module docstring)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        k = int(rng.integers(4, 8))
        n = np.sort(rng.choice(TOKENS, size=k, replace=False))
        shape = i % 3
        if shape == 0:
            s = rng.uniform(0.2, 0.5) * n ** rng.uniform(0.02, 0.12)
        elif shape == 1:
            s = rng.uniform(0.6, 0.9) - rng.uniform(0.1, 0.4) * n ** -rng.uniform(0.2, 0.6)
        else:
            s = rng.uniform(0.2, 0.4) + rng.uniform(0.01, 0.05) * np.log(n)
        s = s * np.exp(rng.uniform(0.01, 0.03) * rng.standard_normal(k))
        rows += [(f"c{i:03d}", float(x), round(float(y), 6)) for x, y in zip(n, s, strict=True)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curves", type=int, default=108)
    parser.add_argument("--seed", type=int, default=37)
    parser.add_argument("--out", default=str(Path(__file__).with_name("short_curves.csv")))
    args = parser.parse_args()
    with open(args.out, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["curve", "n", "score"])
        out.writerows((c, f"{n:g}", f"{y:.6f}") for c, n, y in short_curves(args.curves, args.seed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
