"""The fits of ``tokenscale compare`` in a plain SciPy loop: the reference that
``bench_compare_short.py`` times the package against.

Per law and curve it is compared on (the same ``too few points`` rule): the full fit, the
hold-out fit (all but the ``--holdout-last`` largest distinct n), one leave-one-out fit per
distinct n and, with ``--bootstrap B``, the fits of the B quadratic resamples of curves with a
shape test (the resamples ``compare_laws`` draws for the same seed, made by the package before
the clock starts). Each fit is ``bench_compare.scipy_fit``: the law's variable-projection grid
(``Model.grid`` over the collection's n range, as the package), ``scipy.optimize.least_squares``
(LM) from the 3 best grid points, the exact n_b limits, the lowest RSS of ln S kept. Laws without
a NumPy form (``broken``) use their jitted JAX basis (slower per call; said in the output).

    python benchmarks/scipy_compare.py (--paper | FILE --group COLS) [--bootstrap B]
                                       [--resample-sample K] [--laws L1,L2]

``--resample-sample K`` fits only the first K resamples and scales their time to B (the output
says so). Prints one JSON line: ``{"fits": ..., "seconds": ..., "cpu_seconds": ...,
"extrapolated": ...}`` (wall and CPU seconds of the fitting loops).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from bench_compare import _basis, _jax_basis, _linear_space, scipy_fit

from tokenscale_sim.fit.data.curves import (
    CurveArrays,
    load_paper_scores,
    read_curves,
)
from tokenscale_sim.fit.laws.models import get_model
from tokenscale_sim.fit.selection.compare import available_laws
from tokenscale_sim.fit.selection.curvature import curvature_arrays
from tokenscale_sim.fit.selection.packing import comparable_pairs, layout_rows, row_sources
from tokenscale_sim.runtime.validation import key_from_seed


def law_tools(model, n_probe):
    """``(basis, predict, how)`` of ``bench_compare.scipy_fit`` for one law."""
    if model.space == "linear":
        predict, basis = _linear_space(model)
        return basis, predict, "NumPy"
    try:
        _basis(model.name, np.zeros(model.k), n_probe)
        return _basis, None, "NumPy"
    except KeyError:
        return _jax_basis(model), None, "jitted JAX basis"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?")
    parser.add_argument("--paper", action="store_true")
    parser.add_argument("--group", default="curve")
    parser.add_argument("--laws", default=",".join(available_laws()))
    parser.add_argument("--holdout-last", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--resample-sample", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    if args.paper:
        curves = load_paper_scores()
    else:
        curves = read_curves(args.file, group=tuple(args.group.split(",")))
    models = tuple(get_model(x) for x in args.laws.split(","))
    a = curves.arrays
    g, m = np.shape(a.y)
    base, held, slot = layout_rows(a, args.holdout_last)
    comparable = comparable_pairs(slot, held, models)
    key = key_from_seed("compare", args.seed)  # the CLI's key: the same resamples
    shape, star = curvature_arrays(key, a, m=args.bootstrap)
    rows = CurveArrays(*(np.asarray(x, float) for x in base))
    if star is not None:
        rows = CurveArrays(
            *(np.concatenate([r, np.reshape(s, (-1, m))]) for r, s in zip(rows, star, strict=True))
        )
    b = args.bootstrap
    b_fit = min(args.resample_sample or b, b)
    n_valid = np.asarray(a.n)[np.asarray(a.weight) > 0]
    total_fits, seconds, cpu, fitted, hows = 0, 0.0, 0.0, 0, {}
    for j, model in enumerate(models):
        src = row_sources(
            comparable[:, j], slot.max(axis=1) + 1, np.isfinite(shape.curvature), m,
            args.holdout_last, b,
        )  # fmt: skip
        own = np.flatnonzero(src == np.arange(src.size))
        first_boot = 2 * g + g * m
        base_rows, boot_rows = own[own < first_boot], own[own >= first_boot]
        boot_pick = boot_rows[boot_rows < first_boot + b_fit * g]
        grid = model.grid(float(n_valid.min()), float(n_valid.max()))
        basis, predict, hows[model.name] = law_tools(model, n_valid[:2])
        t0, c0 = time.perf_counter(), time.process_time()
        for r in base_rows:
            ok = rows.weight[r] > 0
            scipy_fit(model, basis, rows.n[r][ok], rows.y[r][ok], grid, 3, predict)
        t_base, c_base = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        for r in boot_pick:
            ok = rows.weight[r] > 0
            scipy_fit(model, basis, rows.n[r][ok], rows.y[r][ok], grid, 3, predict)
        t_boot, c_boot = time.perf_counter() - t0, time.process_time() - c0
        scale = boot_rows.size / boot_pick.size if boot_pick.size else 0.0
        seconds += t_base + t_boot * scale
        cpu += c_base + c_boot * scale
        total_fits += base_rows.size + boot_rows.size
        fitted += base_rows.size + boot_pick.size
    out = {
        "fits": total_fits,
        "fitted": fitted,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "extrapolated": fitted < total_fits,
        "pairs_compared": int(comparable.sum()),
        "pairs": int(comparable.size),
        "how": hows,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
