"""Issue 32's second audit, class by class: cases found by hand after the property suite ran,
kept as plain tests (each one line and exit 2, or the right answer, and its folder untouched)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from bad_input_strategies import check_cli, example_folder

DENSE = '[[terms]]\nbranch = [[1.0, 0.0], [0.0, 1.0]]\nkernel = {{ kind = "dense", path = "{}" }}\n'
SWEEP = ["--no-plot", "--out={root}/out"]


def _lay(root):
    os.mkfifo(root / "fifo.npy")
    np.save(root / "complex.npy", np.eye(3) * (1 + 1j))
    (root / "fifo.toml").write_text(DENSE.format("fifo.npy"))
    (root / "complex.toml").write_text(DENSE.format("complex.npy"))
    (root / "bom.toml").write_bytes(
        '\ufeff[[terms]]\ncoupling = 0.3\nkernel = { kind = "identity" }\n'.encode()
    )


CASES = [  # (command, argv, exit code, words in the line)
    ("sweep", ["--grid=length=1:4:2", "--set=d=inf", *SWEEP], 2, "(finite), got 'd=inf'"),
    ("sweep", ["--grid=length=1:4:2", "--grid=length=2:3:2", *SWEEP], 2, "given twice"),
    ("sweep", ["--grid=length=1:4:2", "--set=length=3", *SWEEP], 2, "given twice"),
    ("sweep", ["--grid=length=1:4:1000000000", *SWEEP], 2, "at most 1,000,000"),
    ("sweep", ["--grid-file={root}/fifo.npy", *SWEEP], 2, "not a regular file"),
    ("theory", ["--structure-file={root}/complex.toml"], 2, "must be a real matrix"),
    ("theory", ["--structure-file={root}/fifo.toml"], 2, "not a regular file"),
    ("theory", ["--structure-file={root}/fifo.npy"], 2, "not a regular file"),
    ("theory", ["--structure-file={root}"], 2, "is a folder"),
    ("theory", ["--structure-file={root}/bom.toml", "--n-max=4"], 0, ""),
    ("measure", ["--hidden", "{root}/fifo.npy", "--out={root}/out"], 2, "is a named pipe (FIFO)"),
    ("fit", ["{root}/fifo.npy"], 2, "is a named pipe (FIFO)"),
]


@pytest.mark.parametrize(("command", "argv", "code", "words"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_audit_case(command, argv, code, words):
    with example_folder() as root:
        _lay(root)
        real = [a.replace("{root}", str(root)) for a in argv]
        result = check_cli(command, real, root, out=root / "out")
        assert result.code == code, result.stderr
        assert words in result.stderr, result.stderr
