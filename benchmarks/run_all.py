"""Run every benchmark in one go (``make bench``); each script prints its table and writes its
results file next to it (``results_*.md``), which ``benchmarks/README.md`` collects. The
coverage study (``coverage.py``, results_coverage.md) runs last; arguments go to the
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
