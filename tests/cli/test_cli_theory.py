"""``tokenscale theory``: tables, files, and one-line errors with exit code 2."""

import json

import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.theory import closed_forms as theory


def test_theory_writes_what_it_says(tmp_path, capsys):
    csv, js, png = tmp_path / "t.csv", tmp_path / "t.json", tmp_path / "t.png"
    rc = main(
        [
            "theory",
            "--psi-eq",
            "0.5",
            "--psi-aa",
            "0.3",
            "--psi-ab",
            "0.25",
            "--n-max",
            "50",
            "--csv",
            str(csv),
            "--json",
            str(js),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    out = capsys.readouterr()
    assert "transition point n_b = 9" in out.out
    assert all(str(p) in out.err for p in (csv, js, png))
    table = np.genfromtxt(csv, delimiter=",", names=True)
    assert len(table) == 50
    np.testing.assert_allclose(
        table["upsilon"], theory.upsilon(table["n"], 0.5, 0.3, 0.25), rtol=1e-12
    )
    np.testing.assert_allclose(table["alpha"], theory.alpha(table["n"], 1.0, 9.0), rtol=1e-10)
    doc = json.loads(js.read_text())
    assert doc["n_b"] == pytest.approx(9.0)
    assert doc["parameters"]["n_max"] == 50 and "jax" in doc["metadata"]
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("structure", ["decaying", "patch-grid"])
def test_theory_structures(structure, tmp_path, capsys):
    csv = tmp_path / "t.csv"
    assert main(["theory", "--structure", structure, "--n-max", "100", "--csv", str(csv)]) == 0
    t = np.genfromtxt(csv, delimiter=",", names=True)
    assert np.all(np.isfinite(t["alpha"])) and np.all(np.isfinite(t["slope"]))
    assert set(np.unique(t["regime"])) <= {0, 1, 2}
    assert np.isnan(t["n_b"][0])  # undefined at n = 1: missing, written empty
    printed = capsys.readouterr().out
    # decaying correlations: n_b(n) < n from the start (the constant-psi picture does not apply)
    assert "linear from the start" in printed


def test_theory_json_reports_status(tmp_path):
    js = tmp_path / "t.json"
    assert main(["theory", "--structure", "decaying", "--n-max", "50", "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["n_b_status"] == "linear_from_start" and doc["n_b"] is None


def test_literal_convention_is_two_tokens_later(capsys):
    assert main(["theory", "--n-max", "5", "--convention", "literal"]) == 0
    assert "n_b = 11" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--psi-ab", "0.5", "--n-max", "30"], "delta = psi_aabb - psi_ab = -0.2 < 0"),
        (["--psi-eq", "3"], "psi_eq must be finite and in [-1.0, 1.0]"),
        (["--psi-aa", "0.3", "--psi-ab", "0.2", "--psi-eq", "1"], "psi_eq must be < 1"),
        (["--beta", "0"], "--beta must be > 0"),
        (["--structure", "decaying", "--length", "-2"], "length must be finite and in (0.0, inf]"),
        (["--n-max", "0"], "expected an integer >= 1"),
        (["--structure", "nope"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    try:
        rc = main(["theory", *argv])
    except SystemExit as stop:  # argparse's own usage errors
        rc = stop.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
