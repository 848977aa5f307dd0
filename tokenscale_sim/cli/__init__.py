"""Command line: ``tokenscale COMMAND ...``, COMMAND one of :data:`SUBCOMMANDS`.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds the parser
and sets ``func(args) -> int``. Errors users can fix are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = (
    "theory",
    "simulate",
    "fit",
    "compare",
    "measure",
    "design",
    "demo",
    "sweep",
    "calibrate",
)


class UsageError(Exception):
    """A user-fixable problem: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (and a pointer to ``--help``), not the
    usage block: ``tokenscale theory: error: argument --n-max: ... (see tokenscale theory
    --help)``. Subparsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tokenscale",
        description="Theory, Monte Carlo and fits of vision-token scaling (divergence D(n)).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"tokenscale_sim.cli.{name}")
        except ModuleNotFoundError as err:  # a subcommand not built yet
            if err.name != f"tokenscale_sim.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", not getattr(args, "float32", False))
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"tokenscale {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file we could not read or write, not caught where it happened
        where = f" {err.filename!r}" if err.filename else ""
        print(f"tokenscale {args.command}: error:{where} {err.strerror or err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"tokenscale {args.command}: error: out of memory; lower the sizes (n-max, d, m, "
            "chunk)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"tokenscale {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
