"""Which structure has the real ViT-S? The shipped candidate structures calibrated on its
patch tokens' psi(n) for n <= 64 at the first, middle and last layer, ranked (issue 35).

    tokenscale measure --model vit-s --layer all --bootstrap 0 --no-fit --out vit
    python benchmarks/which_vit.py --measure vit --runs which_runs

runs ``tokenscale calibrate --measure vit --layer L --candidates --n-fit 64 --out
which_runs/L`` for L in 0, 6, 12 (a run folder already there is read, not redone) and writes
``benchmarks/results_which_vit.json``: per layer, the ranking rows of ``which.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenscale_sim.cli import main

LAYERS = ("0", "6", "12")
OUT = Path(__file__).with_name("results_which_vit.json")


def run(measure: str, runs: str) -> dict:
    result = {}
    for layer in LAYERS:
        folder = Path(runs) / layer
        if not (folder / "which.json").is_file():
            argv = ["calibrate", "--measure", measure, "--layer", layer, "--candidates",
                    "--n-fit", "64", "--out", str(folder)]  # fmt: skip
            if main(argv) != 0:
                raise SystemExit(f"calibrate failed on layer {layer}")
        which = json.loads((folder / "which.json").read_text())
        result[layer] = {"ranking": which["ranking"], "d": which["d"], "n_fit": which["n_fit"],
                         "candidates": which["candidates"]}  # fmt: skip
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", required=True, help="a measure folder of the ViT-S")
    parser.add_argument("--runs", required=True, help="folder of the calibrate runs")
    args = parser.parse_args()
    OUT.write_text(json.dumps(run(args.measure, args.runs), indent=1, allow_nan=False) + "\n")
    print(f"wrote {OUT}")
