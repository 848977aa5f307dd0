"""tokenscale calibrate on a measure folder and on hidden states; its structure file runs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.montecarlo.sampling import token_sampler
from tokenscale_sim.structures import families

TRUTH = np.array([0.2, 0.1, 0.4, 6.0, 0.3, 0.5])


def _hidden(path, pairs=12, n=16, d=64):
    jax.config.update("jax_enable_x64", True)
    sample = token_sampler(families.to_structure(TRUTH), n, d)
    h = np.asarray(jax.vmap(sample)(jax.random.split(jax.random.key(0), pairs)))
    np.save(path, h)
    return path


def test_calibrate_cli(tmp_path, capsys):
    hidden = _hidden(tmp_path / "h.npy")
    assert main(["measure", "--hidden", str(hidden), "--out", str(tmp_path / "m"),
                 "--bootstrap", "0"]) == 0  # fmt: skip
    free = "weight,length,coupling"
    fixed = ["--set", "shared=0.2", "--set", "image=0.1", "--set", "local_coupling=0.5"]
    out = tmp_path / "cal"
    argv = ["calibrate", "--measure", str(tmp_path / "m"), "--n-fit", "10", "--free", free,
            *fixed, "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err  # the work first, then each stage's seconds (stderr)
    assert err.startswith("calibrate: the built-in family on 16 token counts (fitted on n <= 10)\n")
    assert "writing the structure, tables and figure" in err and "\ntotal " in err
    summary = json.loads((out / "calibrate.json").read_text())
    assert summary["interval_method"] == "points" and summary["d"] == 64
    assert set(summary["intervals"]) == {"weight", "length", "coupling"}
    assert set(summary["prediction_errors"]) == {"exact", "bound"}
    assert (out / "calibrate.png").stat().st_size > 0
    # the calibrated structure is a structure file
    assert main(["theory", "--structure-file", str(out / "structure.toml"), "--n-max", "8"]) == 0
    pairs = tmp_path / "cal_pairs"
    argv = ["calibrate", "--hidden", str(hidden), "--n-fit", "10", "--free", free, *fixed,
            "--bootstrap", "20", "--out", str(pairs)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((pairs / "calibrate.json").read_text())
    assert summary["interval_method"] == "pairs"
    lo, hi = summary["intervals"]["coupling"]
    assert lo <= summary["estimates"]["coupling"] <= hi
    capsys.readouterr()
    for bad, message in [
        (["--measure", str(tmp_path)], "no curves.csv"),
        (["--measure", str(tmp_path / "m"), "--n-fit", "99"], "--n-fit must be <="),
        (["--measure", str(tmp_path / "m"), "--free", "colour"], "free must be distinct"),
        (["--measure", str(tmp_path / "m"), "--set", "shared"], "--set expects NAME=NUMBER"),
        (["--measure", str(tmp_path / "m"), "--layer", "3"], "--layer must be one of"),
    ]:
        assert main(["calibrate", "--n-fit", "10", *bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "x").exists()


@pytest.mark.slow  # 40 s: the fast tier keeps test_calibrate_cli end to end
def test_report_section_from_a_measurement(tmp_path):
    """The study's calibration stage on a (simulated) measurement and its report section."""
    from tokenscale_sim.cli.report import calibration_section
    from tokenscale_sim.hidden.measure import MeasureOptions, measure_layers
    from tokenscale_sim.study import StudyConfig, calibration_study

    jax.config.update("jax_enable_x64", True)
    hidden = np.load(_hidden(tmp_path / "h.npy", n=24))
    vision = {"different images": measure_layers(hidden[None], [12], MeasureOptions(fit=False))}
    config = StudyConfig(calibration_n_fit=12, calibration_m=16)
    c = calibration_study(jax.random.key(1), vision, config)
    assert c is not None
    assert c.label == "different images, layer 12" and c.d == 64
    assert c.calibration.n_fit == 12 and c.prediction.monte_carlo.shape == (24,)
    assert set(c.prediction.errors) == {"exact", "bound", "monte_carlo"}
    assert c.prediction.errors["exact"]["max_rel"] < 0.2  # a Gaussian structure predicts itself
    summary: dict = {}
    page = calibration_section(type("Study", (), {"calibration": c})(), tmp_path, summary)
    assert "Relative error of the predicted mean D(n)" in page
    assert (tmp_path / "calibration.png").stat().st_size > 2000
    assert (tmp_path / "calibrated_structure.toml").is_file()
    assert summary["calibration"]["prediction_errors"] == c.prediction.errors
    assert "Which structure?" in page and (tmp_path / "which.png").stat().st_size > 2000
    assert [r["name"] for r in summary["calibration"]["which"]][:1] != []
    assert calibration_study(jax.random.key(1), None, config) is None
