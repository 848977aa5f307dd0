"""Run every benchmark in one go (``make bench``); each script prints its table and writes its
results file next to it (``results_*.md``), which ``benchmarks/README.md`` collects. The
coverage studies (``coverage.py``, results_coverage.md; ``coverage_fresh.py``, percentile then
studentized bootstraps, results_coverage_fresh[_t].md/.json; bootstrap-calibrated profile
intervals on new truths (seed 2026) and on the same ones (seed 26),
results_coverage_fresh_cal[26].md/.json) run last; arguments go to the
``bench_*.py`` scripts only."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=True)
    print("== coverage.py", flush=True)
    subprocess.run([sys.executable, str(HERE / "coverage.py")], check=True)
    fresh = [sys.executable, str(HERE / "coverage_fresh.py")]
    print("== coverage_fresh.py", flush=True)
    subprocess.run(fresh, check=True)
    studentized = ["--methods", "boot_residual_t,boot_parametric_t"]
    out = ["--out", str(HERE / "results_coverage_fresh_t")]
    subprocess.run([*fresh, *studentized, *out], check=True)
    calibrated = ["--methods", "profile,boot_residual_cal,boot_parametric_cal,boot_case_cal"]
    for seed, suffix in (("2026", ""), ("26", "26")):
        out = ["--seed", seed, "--out", str(HERE / f"results_coverage_fresh_cal{suffix}")]
        subprocess.run([*fresh, *calibrated, *out], check=True)
