"""``tokenscale design``: files written, strict JSON with status fields, one-line input errors."""

import csv
import json

import pytest

from tokenscale_sim.cli import main

TINY = ["--m", "20", "--top", "1", "--seed", "3"]


@pytest.mark.slow
def test_design_cli_writes_tables_json_and_figures(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["design", "--noise", "lognormal", "--sigma", "0.05", "--params", "1,0.5,16",
            "--n-b", "4,64", "--k-sweep", "6,10", "--out", str(out), "--plot", *TINY]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "power" in printed.out and "wrote" in printed.err
    # the work up front (per n_b: 3 reference + 1 searched design per n_b; K sweep: 2 x 2), then
    # a progress bar that ends at it
    assert "design: 1 budget(s) x 2 truth(s): up to 14 designs simulated" in printed.err
    assert " 14/14 " in printed.err
    names = {p.name for p in out.iterdir()}
    assert {"design.csv", "design.json", "power_vs_nb.png", "width_vs_k.png"} <= names
    with (out / "design.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # per n_b: paper + 2 log-spaced + 1 searched design per n_b (2) = 5
    assert len(rows) == 10
    assert {r["n_b_true"] for r in rows} == {"4.0", "64.0"}
    assert all(0 <= float(r["power"]) <= 1 for r in rows)
    payload = json.loads((out / "design.json").read_text())  # strict JSON: no NaN/inf
    assert payload["metadata"]["seed"] == 3
    assert all(r["status"] == "ok" for r in payload["rows"])
    assert {r["kind"] for r in payload["k_sweep"]} == {"screen-optimal", "log-spaced"}
    # the same folder again is refused without --overwrite
    assert main(args) == 2
    assert "already holds a 'design' run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--noise", "lognormal"], "needs --sigma"),
        (["--plot"], "--plot needs --out"),
        (["--params", "1,2"], "takes 3 parameters"),
        (["--params", "90,0.5,4"], "S\\(n\\) < 100"),
        (["--noise", "residuals", "--curve", "no such benchmark"], "no paper curve"),
        (["--law", "powerlaw", "--params", "30,-0.1", "--n-b", "4"], "needs a law with n_b"),
    ],
)
def test_design_cli_input_errors(extra, message, capsys):
    assert main(["design", *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    import re

    assert re.search(message, err), err
