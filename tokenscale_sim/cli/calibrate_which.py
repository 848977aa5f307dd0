"""``tokenscale calibrate --structure-file F [F ...]`` or ``--candidates``: calibrate structure
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

import numpy as np

from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.structures import calibrate as cb
from tokenscale_sim.structures import which
from tokenscale_sim.structures.calibrate_file import calibrate_file, file_summary
from tokenscale_sim.structures.params import read_param_file

KIND = "calibrate"


def _paths(args: argparse.Namespace) -> list[str]:
    return [str(p) for p in which.candidate_paths()] if args.candidates else args.structure_file


def run_files(args: argparse.Namespace, read_source, fixed_values) -> int:
    """Run the file calibrations (``read_source(args)``: the measured curves;
    ``fixed_values(args, names)``: --free and --set for a file's parameter names)."""
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
        cals = [
            calibrate_file(pf, data, n_fit=args.n_fit, free=free, fixed=fixed,
                           bootstrap=args.bootstrap, level=args.level, seed=args.seed)
            for pf, (free, fixed) in zip(pfs, settings, strict=True)
        ]  # fmt: skip
        d = int(data.d or 256)
        rows = which.rank(cals, measured_d, d)
        _write(out, args, data, measured_d, d, cals, rows)
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
