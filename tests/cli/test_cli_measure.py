"""``tokenscale measure``: arrays users bring and the real ViT-S, files written, errors."""

import csv
import json

import numpy as np
import pytest

from tokenscale_sim.cli import main


def _hidden(pairs=4, n=20, d=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(pairs, 2, n, d)) + rng.normal(size=(pairs, 1, 1, d))


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_measure_hidden_file_writes_csv_json_and_figures(tmp_path, capsys):
    np.save(tmp_path / "h.npy", _hidden())
    out = tmp_path / "out"
    assert main(["measure", "--hidden", str(tmp_path / "h.npy"), "--out", str(out), "--plot"]) == 0
    printed = capsys.readouterr().out
    assert "lambda=" in printed and "0.86 measured at 6 pairs" in printed  # 4 pairs: labelled
    assert "layer all: 4 pairs of 20 tokens of width 8, lambda=" in printed  # what it used
    rows = _rows(out / "curves.csv")
    assert len(rows) == 20 and "layer" not in rows[0]
    assert rows[0]["psi_aa_mean"] == "" and rows[0]["n_b"] == ""  # missing at n = 1, not 0/NaN
    assert rows[1]["psi_aa_mean"] != ""
    report = json.loads((out / "measure.json").read_text())
    layer = report["layers"]["all"]
    assert layer["lambda_ci_points"][0] < layer["lambda"] < layer["lambda_ci_points"][1]
    assert layer["pairs"] == 4 and layer["n_max"] == 20
    low, high = layer["lambda_ci"]  # the default interval is the pair bootstrap's
    assert low < layer["lambda"] < high and layer["bootstrap_replicates"] <= 200
    assert layer["lambda_ci_status"].startswith("pair bootstrap; with fewer than 20 pairs")
    assert report["meta"]["options"]["normalise"] is True
    assert report["figures"] == ["overview.png"] and (out / "overview.png").stat().st_size > 0


def test_measure_two_files_and_no_fit(tmp_path):
    h = _hidden()
    np.save(tmp_path / "a.npy", h[:, 0])
    np.save(tmp_path / "b.npy", h[:, 1])
    out = tmp_path / "out"
    args = ["measure", "--hidden", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    assert main([*args, "--out", str(out), "--no-fit", "--raw"]) == 0
    layer = json.loads((out / "measure.json").read_text())["layers"]["all"]
    assert "lambda" not in layer and layer["normalised"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hidden", "missing.npy"], "no such file"),
        (["--hidden", "bad.npy"], "shape (pairs, 2, n, d)"),
        (["--hidden", "nan.npy"], "must be finite"),
        (["--hidden", "a.npy", "b.npy", "c.npy"], "one file or two"),
        (["--model", "vit-s", "--layer", "top"], "--layer must be an integer"),
    ],
)
def test_measure_errors_exit_2(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    np.save("bad.npy", np.ones((2, 3, 4)))
    h = _hidden()
    h[1, 0, 0, 0] = np.nan
    np.save("nan.npy", h)
    assert main(["measure", *extra, "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenscale measure: error:") and message in err


def test_measure_refuses_an_existing_run(tmp_path, capsys):
    np.save(tmp_path / "h.npy", _hidden())
    out = str(tmp_path / "out")
    args = ["measure", "--hidden", str(tmp_path / "h.npy"), "--out", out, "--no-fit"]
    assert main(args) == 0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_measure_vit_model(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skimage")
    out = tmp_path / "vit"
    args = ["measure", "--model", "vit-s", "--images", "chelsea", "coffee", "--layer", "12"]
    assert main([*args, "--order", "saliency", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("measure: vit-s on 1 image pair, 1 layer(s): the forward passes\n")
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    rows = _rows(out / "curves.csv")
    assert len(rows) == 256 and {r["layer"] for r in rows} == {"12"}
    report = json.loads((out / "measure.json").read_text())
    assert report["meta"]["pairs"] == [["chelsea", "coffee"]]
    assert report["meta"]["order"] == "saliency"
    assert set(report["layers"]) == {"12"} and report["layers"]["12"]["d"] == 384


def test_measure_vit_without_the_vision_extra_says_how_to_install(tmp_path, capsys, hide_extra):
    hide_extra("skimage", "onnx")
    assert main(["measure", "--model", "vit-s", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'tokenscale_sim[vision]'" in capsys.readouterr().err
