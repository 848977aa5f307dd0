"""Benchmark: this checkout against a base commit, in one run on one machine (issue 36's "no
slower"): the demo's "which law?" stage and ``tokenscale compare --paper``.

The base commit is checked out into a temporary ``git worktree``; both checkouts run with the
same Python and packages (``PYTHONPATH`` picks the checkout), each with its own compile cache
(filled by a first, untimed run), and the runs alternate base / this one, ``--runs`` times:

- "which law?" (demo): ``paper_comparison(key, bootstrap=100)`` in a fresh process, the wall
  time of the call (the demo's stage; ``StudyConfig.compare_bootstrap``);
- ``tokenscale compare --paper --bootstrap 0``: the wall time of the whole process (no
  ``--quiet``: the base has none; this one's work line and bar go to stderr).

Also checks that both write the same ``compare.csv`` (``--bootstrap 0``). Writes
``benchmarks/results_base.md``.

    python benchmarks/bench_base.py [--base 27a54b9] [--runs 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGE = (
    "import time, jax; from tokenscale_sim.fit.selection.compare import paper_comparison; "
    "t = time.perf_counter(); paper_comparison(jax.random.key(0), bootstrap=100); "
    "print(time.perf_counter() - t)"
)


def _run(cmd: list[str], checkout: Path, cache: Path) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(checkout), TOKENSCALE_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} in {checkout}: exit {done.returncode}\n{done.stderr}")
    return time.perf_counter() - t0, done.stdout


def _jobs(out: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "tokenscale_sim.cli", "compare", "--paper", "--bootstrap", "0"]
    return {
        "which law? (demo stage: paper_comparison, 100 resamples)": [sys.executable, "-c", STAGE],
        "tokenscale compare --paper --bootstrap 0": [
            *cli,
            "--out",
            str(out),
            "--overwrite",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="27a54b9")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results_base.md"))
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            checkouts = {f"base {args.base}": base, f"this {head}": ROOT}
            times = {(job, who): [] for job in _jobs(tmp) for who in checkouts}
            csv = {}
            for who, checkout in checkouts.items():  # fill each compile cache, untimed
                for cmd in _jobs(tmp / f"out-{who.split()[0]}").values():
                    _run(cmd, checkout, tmp / f"cache-{who.split()[0]}")
                csv[who] = (tmp / f"out-{who.split()[0]}" / "compare.csv").read_bytes()
            for _ in range(args.runs):
                for who, checkout in checkouts.items():
                    for job, cmd in _jobs(tmp / f"out-{who.split()[0]}").items():
                        wall, out = _run(cmd, checkout, tmp / f"cache-{who.split()[0]}")
                        times[(job, who)].append(float(out) if job.startswith("which") else wall)
                        print(job, who, f"{times[(job, who)][-1]:.2f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           check=False, capture_output=True)  # fmt: skip
    names = list(checkouts)
    same = csv[names[0]] == csv[names[1]]
    lines = [
        "# bench_base: this checkout against a base commit, in one run",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores; load average at the end "
        f"{os.getloadavg()[0]:.2f}",
        f"- command: `python benchmarks/bench_base.py --base {args.base} --runs {args.runs}`",
        "- warm compile caches (a first run of each, untimed); runs alternate base / this",
        f"- `compare.csv` of `compare --paper --bootstrap 0`: {'identical' if same else 'DIFFERS'}",
        "",
        f"| stage | {names[0]} (median, runs) | {names[1]} (median, runs) | this / base |",
        "|---|---|---|---|",
    ]
    for job in _jobs(tmp):
        a, b = (times[(job, who)] for who in names)
        runs = [", ".join(f"{x:.2f}" for x in t) for t in (a, b)]
        ratio = statistics.median(b) / statistics.median(a)
        lines.append(f"| {job} | {statistics.median(a):.2f} s ({runs[0]}) | "
                     f"{statistics.median(b):.2f} s ({runs[1]}) | {ratio:.2f} |")  # fmt: skip
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
