"""Argument groups shared by subcommands: structure choice and output files."""

from __future__ import annotations

import argparse
import sys
import time

from tokenscale_sim.cli import UsageError
from tokenscale_sim.fit.data import curves as fdata
from tokenscale_sim.fit.data.columns import UngroupedColumns
from tokenscale_sim.runtime.validation import SEED_MAX
from tokenscale_sim.structures import terms as structures


def add_command(sub, name: str, help: str, doc: str | None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose ``--help`` shows the module docstring ``doc`` verbatim."""
    return sub.add_parser(
        name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_structure_args(parser: argparse.ArgumentParser, *, default: str = "exchangeable") -> None:
    """Add ``--structure`` and its parameters (unused ones are ignored per structure)."""
    g = parser.add_argument_group("correlation structure")
    g.add_argument(
        "--structure",
        choices=sorted(structures.STRUCTURES),
        default=default,
        help="token correlation structure (default: %(default)s)",
    )
    g.add_argument(
        "--psi-eq",
        type=float,
        default=0.5,
        help="exchangeable: same-position cross-branch cosine (default: %(default)s)",
    )
    g.add_argument(
        "--psi-aa",
        type=float,
        default=0.3,
        help="exchangeable: within-branch A cosine (default: %(default)s)",
    )
    g.add_argument(
        "--psi-bb",
        type=float,
        default=None,
        help="exchangeable: within-branch B cosine (default: = psi-aa)",
    )
    g.add_argument(
        "--psi-ab",
        type=float,
        default=0.25,
        help="exchangeable: cross-branch, other-position cosine (default: %(default)s)",
    )
    g.add_argument(
        "--length",
        type=float,
        default=4.0,
        help="decaying/patch-grid: correlation length in tokens, or the power-law "
        "exponent with --kernel powerlaw (default: %(default)s)",
    )
    g.add_argument(
        "--coupling",
        type=float,
        default=0.3,
        help="decaying/patch-grid: cross-branch coupling = psi_eq (default: %(default)s)",
    )
    g.add_argument(
        "--kernel",
        choices=("exponential", "powerlaw"),
        default="exponential",
        help="decaying: kernel along the sequence (default: %(default)s)",
    )
    g.add_argument(
        "--width",
        type=int,
        default=None,
        help="patch-grid: grid width (default: ceil(sqrt(n-max)))",
    )
    g.add_argument(
        "--structure-file",
        metavar="FILE",
        default=None,
        help="a structure file (TOML or JSON: terms of branch matrix x kernel, see the README); "
        "replaces --structure and its parameters",
    )
    g.add_argument(
        "--shared",
        type=float,
        default=0.0,
        metavar="W",
        help="mix in an image-independent shared component of weight W: "
        "(1 - W) * structure + shared(W) (default: %(default)s)",
    )


def check_shared(args: argparse.Namespace) -> float:
    """``--shared`` as a weight in [0, 1] (checked before it scales anything)."""
    w = args.shared
    if not 0 <= w <= 1:
        raise ValueError(f"--shared must be a weight in [0, 1], got {w}")
    return float(w)


def exchangeable_psi(args: argparse.Namespace) -> tuple[float, float, float, float]:
    """(psi_eq, psi_aa, psi_bb, psi_ab) of ``--structure exchangeable`` with ``--shared W``
    mixed in: ``(1 - W) psi + W`` (the shared component raises every cosine by W)."""
    w = check_shared(args)
    psi_bb = args.psi_aa if args.psi_bb is None else args.psi_bb
    mix = (args.psi_eq, args.psi_aa, psi_bb, args.psi_ab)
    a, b, c, d = ((1 - w) * x + w for x in mix)
    return a, b, c, d


def structure_from_args(args: argparse.Namespace) -> structures.Structure:
    """Build (not yet validate) the structure the arguments name: ``--structure-file`` (read and
    checked, :func:`tokenscale_sim.structures.files.load_structure`) or ``--structure``."""
    check_shared(args)
    if getattr(args, "structure_file", None) is not None:
        if args.shared:
            raise ValueError("--shared does not combine with --structure-file (add a term)")
        from tokenscale_sim.structures.files import load_structure

        return load_structure(args.structure_file)
    params: dict[str, object] = {
        "exchangeable": {
            "psi_eq": args.psi_eq,
            "psi_aa": args.psi_aa,
            "psi_bb": args.psi_bb,
            "psi_ab": args.psi_ab,
        },
        "decaying": {"length": args.length, "coupling": args.coupling, "kernel": args.kernel},
        "patch-grid": {"length": args.length, "coupling": args.coupling, "width": args.width},
    }[args.structure]
    s = structures.from_name(args.structure, **params)
    if args.shared:
        w = args.shared
        s = (1 - w) * s + structures.shared(w)
    return s


MC_WORK_LIMIT = 1e11
"""Largest Monte Carlo work (pairs x tokens x width) ``--mc`` starts: minutes on a laptop."""


def check_mc_work(m: int, n_max: int, d: int, points: int = 1, option: str = "--mc") -> None:
    """Refuse a Monte Carlo whose work ``points * m * n_max * d`` (entries drawn per branch)
    exceeds :data:`MC_WORK_LIMIT`, with the estimate, before anything starts; print the
    estimate on stderr when it is above a hundredth of it."""
    import sys

    work = float(points) * m * n_max * d
    seconds = work / 2e8  # about 2e8 entries a second on one CPU core (measured: sweep --mc)
    line = (f"{option} {m}: {points * m:,} pairs of {n_max} tokens of width {d} = "
            f"{work:.3g} entries, about {seconds:.3g} s")  # fmt: skip
    if work > MC_WORK_LIMIT:
        raise ValueError(f"{line}; more than the {MC_WORK_LIMIT:.0e} allowed: lower {option}")
    if work > MC_WORK_LIMIT / 100:
        print(line, file=sys.stderr)


def seed(text: str) -> int:
    """argparse type: a PRNG seed, an integer in [0, 2**63 - 1] (JAX's range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**63 - 1], got {value}")
    return value


def positive_int(text: str, least: int = 1) -> int:
    """argparse type: an integer >= ``least`` (1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return positive_int(text, least=0)


class StageClock:
    """The demo's ``log``: prints each stage's line on stderr and, when the next stage starts
    (or :meth:`finish`), the seconds the last one took: ``  ... 12.3 s``. Silent if ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.start = self.last = time.perf_counter()
        self.open = False

    def _close(self) -> None:
        now = time.perf_counter()
        if self.open and not self.quiet:
            print(f"  ... {now - self.last:.1f} s", file=sys.stderr)
        self.last = now

    def __call__(self, message: str) -> None:
        self._close()
        self.open = True
        if not self.quiet:
            print(message, file=sys.stderr)

    def finish(self) -> None:
        """Close the last stage and print the total."""
        self._close()
        self.open = False
        if not self.quiet:
            print(f"total {self.last - self.start:.1f} s", file=sys.stderr)


def add_grouping(p: argparse.ArgumentParser) -> None:
    """``--group`` and ``--single-curve`` (``fit`` and ``compare``): a long table with columns
    besides n, score (and the sigma / aux columns) needs one of them."""
    p.add_argument("--group", default=None, help="comma-separated columns that tell curves "
                   "apart (long CSV); a table with other columns than n and score needs --group "
                   "or --single-curve")  # fmt: skip
    p.add_argument("--single-curve", action="store_true",
                   help="the long CSV is one curve: its other columns are ignored")  # fmt: skip


def load(args: argparse.Namespace, cmd: str = "fit") -> fdata.CurveSet:
    """The curves the arguments of ``fit`` or ``compare`` name (all input checks included)."""
    group = tuple(g.strip() for g in args.group.split(",") if g.strip()) if args.group else None
    if args.single_curve and group:
        raise UsageError(f"{cmd}: give --group or --single-curve, not both")
    name = "paper" if args.paper else args.file
    if name is None:
        raise UsageError(f"{cmd}: give a CSV FILE, a dataset name or --paper")
    if args.paper and args.file:
        raise UsageError(f"{cmd}: give either FILE or --paper, not both")
    if name in fdata.DATASETS:
        return fdata.load_paper_scores(
            exact_only=name == "paper_exact", group=group or fdata.PAPER_GROUP
        )
    x_col = getattr(args, "x_col", None)
    try:
        return fdata.read_curves(
            name,
            n_col=x_col or args.n_col or "n",
            y_col=args.y_col,
            group=() if args.single_curve else group,
            se_col=getattr(args, "se_col", None),
            aux_col=getattr(args, "aux_col", None),
            layout=args.layout,
            token_counts=not x_col,
        )
    except UngroupedColumns as err:
        raise UsageError(
            f"{cmd}: {name} has columns {err.columns} besides {', '.join(err.used)}: several "
            f"curves? name their columns with --group {','.join(err.columns)}; one curve? say "
            "so with --single-curve"
        ) from None
