"""``tokenscale calibrate``: fit a structure to measured psi(n) and predict D(n) from it.

Fits the free parameters of the structure family (tokenscale_sim.structures.families; the same as
``tokenscale sweep``):

  Sigma = shared [[1,1],[1,1]] (x) J + image [[1,0],[0,1]] (x) J
        + weight [[1,c],[c,1]] (x) K(length) + (1 - shared - image - weight) [[1,q],[q,1]] (x) I

to the measured mean psi_eq(n), psi_AABB(n), psi_AB(n) for n <= --n-fit by their exact psi's.
Sources:

  --measure DIR         a ``tokenscale measure`` folder (curves.csv, measure.json; --layer L)
  --hidden FILE [B]     hidden states (as ``tokenscale measure --hidden``): per-pair curves,
                        so the intervals come from a bootstrap of the pairs

From a measure folder only the mean curves exist: intervals are then Wald intervals that treat
the n points as independent ("points", too narrow for cumulative curves). The calibrated
structure then predicts mean D(n) for every measured n (exact Gaussian E[D] at the measured
width, the bound sqrt(2 Upsilon), with --mc M a Monte Carlo of M unit-normalised pairs) and the
relative error against the measured mean D beyond --n-fit is reported.

Writes into --out: structure.toml (the calibrated structure: a structure file for theory,
simulate), calibrate.json (estimates, intervals, goodness of fit, prediction errors),
calibrate.csv (per n: measured and calibrated psi's, measured and predicted D) and
calibrate.png.

With --structure-file F [F ...] or --candidates: calibrate structure
files with named parameters to measured psi(n) and, with several, rank them ("which structure?").

Each file's free parameters (``--free``, default all; ``--set NAME=VALUE`` fixes others) are
fitted by their exact population psi's (tokenscale_sim.structures.calibrate_file); the ranking
(tokenscale_sim.structures.which) is by AICc on the psi curves, with the leave-out RMSE of the
psi's and the relative error of the predicted mean D(n) beyond --n-fit, and the implied n_b with
its interval. Writes into --out: which.csv and which.json (the ranking, each candidate's
estimates and intervals), calibrated_<name>.toml per candidate (the file with its parameters at
the estimates: sweep, theory and simulate read it), structure.toml (the best), calibrate.csv
(per n: measured and every candidate's psi's and predicted mean D) and which.png.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import StageClock, add_command, check_mc_work, positive_int, seed
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures import which
from tokenscale_sim.structures.calibrate_file import calibrate_file, file_summary
from tokenscale_sim.structures.families import KERNEL_KINDS, PARAMS
from tokenscale_sim.structures.params import read_param_file
from tokenscale_sim.structures.which import CANDIDATES

KIND = "calibrate"


def register(sub) -> None:
    p = add_command(sub, "calibrate", SUBCOMMANDS["calibrate"], __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--measure", metavar="DIR", help="a tokenscale measure output folder")
    src.add_argument("--hidden", nargs="+", metavar="FILE", help="hidden-state file (or A, B)")
    p.add_argument("--layer", default=None, help="layer of a multi-layer measure folder (default: "
                   "the last)")  # fmt: skip
    p.add_argument("--n-fit", type=positive_int, default=64,
                   help="largest n used by the fit (default: %(default)s)")  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument("--structure-file", nargs="+", metavar="FILE", default=None,
                       help="structure file(s) with named parameters: calibrate each, rank "
                       "several")  # fmt: skip
    which.add_argument("--candidates", action="store_true",
                       help=f"rank the shipped candidates ({', '.join(CANDIDATES)})")  # fmt: skip
    p.add_argument("--free", default=None,
                   help="comma-separated free parameters (default: all of the family or "
                   "file)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter that is not free")  # fmt: skip
    p.add_argument("--kernel", choices=KERNEL_KINDS, default="exponential",
                   help="the decaying term's kernel (default: %(default)s)")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=200,
                   help="pair-bootstrap resamples (--hidden) (default: %(default)s)")  # fmt: skip
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    p.add_argument("--mc", type=positive_int, default=None, metavar="M",
                   help="also a Monte Carlo of M pairs at the measured width")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="bootstrap and Monte Carlo seed")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a previous calibration")
    p.add_argument("--quiet", action="store_true",
                   help="no work line, stage times or progress bar (stderr)")  # fmt: skip
    p.set_defaults(func=run)


def _number(text: str | None, where: str) -> float:
    if text is None:
        raise ValueError(f"{where}: the row is shorter than the header")
    try:
        return float(text) if text not in ("", "nan") else float("nan")
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None


def _width(value: object, where: str) -> int:
    """The hidden width of a measure folder: an integer >= 1 (never a default, never cut)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value >= 1
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise ValueError(f"{where} must be the hidden width, an integer >= 1, got {value!r}")
    return int(value)


