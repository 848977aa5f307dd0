"""``tokenscale fit``: files written on success, exit code 2 and nothing written on bad input."""

import json

import numpy as np
import pytest

from tokenscale_sim.cli import main


@pytest.fixture
def csv_file(tmp_path):
    n = np.geomspace(1, 1024, 11)
    rng = np.random.default_rng(0)
    rows = ["benchmark,metric,n,score"]
    for b, slope in (("A", 0.2), ("B", 0.4)):
        for x in n:
            rows.append(f"{b},acc,{x:g},{2 * x**slope * np.exp(0.02 * rng.standard_normal()):.6f}")
    p = tmp_path / "scores.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.slow
def test_fit_csv_writes_tables_json_and_figures(tmp_path, csv_file, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "fit",
            str(csv_file),
            "--model",
            "alpha_n",
            "--group",
            "benchmark,metric",
            "--bootstrap",
            "200",
            "--out",
            str(out),
            "--plot",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "== A (alpha_n, log loss) ==" in printed and "acc" in printed
    assert "95 % intervals (c: profile, beta: profile, n_b: profile)" in printed
    assert "calibrated intervals are in fits.csv (*_boot_*), not the default" in printed
    names = {p.name for p in out.iterdir()}
    assert {"fits.csv", "fits.json", "alpha_band.csv", "fits_00.png", "alpha_band_00.png"} <= names
    header = (out / "fits.csv").read_text().splitlines()[0].split(",")
    assert {"benchmark", "metric", "beta", "n_b_ci_high", "n_b_status", "powerlaw_alpha"} <= set(
        header
    )
    meta = json.loads((out / "fits.json").read_text())
    assert meta["metadata"]["seed"] == 3 and meta["fit"]["model"] == "alpha_n"


def test_fit_paper_powerlaw_prints_every_group(tmp_path, capsys):
    assert main(["fit", "--paper", "--model", "powerlaw", "--out", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    for variant in ("vision_question_queries", "vision_queries_ft", "vision_queries_noft"):
        assert f"== {variant} (powerlaw" in printed
    assert (tmp_path / "p" / "fits.csv").read_text().count("\n") == 55


@pytest.mark.slow
def test_fit_transition_test_and_broken(tmp_path, csv_file):
    out = tmp_path / "t"
    args = ["fit", str(csv_file), "--group", "benchmark", "--transition-test", "50", "--out"]
    assert main([*args, str(out), "--shared", "n_b"]) == 0
    assert "transition_p" in (out / "fits.csv").read_text().splitlines()[0]
    assert json.loads((out / "fits.json").read_text())["tied"]["shared"] == ["n_b"]
    assert main(["fit", str(csv_file), "--shared", "gamma"]) == 2
    assert main(["fit", str(csv_file), "--group", "benchmark", "--model", "broken"]) == 0


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("n,score\n1,2\n2,x\n", [], "must be numeric"),
        ("n,score\n1,2\n1,3\n2,4\n2,5\n", [], "degenerate: 2 distinct n"),
        ("n,score\n1,2\n2,3\n", ["--model", "alpha_n"], "needs at least 4 points"),
        ("n,score\n1,2\n2,-3\n4,5\n8,6\n", [], "needs scores > 0"),
        ("n,score\n1,2\n2,3\n4,5\n8,6\n", ["--group", "benchmark"], "column 'benchmark' missing"),
        ("n,score\n1,2\n2,3\n4,5\n8,6\n", ["--loss", "weighted"], "standard-error column"),
        ("n,score\n1,2\n2,3\n4,5\n8,6\n", ["--level", "1.5"], "--level"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, content, extra, message):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "out"
    assert main(["fit", str(src), "--model", "powerlaw", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_usage_errors(tmp_path, capsys):
    assert main(["fit"]) == 2
    assert main(["fit", "--paper", "--plot"]) == 2
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_fits_json_convention_null_with_reason(tmp_path, csv_file):
    """Non-finite numbers are null and a field says why (no "inf" strings)."""
    out = tmp_path / "j"
    assert main(["fit", str(csv_file), "--group", "benchmark", "--out", str(out)]) == 0
    text = (out / "fits.json").read_text()
    assert '"inf"' not in text and '"-inf"' not in text and "Infinity" not in text
    fit = json.loads(text)["fit"]
    assert fit["model"] == "alpha_n" and len(fit["curves"]) == 2
    for curve in fit["curves"]:
        nb = curve["n_b"]
        if nb["estimate"] is None:
            assert curve["n_b_status"] in ("boundary_zero", "boundary_inf")
        if nb["estimate"] == 0.0:
            assert curve["n_b_status"] == "boundary_zero"
        if nb["low_open"]:
            assert nb["ci_low"] == 0.0  # n_b -> 0 not excluded: the end is the limit 0
        assert (nb["ci_high"] is None) == nb["high_open"]
        assert nb["interval"] == "profile"
    statuses = {c["n_b_status"] for c in fit["curves"]}
    assert statuses <= {"interior", "boundary_zero", "boundary_inf"}


def test_fit_bootstrap_says_its_work_and_times_its_stages_unless_quiet(csv_file, capsys):
    args = ["fit", str(csv_file), "--model", "powerlaw", "--group", "benchmark,metric"]
    assert main([*args, "--bootstrap", "20"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "fit: 2 curve(s) x law powerlaw: 2 fits; bootstrap: 20 resamples (40 fits)"
    assert err[2] == "bootstrap: 20 resamples x 2 curve(s)" and err[-1].startswith("total ")
    assert main([*args, "--bootstrap", "20", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(args) == 0  # a plain fit takes a second: no stage lines
    assert capsys.readouterr().err == ""
