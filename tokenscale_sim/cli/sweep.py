"""``tokenscale sweep``: the exact theory of a structure family over a grid of its parameters.

The family (tokenscale_sim.structures.families):

  Sigma = shared [[1,1],[1,1]] (x) J + image [[1,0],[0,1]] (x) J
        + weight [[1,c],[c,1]] (x) K(length) + (1 - shared - image - weight) [[1,q],[q,1]] (x) I

with c = coupling, q = local_coupling, K exponential exp(-|i-j|/length) (--kernel powerlaw:
(1+|i-j|)^-length). Axes, each --grid NAME=SPEC (SPEC lo:hi:count, lo:hi:count:log or v1,v2,..),
over shared, image, weight, length, coupling, local_coupling, d and n_max; --set NAME=VALUE fixes
the others (defaults: shared 0, image 0, weight 1 - shared - image, length 4, coupling 0.3,
local_coupling 0).
A --grid-file (TOML: a [grid] table of NAME = [values] or "SPEC", a [set] table) gives the same.

Writes into --out: sweep.csv (one row per grid point: the parameters, d, n_max, valid, n_b and
its status, and at n = --at: psi_eq, Delta, the slope of sqrt(Upsilon), its regime, the exact
Gaussian E[D], the bound sqrt(2 Upsilon), their ratio; the bound's mean slope over [1, n_max];
with --mc M a Monte Carlo mean D at n = --at per point and its z against the exact value),
sweep.json (settings, timing, metadata) and phase.png (the phase diagram over the first two
varied axes).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import add_command, check_mc_work, positive_int, seed
from tokenscale_sim.montecarlo import sweep
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.structures.families import KERNEL_KINDS

KIND = "sweep"


def register(sub) -> None:
    p = add_command(sub, "sweep", SUBCOMMANDS["sweep"], __doc__)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=SPEC", help="a grid axis")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter off the grid")  # fmt: skip
    p.add_argument("--grid-file", metavar="FILE", help="TOML with [grid] and [set] tables")
    p.add_argument("--structure-file", metavar="FILE", default=None,
                   help="sweep the named parameters of this structure file instead of the "
                   "family (e.g. structures/candidates/*.toml)")  # fmt: skip
    p.add_argument("--kernel", choices=KERNEL_KINDS, default="exponential",
                   help="the decaying term's kernel (default: %(default)s)")  # fmt: skip
    p.add_argument("--n-max", type=positive_int, default=256,
                   help="tokens per branch off the grid (default: %(default)s)")  # fmt: skip
    p.add_argument("--d", type=positive_int, default=256,
                   help="embedding width off the grid (default: %(default)s)")  # fmt: skip
    p.add_argument("--at", type=positive_int, default=None,
                   help="n of the per-n columns (default: each point's n_max)")  # fmt: skip
    p.add_argument("--mc", type=positive_int, default=None, metavar="M",
                   help="also a Monte Carlo of M replicates per point (small grids)")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="Monte Carlo seed (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a previous sweep in --out")
    p.add_argument("--no-plot", action="store_true", help="skip phase.png")
    p.add_argument("--quiet", action="store_true", help="no work line, no progress bar (stderr)")
    p.set_defaults(func=run)


def _setting(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not np.isfinite(float(value)):
            raise ValueError
        return name.strip(), float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"--set expects NAME=NUMBER (finite), got {text!r}") from None


def _finite_text(value: float) -> str:
    """A number of a grid file as text (an integer past float range as ``inf``: refused)."""
    try:
        return repr(float(value))
    except OverflowError:
        return "inf"


def _read_grid_file(path: str, names) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    from tokenscale_sim.structures.files import read_structure_data

    data = read_structure_data(Path(path), "--grid-file")
    if not isinstance(data, dict):
        raise ValueError(f"--grid-file {path!r} must hold [grid] and [set] tables")
    unknown = set(data) - {"grid", "set"}
    if unknown:
        raise ValueError(f"--grid-file {path!r}: unknown tables {sorted(unknown)} (grid, set)")
    for table in ("grid", "set"):
        if not isinstance(data.get(table, {}), dict):
            raise ValueError(f"--grid-file {path!r}: [{table}] must be a table of NAME = ..., "
                             f"got {type(data[table]).__name__}")  # fmt: skip
    axes = {}
    for name, spec in data.get("grid", {}).items():
        if not isinstance(spec, str | int | float | list) or isinstance(spec, bool):
            raise ValueError(f"--grid-file {path!r}: grid.{name} must be a list of numbers or "
                             f"'lo:hi:count', got {spec!r:.80}")  # fmt: skip
        text = spec if isinstance(spec, str) else ",".join(str(v) for v in np.atleast_1d(spec))
        key, values = sweep.parse_axis(f"{name}={text}", names)
        axes[key] = values
    fixed = {}
    for name, value in data.get("set", {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"--grid-file {path!r}: set.{name} must be a number, got "
                             f"{value!r}"[:300])  # fmt: skip
        fixed.update([_setting(f"{name}={_finite_text(value)}")])
    return axes, fixed


def build_grid(args: argparse.Namespace, file=None) -> sweep.Grid:
    """The grid of the arguments (file first, the command line overrides it); a name twice on
    the command line, or both on --grid and --set, is refused."""
    names = sweep.AXES if file is None else (*file.names, *sweep.SIZES)
    axes, fixed = _read_grid_file(args.grid_file, names) if args.grid_file else ({}, {})
    seen: dict[str, str] = {}
    for option, texts in (("--grid", args.grid), ("--set", args.set)):
        for text in texts:
            if option == "--grid":
                name, values = sweep.parse_axis(text, names)
            else:
                name, value = _setting(text)
            if name in seen:
                raise ValueError(f"sweep: {name!r} given twice ({seen[name]} and {option}); "
                                 "give each axis or setting once")  # fmt: skip
            seen[name] = option
            if option == "--grid":
                axes[name] = values
                fixed.pop(name, None)
            else:
                fixed[name] = value
                axes.pop(name, None)
    if not axes:
        raise ValueError("sweep: give at least one --grid NAME=SPEC (or a --grid-file)")
    return sweep.make_grid(axes, fixed, d=args.d, n_max=args.n_max, file=file)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        result = _run(args, stack)
    cols = result.columns
    valid = int(np.sum(cols["valid"]))
    print(
        f"{len(cols['valid'])} grid points ({valid} "
        f"{'in the family' + chr(39) + 's domain' if args.structure_file is None else 'valid'}) in "
        f"{result.seconds:.2f} s; wrote {args.out}/sweep.csv, sweep.json"
        + ("" if args.no_plot else ", phase.png")
    )
    return 0


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> sweep.SweepResult:
    import jax

    file = None
    if args.structure_file is not None:
        from tokenscale_sim.structures.params import read_param_file

        if args.kernel != "exponential":
            raise ValueError("--kernel belongs to the family; a structure file names its kernels")
        file = read_param_file(args.structure_file)
        if args.mc is not None:
            raise ValueError("--mc works with the family; simulate a point of a structure file "
                             "with tokenscale simulate --structure-file")  # fmt: skip
    grid = build_grid(args, file)  # every input error before the output folder is touched
    if args.mc is not None and len(grid.theta) > 200:
        raise ValueError(f"sweep: --mc runs one simulation per point; at most 200, got "
                         f"{len(grid.theta)}")  # fmt: skip
    if args.mc is not None:
        at = grid.n_max if args.at is None else np.minimum(grid.n_max, args.at)
        check_mc_work(args.mc, int(at.max()), int(grid.d.max()), len(grid.theta))
    out = stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
    points = len(grid.theta)
    if not args.quiet:  # the size of the work before it starts (stderr)
        mc = f", then a Monte Carlo of {args.mc} pairs at each valid point" if args.mc else ""
        print(f"sweep: {points:,} grid points, exact theory{mc}", file=sys.stderr, flush=True)
    with tqdm(total=points, desc="sweep: exact", unit="point", disable=args.quiet) as bar:
        result = sweep.sweep(grid, at=args.at, kernel=args.kernel, file=file, tick=bar.update)
    cols = dict(result.columns)
    if args.mc is not None:
        key = jax.random.key(args.seed)
        valid = int(np.sum(cols["valid"]))
        with tqdm(total=valid, desc="sweep: Monte Carlo", unit="point", disable=args.quiet) as bar:
            cols.update(sweep.monte_carlo_column(key, result, args.mc, kernel=args.kernel,
                                                 tick=bar.update))  # fmt: skip
    files.write_csv(out / "sweep.csv", cols)
    files.write_json(
        out / "sweep.json",
        {
            "axes": grid.axes,
            "set": [s for s in args.set],
            "kernel": args.kernel,
            "structure_file": args.structure_file,
            "at": args.at,
            "points": len(grid.theta),
            "seconds_exact": result.seconds,
            "mc": args.mc,
            "metadata": files.run_metadata(command="tokenscale sweep", seed=args.seed),
        },
    )
    if not args.no_plot:
        from tokenscale_sim.plots.structures import phase_diagram

        at = "n_max" if args.at is None else str(args.at)
        files.save_figure(phase_diagram(cols, grid.axes, at), out / "phase.png", dpi=110)
    return result._replace(columns=cols)
