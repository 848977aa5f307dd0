"""``tokenscale theory``: the closed-form curves for given psi's or a correlation structure.

Constant psi's (the default, ``--structure exchangeable``): Upsilon(n), the bound sqrt(2 Upsilon),
the exact Gaussian E[D], the log-log slope of sqrt(Upsilon), the regime and alpha(n; beta, n_b).
Other structures have psi's that vary with n: the table then gives the exact Upsilon(n) of the
structure, its numerical log-log slope (regimes cut at slopes 0.625 and 0.875, as for constant
psi's), the exactly implied alpha(n) = -(beta/2) ln(Upsilon(n)/Upsilon(1))/ln n, the local
transition point n_b(n) = (1 - psi_eq(n))/Delta(n) - 1 (missing at n = 1, where the pairwise psi's
are undefined), and its fixed point n_b(n) = n with how it was found.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import (
    add_command,
    add_structure_args,
    exchangeable_psi,
    positive_int,
    structure_from_args,
)
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory
from tokenscale_sim.structures import exact
from tokenscale_sim.structures.terms import constant_psi
from tokenscale_sim.theory import closed_forms as theory

BYTES_PER_N = 40 * 8  # float64 columns and temporaries of the table, per token count

COLUMNS = exact.THEORY_COLUMNS


def register(sub) -> None:
    p = add_command(sub, "theory", SUBCOMMANDS["theory"], __doc__)
    add_structure_args(p)
    p.add_argument(
        "--n-max",
        type=positive_int,
        default=64,
        help="largest token count n (default: %(default)s)",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=1.0,
        help="score exponent beta in S ~ E[D]^beta (default: %(default)s)",
    )
    p.add_argument(
        "--d",
        type=positive_int,
        default=256,
        help="embedding width for the exact Gaussian E[D] (default: %(default)s)",
    )
    p.add_argument(
        "--convention",
        choices=theory.CONVENTIONS,
        default="authors",
        help="n_b convention: authors' (1-psi_eq)/Delta - 1 or the literal ratio "
        "(+2 tokens) (default: %(default)s)",
    )
    p.add_argument(
        "--rows",
        type=positive_int,
        default=12,
        help="rows printed (log-spaced n; files get every n) (default: %(default)s)",
    )
    p.add_argument("--csv", metavar="FILE", help="write the full table as CSV")
    p.add_argument("--json", metavar="FILE", help="write the table and parameters as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a figure of the curves (PNG/PDF/SVG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv/--json/--plot")
    p.set_defaults(func=run)


def table(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], theory.TransitionPoint]:
    """The theory table for parsed arguments (:func:`tokenscale_sim.structures.exact.theory_table`)
    and the transition point (constant psi's: n_b; otherwise the fixed point of n_b(n))."""
    if not args.beta > 0:
        raise ValueError(f"theory: --beta must be > 0, got {args.beta}")
    if args.structure == "exchangeable" and args.structure_file is None:
        # measured psi's need not form a PSD Gaussian structure
        eq, aa, bb, ab = exchangeable_psi(args)  # with --shared W mixed in
        psi = constant_psi(args.n_max, eq, aa, bb, ab)
        theory.check_upsilon(args.n_max, eq, psi.psi_aabb[-1], ab)
    else:
        psi = structure_from_args(args).validate(args.n_max).psi(args.n_max)
    return exact.theory_table(psi, beta=args.beta, d=args.d, convention=args.convention)


def _print(cols: dict[str, np.ndarray], rows: int, tp: theory.TransitionPoint) -> None:
    n_max = len(cols["n"])
    idx = np.unique(np.geomspace(1, n_max, min(rows, n_max)).round().astype(int) - 1)
    notes = {
        "constant": "",
        "crossing": "  (fixed point of n_b(n) = n)",
        "beyond": "  (n_b(n) > n for every n: still sublinear at n-max)",
        "linear_from_start": "  (n_b(n) < n from n = 2: linear from the start)",
        "no_transition": "  (Delta <= 0: no transition)",
    }
    note = (
        notes[tp.status]
        if np.isfinite(tp.n_b) or tp.status != "constant"
        else "  (no transition: Delta = 0)"
    )
    if tp.status == "constant" and tp.n_b < 0:
        note = "  (Delta < 0: Upsilon rises to n = -n_b/2, then falls)"
    print(f"transition point n_b = {tp.n_b:.6g}{note}")
    print("".join(f"{c:>14}" for c in COLUMNS))
    for i in idx:
        cells = []
        for c in COLUMNS:
            v = cols[c][i]
            cells.append(f"{theory.REGIMES[int(v)]:>14}" if c == "regime" else f"{v:>14.6g}")
        print("".join(cells))


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path and the table's memory, before any work or any file is written."""
    for flag, path in (("--csv", args.csv), ("--json", args.json), ("--plot", args.plot)):
        if path is not None:  # "" too: refused as a folder, never silently skipped
            files.check_output_file(
                path,
                overwrite=args.overwrite,
                what=flag,
                suffixes=files.PLOT_SUFFIXES if flag == "--plot" else None,
            )
    others = {a for a in (args.csv, args.json, args.plot) if a}
    if len(others) < sum(1 for a in (args.csv, args.json, args.plot) if a):
        raise ValueError("--csv, --json and --plot must name different files")
    check_memory("theory", f"the table for --n-max {args.n_max}", args.n_max * BYTES_PER_N,
                 "lower --n-max")  # fmt: skip


def _structure_entry(args: argparse.Namespace) -> dict[str, object]:
    """``{"structure": ...}``, the structure as a structure file (``Structure.describe``), for
    every run but measured constant psi's (``--structure exchangeable``, which need not be a
    PSD structure)."""
    if args.structure == "exchangeable" and args.structure_file is None:
        return {}
    return {"structure": structure_from_args(args).describe()}


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    cols, tp = table(args)
    _print(cols, args.rows, tp)
    n_b = tp.n_b
    status = tp.status
    fig = None
    if args.plot:
        from tokenscale_sim.plots.theory import divergence_curves

        curves = theory.TheoryCurves(
            n=cols["n"],
            upsilon=cols["upsilon"],
            bound=cols["bound"],
            gaussian_mean=cols["gaussian_mean"],
            slope=cols["slope"],
            regime=cols["regime"],
            alpha=cols["alpha"],
            n_b=np.asarray(n_b),
            valid=cols["upsilon"] > 0,
        )
        label = args.structure if args.structure_file is None else args.structure_file
        fig = divergence_curves(curves, title=f"{label}: n_b = {n_b:.3g}")
    written = []
    if args.csv:
        written.append(files.write_csv(args.csv, cols))
    if args.json:
        params = {k: v for k, v in vars(args).items() if k != "func"}
        written.append(
            files.write_json(
                args.json,
                {
                    "parameters": params,
                    **_structure_entry(args),
                    "n_b": n_b,
                    "n_b_status": status,
                    "table": cols,
                    "metadata": files.run_metadata(),
                },
            )
        )
    if fig is not None:  # drawn before any file was written
        written.append(files.save_figure(fig, args.plot, dpi=120))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
