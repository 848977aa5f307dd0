"""The example files the README's commands read, and how they are made (NumPy only, seeded).

They ship with the package (``tokenscale_sim/data/examples/``, package data) and ``tokenscale
examples DIR`` copies them into a folder of the user's. ``tests/test_readme_blocks.py`` checks
that the shipped files are what :func:`build` makes; after changing this module, regenerate them
with ``python tests/readme_examples.py`` (from the repository root).

- ``my_scores.csv``: four benchmarks of the paper's first model variant (columns ``benchmark``,
  ``n``, ``score``; scores in percent; 10 token counts each): a long table of score curves.
- ``data.csv``: NIST's Misra1a (14 points) as columns ``dose``, ``response``: a law of any reals.
- ``states.npz``: hidden states ``hidden`` of shape (pairs, 2, n, d) = (6, 2, 48, 24), float32,
  drawn from the exchangeable structure psi_eq = 0.5, psi_AA = psi_BB = 0.3, psi_AB = 0.25
  (n_b = 9) by a Cholesky factor of its 2n x 2n correlation.
- ``my_structure.toml`` and ``block.npy``: the README's structure file and its dense 64 x 64 block
  (half an exponential kernel of length 3, half a cosine of period 16: PSD, unit diagonal).
"""

from __future__ import annotations

import csv
import io
import sys
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "tokenscale_sim" / "data" / "examples"
"""Where the files ship (package data of ``tokenscale_sim``)."""

BENCHMARKS = ("POPE", "TextVQA_VAL", "ChartQA_TEST", "SEEDBench_IMG")
"""The paper's benchmarks (first model variant, metric Overall) in ``my_scores.csv``."""

STRUCTURE_TOML = "".join(
    line + "\n"
    for line in (
        'name = "shared + decaying + a dense block"',
        "[[terms]]",
        "weight = 0.2",
        "branch = [[1.0, 1.0], [1.0, 1.0]]           # C = [[C_AA, C_AB], [C_BA, C_BB]]",
        'kernel = { kind = "ones" }',
        "[[terms]]",
        "weight = 0.7",
        "coupling = 0.3                               # C = [[1, 0.3], [0.3, 1]]",
        'kernel = { kind = "exponential", length = 8.0 }'
        "   # also identity, powerlaw (gamma), grid (length, width)",
        "[[terms]]",
        "weight = 0.1",
        "branch = [[1.0, 0.0], [0.0, 1.0]]",
        'kernel = { kind = "dense", path = "block.npy" }   # n x n, relative to the file',
    )
)
"""``my_structure.toml``: the structure file the README shows (the README's block must equal it)."""

BLOCK_SIZE = 64


def my_scores_csv() -> str:
    """``benchmark,n,score`` rows of :data:`BENCHMARKS`, copied from the shipped paper scores."""
    text = resources.files("tokenscale_sim").joinpath("data/paper_scores.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    variant = rows[0]["model_variant"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["benchmark", "n", "score"])
    for bench in BENCHMARKS:
        for r in rows:
            if (r["model_variant"], r["benchmark"], r["metric"]) == (variant, bench, "Overall"):
                writer.writerow([bench, r["n_l"], r["score"]])
    return out.getvalue()


def data_csv() -> str:
    """NIST Misra1a as ``dose,response`` (x, y in NIST's digits)."""
    text = resources.files("tokenscale_sim").joinpath("data/nist/Misra1a.dat").read_text()
    lines = text.splitlines()
    at = max(i for i, ln in enumerate(lines) if ln.split() == ["Data:", "y", "x"])
    rows = [ln.split() for ln in lines[at + 1 :] if ln.strip()]
    return "dose,response\n" + "".join(f"{float(x)!r},{float(y)!r}\n" for y, x in rows)


def exchangeable_states(pairs: int = 6, n: int = 48, d: int = 24, seed: int = 0) -> np.ndarray:
    """(pairs, 2, n, d) float32 Gaussian tokens of the exchangeable structure (n_b = 9)."""
    a, c, e = 0.3, 0.25, 0.5  # psi_AA = psi_BB, psi_AB, psi_eq
    ones, eye = np.ones((n, n)), np.eye(n)
    sigma = np.kron([[a, c], [c, a]], ones) + np.kron([[1 - a, e - c], [e - c, 1 - a]], eye)
    factor = np.linalg.cholesky(sigma)
    z = np.random.default_rng(seed).standard_normal((pairs, 2 * n, d))
    return (factor @ z).reshape(pairs, 2, n, d).astype(np.float32)


def dense_block(size: int = BLOCK_SIZE) -> np.ndarray:
    """(size, size): 0.5 exp(-|i-j|/3) + 0.5 cos(2 pi (i-j)/16), PSD with unit diagonal."""
    lag = np.subtract.outer(np.arange(size), np.arange(size)).astype(float)
    return 0.5 * np.exp(-np.abs(lag) / 3.0) + 0.5 * np.cos(2 * np.pi * lag / 16.0)


def build(folder: Path) -> list[Path]:
    """Write every example file into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_scores.csv").write_text(my_scores_csv())
    (folder / "data.csv").write_text(data_csv())
    (folder / "my_structure.toml").write_text(STRUCTURE_TOML)
    np.save(folder / "block.npy", dense_block())
    np.savez_compressed(folder / "states.npz", hidden=exchangeable_states())
    return sorted(folder.iterdir())


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED):
        print(path)
