"""Benchmark: the least-squares engine on the More-Garbow-Hillstrom (1981) test functions against
SciPy's MINPACK, on problems the engine was never tuned on.

Every problem of ``tests/fit/engine/mgh_problems.py`` (the paper's formulas; 38 problems) from
``x0``, ``10 x0`` and ``100 x0``, fitted

- by the engine as a user would: the residuals as a law ``y_i = f_i(theta)`` at ``x = i`` with
  ``y = 0``, ``FitOptions(loss="linear")`` (Levenberg-Marquardt of
  :mod:`tokenscale_sim.fit.engine.polish`, MINPACK's budget ``100 (p + 1)`` evaluations), and
  with ``--runaway`` also with ``runaway=True`` (the stop rule of ``compare``, which the engine
  applied to every fit before): a second compiled fit per problem;
- by SciPy's MINPACK ``lmder`` (``scipy.optimize.leastsq`` with the exact Jacobian) with its
  defaults and with ``ftol = xtol = 1e-15``.

An answer *reaches the minimum* when its RSS is within 1e-8 (relative) of the lowest any method
found from that start and not above the paper's ``f*`` (so a local minimum is a miss); a miss of
the engine must be reported not converged. The table and the counts go to
``benchmarks/results_mgh.md``.

    python benchmarks/bench_mgh.py [--runaway] [--out FILE] [--only NAME ...]
    python benchmarks/bench_mgh.py --part 0/2 --rows a.json  # half the problems, in a process
    python benchmarks/bench_mgh.py --part 1/2 --rows b.json  # of its own (cores in parallel)
    python benchmarks/bench_mgh.py --combine a.json b.json   # then the results file
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fit" / "engine"))

from mgh_problems import (  # noqa: E402
    FACTORS,
    PROBLEMS,
    Run,
    engine_run,
    minpack_run,
    reached,
)

from tokenscale_sim.fit import FitOptions  # noqa: E402

METHODS = {
    "engine": lambda p, f: engine_run(p, f),
    "engine_runaway": lambda p, f: engine_run(p, f, FitOptions(loss="linear", runaway=True)),
    "minpack": lambda p, f: minpack_run(p, f),
    "minpack_tight": lambda p, f: minpack_run(p, f, tol=1e-15),
}
"""The methods compared, by name: ``(problem, factor) -> Run``."""


BENCH_COMMAND = "python benchmarks/bench_mgh.py"


def _to_json(row: dict) -> dict:
    return {k: (v._asdict() if isinstance(v, Run) else v) for k, v in row.items()}


def _from_json(row: dict) -> dict:
    return {k: (Run(**v) if isinstance(v, dict) else v) for k, v in row.items()}


def evaluate(names=None, methods=tuple(METHODS), part=(0, 1)) -> list[dict]:
    """One row per problem and start: every method's :class:`Run` and whether it reached the
    minimum (module docstring); ``part = (i, k)``: the problems ``i, i + k, ...`` only."""
    rows = []
    for index, problem in enumerate(PROBLEMS):
        if (names and problem.name not in names) or index % part[1] != part[0]:
            continue
        for factor in FACTORS:
            runs: dict[str, Run] = {}
            runs_time = 0.0
            for method in methods:
                fn = METHODS[method]
                t0 = time.perf_counter()
                runs[method] = fn(problem, factor)
                if method == "engine":
                    runs_time = time.perf_counter() - t0
            best = min(r.rss for r in runs.values())
            row = {"problem": problem.name, "factor": factor, "time": runs_time, "index": index}
            for method, r in runs.items():
                row[method] = r
                row[method + "_ok"] = reached(problem, r.rss, best)
            rows.append(row)
            print(_line(row, methods), flush=True)
    return rows


def _line(row: dict, methods) -> str:
    parts = [f"{row['problem']:24s} {row['factor']:5.0f}x0"]
    for method in methods:
        r = row[method]
        flag = "ok " if row[method + "_ok"] else "-- "
        parts.append(f"{method} {r.rss:.9e} {flag}{'c' if r.converged else 'n'} {r.evaluations}")
    return " | ".join(parts)


def summary(rows: list[dict], methods) -> dict:
    """Counts: successes per method, wrong-but-converged engine answers, lower minima."""
    out = {"fits": len(rows)}
    for method in methods:
        out[method + "_successes"] = sum(r[method + "_ok"] for r in rows)
        out[method + "_unflagged_misses"] = sum(
            (not r[method + "_ok"]) and r[method].converged for r in rows
        )
    for a, b in (("engine", "minpack"), ("engine", "minpack_tight")):
        out[f"{a}_lower_than_{b}"] = sum(_lower(r[a].rss, r[b].rss) for r in rows)
        out[f"{b}_lower_than_{a}"] = sum(_lower(r[b].rss, r[a].rss) for r in rows)
    out["engine_flagged_successes"] = sum(
        r["engine_ok"] and not r["engine"].converged for r in rows
    )
    return out


def _lower(a: float, b: float) -> bool:
    """``a`` is a lower minimum than ``b``: below it by more than 1e-8 relative (and 1e-20)."""
    return a < b - 1e-8 * abs(b) - 1e-20


def report(rows: list[dict], counts: dict, methods) -> str:
    lines = [
        "# More-Garbow-Hillstrom test functions: engine vs SciPy's MINPACK",
        "",
        f"Run of {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()} ({jax.default_backend()}), `{BENCH_COMMAND}`.",
        "",
        "`ok` (`--`: a miss): reached the minimum (RSS within 1e-8 of the lowest found from "
        "that start, not above the paper's f*); `c`/`n`: reported converged (MINPACK: ier "
        "1-4) or not; then evaluations (engine: trial steps; MINPACK: nfev).",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in counts.items()),
        "",
        "Per problem and start, each method's RSS, `ok`/`--` and `c`/`n` and evaluations "
        "(one table above only: `tests/readme_quotes.py` reads it):",
        "",
        "```text",
        *(_line(r, methods) for r in rows),
        "```",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_mgh.md")))
    parser.add_argument("--only", nargs="*", default=None, help="problem names")
    parser.add_argument("--runaway", action="store_true", help="also the engine, runaway=True")
    parser.add_argument("--part", default="0/1", help="I/K: the problems I, I + K, ... only")
    parser.add_argument("--rows", default=None, help="write the rows as JSON here, no report")
    parser.add_argument("--combine", nargs="*", default=None, help="report from --rows files")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    methods = tuple(m for m in METHODS if args.runaway or m != "engine_runaway")
    if args.combine:
        rows = [_from_json(r) for f in args.combine for r in json.loads(Path(f).read_text())]
        rows.sort(key=lambda r: (r["index"], r["factor"]))
        methods = tuple(m for m in METHODS if m in rows[0])
    else:
        part = tuple(int(x) for x in args.part.split("/"))
        rows = evaluate(args.only, methods, (part[0], part[1]))
        if args.rows:
            Path(args.rows).write_text(json.dumps([_to_json(r) for r in rows]))
            return 0
    counts = summary(rows, methods)
    for k, v in counts.items():
        print(f"{k}: {v}")
    command = " ".join(["python benchmarks/bench_mgh.py", *(argv or sys.argv[1:])])
    Path(args.out).write_text(report(rows, counts, methods).replace(BENCH_COMMAND, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
