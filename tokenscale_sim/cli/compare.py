"""``tokenscale compare``: which law? Fit every law to every curve and compare them.

Per curve and pooled over curves: AICc (small-sample corrected; k counts the noise variance),
BIC, Akaike weights, leave-one-out RMSE of ln S, extrapolation (fit on all but the
``--holdout-last`` largest n, score the prediction of those: RMSE of ln S and absolute error;
``--holdout-last 0`` turns it off),
the share of bootstrap resamples each law wins by AICc, and the shape test (is ln S convex in
ln n, as the theory says?). Each law is fitted only where it is compared (its full, hold-out and
leave-one-out rows and the resamples of the curves it is compared on), in vmapped blocks of
bucketed sizes. Before the fits start one line on stderr gives the size of the work (curves, laws,
pairs skipped, fits, resamples), then a progress bar the law, the fits done out of the total and
the time left; ``--quiet`` turns both off.

Mixed collections: repeated n in a curve are replicates (leave-one-out leaves out one distinct n
with all its replicates; the hold-out takes the largest distinct n). A law that would keep no
more points than parameters in some fit of a curve is skipped there (status ``too few points``)
and a closing line lists what was skipped; the run fails only when nothing can be compared.
Pooled errors are medians over the curves compared, with counts of non-finite ones.

Input as for ``tokenscale fit``: a long or wide CSV, or ``--paper`` (``paper`` / ``paper_exact``
as FILE). Output: a table on stdout and, with ``--out DIR``, ``compare.csv`` (one row per curve
and law), ``curvature.csv`` (one row per curve), ``compare.json`` (everything, with metadata;
non-finite numbers are null and a ``status`` says why) and ``compare.png`` / ``curvature.png``.

Examples::

    tokenscale compare --paper --laws powerlaw,alpha_n,broken --bootstrap 1000 --out cmp
    tokenscale compare scores.csv --group benchmark --holdout-last 3
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS, UsageError
from tokenscale_sim.cli._common import add_command, add_grouping, nonnegative_int, seed
from tokenscale_sim.cli._common import load as load_curves
from tokenscale_sim.fit.data import curves as fdata
from tokenscale_sim.fit.engine.options import FitOptions
from tokenscale_sim.fit.selection.compare import (
    CRITERIA,
    Comparison,
    available_laws,
    compare_laws,
    describe,
    skipped_summary,
)
from tokenscale_sim.fit.selection.curvature import DIRECTIONS
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory, key_from_seed


def register(sub) -> None:
    p = add_command(sub, "compare", SUBCOMMANDS["compare"], __doc__)
    p.add_argument(
        "file", nargs="?", help="CSV file, or a built-in dataset: " + ", ".join(fdata.DATASETS)
    )
    p.add_argument("--paper", action="store_true", help="use the paper's benchmark scores")
    p.add_argument(
        "--laws",
        default=",".join(available_laws()),
        help="comma-separated laws to compare (default: %(default)s)",
    )
    add_grouping(p)
    p.add_argument("--n-col", default=None, help="token-count column (default: n; paper: n_l)")
    p.add_argument("--y-col", default="score", help="score column (default: %(default)s)")
    p.add_argument("--layout", choices=("auto", "long", "wide"), default="auto")
    p.add_argument(
        "--holdout-last",
        type=nonnegative_int,
        default=2,
        metavar="K",
        help="largest distinct n (with their replicates) held out per curve for extrapolation; "
        "0: no extrapolation (default: %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="M",
        help="resamples for selection shares and the shape test (0: none; default: %(default)s)",
    )
    p.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="theory",
        help="shape test: curvature with the slope's sign (theory) or convex (default: theory)",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    p.add_argument("--out", default=None, help="output folder (CSV, JSON, figures)")
    p.add_argument("--overwrite", action="store_true", help="reuse an earlier compare folder")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--float32", action="store_true", help="compute in float32")
    p.add_argument("--quiet", action="store_true", help="no work line, no progress bar (stderr)")
    p.set_defaults(func=run, memory_hint="fewer curves, lower --bootstrap")


def load(args: argparse.Namespace) -> fdata.CurveSet:
    """The curves FILE or ``--paper`` name (all input checks of the readers included)."""
    return load_curves(args, "compare")


def _key_columns(c: Comparison, repeat: int) -> dict[str, np.ndarray]:
    cols = {}
    for i, name in enumerate(c.group or ("curve",)):
        cols[name] = np.repeat([k[i] if k else "curve" for k in c.keys], repeat)
    return cols


def comparison_columns(c: Comparison) -> dict[str, np.ndarray]:
    """``compare.csv``: one row per curve and law (curve-major)."""
    g, l_count = c.aicc.shape
    cols = _key_columns(c, l_count)
    cols["law"] = np.tile(c.laws, g)
    cols["n_points"] = np.repeat(c.n_points, l_count)
    cols["n_cut"] = np.repeat(c.n_cut, l_count)
    for name in ("rss", "aicc", "bic", "weight", "loo_rmse", "extrap_rmse", "extrap_abs"):
        cols[name if name != "weight" else "akaike_weight"] = getattr(c, name).ravel()
    cols["extrap_rel"] = c.extrap_rel.ravel()
    cols["boot_share"] = c.boot_share.ravel()
    for crit, win in zip(CRITERIA, c.winner, strict=True):
        cols[f"wins_{crit}"] = (np.asarray(win)[:, None] == np.arange(l_count)).ravel()
    cols["converged"] = c.converged.ravel()
    cols["status"] = c.status.ravel()
    return cols


SHAPE_FIELDS = ("curvature", "se", "slope", "expected_sign", "holds", "ci_low", "ci_high",
                "p_value", "p_t")  # fmt: skip
"""Per-curve fields of the shape test written to ``curvature.csv`` and ``compare.json``."""


def curvature_columns(c: Comparison) -> dict[str, np.ndarray]:
    """``curvature.csv``: the shape test, one row per curve."""
    cols = _key_columns(c, 1)
    cols.update({name: np.asarray(getattr(c.shape, name)) for name in SHAPE_FIELDS})
    return cols


def _winner_name(c: Comparison, idx) -> str:
    return c.laws[int(idx)] if int(idx) >= 0 else "-"


def _print(c: Comparison) -> None:
    width = max(len(" / ".join(k) or "curve") for k in c.keys)
    head = ["AICc winner (w)", "BIC", "LOO", "extrap.", *[f"ext:{law}" for law in c.laws]]
    print(f"{'curve':{width}s} | " + " | ".join(head))
    for g, key in enumerate(c.keys):
        j = int(c.winner.aicc[g])
        first = f"{_winner_name(c, j)} ({c.weight[g, j]:.2f})" if j >= 0 else "-"
        cells = [first, *(_winner_name(c, w[g]) for w in c.winner[1:])]
        cells += [f"{x:.3g}" for x in c.extrap_rmse[g]]
        print(f"{' / '.join(key) or 'curve':{width}s} | " + " | ".join(cells))
    p = c.pooled
    print(f"\n== pooled over {len(c.keys)} curves ==")
    print(
        f"law | sum AICc ({p.n_common} common curves) | weight | wins AICc/BIC/LOO/extrap | "
        "median LOO | median extrap | share | compared | non-finite"
    )
    for j, law in enumerate(c.laws):
        wins = "/".join(str(int(w[j])) for w in p.wins)
        print(
            f"{law} | {p.aicc[j]:.2f} | {p.weight[j]:.3f} | {wins} | {p.loo_rmse[j]:.3g} | "
            f"{p.extrap_rmse[j]:.3g} | {p.boot_share[j]:.3f} | {int(p.n_compared[j])} | "
            f"{int(p.n_nonfinite[j])}"
        )
    bad = np.count_nonzero((c.status != "ok") & (c.status != "too few points"))
    if bad:
        print(f"({bad} curve x law fits with status other than ok: see compare.csv)")
    print("\n" + describe(c))
    skipped = skipped_summary(c)
    if skipped:
        print(skipped)


def _payload(c: Comparison, seed_value: int) -> dict:
    curves = []
    for g, key in enumerate(c.keys):
        laws = {}
        for j, law in enumerate(c.laws):
            laws[law] = {
                "estimates": dict(zip(c.params[j], c.estimates[j][g].tolist(), strict=True)),
                **{
                    name: getattr(c, name)[g, j]
                    for name in ("rss", "aicc", "bic", "weight", "loo_rmse", "extrap_rmse")
                },
                "extrap_abs": c.extrap_abs[g, j],
                "extrap_rel": c.extrap_rel[g, j],
                "boot_share": c.boot_share[g, j],
                "converged": c.converged[g, j],
                "status": str(c.status[g, j]),
            }
        shape = {k: np.asarray(getattr(c.shape, k))[g] for k in SHAPE_FIELDS}
        curves.append(
            {
                "key": dict(zip(c.group or ("curve",), key or ("curve",), strict=False)),
                "n_points": c.n_points[g],
                "n_cut": c.n_cut[g],
                "winner": {
                    k: _winner_name(c, w[g]) for k, w in zip(CRITERIA, c.winner, strict=True)
                },
                "laws": laws,
                "curvature": shape,
            }
        )
    per_law = {k: v for k, v in c.pooled._asdict().items() if np.ndim(v) == 1}
    pooled = {law: {k: np.asarray(v)[j] for k, v in per_law.items()}
              for j, law in enumerate(c.laws)}  # fmt: skip
    for j, law in enumerate(c.laws):
        pooled[law]["wins"] = {k: int(w[j]) for k, w in zip(CRITERIA, c.pooled.wins, strict=True)}
    shape = {k: v for k, v in c.shape._asdict().items() if np.ndim(v) == 0}
    return {
        "source": c.source,
        "group": c.group,
        "laws": c.laws,
        "holdout_last": c.holdout_last,
        "bootstrap": c.bootstrap,
        "finding": describe(c),
        "skipped": skipped_summary(c),
        "curves": curves,
        "pooled": pooled,
        "pooled_common_curves": c.pooled.n_common,
        "shape": shape,
        "status_note": "null numbers are non-finite; each law's status says why (ok, "
        "not_converged, runaway: a fit ran away to a limit at infinity, aicc_undefined: "
        "m <= k + 1, non_finite: a prediction failed, "
        "too few points: the law was not fitted to that curve)",
        "metadata": files.run_metadata(seed=seed_value),
    }


def _write(folder: Path, c: Comparison, labels: list[str], seed_value: int) -> list[Path]:
    from tokenscale_sim.plots.compare import comparison_figure, curvature_plot

    return [
        files.write_csv(folder / "compare.csv", comparison_columns(c)),
        files.write_csv(folder / "curvature.csv", curvature_columns(c)),
        files.write_json(folder / "compare.json", _payload(c, seed_value)),
        files.save_figure(comparison_figure(c, labels), folder / "compare.png", dpi=120),
        files.save_figure(curvature_plot(c.shape, labels), folder / "curvature.png", dpi=120),
    ]


def run(args: argparse.Namespace) -> int:
    if not 0 < args.level < 1:
        raise UsageError(f"compare: --level must be in (0, 1), got {args.level}")
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise UsageError(f"compare: --bootstrap takes 0 or an integer >= 2, got {args.bootstrap}")
    laws = [x.strip() for x in args.laws.split(",") if x.strip()]
    if not laws:
        raise UsageError("compare: --laws must name at least one law")
    cs = load(args)
    rows = (2 + cs.arrays.y.shape[1] + args.bootstrap) * cs.arrays.y.size
    check_memory("compare", f"{rows} fitted rows per law", 64 * 8 * rows, "lower --bootstrap")
    staged = (  # outputs are staged and swapped in for --out only when everything succeeded
        files.output_folder(args.out, "compare", overwrite=args.overwrite)
        if args.out
        else contextlib.nullcontext()
    )
    with staged as folder:
        c = compare_laws(
            key_from_seed("compare", args.seed),
            cs,
            laws,
            holdout_last=args.holdout_last,
            bootstrap=args.bootstrap,
            level=args.level,
            direction=args.direction,
            opts=FitOptions(precision="float32" if args.float32 else "float64"),
            progress=not args.quiet,
        )
        _print(c)
        labels = [cs.label(g) for g in range(len(cs.keys))]
        written = [] if folder is None else _write(folder.staging, c, labels, args.seed)
    for path in written:
        print(f"wrote {Path(args.out) / path.name}", file=sys.stderr)
    return 0
