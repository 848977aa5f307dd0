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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
from pathlib import Path

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS
from tokenscale_sim.cli._common import add_command, positive_int, seed
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures.families import KERNEL_KINDS, PARAMS

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
    p.add_argument("--free", default=",".join(PARAMS),
                   help="comma-separated free parameters (default: all)")  # fmt: skip
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
    p.set_defaults(func=run)


def _number(text: str | None, where: str) -> float:
    """A cell of curves.csv (empty or ``nan``: missing); ``where`` names it in the error."""
    if text is None:
        raise ValueError(f"{where}: the row is too short")
    if text in ("", "nan"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text[:40]!r}") from None


def read_measure_folder(folder: str, layer: str | None) -> tuple[cb.PsiData, np.ndarray]:
    """(mean psi curves with the width d, measured mean D) of one layer of a measure folder."""
    root = Path(folder)
    curves_csv, meta_json = root / "curves.csv", root / "measure.json"
    for path in (curves_csv, meta_json):
        if not path.is_file():
            raise FileNotFoundError(f"--measure {folder!r}: no {path.name} (a measure folder?)")
    try:
        meta = json.loads(meta_json.read_text(encoding="utf-8-sig"))
        with curves_csv.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (ValueError, RecursionError, csv.Error) as err:  # JSON, UTF-8 and CSV errors
        raise ValueError(f"--measure {folder!r}: cannot read it ({str(err)[:120]})") from None
    meta_layers = meta.get("layers") if isinstance(meta, dict) else None
    if not isinstance(meta_layers, dict) or not all(
        isinstance(v, dict) for v in meta_layers.values()
    ):
        raise ValueError(f"--measure {folder!r}: measure.json has no 'layers' table")
    layers = list(meta_layers)
    key = layer if layer is not None else layers[-1] if layers else None
    if key not in layers:
        raise ValueError(f"--layer must be one of {layers}, got {layer!r}")
    if "layer" in (rows[0] if rows else {}):
        rows = [r for r in rows if r["layer"] == key]
    needed = ("n", "psi_eq_mean", "psi_aabb_mean", "psi_ab_mean", "divergence_mean")
    if not rows or any(k not in rows[0] for k in needed):
        raise ValueError(f"--measure {folder!r}: curves.csv lacks the columns {list(needed)}")
    col = {
        k: np.array([_number(r[k], f"{curves_csv} row {i + 2} column {k!r}")
                     for i, r in enumerate(rows)])
        for k in needed
    }  # fmt: skip
    if not np.array_equal(col["n"], np.arange(1, len(rows) + 1)):
        raise ValueError(f"--measure {folder!r}: n must run 1..N in curves.csv")
    curves = np.stack([col["psi_eq_mean"], col["psi_aabb_mean"], col["psi_ab_mean"]])
    d = meta_layers[key].get("d")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"{meta_json}: layers.{key}.d (the width) must be an integer >= 1, "
                         f"got {d!r}"[:300])  # fmt: skip
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


def _fixed(args: argparse.Namespace) -> tuple[tuple[str, ...], dict[str, float]]:
    free = tuple(k.strip() for k in args.free.split(",") if k.strip())
    fixed = {}
    for text in args.set:
        name, sep, value = text.partition("=")
        try:
            fixed[name.strip()] = float(value) if sep else float("x")
        except ValueError:
            raise ValueError(f"--set expects NAME=NUMBER, got {text!r}") from None
    return free, fixed


def run(args: argparse.Namespace) -> int:
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

    free, fixed = _fixed(args)
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise ValueError(f"--bootstrap must be 0 or >= 2, got {args.bootstrap}")
    if args.measure is not None:
        data, measured_d = read_measure_folder(args.measure, args.layer)
    else:
        data, measured_d = read_hidden(args.hidden)
    if args.n_fit > len(data.n):
        raise ValueError(f"--n-fit must be <= the measured n ({len(data.n)}), got {args.n_fit}")
    out = stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
    cal = cb.calibrate(
        data._replace(d=None),  # population psi's (the O(1/d) cosine bias is left out)
        n_fit=args.n_fit, free=free, fixed=fixed, kernel=args.kernel,
        bootstrap=args.bootstrap, level=args.level, seed=args.seed,
    )  # fmt: skip
    d = int(data.d or 256)
    mc = None
    if args.mc is not None:
        from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate

        config = SimulationConfig(n_max=len(data.n), d=d, m=args.mc, tokens="unit",
                                  divergence_only=True)  # fmt: skip
        mc = simulate(jax.random.key(args.seed), cal.structure, config, progress=False)
        mc = np.asarray(mc.divergence.mean)
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
    return cal, pred