def read_measure_folder(folder: str, layer: str | None) -> tuple[cb.PsiData, np.ndarray]:
    """(mean psi curves with the width d, measured mean D) of one layer of a measure folder.

    Raises:
        FileNotFoundError: no such folder or a file missing. ValueError: a damaged folder
            (bad JSON, a missing or null field, a width that is not an integer >= 1, a short
            CSV row or a non-number), naming the file and the field or line.
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(f"--measure {folder!r} {what}")
    curves_csv, meta_json = root / "curves.csv", root / "measure.json"
    for path in (curves_csv, meta_json):
        if not path.is_file():
            raise FileNotFoundError(f"--measure {folder!r}: no {path.name} (a measure folder?)")
    try:
        meta = json.loads(meta_json.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{meta_json}: not valid JSON ({err})") from None
    layers_meta = meta.get("layers") if isinstance(meta, dict) else None
    if not isinstance(layers_meta, dict) or not layers_meta:
        raise ValueError(f"{meta_json}: 'layers' must be a table of layers, got "
                         f"{layers_meta!r:.80}")  # fmt: skip
    layers = list(layers_meta)
    key = layer if layer is not None else layers[-1]
    if key not in layers:
        raise ValueError(f"--layer must be one of {layers}, got {layer!r}")
    entry = layers_meta[key]
    width = entry.get("d") if isinstance(entry, dict) else None
    d = _width(width, f"{meta_json}: layers.{key}.d")
    try:
        with curves_csv.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{curves_csv}: not a valid CSV file ({err})") from None
    if "layer" in (rows[0] if rows else {}):
        rows = [r for r in rows if r["layer"] == key]
    needed = ("n", "psi_eq_mean", "psi_aabb_mean", "psi_ab_mean", "divergence_mean")
    if not rows or any(k not in rows[0] for k in needed):
        raise ValueError(f"--measure {folder!r}: curves.csv lacks the columns {list(needed)}")
    col = {k: np.array([_number(r[k], f"{curves_csv} row {i + 2}, column {k}")
                        for i, r in enumerate(rows)]) for k in needed}  # fmt: skip
    if not np.array_equal(col["n"], np.arange(1, len(rows) + 1)):
        raise ValueError(f"--measure {folder!r}: n must run 1..N in curves.csv")
    curves = np.stack([col["psi_eq_mean"], col["psi_aabb_mean"], col["psi_ab_mean"]])
    return cb.PsiData(col["n"], curves, None, d), col["divergence_mean"]


def read_hidden(paths: list[str]) -> tuple[cb.PsiData, np.ndarray]:
    """Per-pair psi curves and mean D of hidden states (all pairs of full length)."""
    from tokenscale_sim.hidden import arrays
    from tokenscale_sim.hidden.measure import FIELDS, MeasureOptions, pair_statistics

    if len(paths) > 2:
        raise ValueError(f"--hidden takes one file or two (A and B), got {len(paths)}")
    source = arrays.open_hidden(*paths)
    stats = []
    for chunk in arrays.iter_pairs(source, MeasureOptions().chunk):
        values, valid = pair_statistics(chunk)
        stats.append(np.where(valid, values, np.nan))
    values = np.concatenate(stats, axis=1)  # (F, P, N)
    pick = {name: values[FIELDS.index(name)] for name in FIELDS}
    reps = cb.replicate_curves(pick["psi_eq"], pick["psi_aa"], pick["psi_bb"], pick["psi_ab"])
    data = cb.PsiData(np.arange(1, source.n + 1), cb.nan_mean(reps, axis=0), reps, source.d)
    return data, cb.nan_mean(pick["divergence"], axis=0)


def read_source(args: argparse.Namespace) -> tuple[cb.PsiData, np.ndarray]:
    """The measured curves of ``--measure`` or ``--hidden``, with ``--bootstrap`` and
    ``--n-fit`` checked against them."""
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise ValueError(f"--bootstrap must be 0 or >= 2, got {args.bootstrap}")
    if args.measure is not None:
        data, measured_d = read_measure_folder(args.measure, args.layer)
    else:
        data, measured_d = read_hidden(args.hidden)
    if args.n_fit > len(data.n):
        raise ValueError(f"--n-fit must be <= the measured n ({len(data.n)}), got {args.n_fit}")
    return data, measured_d


def fixed_values(
    args: argparse.Namespace, names: tuple[str, ...] = PARAMS
) -> tuple[tuple[str, ...], dict[str, float]]:
    text = ",".join(names) if args.free is None else args.free
    free = tuple(k.strip() for k in text.split(",") if k.strip())
    fixed = {}
    for text in args.set:
        name, sep, value = text.partition("=")
        try:
            fixed[name.strip()] = float(value) if sep else float("x")
        except ValueError:
            raise ValueError(f"--set expects NAME=NUMBER, got {text!r}") from None
    return free, fixed


def run(args: argparse.Namespace) -> int:
    if args.structure_file is not None or args.candidates:
        return run_files(args)
    with contextlib.ExitStack() as stack:
        cal, pred = _run(args, stack)
    print(f"calibrated ({cal.interval} intervals, level {cal.level:g}):")
    for k, est, lo, hi in zip(cal.params, cal.estimates, cal.ci_low, cal.ci_high, strict=True):
        where = f"[{lo:.4g}, {hi:.4g}]" if k in cal.free else "(fixed)"
        print(f"  {k:>15} = {est:.4g} {where}")
    print(cb.fit_line(cal))
    for name, e in pred.errors.items():
        print(f"mean D(n) for n > {cal.n_fit}, {name}: max |rel. error| {e['max_rel']:.3f}, "
              f"rms {e['rms_rel']:.3f}")  # fmt: skip
    print(f"wrote {args.out}/structure.toml, calibrate.json, calibrate.csv, calibrate.png")
    return 0


def _run(args: argparse.Namespace, stack: contextlib.ExitStack):
    import jax

    free, fixed = fixed_values(args)
    data, measured_d = read_source(args)
    if args.mc is not None:  # the estimate before any work
        check_mc_work(args.mc, len(data.n), int(data.d or 256))
    out = stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
    log = StageClock(quiet=args.quiet)
    line = _work_line(args, "the built-in family", len(data.n), data.replicates is not None)
    cal = cb.calibrate(
        data._replace(d=None),  # population psi's (the O(1/d) cosine bias is left out)
        n_fit=args.n_fit, free=free, fixed=fixed, kernel=args.kernel,
        bootstrap=args.bootstrap, level=args.level, seed=args.seed, on_start=lambda: log(line),
    )  # fmt: skip
    d = int(data.d or 256)
    mc = None
    if args.mc is not None:
        from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate

        config = SimulationConfig(n_max=len(data.n), d=d, m=args.mc, tokens="unit",
                                  divergence_only=True)  # fmt: skip
        log(f"Monte Carlo: {args.mc} pairs of the calibrated structure at width {d}")
        mc = simulate(jax.random.key(args.seed), cal.structure, config, progress=not args.quiet)
        mc = np.asarray(mc.divergence.mean)
    log("writing the structure, tables and figure")
    pred = cb.predict_divergence(cal, measured_d, d, mc)
    from tokenscale_sim.structures.files import to_toml

    (out / "structure.toml").write_text(to_toml(cal.structure), encoding="utf-8")
    cols = {"n": data.n, **{f"{k}_measured": data.curves[i] for i, k in enumerate(cb.CURVES)},
            **{f"{k}_calibrated": cal.fitted[i] for i, k in enumerate(cb.CURVES)},
            "mean_d_measured": measured_d, "mean_d_exact": pred.exact,
            "bound": pred.bound}  # fmt: skip
    if mc is not None:
        cols["mean_d_monte_carlo"] = mc
    files.write_csv(out / "calibrate.csv", cols)
    source = {"measure": args.measure, "layer": args.layer} if args.measure else {
        "hidden": args.hidden}  # fmt: skip
    files.write_json(out / "calibrate.json", {
        **cb.summary(cal), "d": d, "source": source, "prediction_errors": pred.errors,
        "mc": args.mc, "metadata": files.run_metadata(command="tokenscale calibrate",
                                                       seed=args.seed)})  # fmt: skip
    from tokenscale_sim.plots.structures import calibration_figure

    predictions = {"exact E[D] (calibrated)": pred.exact}
    if mc is not None:
        predictions["Monte Carlo, unit tokens"] = mc
    fig = calibration_figure(data.n, dict(zip(cb.CURVES, data.curves, strict=True)),
                             dict(zip(cb.CURVES, cal.fitted, strict=True)), cal.n_fit,
                             (data.n, measured_d, predictions))  # fmt: skip
    files.save_figure(fig, out / "calibrate.png", dpi=110)
    log.finish()
    return cal, pred


def _work_line(args: argparse.Namespace, what: str, points: int, pairs: bool) -> str:
    """The size of a calibration before it starts (stderr).

    >>> ns = argparse.Namespace(n_fit=64, bootstrap=200, mc=None)
    >>> _work_line(ns, "3 structure files", 256, True)  # doctest: +NORMALIZE_WHITESPACE
    'calibrate: 3 structure files on 256 token counts (fitted on n <= 64),
     200 pair-bootstrap refits each'
    """
    boot = f", {args.bootstrap} pair-bootstrap refits each" if pairs and args.bootstrap >= 2 else ""
    mc = f", then a Monte Carlo of {args.mc} pairs" if args.mc else ""
    return f"calibrate: {what} on {points} token counts (fitted on n <= {args.n_fit}){boot}{mc}"


def _paths(args: argparse.Namespace) -> list[str]:
    return [str(p) for p in which.candidate_paths()] if args.candidates else args.structure_file


def run_files(args: argparse.Namespace) -> int:
    """``calibrate --structure-file F [F ...]`` or ``--candidates`` (module docstring)."""
    if args.mc is not None:
        raise ValueError("--mc works with the built-in family; with --structure-file or "
                         "--candidates, simulate the calibrated file (tokenscale simulate "
                         "--structure-file)")  # fmt: skip
    if args.kernel != "exponential":
        raise ValueError("--kernel belongs to the built-in family; a structure file names its "
                         "kernels")  # fmt: skip
    pfs = [read_param_file(p) for p in _paths(args)]  # every file checked before any work
    names = [pf.name for pf in pfs]
    if len(set(names)) != len(names):
        raise ValueError(f"--structure-file: two files have one name {names}; give each a "
                         "distinct 'name'")  # fmt: skip
    settings = []
    for pf in pfs:
        free, fixed = fixed_values(args, pf.names)
        if args.free is not None and len(pfs) > 1:
            free = tuple(k for k in free if k in pf.params)
        if not pf.params:
            raise ValueError(f"{pf.source}: no named parameters to calibrate (write one as "
                             "{ param = 'NAME', value = ..., min = ..., max = ... })")  # fmt: skip
        pf.check_values({k: pf.params[k].value for k in free if k in pf.params} | fixed)
        settings.append((free, {k: v for k, v in fixed.items() if k in pf.params}))
    data, measured_d = read_source(args)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(
            files.output_folder(args.out, KIND, overwrite=args.overwrite)
        ).staging
        log = StageClock(quiet=args.quiet)
        what = f"{len(pfs)} structure file{'s' if len(pfs) > 1 else ''}"
        log(_work_line(args, what, len(data.n), data.replicates is not None))
        cals = []
        for pf, (free, fixed) in tqdm(list(zip(pfs, settings, strict=True)), desc="calibrate",
                                      unit="file", disable=args.quiet):  # fmt: skip
            cals.append(calibrate_file(pf, data, n_fit=args.n_fit, free=free, fixed=fixed,
                                       bootstrap=args.bootstrap, level=args.level,
                                       seed=args.seed))  # fmt: skip
        log("ranking and writing")
        d = int(data.d or 256)
        rows = which.rank(cals, measured_d, d)
        _write(out, args, data, measured_d, d, cals, rows)
        log.finish()
    print(f"calibrated on n <= {args.n_fit} ({cals[0].interval} intervals, level {args.level:g})")
    for line in which.table_lines(rows):
        print(line)
    best = next(c for c in cals if c.name == rows[0]["name"])
    for k in best.free:
        i = best.params.index(k)
        print(f"  {best.name}: {k} = {best.estimates[i]:.4g} "
              f"[{best.ci_low[i]:.4g}, {best.ci_high[i]:.4g}]")  # fmt: skip
    print(f"wrote {args.out}/which.csv, which.json, structure.toml, calibrated_*.toml, "
          "calibrate.csv, which.png")  # fmt: skip
    return 0


def _write(out, args, data: cb.PsiData, measured_d, d: int, cals, rows) -> None:
    by_name = {c.name: c for c in cals}
    for cal in cals:
        text = cal.file.toml(cal.values, f"calibrated by tokenscale calibrate on n <= "
                             f"{cal.n_fit} from {cal.file.source}")  # fmt: skip
        (out / f"calibrated_{cal.name}.toml").write_text(text, encoding="utf-8")
    best = by_name[rows[0]["name"]]
    (out / "structure.toml").write_text(
        best.file.toml(best.values, f"the best by AICc of {[r['name'] for r in rows]}"),
        encoding="utf-8",
    )
    files.write_csv(out / "which.csv", {k: np.array([r[k] for r in rows]) for k in which.COLUMNS})
    cols = {"n": data.n, **{f"{k}_measured": data.curves[i] for i, k in enumerate(cb.CURVES)},
            "mean_d_measured": measured_d}  # fmt: skip
    for cal in cals:
        pred = cb.predict_divergence(cal, measured_d, d)  # type: ignore[arg-type]
        cols.update({f"{k}_{cal.name}": cal.fitted[i] for i, k in enumerate(cb.CURVES)})
        cols[f"mean_d_{cal.name}"] = pred.exact
    files.write_csv(out / "calibrate.csv", cols)
    source = {"measure": args.measure, "layer": args.layer} if args.measure else {
        "hidden": args.hidden}  # fmt: skip
    files.write_json(out / "which.json", {
        "ranking": rows, "candidates": {c.name: file_summary(c) for c in cals}, "d": d,
        "n_fit": args.n_fit, "source": source,
        "metadata": files.run_metadata(command="tokenscale calibrate", seed=args.seed),
    })  # fmt: skip
    from tokenscale_sim.plots.structures import which_figure

    fig = which_figure(data.n, dict(zip(cb.CURVES, data.curves, strict=True)),
                       {r["name"]: dict(zip(cb.CURVES, by_name[r["name"]].fitted, strict=True))
                        for r in rows}, args.n_fit)  # fmt: skip
    files.save_figure(fig, out / "which.png", dpi=110)
