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
import tomllib
from pathlib import Path

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import add_command, positive_int, seed
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
    p.set_defaults(func=run)


def _setting(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"--set expects NAME=NUMBER, got {text!r}") from None


def _finite_text(value: float) -> str:
    """A number of a grid file as text (an integer past float range as ``inf``: refused)."""
    try:
        return repr(float(value))
    except OverflowError:
        return "inf"


def _read_grid_file(path: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    p = Path(path)
    if not p.is_file():
        if p.exists():  # a folder, or a FIFO that a read would wait on forever
            raise ValueError(f"--grid-file {path!r} is a folder or not a regular file")
        raise FileNotFoundError(f"--grid-file {path!r} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"--grid-file {path!r} is not valid TOML: {err}") from None
    except RecursionError:  # arrays nested thousands deep
        raise ValueError(f"--grid-file {path!r} is nested too deeply to read") from None
    unknown = set(data) - {"grid", "set"}
    if unknown:
        raise ValueError(f"--grid-file {path!r}: unknown tables {sorted(unknown)} (grid, set)")
    for table in ("grid", "set"):
        if not isinstance(data.get(table, {}), dict):
            raise ValueError(f"--grid-file {path!r}: {table} must be a table ([{table}]), got "
                             f"{type(data[table]).__name__}")  # fmt: skip
    axes = {}
    for name, spec in data.get("grid", {}).items():
        values = spec if isinstance(spec, list) else [spec]
        if not isinstance(spec, str) and not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(f"--grid-file {path!r}: grid.{name} must be a list of numbers or "
                             f"a 'lo:hi:count' string, got {spec!r}"[:300])  # fmt: skip
        text = spec if isinstance(spec, str) else ",".join(_finite_text(v) for v in values)
        key, values = sweep.parse_axis(f"{name}={text}")
        axes[key] = values
    fixed = {}
    for name, value in data.get("set", {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"--grid-file {path!r}: set.{name} must be a number, got "
                             f"{value!r}"[:300])  # fmt: skip
        fixed.update([_setting(f"{name}={_finite_text(value)}")])
    return axes, fixed


def build_grid(args: argparse.Namespace) -> sweep.Grid:
    """The grid of the arguments (file first, the command line adds and overrides)."""
    axes, fixed = _read_grid_file(args.grid_file) if args.grid_file else ({}, {})
    given: dict[str, str] = {}  # each name once on the command line (never one dropped)
    for option, texts in (("--grid", args.grid), ("--set", args.set)):
        for text in texts:
            name, value = sweep.parse_axis(text) if option == "--grid" else _setting(text)
            if name in given:
                raise ValueError(f"sweep: {name} is given twice ({given[name]} and {option})")
            given[name] = option
            if option == "--grid":
                axes[name] = np.asarray(value)
                fixed.pop(name, None)
            else:
                fixed[name] = float(value)
                axes.pop(name, None)
    if not axes:
        raise ValueError("sweep: give at least one --grid NAME=SPEC (or a --grid-file)")
    return sweep.make_grid(axes, fixed, d=args.d, n_max=args.n_max)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        result = _run(args, stack)
    cols = result.columns
    valid = int(np.sum(cols["valid"]))
    print(
        f"{len(cols['valid'])} grid points ({valid} in the family's domain) in "
        f"{result.seconds:.2f} s; wrote {args.out}/sweep.csv, sweep.json"
        + ("" if args.no_plot else ", phase.png")
    )
    return 0


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> sweep.SweepResult:
    import jax

    grid = build_grid(args)  # every input error before the output folder is touched
    if args.mc is not None and len(grid.theta) > 200:
        raise ValueError(f"sweep: --mc runs one simulation per point; at most 200, got "
                         f"{len(grid.theta)}")  # fmt: skip
    out = stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
    result = sweep.sweep(grid, at=args.at, kernel=args.kernel)
    cols = dict(result.columns)
    if args.mc is not None:
        key = jax.random.key(args.seed)
        cols.update(sweep.monte_carlo_column(key, result, args.mc, kernel=args.kernel))
    files.write_csv(out / "sweep.csv", cols)
    files.write_json(
        out / "sweep.json",
        {
            "axes": grid.axes,
            "set": [s for s in args.set],
            "kernel": args.kernel,
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
