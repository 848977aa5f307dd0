"""``tokenscale fit``: fit scaling laws to score (or divergence) curves from a CSV or built-in data.

Input: a long CSV (columns ``n``, ``score``, optional grouping columns and a standard-error
column) or a wide CSV (``n`` plus one column per curve), or a built-in dataset (``--paper``, or
``paper`` / ``paper_exact`` as FILE: the paper's benchmark scores). Every check runs before
anything is written. Output: a table per group on stdout and, with ``--out DIR``, ``fits.csv``,
``fits.json`` (with run metadata), ``alpha_band.csv`` (with ``--bootstrap``: bootstrap
intervals, calibrated by default, beside the default profile ones, not instead of them; their
measured coverage at ten points is printed beside them, :data:`BOOT_NOTES`; curves of fewer
points keep the profile intervals) and figures
(``--plot``: data, the power law and the fitted law with its 95 % confidence band, from
:func:`tokenscale_sim.fit.prediction_band`; none where the fit did not converge).

A law of your own instead of ``--model``: ``--law`` takes an arithmetic expression of the
predictor ``n`` (token counts; ``x`` with ``--x-col``, any reals) and named parameters, parsed
safely (numbers, + - * / **, the functions exp, log, log10, sqrt, arctan, tanh, sin, cos, abs,
minimum, maximum and the constants pi, e; nothing else is ever evaluated), or
``file.py:name`` / ``module:name`` naming a ``Model`` (made with ``fit.define_law``) or a
function ``fn(x, theta)`` whose parameters ``--params`` lists. ``--start`` gives starting values
(``a=0.5`` or several, ``a=0.2/0.5/1``). fits.csv and fits.json have one column per parameter,
named as in the law. The power law is fitted beside a law of your own only with
``--compare-powerlaw`` (or ``--plot``, ``--transition-test``): a second compiled fit, a fifth of
a warm one-curve run (benchmarks/README.md).

Examples::

    tokenscale fit --paper --model alpha_n --out fits/ --plot       # profile intervals
    tokenscale fit scores.csv --group benchmark,metric --model powerlaw
    tokenscale fit scores.csv --law "S_inf - A * n**(-a)" --start S_inf=80,A=50,a=0.5
    tokenscale fit data.csv --x-col dose --y-col response --loss linear \\
        --law "b1 * (1 - exp(-b2 * x))" --start b1=500,b2=1e-4
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS, UsageError
from tokenscale_sim.cli._common import StageClock, add_command, add_grouping, load, seed
from tokenscale_sim.fit.data import curves as fdata
from tokenscale_sim.fit.engine import options
from tokenscale_sim.fit.inference import estimate, uncertainty
from tokenscale_sim.fit.inference.resampled import MEASURED_POINTS, IntervalFallbackWarning
from tokenscale_sim.fit.laws.define import define_law
from tokenscale_sim.fit.laws.expression import load_law, parse_law
from tokenscale_sim.fit.laws.models import MODELS, Model, get_model
from tokenscale_sim.fit.selection import transition
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory, key_from_seed

ALPHA_GRID = np.geomspace(1.0, 1024.0, 61)
BOOT_NOTES = {
    "percentile": "on ten points they covered c in only 79-94 % (nominal 95 %; 7 grid and 4 "
    "fresh truths)",
    "studentized": "on ten points they covered c in 89-96 % but beta in only 71-88 % and n_b in "
    "73-90 % (nominal 95 %; 4 fresh truths)",
    "calibrated": "on ten points they covered c in 92-98 %, beta in 96-100 % and n_b in 95.5-100 % "
    "(over 97 % where the data barely bound n_b, as the default profile intervals; nominal 95 %; "
    "8 fresh truths)",
}
"""Measured coverage of bootstrap intervals at ten points, per interval kind (benchmarks/README.md:
``coverage.py``, ``coverage_fresh.py``)."""


def register(sub) -> None:
    p = add_command(sub, "fit", SUBCOMMANDS["fit"], __doc__)
    p.add_argument(
        "file", nargs="?", help="CSV file, or a built-in dataset: " + ", ".join(fdata.DATASETS)
    )
    p.add_argument("--paper", action="store_true", help="use the paper's benchmark scores")
    p.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="alpha_n",
        help="law to fit (default: %(default)s); powerlaw is fitted beside it for comparison",
    )
    p.add_argument(
        "--law",
        default=None,
        metavar="EXPR|FILE.py:NAME",
        help="a law of your own (replaces --model): an expression such as "
        "'S_inf - A * n**(-a)', or a Model / function fn(x, theta) in your Python file",
    )
    p.add_argument(
        "--compare-powerlaw",
        action="store_true",
        help="with --law: also fit the power law for comparison (columns powerlaw_*, "
        "alpha_powerlaw); done anyway for --model laws, --plot and --transition-test",
    )
    p.add_argument(
        "--start",
        default=None,
        metavar="NAME=V[/V...],...",
        help="starting values of --law's parameters, e.g. S_inf=80,A=50,a=0.2/0.5",
    )
    p.add_argument(
        "--params", default=None, metavar="NAMES", help="parameters of a function --law, in order"
    )
    add_grouping(p)
    p.add_argument("--n-col", default=None, help="token-count column (default: n; paper: n_l)")
    p.add_argument(
        "--x-col",
        default=None,
        help="predictor column of any reals for --law (the expression's variable is then x)",
    )
    p.add_argument("--y-col", default="score", help="value column (default: %(default)s)")
    p.add_argument(
        "--se-col",
        default=None,
        help="standard-error column (sigma: relative under --loss linear, absolute under weighted)",
    )
    p.add_argument("--aux-col", default=None, help="Upsilon column (divergence_measured)")
    p.add_argument("--layout", choices=("auto", "long", "wide"), default="auto")
    p.add_argument("--loss", choices=options.LOSSES, default="log", help="(default: %(default)s)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="M", help="bootstrap resamples (0: none)"
    )
    p.add_argument(
        "--bootstrap-kind", choices=uncertainty.KINDS, default="residual", help="resampling scheme"
    )
    p.add_argument(
        "--bootstrap-interval",
        choices=uncertainty.INTERVALS,
        default="calibrated",
        help="bootstrap interval: calibrated (profile likelihood, bootstrap-calibrated threshold; "
        "the default), percentile or studentized (bootstrap-t); curves of fewer than "
        f"{MEASURED_POINTS} points keep the fit's own intervals (coverage measured from "
        f"{MEASURED_POINTS})",
    )
    p.add_argument(
        "--transition-test",
        type=int,
        default=0,
        metavar="M",
        help="parametric-bootstrap LR test power law vs alpha(n) with M replicates (0: none)",
    )
    p.add_argument(
        "--shared",
        default=None,
        metavar="PARAMS",
        help="also fit all curves jointly with these parameters tied, e.g. beta or n_b",
    )
    p.add_argument("--out", default=None, help="output folder (CSV, JSON, figures)")
    p.add_argument("--overwrite", action="store_true", help="reuse an earlier fit folder")
    p.add_argument("--plot", action="store_true", help="write figures into --out")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--float32", action="store_true", help="compute in float32")
    p.add_argument(
        "--quiet", action="store_true", help="no work line and stage times (stderr; shown with "
        "--bootstrap or --transition-test)",
    )  # fmt: skip
    p.add_argument(
        "--max-nfev",
        type=int,
        default=None,
        metavar="N",
        help="most function evaluations of a Levenberg-Marquardt fit (laws fitted as least "
        "squares; default: MINPACK's 100 (p + 1)); raise it for far starts",
    )
    p.set_defaults(
        func=run, memory_hint="fewer points or curves, lower --bootstrap / --transition-test"
    )


def parse_starts(text: str | None) -> dict[str, list[float]]:
    """``"a=1,b=0.2/0.5"`` -> ``{"a": [1.0], "b": [0.2, 0.5]}`` (``UsageError`` otherwise)."""
    starts: dict[str, list[float]] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, values = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            values_list = [float(v) for v in values.split("/")]
        except ValueError:
            raise UsageError(f"fit: --start takes NAME=VALUE[/VALUE...], got {item!r}") from None
        if name.strip() in starts:  # the later value would silently win
            raise UsageError(f"fit: --start names {name.strip()!r} twice; give a/b for several")
        starts[name.strip()] = values_list
    return starts


def user_law(args: argparse.Namespace):
    """The :class:`~tokenscale_sim.fit.laws.models.Model` of ``--law`` (expression or code)."""
    starts = parse_starts(args.start) or None
    predictor = "x" if args.x_col else "n"
    if re.fullmatch(r"[\w./\\-]+:\w+", args.law.strip()):
        found = load_law(args.law.strip())
        if isinstance(found, Model):
            return found
        if not args.params:
            raise UsageError("fit: a function --law needs --params NAME,... (its parameters)")
        params = tuple(x.strip() for x in args.params.split(",") if x.strip())
        return define_law(args.law, found, params, starts=starts, predictor=predictor)
    return parse_law(args.law, predictor=predictor, starts=starts)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if np.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")


def _print_tables(
    cs: fdata.CurveSet, res: estimate.FitResult, pl: estimate.FitResult | None, boot
) -> None:
    first = [k[0] if k else "" for k in cs.keys]
    for head in dict.fromkeys(first):
        print(f"\n== {head or cs.source} ({res.model.name}, {res.loss_name} loss) ==")
        methods = ", ".join(f"{p}: {m}" for p, m in zip(res.params, res.interval, strict=True))
        print(f"{100 * res.level:g} % intervals ({methods}); an inf end is open (not bounded)")
        if boot is not None:
            print(
                f"bootstrap ({boot.kind}, {boot.estimates.shape[0]}) {boot.interval} intervals are "
                f"in fits.csv (*_boot_*), not the default: {BOOT_NOTES[boot.interval]} of "
                "synthetic alpha(n) curves (benchmarks/README.md)"
            )
            short = [cs.label(g) for g in range(len(cs.keys)) if boot.interval_used[g] == "fit"]
            if short:
                print(
                    f"  {len(short)} curve(s) of fewer than {MEASURED_POINTS} points keep the "
                    "profile intervals in *_boot_* (bootstrap coverage was measured from "
                    f"{MEASURED_POINTS} points; column boot_interval)"
                )
        compared = ["alpha_powerlaw"] if pl is not None else []
        r2 = "R2_log" if res.model.space == "log" or res.loss_name == "log" else "R2"
        cols = ["curve", *res.params, *compared, r2, "n_b status", "converged"]
        print(" | ".join(cols))
        for g, key in enumerate(cs.keys):
            if (key[0] if key else "") != head:
                continue
            cells = [" / ".join(key[1:]) or " / ".join(key) or "curve"]
            for i in range(len(res.params)):
                lo, hi = res.ci_low[g, i], res.ci_high[g, i]
                cells.append(f"{_fmt(res.estimates[g, i])} [{_fmt(lo)}, {_fmt(hi)}]")
            if pl is not None:
                cells.append(_fmt(pl.estimates[g, 1]))
            cells.append(f"{(res.r2_log if r2 == 'R2_log' else res.r2_linear)[g]:.4f}")
            cells.append(res.status(g).label)
            cells.append("yes" if res.converged[g] else "NO")
            print(" | ".join(cells))


def _table(
    cs, res: estimate.FitResult, pl: estimate.FitResult | None, boot, test
) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(cs.group or ("curve",)):
        cols[name] = np.array([k[i] if k else "curve" for k in cs.keys])
    for i, name in enumerate(res.params):
        cols[name] = res.estimates[:, i]
        cols[f"{name}_se"] = res.se[:, i]
        cols[f"{name}_ci_low"] = res.ci_low[:, i]
        cols[f"{name}_ci_high"] = res.ci_high[:, i]
        cols[f"{name}_ci_low_open"] = res.ci_open[:, i, 0]
        cols[f"{name}_ci_high_open"] = res.ci_open[:, i, 1]
        cols[f"{name}_ci_method"] = np.full(len(cs.keys), res.interval[i].value)
        if boot is not None:
            cols[f"{name}_boot_low"] = boot.ci_low[:, i]
            cols[f"{name}_boot_high"] = boot.ci_high[:, i]
    if boot is not None:
        cols["boot_interval"] = np.asarray(boot.interval_used)
    cols["n_b_status"] = np.array([res.status(g).status.value for g in range(len(cs.keys))])
    for name in ("r2_log", "r2_linear", "aic", "bic", "converged", "iterations", "n_points"):
        cols[name] = getattr(res, name)
    if pl is not None:
        cols["powerlaw_c"] = pl.estimates[:, 0]
        cols["powerlaw_alpha"] = pl.estimates[:, 1]
        cols["powerlaw_aic"] = pl.aic
    if test is not None:
        cols["transition_lr"] = test.lr
        cols["transition_p"] = test.p_value
    return cols


def _finite(obj: Any) -> Any:
    """``obj`` (dicts, tuples, arrays) with non-finite floats as ``None`` (the JSON convention:
    a ``null`` number is explained by a status field next to it, e.g. ``n_b_status``)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray | np.generic):
        return _finite(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _tied_record(tied) -> dict:
    status = [options.Boundary(int(b)).status.value for b in tied.boundary]
    return _finite({**tied._replace(model=tied.model.name)._asdict(), "n_b_status": status})


def _plots(out, cs, res, pl) -> list:
    from tokenscale_sim.plots.fits import fit_grid

    n_grid = np.geomspace(
        float(cs.arrays.n[cs.arrays.weight > 0].min()), float(cs.arrays.n.max()), 80
    )

    def curves_at(r):  # (G, K) also for one curve (predict drops the curve axis then)
        return np.reshape(estimate.predict(r, n_grid), (-1, n_grid.size))

    fits = {} if pl is None else {"power law": curves_at(pl)}
    bands = {}
    if res.model.name not in ("powerlaw", "divergence_measured"):
        fits[res.model.name] = curves_at(res)
        band = uncertainty.prediction_band(cs, res, n_grid)  # the law's confidence band
        bands[res.model.name] = (band.low, band.high)
    written = []
    first = [k[0] if len(k) > 1 else "" for k in cs.keys]
    for i, head in enumerate(dict.fromkeys(first)):
        idx = [g for g, f in enumerate(first) if f == head]
        panels = []
        for g in idx:
            c = cs.curve(g)
            key = cs.keys[g]
            panels.append((" / ".join(key[1:] if len(key) > 1 else key) or "curve", c.n, c.y))
        fig = fit_grid(
            panels, n_grid, {k: v[idx] for k, v in fits.items()},
            bands={k: (lo[idx], hi[idx]) for k, (lo, hi) in bands.items()}, suptitle=head or None,
        )  # fmt: skip
        path = out / f"fits_{i:02d}.png"
        written.append(files.save_figure(fig, path, dpi=110))
    return written


def _band_plots(out, cs, band) -> list:
    """alpha(n) bands, one figure per value of the first grouping column (as :func:`_plots`)."""
    from tokenscale_sim.plots.fits import alpha_band_grid

    first = [k[0] if len(k) > 1 else "" for k in cs.keys]
    written = []
    for i, head in enumerate(dict.fromkeys(first)):
        idx = [g for g, f in enumerate(first) if f == head]
        part = band._replace(estimate=band.estimate[idx], low=band.low[idx], high=band.high[idx])
        labels = [" / ".join(cs.keys[g][1:] if len(cs.keys[g]) > 1 else cs.keys[g]) for g in idx]
        fig = alpha_band_grid(part, labels, suptitle=head or None)
        path = out / f"alpha_band_{i:02d}.png"
        written.append(files.save_figure(fig, path, dpi=110))
    return written


def _powerlaw(cs: fdata.CurveSet, model: Model, opts) -> estimate.FitResult | None:
    """The power law fitted for comparison, or None where it does not apply (a law of a
    general predictor x, or data a power law cannot take: n < 1, y <= 0)."""
    if model.predictor != "n":
        return None
    try:
        fdata.check_curves(cs, "powerlaw", opts.loss)
    except ValueError:
        return None
    return estimate.fit_curves(cs, "powerlaw", opts)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # --out is swapped in when this closes, on success
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    if not 0 < args.level < 1:
        raise UsageError(f"fit: --level must be in (0, 1), got {args.level}")
    if args.bootstrap < 0 or args.bootstrap == 1 or args.transition_test < 0:
        raise UsageError("fit: --bootstrap and --transition-test take 0 or an integer >= 2")
    if args.plot and not args.out:
        raise UsageError("fit: --plot needs --out DIR")
    if args.x_col and not args.law:
        raise UsageError("fit: --x-col names the predictor of a --law of your own")
    if args.x_col and args.plot:
        raise UsageError("fit: --plot draws log-log axes of token counts; not with --x-col")
    model = user_law(args) if args.law else get_model(args.model)
    precision = "float32" if args.float32 else "float64"  # fits ignore jax_enable_x64 otherwise
    if args.max_nfev is not None and not 1 <= args.max_nfev <= options.MAX_NFEV:
        raise UsageError(f"fit: --max-nfev must be in [1, {options.MAX_NFEV}], got {args.max_nfev}")
    opts = options.FitOptions(
        loss=args.loss, level=args.level, precision=precision, max_nfev=args.max_nfev or 0
    )
    shared = tuple(dict.fromkeys(x.strip() for x in (args.shared or "").split(",") if x.strip()))
    if any(x not in model.params for x in shared):
        raise UsageError(f"fit: --shared must name parameters of {model.params}, got {shared}")
    cs = load(args)
    fdata.check_curves(cs, model, args.loss)
    if model.name == "divergence_measured" and not args.aux_col:
        raise UsageError("fit: model divergence_measured needs --aux-col (Upsilon per point)")
    resamples = max(args.bootstrap, args.transition_test, 1)
    g, m = cs.arrays.y.shape
    what = f"a fit of {g} curve{'s' if g > 1 else ''} of up to {m} points" + (
        f" and {resamples} resamples" if resamples > 1 else "")  # fmt: skip
    check_memory("fit", what, estimate.resampling_memory(model, g, m, resamples, opts),
                 "fewer points or curves, lower --bootstrap/--transition-test")  # fmt: skip
    out = (  # a staging folder, swapped in for --out when the fit succeeded
        stack.enter_context(files.output_folder(args.out, "fit", overwrite=args.overwrite)).staging
        if args.out else None
    )  # fmt: skip

    import jax

    def key(stream: int):  # made only where resampling uses it (it compiles a small program)
        return jax.random.fold_in(key_from_seed("fit", args.seed), stream)

    log = StageClock(quiet=args.quiet or (not args.bootstrap and not args.transition_test))
    log(  # the size of the work before it starts, then each stage and its seconds (stderr)
        f"fit: {g} curve(s) x law {model.name}: {g} fits"
        + (f"; bootstrap: {args.bootstrap} resamples ({args.bootstrap * g:,} fits)"
           if args.bootstrap else "")
        + (f"; transition test: {args.transition_test} simulated nulls "
           f"({2 * args.transition_test * g:,} fits)" if args.transition_test else "")
    )  # fmt: skip
    res = estimate.fit_curves(cs, model, opts)
    # the comparison power law costs a second compiled fit: a --law of your own gets it when asked
    compare = not args.law or args.compare_powerlaw or args.plot or args.transition_test
    pl = res if model.name == "powerlaw" else _powerlaw(cs, model, opts) if compare else None
    boot = band = test = None
    if args.bootstrap:
        log(f"bootstrap: {args.bootstrap} resamples x {g} curve(s)")
        with warnings.catch_warnings():  # said once in the table's bootstrap line instead
            warnings.simplefilter("ignore", IntervalFallbackWarning)
            boot = uncertainty.bootstrap(
                key(0), cs, res, kind=args.bootstrap_kind, m=args.bootstrap, opts=opts,
                interval=args.bootstrap_interval,
            )  # fmt: skip
        if model.name in ("powerlaw", "alpha_n"):
            band = uncertainty.alpha_band(
                model, res.estimates, boot.estimates, boot.converged, ALPHA_GRID, args.level
            )
    if args.transition_test:
        log(f"transition test: {args.transition_test} simulated nulls x {g} curve(s)")
        test = transition.transition_test(
            key(1), cs, m=args.transition_test, opts=opts, powerlaw_fit=pl,
            alpha_fit=res if model.name == "alpha_n" else None,
        )  # fmt: skip
    tied = transition.fit_tied(cs, model, shared, opts, single_fit=res) if shared else None
    log.finish()
    _print_tables(cs, res, pl, boot)
    if tied is not None:
        values = ", ".join(
            f"{p} = {_fmt(tied.estimates[0, model.params.index(p)])}" for p in shared
        )
        b = options.Boundary(int(tied.boundary[0]))
        note = f"  [{b.label}]" if "n_b" in shared and b > options.Boundary.INTERIOR else ""
        print(
            f"\njoint fit, tied {', '.join(shared)}: {values}{note}; AIC {tied.aic:.2f} vs "
            f"{float(np.sum(res.aic)):.2f} untied; converged: {'yes' if tied.converged else 'NO'}"
        )
    if out is None:
        return 0
    written = [files.write_csv(out / "fits.csv", _table(cs, res, pl, boot, test))]
    payload = {
        "source": cs.source,
        "keys": cs.keys,
        "group": cs.group,
        "fit": estimate.fit_record(res, cs.keys),
        "powerlaw": None if pl is None else estimate.fit_record(pl, cs.keys),
        "bootstrap": None if boot is None else _finite(boot._replace(estimates=None)._asdict()),
        "transition_test": None if test is None else _finite(test._asdict()),
        "tied": None if tied is None else _tied_record(tied),
        "metadata": files.run_metadata(seed=args.seed, model=model.name, loss=args.loss),
    }
    written.append(files.write_json(out / "fits.json", payload))
    if band is not None:
        cols = {"n": np.tile(band.n, len(cs.keys))}
        cols["curve"] = np.repeat([cs.label(g) for g in range(len(cs.keys))], len(band.n))
        cols.update(alpha=band.estimate.ravel(), low=band.low.ravel(), high=band.high.ravel())
        written.append(files.write_csv(out / "alpha_band.csv", cols))
    if args.plot:
        written += _plots(out, cs, res, pl)
        if band is not None:
            written += _band_plots(out, cs, band)
    for path in written:
        print(f"wrote {Path(args.out) / Path(path).name}", file=sys.stderr)
    return 0
