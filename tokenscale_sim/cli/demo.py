"""``tokenscale demo``: the main job. Theory, Monte Carlo and the paper's benchmark data side by
side, on built-in defaults, written into one folder a person can open and read top to bottom:

  index.html            the report (figures beside it, tables inline)
  summary.json          every number of the report, with metadata (seed, versions, devices)
  mc_<structure>.csv    per-n Monte Carlo and exact curves of each structure
  paper_fits.csv        per benchmark: constant power law, alpha(n) law, n_b interval, test
  vision_<k>.csv        the real ViT-S measurement per layer and pair kind (``vision`` extra)
  *.png                 the figures

``--size tiny`` (the test size) takes 40-70 s on 2 CPU cores, most of it compiling; the default
takes about three and a half minutes. Each stage prints its time when it ends; the long ones
(Monte Carlo, which law?, design) show a progress bar.

``tokenscale examples`` (:data:`EXAMPLES_DOC`), the other first step of a new user, lives here too.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from importlib import resources
from pathlib import Path

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import StageClock, add_command, seed
from tokenscale_sim.cli.report import write_report
from tokenscale_sim.runtime import outputs as files

KIND = "demo"

EXAMPLES_DOC = """``tokenscale examples DIR``: copy the example files the README reads into DIR.

  my_scores.csv      score curves, long layout: columns benchmark, n, score (four of the
                     paper's benchmarks, 10 token counts each): tokenscale fit my_scores.csv ...
  data.csv           NIST's Misra1a, columns dose, response: a law of any reals (--x-col)
  states.npz         hidden states of 6 branch pairs, key "hidden" of shape (pairs, 2, n, d) =
                     (6, 2, 48, 24): tokenscale measure --hidden states.npz
  my_structure.toml  a structure file (three terms) and block.npy, its dense 64 x 64 block:
                     tokenscale theory --structure-file my_structure.toml

DIR (default: the current folder) is created if missing; a file already there is refused
without --overwrite (checked before anything is written). The same files ship inside the
package, under tokenscale_sim/data/examples/.
"""
"""``tokenscale examples --help``."""

EXAMPLES = ("my_scores.csv", "data.csv", "states.npz", "my_structure.toml", "block.npy")
"""The shipped example files (``tokenscale_sim/data/examples/``), in the order the README uses."""


def register(sub) -> None:
    p = add_command(sub, "demo", SUBCOMMANDS["demo"], __doc__)
    p.add_argument(
        "--out", default="tokenscale-report", help="output folder (default: %(default)s)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo report in --out"
    )
    p.add_argument(
        "--size",
        choices=("default", "tiny"),
        default="default",
        help="study size: default (~4 min on 2 cores) or tiny (tests; still ~1 min, mostly "
        "compiling)",
    )
    p.add_argument("--seed", type=seed, default=0, help="PRNG seed (default: %(default)s)")
    p.add_argument(
        "--no-vision",
        action="store_true",
        help="skip the real ViT-S measurement even if the vision extra is installed",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # --out is swapped in when this closes, on success
        _run(args, stack)
    page = Path(args.out) / "index.html"
    print(f"report: {page.resolve()}")
    print(
        f"open it in a browser, e.g. python -m webbrowser {page.resolve().as_uri()}",
        file=sys.stderr,
    )
    return 0


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    from tokenscale_sim.study import StudyConfig, run_study

    # a staging folder: an earlier report (--overwrite) is replaced whole, only on success
    out = stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
    config = StudyConfig.tiny() if args.size == "tiny" else StudyConfig()
    config = StudyConfig(
        **{**config.__dict__, "seed": args.seed, **({"vision_pairs": 0} if args.no_vision else {})}
    )
    start = time.perf_counter()
    log = StageClock(quiet=args.quiet)
    study = run_study(config, progress=not args.quiet, log=log)
    log("writing figures and the report")
    write_report(study, out, time.perf_counter() - start)
    log.finish()


def register_examples(sub) -> None:
    """Add ``tokenscale examples [DIR] [--overwrite]``."""
    p = add_command(sub, "examples", SUBCOMMANDS["examples"], EXAMPLES_DOC)
    p.add_argument("dir", nargs="?", default=".", help="folder to copy into (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace files already in DIR")
    p.set_defaults(func=copy_examples)


def copy_examples(args: argparse.Namespace) -> int:
    """Copy :data:`EXAMPLES` into ``args.dir`` (created if missing); every target is checked
    (refused if present without ``--overwrite``) before any file is written."""
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    targets = [
        files.check_output_file(folder / name, overwrite=args.overwrite, what="example file")
        for name in EXAMPLES
    ]
    shipped = resources.files("tokenscale_sim").joinpath("data/examples")
    for name, target in zip(EXAMPLES, targets, strict=True):
        with files.output_file(target) as tmp:
            tmp.write_bytes(shipped.joinpath(name).read_bytes())
    print(f"copied {', '.join(EXAMPLES)} into {folder.resolve()}")
    return 0
