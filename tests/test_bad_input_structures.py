"""Issue 32, the structure-file, sweep, calibrate and measure-folder rows of "What bad input
gets": one line on stderr and exit code 2, never a traceback, a hang or a wrong number."""

import json
import os

import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.structures.files import load_structure

SHARED = """name = "s"
[[terms]]
weight = 1.0
coupling = 0.3
kernel = { kind = "exponential", length = 4.0 }
"""


def refused(capsys, argv) -> str:
    """The one stderr line of a refused command (exit 2, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"tokenscale {argv[0]}: error:"), err
    return lines[0]


def measure_folder(root, d=8, n=5, drop=None, short=False):
    root.mkdir()
    meta = {"layers": {"12": {"d": d}}}
    if drop == "layers":
        meta = {"x": 1}
    (root / "measure.json").write_text(json.dumps(meta))
    head = "n,psi_eq_mean,psi_aabb_mean,psi_ab_mean,divergence_mean"
    rows = [f"{k},0.5,{0.3 + 0.1 / k},0.2,{k**0.7:.4f}" for k in range(1, n + 1)]
    if short:
        rows[2] = "3,0.5"
    (root / "curves.csv").write_text("\n".join([head, *rows]) + "\n")
    return root


@pytest.mark.parametrize(("d", "text"), [(0, "got 0"), (-5, "got -5"), (2.7, "got 2.7"),
                                         (None, "got None"), (True, "got True")])  # fmt: skip
def test_calibrate_refuses_a_bad_width_in_measure_json(tmp_path, capsys, d, text):
    folder = measure_folder(tmp_path / "m", d=d)
    line = refused(capsys, ["calibrate", "--measure", str(folder), "--n-fit", "4",
                            "--free", "weight,length", "--out", str(tmp_path / "o")])  # fmt: skip
    assert "layers.12.d must be the hidden width, an integer >= 1" in line and text in line
    assert not (tmp_path / "o").exists()


DAMAGED = [({"drop": "layers"}, "'layers' must be a table"), ({"short": True}, "shorter than")]


@pytest.mark.parametrize(("kw", "text"), DAMAGED)
def test_calibrate_damaged_measure_folder(tmp_path, capsys, kw, text):
    folder = measure_folder(tmp_path / "m", **kw)
    line = refused(capsys, ["calibrate", "--measure", str(folder), "--n-fit", "4",
                            "--out", str(tmp_path / "o")])  # fmt: skip
    assert text in line


def test_measure_folder_that_is_a_file_or_missing(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    line = refused(capsys, ["calibrate", "--measure", str(tmp_path / "f"), "--out", "o"])
    assert "is not a folder" in line
    line = refused(capsys, ["calibrate", "--measure", str(tmp_path / "none"), "--out", "o"])
    assert "does not exist" in line


@pytest.mark.parametrize(
    "extra",
    [["--set", "d=inf"], ["--set", "length=nan"], ["--grid", "length=1,2", "--grid", "length=3"],
     ["--grid", "length=1,2", "--set", "length=3"]],
)  # fmt: skip
def test_sweep_infinite_setting_and_duplicate_axes(tmp_path, capsys, extra):
    argv = ["sweep", "--grid", "coupling=0.1,0.2", *extra, "--out", str(tmp_path / "o")]
    line = refused(capsys, argv)
    assert "finite" in line or "given twice" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("grid = 3\n", "[grid] must be a table"),
     ("[grid]\nlength = [1, 2]\nset = 1\n", "got 'set=1'"),
     ("set = [1]\n[grid]\nlength = [1.0]\n", "[set] must be a table"),
     ("[grid]\nlength = [" + "[" * 600 + "]" * 600 + "]\n", "nested too deeply"),
     ("[grid]\nlength = [1" + "0" * 400 + "]\n", "finite")],
)  # fmt: skip
def test_grid_file_that_is_not_tables(tmp_path, capsys, text, expected):
    (tmp_path / "g.toml").write_text(text)
    line = refused(capsys, ["sweep", "--grid-file", str(tmp_path / "g.toml"), "--out",
                            str(tmp_path / "o")])  # fmt: skip
    assert expected in line


def test_structure_file_huge_numbers_deep_nesting_bom_complex_fifo(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text(SHARED.replace("length = 4.0", "length = 1" + "0" * 400))
    with pytest.raises(ValueError, match="float range"):
        load_structure(big)
    deep = tmp_path / "deep.json"
    deep.write_text('{"terms": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ValueError, match=r"nested too deeply|deeper than"):
        load_structure(deep)
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + SHARED.encode())
    assert load_structure(bom).psi(3).psi_eq[0] == pytest.approx(0.3)
    np.save(tmp_path / "c.npy", np.eye(3) * (1 + 1j))
    dense = tmp_path / "dense.toml"
    dense.write_text('[[terms]]\nbranch = [[1.0, 0.0], [0.0, 1.0]]\n'
                     'kernel = { kind = "dense", path = "c.npy" }\n')  # fmt: skip
    with pytest.raises(ValueError, match="a real matrix"):
        load_structure(dense)
    os.mkfifo(tmp_path / "f.npy")
    dense.write_text(dense.read_text().replace("c.npy", "f.npy"))
    with pytest.raises(ValueError, match=r"readable \.npy file \(a regular file\).*FIFO"):
        load_structure(dense)  # refused at once, never opened
    with pytest.raises(ValueError, match="is a folder, not a file"):
        load_structure(tmp_path)


def test_monte_carlo_work_is_estimated_before_it_starts(tmp_path, capsys):
    line = refused(capsys, ["sweep", "--grid", "coupling=0.1,0.2", "--mc", "1000000000",
                            "--out", str(tmp_path / "o")])  # fmt: skip
    assert "--mc 1000000000" in line and "entries, about" in line and "lower --mc" in line
    folder = measure_folder(tmp_path / "m")
    line = refused(capsys, ["calibrate", "--measure", str(folder), "--n-fit", "4", "--free",
                            "weight,length", "--mc", "100000000000", "--out",
                            str(tmp_path / "o")])  # fmt: skip
    assert "lower --mc" in line
