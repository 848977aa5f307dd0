"""tokenscale calibrate --structure-file / --candidates (which structure?) on a measure folder
and on hidden states, and tokenscale sweep --structure-file."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np

from tokenscale_sim.cli import main
from tokenscale_sim.montecarlo.sampling import token_sampler
from tokenscale_sim.structures.files import load_structure
from tokenscale_sim.structures.params import read_param_file
from tokenscale_sim.structures.which import candidate_paths

TRUTH = {"shared": 0.2, "image": 0.3, "weight": 0.4, "coupling": 0.5, "length": 5.0,
         "local_coupling": 0.3}  # fmt: skip


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_which_structure_on_hidden_states_and_a_measure_folder(tmp_path, capsys):
    jax.config.update("jax_enable_x64", True)
    pf = read_param_file(candidate_paths(("sequence-decay",))[0])
    sample = token_sampler(pf.structure(TRUTH), 24, 256)
    hidden = np.asarray(jax.vmap(sample)(jax.random.split(jax.random.key(0), 16)))
    np.save(tmp_path / "h.npy", hidden)
    files = [str(p) for p in candidate_paths(("exchangeable", "sequence-decay"))]
    argv = ["calibrate", "--hidden", str(tmp_path / "h.npy"), "--structure-file", *files,
            "--n-fit", "16", "--bootstrap", "20", "--out", str(tmp_path / "w")]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "pairs intervals" in out and "sequence-decay" in out
    # the size of the work first, then one bar over the files and the stages' seconds (stderr)
    assert err.startswith("calibrate: 2 structure files on 24 token counts (fitted on n <= 16), "
                          "20 pair-bootstrap refits each\n")  # fmt: skip
    assert "calibrate: 100%" in err and " 2/2 " in err
    assert err.rstrip().split("\n")[-1].startswith("total ")
    rows = _rows(tmp_path / "w" / "which.csv")
    assert rows[0]["name"] == "sequence-decay" and float(rows[1]["delta_aicc"]) > 10
    summary = json.loads((tmp_path / "w" / "which.json").read_text())
    assert summary["candidates"]["sequence-decay"]["interval_method"] == "pairs"
    for name in ("exchangeable", "sequence-decay"):  # calibrated files are structure files
        load_structure(tmp_path / "w" / f"calibrated_{name}.toml").validate(24)
    again = read_param_file(tmp_path / "w" / "structure.toml")
    assert again.params["length"].hi == 10000.0  # still parametrised: bounds kept
    assert (tmp_path / "w" / "which.png").stat().st_size > 2000
    assert main(["measure", "--hidden", str(tmp_path / "h.npy"), "--out", str(tmp_path / "m"),
                 "--no-fit", "--bootstrap", "0"]) == 0  # fmt: skip
    argv = ["calibrate", "--measure", str(tmp_path / "m"), "--candidates", "--n-fit", "16",
            "--out", str(tmp_path / "c"), "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # --quiet: nothing on stderr
    ranked = _rows(tmp_path / "c" / "which.csv")
    assert len(ranked) == 5 and ranked[0]["name"] in ("sequence-decay", "grid-decay")


def test_sweep_of_any_structure_file(tmp_path, capsys):
    path = str(candidate_paths(("patch-grid",))[0])
    argv = ["sweep", "--structure-file", path, "--grid", "length=1,4", "--grid",
            "image=0,0.1", "--n-max", "16", "--no-plot", "--out", str(tmp_path / "s")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.startswith("sweep: 4 grid points, exact theory\n") and " 4/4 " in err
    assert main([*argv[:-1], str(tmp_path / "q"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    rows = _rows(tmp_path / "s" / "sweep.csv")
    assert len(rows) == 4 and {"length", "image", "weight", "n_b"} <= set(rows[0])
    assert all(r["valid"] == "True" for r in rows)
    argv[4] = "gamma=1,2"
    assert main([*argv[:-1], str(tmp_path / "t")]) == 2
    assert "with NAME one of ['shared'" in capsys.readouterr().err
