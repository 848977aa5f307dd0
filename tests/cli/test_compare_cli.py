"""``tokenscale compare``: tables, strict JSON and figures on success; exit code 2 and nothing
written on bad input."""

import csv
import json

import numpy as np
import pytest

from tokenscale_sim.cli import main


@pytest.fixture
def csv_file(tmp_path):
    n = np.array([1, 8, 16, 32, 64, 128, 256, 384, 512, 768])
    rng = np.random.default_rng(0)
    rows = ["benchmark,n,score"]
    for b, slope in (("A", 0.2), ("B", 0.4), ("C", 0.1)):
        for x in n:
            rows.append(f"{b},{x},{2 * x**slope * np.exp(0.02 * rng.standard_normal()):.6f}")
    p = tmp_path / "scores.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _strict(text):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_compare_writes_tables_json_and_figures(tmp_path, csv_file, capsys):
    out = tmp_path / "cmp"
    args = ["compare", str(csv_file), "--group", "benchmark", "--laws", "powerlaw,alpha_n"]
    assert main([*args, "--bootstrap", "20", "--seed", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== pooled over 3 curves ==" in printed and "AICc picks" in printed
    names = {p.name for p in out.iterdir()}
    assert {"compare.csv", "curvature.csv", "compare.json", "compare.png", "curvature.png"} <= names
    with (out / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["law"] for r in rows} == {"powerlaw", "alpha_n"}
    assert {r["benchmark"] for r in rows} == {"A", "B", "C"}
    for r in rows:  # each curve's Akaike weights sum to 1
        total = sum(float(x["akaike_weight"]) for x in rows if x["benchmark"] == r["benchmark"])
        assert total == pytest.approx(1.0)
    payload = _strict((out / "compare.json").read_text())
    assert payload["metadata"]["seed"] == 5 and payload["laws"] == ["powerlaw", "alpha_n"]
    first = payload["curves"][0]
    assert first["key"] == {"benchmark": "A"} and first["laws"]["powerlaw"]["status"] in (
        "ok",
        "not_converged",
    )
    assert set(payload["shape"]) >= {"n_holds", "n_curves", "sign_test_p", "fisher_p"}
    assert payload["finding"].startswith("AICc picks")


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        (["--holdout-last", "8"], "no curve can be compared"),
        (["--bootstrap", "1"], "--bootstrap takes 0 or an integer >= 2"),
        (["--laws", "powerlaw,nope"], "model must be one of"),
        (["--paper"], "either FILE or --paper"),
    ],
)
def test_compare_bad_input_is_one_line_and_writes_nothing(tmp_path, csv_file, capsys, extra, msg):
    out = tmp_path / "cmp"
    args = ["compare", str(csv_file), "--group", "benchmark", "--out", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0] and err[0].startswith("tokenscale compare: error:")
    assert not out.exists()


def test_compare_mixed_collection_with_replicates_says_what_was_skipped(tmp_path, capsys):
    """3-, 4- and 10-point curves (one with replicates): the run goes on and a closing line
    says which law was skipped on which curves; --holdout-last 0 is accepted."""
    rng = np.random.default_rng(1)
    rows = ["benchmark,n,score"]
    for b, ns in (("short", [1, 8, 64]), ("four", [1, 16, 128, 768]),
                  ("reps", [1, 1, 8, 8, 32, 64, 128, 256, 512, 512])):  # fmt: skip
        rows += [f"{b},{x},{2 * x**0.2 * np.exp(0.02 * rng.standard_normal()):.6f}" for x in ns]
    src = tmp_path / "mixed.csv"
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "cmp"
    args = ["compare", str(src), "--group", "benchmark", "--laws", "powerlaw", "--bootstrap", "0"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped (too few points" in printed and "on 2 curve(s) of 3/4 points" in printed
    payload = _strict((out / "compare.json").read_text())
    status = {c["key"]["benchmark"]: c["laws"]["powerlaw"]["status"] for c in payload["curves"]}
    assert status["short"] == status["four"] == "too few points" and status["reps"] == "ok"
    assert payload["curves"][2]["n_points"] == 10
    assert main([*args, "--holdout-last", "0"]) == 0
    assert "on 1 curve(s) of 3 points" in capsys.readouterr().out


def test_compare_says_its_work_then_shows_progress_unless_quiet(csv_file, capsys):
    args = ["compare", str(csv_file), "--group", "benchmark", "--laws", "powerlaw", "--bootstrap"]
    assert main([*args, "0"]) == 0
    err = capsys.readouterr().err
    # 3 curves of 10 points: full + hold-out + 10 leave-one-out rows each
    assert err.startswith("which law? 3 curves x 1 laws (3 pairs compared, 0 skipped")
    assert "36 fits (full, hold-out, leave-one-out), no resamples" in err
    assert "which law? powerlaw (1/1): 100%" in err and " 36/36 " in err
    assert main([*args, "0", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
