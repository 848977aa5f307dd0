"""Throughput of the structure-aware samplers against raw normals and a NumPy dense-Cholesky
reference, and peak memory of ``simulate`` as the replicate count grows 10x.

Run: ``python benchmarks/bench_sampling.py [--quick] [--float64] [--out FILE]``.

Rate = token pairs per second: one replicate of ``n`` tokens per branch gives ``n`` pairs
``(h_i^A, h_i^B)`` of two ``d``-vectors. Each timed call draws a batch of replicates sized to
about 2^24 normals (``jax.vmap`` over keys, jitted, compile excluded, best of repeats).

- ``raw normal``: ``jax.random.normal`` for the same number of normals (2 n d per replicate,
  one key per replicate, vmapped like the samplers), the limit of any sampler that draws its own
  normals.
- ``numpy dense``: a plain NumPy implementation: Cholesky factor of the dense 2n x 2n Sigma
  (computed once, untimed) times ``Generator.standard_normal`` draws, same dtype; its cost per
  pair grows like n.
- ``diff fast path``: :func:`tokenscale_sim.montecarlo.sampling.difference_sampler`
  (h^A - h^B directly, half the normals), counted in token pairs too.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tokenscale_sim import structures as st  # noqa: E402
from tokenscale_sim.montecarlo.sampling import difference_sampler, sampler_methods, token_sampler  # noqa: E402

SAMPLERS = {
    "exchangeable": lambda: st.exchangeable(0.5, 0.3, psi_ab=0.1),
    "ar1 (decaying)": lambda: st.decaying(8.0, coupling=0.3),
    "powerlaw (FFT)": lambda: st.decaying(0.7, coupling=0.3, kernel="powerlaw"),
    "patch-grid": lambda: st.patch_grid(4.0, coupling=0.3),
}
FAST_PATH = ("exchangeable", "ar1 (decaying)")
NORMALS_PER_CALL = 2**24


def best_time(fn, *, min_total: float = 0.8, min_repeats: int = 3, max_repeats: int = 30) -> float:
    """Best wall time of ``fn()`` (already compiled) over repeats lasting ~min_total seconds."""
    times: list[float] = []
    while len(times) < max_repeats and (len(times) < min_repeats or sum(times) < min_total):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def jax_runner(sample, batch: int):
    """Compile ``vmap(sample)`` over ``batch`` keys; return a call that blocks until done."""
    keys = jax.random.split(jax.random.key(0), batch)
    f = jax.jit(jax.vmap(sample))
    jax.block_until_ready(f(keys))
    return lambda: jax.block_until_ready(f(keys))


def raw_normal_runner(n: int, d: int, batch: int, dtype):
    """``jax.random.normal`` for 2 n d normals per replicate key, vmapped like the samplers."""
    return jax_runner(lambda key: jax.random.normal(key, (2, n, d), dtype), batch)


def numpy_runner(factor: np.ndarray, n: int, d: int, batch: int, dtype):
    rng = np.random.default_rng(0)
    f = factor.astype(dtype)

    def draw():
        z = rng.standard_normal((2 * n, d * batch), dtype=dtype)
        return f @ z

    draw()
    return draw


def interleaved_rates(runners: dict, pairs: dict, rounds: int) -> dict:
    """Token pairs/s of every runner: ``rounds`` rounds over all runners, best time kept, so
    that load bursts on a shared machine hit every entry alike."""
    best = dict.fromkeys(runners, math.inf)
    for _ in range(rounds):
        for name, run in runners.items():
            slow = name == "numpy dense"
            t = best_time(run, min_total=0.3, min_repeats=1 if slow else 2, max_repeats=10)
            best[name] = min(best[name], t)
    return {name: pairs[name] / t for name, t in best.items()}


def peak_memory(m: int, n: int, d: int, chunk: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of a fresh process running ``simulate`` with m replicates."""
    code = textwrap.dedent(
        f"""
        import resource, time, jax
        from pathlib import Path
        from tokenscale_sim.structures import terms as st
        from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate
        t = time.perf_counter()
        config = SimulationConfig(n_max={n}, d={d}, m={m}, chunk={chunk}, exact_psi=False)
        simulate(jax.random.key(0), st.decaying(8.0, 0.3), config)
        seconds = time.perf_counter() - t
        try:  # VmHWM: this process image only (ru_maxrss keeps the parent's peak across exec)
            status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
            peak = float(status.split()[0]) / 1024
        except (OSError, IndexError):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(peak, seconds)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = ", ".join(str(dev) for dev in jax.devices())
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} "
            f"{platform.release()}; jax {jax.__version__} on {devices}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n in {64, 1024}, d in {64, 256}")
    parser.add_argument("--float64", action="store_true", help="benchmark in float64")
    parser.add_argument("--out", default=str(HERE / "results_sampling.md"))
    parser.add_argument("--ns", type=int, nargs="*", default=None, help="token counts n")
    parser.add_argument("--ds", type=int, nargs="*", default=None, help="widths d")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", args.float64)
    dtype = np.float64 if args.float64 else np.float32
    ns = args.ns or ([64, 1024] if args.quick else [64, 256, 1024, 4096])
    ds = args.ds or ([64, 256] if args.quick else [64, 256, 1024])
    started = time.perf_counter()
    rows = []
    for n in ns:
        factor = np.linalg.cholesky(SAMPLERS["ar1 (decaying)"]().sigma(n))  # NumPy reference
        for d in ds:
            batch = max(1, NORMALS_PER_CALL // (2 * n * d))
            ref_batch = max(1, min(batch, 2**22 // (2 * n * d)))
            runners = {
                "raw normal": raw_normal_runner(n, d, batch, dtype),
                "numpy dense": numpy_runner(factor, n, d, ref_batch, dtype),
            }
            methods = {"raw normal": "jax.random.normal", "numpy dense": "cholesky + numpy rng"}
            for name, make in SAMPLERS.items():
                s = make()
                methods[name] = ", ".join(sampler_methods(s, n))
                runners[name] = jax_runner(token_sampler(s, n, d), batch)
                if name in FAST_PATH:
                    fast = f"{name} diff fast path"
                    methods[fast] = "difference_sampler"
                    runners[fast] = jax_runner(difference_sampler(s, n, d), batch)
            pairs = {k: (ref_batch if k == "numpy dense" else batch) * n for k in runners}
            rates = interleaved_rates(runners, pairs, args.rounds)
            raw, ref = rates["raw normal"], rates["numpy dense"]
            rows += [(n, d, k, methods[k], rates[k], raw, ref) for k in runners]
            print(f"n={n} d={d} done ({time.perf_counter() - started:.0f}s)", flush=True)
    mem = [] if args.skip_memory else [(m, *peak_memory(m, 256, 64, 250)) for m in (500, 5000)]
    write(args.out, rows, mem, dtype, time.perf_counter() - started)


def targets(rows) -> list[str]:
    """The issue's targets: >= 0.5x raw normals at n=1024, d=256; >= 10x NumPy at n=4096, d=256."""
    out = ["Targets (issue 4):", ""]
    for (n, d), key, goal, label in (
        ((1024, 256), "raw", 0.5, "x raw at n=1024, d=256 (target >= 0.5)"),
        ((4096, 256), "numpy", 10.0, "x numpy at n=4096, d=256 (target >= 10)"),
    ):
        for row_n, row_d, name, _, rate, raw, ref in rows:
            if (row_n, row_d) != (n, d) or name in ("raw normal", "numpy dense"):
                continue
            ratio = rate / (raw if key == "raw" else ref)
            out.append(f"- {name}: {ratio:.2f} {label}: {'met' if ratio >= goal else 'NOT met'}")
        if key == "numpy":  # the ceiling of any sampler drawing all its normals with jax.random
            out += [
                f"- (ceiling) raw normal: {raw / ref:.2f} x numpy at n={n}, d={d}: a full-token "
                f"sampler needs >= {goal * ref / raw:.2f} x raw to meet the target"
                for row_n, row_d, name, _, _, raw, ref in rows
                if (row_n, row_d, name) == (n, d, "raw normal")
            ]
    return out if len(out) > 2 else []


NOTES = """Reading the table:

- Ratios within one row group (same n and d, same run) are the numbers to compare; absolute
  rates on a shared machine vary by 20-30 % between runs.
- The samplers draw their own normals, so `x raw` ~ 1 is the ceiling for one normal per entry
  (the factor model, AR(1), grids); the difference fast path needs half the normals (~2x).
  Circulant embedding needs >= 2(n - 1) normals per column of n, so <= 0.5x by construction.
- Where the time goes (float32, CPU, n = 4096, d = 256): the threefry bits of the normals are
  ~85 % of the raw-normal time (JAX lowers threefry on CPU as a rolled loop over the whole
  array), their conversion to normals the rest. The full-token samplers add: the exchangeable
  model, one more normal evaluation per pair (its 2 x 2 mix F F' = C is triangular and fused
  into the single pass that writes h: 3 normals evaluated per pair instead of 2, or 4 with the
  symmetric square root); AR(1), one 16 x 16 Toeplitz GEMM pass (the normals are drawn in the
  block-strided layout the GEMM needs, no transposes; carries, 2 x 2 mix and the output layout
  fused into the final pass); the grid, a second GEMM pass for the columns (plus one re-layout).
- The NumPy reference costs one BLAS matmul with the 2n x 2n factor per draw: its cost per
  token pair doubles with every doubling of n, the structured samplers' stays flat, so `x numpy`
  doubles too. At n = 4096 on this CPU raw JAX normals are themselves only ~10-12x faster than
  that matmul (the "ceiling" line under the targets says how much in this run), so
  `x numpy >= 10` there needs a full-token sampler at ~0.85-1.0x the raw-normal rate, the
  ceiling for anything that draws its 2 n d normals with `jax.random.normal`. The exchangeable
  and AR(1) samplers (~0.9x raw) sit at that edge: met or missed by a few percent depending on
  the run's raw/NumPy ratio and load. The grid (~0.8x raw: a second GEMM pass) is just below;
  the difference fast path (half the normals) meets it with margin. At n = 8192 every
  structured sampler would double its margin.
"""


def write(path: str, rows, mem, dtype, seconds: float) -> None:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Sampling throughput (`benchmarks/bench_sampling.py`)",
        "",
        f"Measured {date} on {machine()}; dtype {np.dtype(dtype).name}; total {seconds:.0f} s.",
        "Rate: token pairs (h_i^A, h_i^B) per second, compile excluded, best time over "
        "interleaved rounds (every entry of a row group timed in turn, so load bursts on a "
        "shared machine hit all alike).",
        "`x raw`: rate / `jax.random.normal` rate for the same number of normals (2 n d per "
        "replicate); `x numpy`: rate / plain NumPy dense-Cholesky rate (same dtype).",
        "",
        "| n | d | sampler | method | pairs/s | x raw | x numpy |",
        "|---:|---:|---|---|---:|---:|---:|",
    ]
    for n, d, name, method, rate, raw, ref in rows:
        lines.append(f"| {n} | {d} | {name} | {method} | {rate:.3g} | {rate / raw:.2f} | "
                     f"{rate / ref:.1f} |")  # fmt: skip
    lines += ["", *targets(rows)]
    lines += [
        "",
        "Peak resident memory (VmHWM) of a fresh process running `simulate` (decaying, "
        "n = 256, d = 64, chunk = 250) as m grows 10x: O(chunk n d), not O(m) (the few MiB "
        "more are allocator warm-up; they do not grow further with m).",
        "",
        "| m | peak RSS (MiB) | seconds |",
        "|---:|---:|---:|",
        *(f"| {m} | {rss:.0f} | {sec:.1f} |" for m, rss, sec in mem),
        "",
        NOTES,
    ]
    text = "\n".join(lines)
    Path(path).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
