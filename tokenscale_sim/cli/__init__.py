"""Command line: ``tokenscale COMMAND ...``, COMMAND one of :data:`SUBCOMMANDS`.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds the parser
and sets ``func(args) -> int``. Errors users can fix are one line on stderr and exit code 2.

Fast start: only the module of the subcommand being run is imported (the others appear in
``tokenscale --help`` by their line in :data:`SUBCOMMANDS`), so ``tokenscale --help`` imports
neither JAX nor matplotlib. Every run keeps its compiled programs on disk
(:mod:`tokenscale_sim.runtime.compile_cache`; ``TOKENSCALE_CACHE=0`` switches that off).

Interruption: Ctrl-C (SIGINT) ends every command with exit code 130 and SIGTERM with 143, after
the run's staging folder is removed (and a Monte Carlo checkpoint saved), with one line
``tokenscale CMD: interrupted (SIGINT)``. The process then ends by ``os._exit``: a Python exit
would tear down JAX's client while XLA's threads may still compile or run a program the signal
cut short, and that crashed ("Segmentation fault", "pure virtual method called"; seen in the
client's destructor joining its thread pool during ``Py_FinalizeEx``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import signal
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (raised in the main thread by :func:`catch_stop_signals`'s
    handler): every ``with`` block unwinds as for Ctrl-C, so a staging folder is removed and a
    checkpoint saved. ``exit_code`` is 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_RECEIVED: list[int] = []


_DEFERRING: list[bool] = [False]


def _on_stop_signal(signum: int, frame) -> None:
    _RECEIVED.append(signum)
    if len(_RECEIVED) >= 3:  # a clean-up that hangs: the third signal ends it at once
        os._exit(128 + _RECEIVED[0])
    if len(_RECEIVED) == 1 and not _DEFERRING[0]:
        raise Interrupted(signum)
    # the second: the run is already unwinding; let its clean-up finish


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold :class:`Interrupted` back while the block runs and raise it at its end: an
    exception raised while an extension module initialises (jaxlib's, on ``import jax``) leaves
    it half made, and the process then died with a segmentation fault (SIGTERM 0.1 s after the
    handlers were installed crashed every try)."""
    outer = _DEFERRING[0]
    _DEFERRING[0] = True
    try:
        yield
    finally:
        _DEFERRING[0] = outer
    if _RECEIVED and not outer:
        raise Interrupted(_RECEIVED[0])


def catch_stop_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (a signal the
    parent process set to be ignored, as ``nohup`` does, stays ignored)."""
    _RECEIVED.clear()
    for s in _STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, _on_stop_signal)


def _interrupted(command: str | None, err: KeyboardInterrupt, whole_process: bool) -> int:
    """Report an interruption in one line; the exit code (130 SIGINT, 143 SIGTERM). In a whole
    process, end it here by ``os._exit`` (see the module docstring)."""
    code = err.exit_code if isinstance(err, Interrupted) else 130
    name = err.args[0] if isinstance(err, Interrupted) else "SIGINT"
    print(f"tokenscale{' ' + command if command else ''}: interrupted ({name})", file=sys.stderr)
    if whole_process:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    return code


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
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
    whole_process = argv is None  # the console script, not a call from Python
    argv = sys.argv[1:] if argv is None else list(argv)
    if whole_process:
        catch_stop_signals()
    try:
        code = _main(argv, whole_process)
    except KeyboardInterrupt as err:  # also Interrupted (SIGTERM)
        return _interrupted(chosen_subcommand(argv), err, whole_process)
    except BaseException:
        if not (whole_process and _RECEIVED):
            raise
        code = 0  # the signal, turned into another error on its way (an import of JAX's C++
        # extension cut short by Ctrl-C raises ImportError): the run was interrupted all the same
    if whole_process and _RECEIVED:
        return _interrupted(chosen_subcommand(argv), Interrupted(_RECEIVED[0]), whole_process)
    return code


def _main(argv: list[str], whole_process: bool) -> int:
    with signals_deferred():  # the imports: never cut an extension module's start short
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
    except MemoryError:  # the advice names options the command has (``memory_hint``)
        print(f"tokenscale {args.command}: error: out of memory; {memory_hint(args)}",
              file=sys.stderr)  # fmt: skip
        return 2
    except jax.errors.JaxRuntimeError as err:  # an allocation past an estimate's reach
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        print(
            f"tokenscale {args.command}: error: out of memory on {jax.default_backend()} "
            f"({str(err).splitlines()[0][:160]}); {memory_hint(args)}",
            file=sys.stderr,
        )
        return 2


def memory_hint(args: argparse.Namespace) -> str:
    """What to lower after running out of memory: the command's own ``memory_hint`` (set by its
    ``register``), else its sizes in general (``simulate``: the options it has)."""
    if args.command == "simulate":
        return "lower --n-max, --d, --m or --chunk"
    return getattr(args, "memory_hint", None) or "lower the sizes"


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
