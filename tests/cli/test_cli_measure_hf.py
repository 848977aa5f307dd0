"""``tokenscale measure --hf``: files written, measure.json's record, errors, Ctrl-C, and the
output read by ``calibrate``. Tiny random models from ``tests/hf_models.py``."""

import csv
import json
from pathlib import Path

import hf_models
import pytest

from tokenscale_sim.cli import main


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("hfcli")
    return hf_models.save_llama(root / "llama"), hf_models.write_pairs(root / "pairs.jsonl")


def test_text_pairs_write_curves_and_what_was_measured(llama, tmp_path, capsys):
    path, pairs = llama
    out = tmp_path / "out"
    args = ["measure", "--hf", path, "--pairs", pairs, "--layer", "all", "--bootstrap", "0"]
    assert main([*args, "--device", "cpu", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "pair/s" in captured.err  # the progress bar shows the rate
    line = next(x for x in captured.out.splitlines() if x.startswith("layer 2: "))
    assert "pairs of" in line and "lambda=" in line  # how many pairs measured, then the fit
    report = json.loads((out / "measure.json").read_text())
    assert set(report["layers"]) == {"0", "1", "2"}
    meta = report["meta"]["hf"]
    assert meta["model"] == path and meta["resolved"] == str(Path(path).resolve())
    assert len(meta["config_sha256"]) == 16 and meta["class"] == "LlamaForCausalLM"
    assert meta["layers"] == [0, 1, 2] and meta["layer_count"] == 2
    assert meta["dtype"] == "float32" and meta["device"] == "cpu" and meta["kind"] == "text"
    assert meta["chat_template"] is True and meta["pairs"] == 4
    assert meta["pairs_source"]["file"] == str(Path(pairs).resolve())
    assert meta["positions"][0] == [10, 10, 3]  # '<s> user : the cat sat </s> <s> assistant :'
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["layer"] for r in rows} == {"0", "1", "2"}


def test_not_found_is_one_line_saying_how_to_fetch(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["measure", "--hf", "nobody-here/no-such-model", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hf download nobody-here/no-such-model" in err
    assert not out.exists()


def test_interrupted_run_leaves_nothing_half_written(llama, tmp_path, capsys, monkeypatch):
    from tokenscale_sim.hidden import hf

    real = hf.run_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(hf, "run_batch", interrupted)
    path, pairs = llama
    out = tmp_path / "out"
    args = ["measure", "--hf", path, "--pairs", pairs, "--batch", "1", "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder left behind


def test_bad_input_exits_2_with_one_line(llama, tmp_path, capsys, hide_extra):
    path, _ = llama
    out = str(tmp_path / "out")
    cases = [
        (["--hf", path, "--pairs", str(tmp_path / "missing.jsonl")], "no such file"),
        (["--hf", path, "--layer", "7"], "layers must lie in 0..2"),
        (["--hf", path, "--images", "astronaut", "chelsea"], "for vision models"),
        (["--hf", path, "--device", "gpu"], "device must be"),
        (["--model", "vit-s", "--pairs", "x.jsonl"], "--pairs must be one of"),
    ]
    for extra, message in cases:
        assert main(["measure", *extra, "--out", out]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
    hide_extra("torch", "transformers")
    assert main(["measure", "--hf", path, "--out", out]) == 2
    assert "pip install 'tokenscale_sim[hf]'" in capsys.readouterr().err


@pytest.mark.slow
def test_vlm_tower_and_calibrate_on_an_hf_measure_folder(llama, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        Image.new("RGB", (48, 40), colour).save(folder / f"c{i}.png")
    llava = hf_models.save_llava(tmp_path / "llava")
    vlm, tower = tmp_path / "vlm", tmp_path / "tower"
    base = ["measure", "--hf", llava, "--images", str(folder), "--device", "cpu"]
    assert main([*base, "--prompt", "the cat", "--bootstrap", "0", "--out", str(vlm)]) == 0
    meta = json.loads((vlm / "measure.json").read_text())["meta"]["hf"]
    assert meta["kind"] == "vlm" and meta["n"] == 16 and meta["layers"] == [2]
    assert meta["image_token_id"] == 4 and len(meta["pairs"]) == 3
    assert main([*base, "--tower", "--layer", "1", "--bootstrap", "0", "--out", str(tower)]) == 0
    meta = json.loads((tower / "measure.json").read_text())["meta"]["hf"]
    assert meta["kind"] == "tower" and meta["dropped_leading"] == 1
    # text pairs of the shipped file (24 pairs), then calibrate reads the folder unchanged
    path, _ = llama
    text = tmp_path / "text"
    args = ["measure", "--hf", path, "--n-max", "24", "--device", "cpu", "--out", str(text)]
    assert main(args) == 0
    assert json.loads((text / "measure.json").read_text())["meta"]["hf"]["pairs_source"]["shipped"]
    cal = tmp_path / "cal"
    assert main(["calibrate", "--measure", str(text), "--n-fit", "12", "--out", str(cal)]) == 0
    assert (cal / "calibrate.json").is_file()
