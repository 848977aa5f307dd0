"""Benchmark: the everyday latency of one small fit, as whole processes (issue 20).

- ``tokenscale fit one.csv --law "S_inf - A * n**(-a)" --start S_inf=35,A=15,a=0.5 --out o``
  on one curve of nine points, with an empty compilation cache (first run) and again (second
  run, the programs on disk), against
- the equivalent SciPy script (import NumPy and SciPy, read the CSV, ``curve_fit`` of ln S in
  log space as the CLI's default log loss, write a CSV of estimates and standard errors);
- ``tokenscale --help``.

Each command runs ``--repeats`` times (fresh processes; the first-run case with a fresh cache
folder each time) and the median wall time is kept, with the CPU time (user + system) of the
process. Results go to ``benchmarks/results_latency.md``.

    python benchmarks/bench_latency.py [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
N = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LAW = "S_inf - A * n**(-a)"
START = "S_inf=35,A=15,a=0.5"

SCIPY_SCRIPT = """
import csv, sys
import numpy as np
from scipy.optimize import curve_fit

rows = list(csv.DictReader(open(sys.argv[1])))
n = np.array([float(r["n"]) for r in rows])
y = np.array([float(r["score"]) for r in rows])
law = lambda n, S_inf, A, a: np.log(S_inf - A * n ** (-a))     # the log loss: ln S
est, cov = curve_fit(law, n, np.log(y), p0=[35.0, 15.0, 0.5])
se = np.sqrt(np.diag(cov))
with open(sys.argv[2], "w") as f:
    f.write("param,estimate,se\\n")
    for name, e, s in zip(("S_inf", "A", "a"), est, se):
        f.write(f"{name},{e!r},{s!r}\\n")
"""


def write_curve(folder: Path) -> Path:
    """The issue's one curve: nine token counts of a saturating law plus a small wiggle."""
    path = folder / "one.csv"
    lines = ["n,score"]
    for n in N:
        lines.append(f"{n},{35.0 - 15.0 * n**-0.5 + 0.1 * ((n * 7919) % 13 - 6) / 6:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of ``cmd`` (must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results_latency.md"))
    args = ap.parse_args()
    tokenscale = shutil.which("tokenscale", path=str(Path(sys.executable).parent)) or "tokenscale"
    work = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    csv_path = write_curve(work)
    script = work / "scipy_fit.py"
    script.write_text(SCIPY_SCRIPT)
    base = dict(os.environ)

    def fit_cmd(i: int) -> list[str]:
        out = work / f"o{i}"
        shutil.rmtree(out, ignore_errors=True)
        return [tokenscale, "fit", str(csv_path), "--law", LAW, "--start", START, "--out",
                str(out), "--overwrite"]  # fmt: skip

    first, second = [], []
    for i in range(args.repeats):
        env = {**base, "TOKENSCALE_CACHE_DIR": str(work / f"cache{i}")}  # empty: first run
        first.append(timed(fit_cmd(i), env))
        second.append(timed(fit_cmd(i), env))  # the same cache, now filled
    rows = {
        "tokenscale fit, first run (empty cache)": first,
        "tokenscale fit, second run (cache filled)": second,
        "tokenscale fit, cache off (TOKENSCALE_CACHE=0)": [
            timed(fit_cmd(0), {**base, "TOKENSCALE_CACHE": "0"}) for _ in range(args.repeats)
        ],
        "SciPy script (import, curve_fit, write CSV)": [
            timed([sys.executable, str(script), str(csv_path), str(work / "scipy.csv")], base)
            for _ in range(args.repeats)
        ],
        "tokenscale --help": [timed([tokenscale, "--help"], base) for _ in range(args.repeats)],
    }
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in rows.items()}  # fmt: skip
    scipy_wall, scipy_cpu = med["SciPy script (import, curve_fit, write CSV)"]
    load = os.getloadavg()
    lines = [
        "# Latency of one small fit (issue 20)",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) when done; "
        f"median of {args.repeats} fresh processes each. Command: "
        "`python benchmarks/bench_latency.py`.",
        "",
        "| command | wall s | CPU s | wall / SciPy script | CPU / SciPy script |",
        "|---|---|---|---|---|",
    ]
    for name, (wall, cpu) in med.items():
        lines.append(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {wall / scipy_wall:.2f}x "
            f"| {cpu / scipy_cpu:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
