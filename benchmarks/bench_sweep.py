"""Speed of ``tokenscale sweep``: the exact theory of the structure family on a 100 x 100 grid.

Times :func:`tokenscale_sim.montecarlo.sweep.sweep` on 10,000 grid points (length x coupling, shared
0.2, n_max 256, the per-n columns at n = 64): the first call (compilation included) and the best of
three more (compiled), against a loop of the NumPy reference (``families.to_structure(theta)``,
``exact.transition`` and ``exact.theory_table`` per point) on the first 200 points, extrapolated.
Writes ``benchmarks/results_sweep.md``.

    python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from tokenscale_sim.montecarlo import sweep  # noqa: E402
from tokenscale_sim.structures import exact, families  # noqa: E402


def main() -> None:
    axes = {"length": np.geomspace(1, 100, 100), "coupling": np.linspace(-0.5, 0.95, 100)}
    grid = sweep.make_grid(axes, {"shared": 0.2}, n_max=256)
    start = time.perf_counter()
    sweep.sweep(grid, at=64)
    first = time.perf_counter() - start
    compiled = min(sweep.sweep(grid, at=64).seconds for _ in range(3))
    start = time.perf_counter()
    loop = 200
    for theta in grid.theta[:loop]:
        psi = families.to_structure(theta).psi(256)
        exact.transition(psi)
        exact.theory_table(psi, d=256)
    numpy_each = (time.perf_counter() - start) / loop
    lines = [
        "# tokenscale sweep: 10,000 grid points of the exact theory",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{jax.devices()[0].platform}, float64 (`python benchmarks/bench_sweep.py`).",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| sweep, first call (compile included) | {first:.2f} |",
        f"| sweep, compiled (best of 3) | {compiled:.3f} |",
        f"| NumPy/JAX reference loop per point, x 10,000 (from {loop} points) | "
        f"{numpy_each * len(grid.theta):.0f} |",
    ]
    out = Path(__file__).with_name("results_sweep.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
