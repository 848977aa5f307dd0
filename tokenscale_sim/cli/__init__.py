"""Command line: ``tokenscale COMMAND ...``, COMMAND one of :data:`SUBCOMMANDS`.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds the parser
and sets ``func(args) -> int``. Errors users can fix are one line on stderr and exit code 2.

Fast start: only the module of the subcommand being run is imported (the others appear in
``tokenscale --help`` by their line in :data:`SUBCOMMANDS`), so ``tokenscale --help`` imports
neither JAX nor matplotlib. Every run keeps its compiled programs on disk
(:mod:`tokenscale_sim.runtime.compile_cache`; ``TOKENSCALE_CACHE=0`` switches that off).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence

SUBCOMMANDS = {
    "theory": "closed-form curves (Upsilon, bound, E[D], n_b, alpha(n))",
    "simulate": "Monte Carlo of D(n) and psi(n) (chunked, sharded, resumable)",
    "fit": "fit power-law / alpha(n) / broken / divergence laws to curves",
    "compare": "which law? compare scaling laws on every curve",
    "measure": "psi(n), D(n), divergence-law fit and n_b on real hidden states",
    "design": "power and n_b precision of token-count designs",
    "demo": "the end-to-end study: figures, tables, HTML report",
    "sweep": "exact theory of a structure family over a parameter grid",
    "calibrate": "fit a structure to measured psi(n); predict D(n)",
    "examples": "copy the example files the README's commands read into a folder",
}
"""Each subcommand and its line in ``tokenscale --help`` (the modules' ``register`` use it too)."""

REGISTERED_BY = {"examples": ("demo", "register_examples")}
"""Subcommands registered by another module than their own name's: ``name -> (module,
function)`` (the example files sit with the demo, both a new user's first step)."""


class UsageError(Exception):
    """A user-fixable problem: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (and a pointer to ``--help``), not the
    usage block: ``tokenscale theory: error: argument --n-max: ... (see tokenscale theory
    --help)``. Subparsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def chosen_subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs (its first word that is not an option), or None."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in SUBCOMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tokenscale`` parser. With ``argv``, only the subcommand it runs is built in full
    (its module imported); the others are listed by name and help line. Without, all are."""
    parser = OneLineParser(
        prog="tokenscale",
        description="Theory, Monte Carlo and fits of vision-token scaling (divergence D(n)).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_subcommand(argv) if argv is not None else None
    for name, summary in SUBCOMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        module_name, register = REGISTERED_BY.get(name, (name, "register"))
        try:
            module = importlib.import_module(f"tokenscale_sim.cli.{module_name}")
        except ModuleNotFoundError as err:  # a subcommand not built yet
            if err.name != f"tokenscale_sim.cli.{module_name}":
                raise
            continue
        getattr(module, register)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    whole_process = argv is None  # the console script, not a call from Python
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    import jax

    from tokenscale_sim.runtime.compile_cache import (
        cache_trouble_as_one_warning,
        enable_compilation_cache,
    )

    if whole_process:  # the imported modules live as long as the process: the collector
        gc.freeze()  # stops scanning them, which tracing JAX programs made it do again and again

    jax.config.update("jax_enable_x64", not getattr(args, "float32", False))
    try:
        with one_line_warnings(args.command):
            folder = enable_compilation_cache()
            with cache_trouble_as_one_warning(folder):
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
    except jax.errors.JaxRuntimeError as err:  # an allocation past an estimate's reach
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        print(
            f"tokenscale {args.command}: error: out of memory on {jax.default_backend()} "
            f"({str(err).splitlines()[0][:160]}); lower the sizes",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"tokenscale {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Within the block, a :class:`~tokenscale_sim.runtime.compile_cache.CacheWarning` prints as one
    line, ``tokenscale CMD: warning: ...``, on stderr (so does a
    :class:`~tokenscale_sim.runtime.validation.SigmaWarning`); other warnings are shown as Python
    would."""
    from tokenscale_sim.runtime.compile_cache import CacheWarning
    from tokenscale_sim.runtime.validation import SigmaWarning

    saved = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CacheWarning | SigmaWarning):
            print(f"tokenscale {command}: warning: {message}", file=sys.stderr)
        else:
            saved(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
