"""``tokenscale fit --law``: laws of the user's own, from an expression or their Python file."""

import csv

import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.fit import curves_from_arrays, fit_curves
from tokenscale_sim.fit.laws.expression import parse_law

N = np.array([1, 8, 16, 32, 64, 128, 256, 384, 512, 768.0])
TRUTH = {"S_inf": 80.0, "A": 50.0, "a": 0.5}


def saturating_scores(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 0.3, N.size)
    return TRUTH["S_inf"] - TRUTH["A"] * N ** -TRUTH["a"] + noise


@pytest.fixture
def sat_csv(tmp_path):
    path = tmp_path / "sat.csv"
    rows = "".join(f"{n:g},{y:.6f}\n" for n, y in zip(N, saturating_scores(), strict=True))
    path.write_text("n,score\n" + rows)
    return path


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_expression_law_fits_and_names_its_columns(sat_csv, tmp_path, capsys):
    out = tmp_path / "o"
    argv = [
        "fit",
        str(sat_csv),
        "--law",
        "S_inf - A * n**(-a)",
        "--start",
        "S_inf=80,A=50,a=0.2/0.5",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    (row,) = read(out / "fits.csv")
    for name, value in TRUTH.items():  # one column per parameter, named as in the law
        est, se = float(row[name]), float(row[f"{name}_se"])
        assert abs(est - value) < 5 * se, name
        assert float(row[f"{name}_ci_low"]) <= est <= float(row[f"{name}_ci_high"])
    printed = capsys.readouterr().out
    assert "S_inf" in printed
    # the comparison power law (a second compiled fit) only when asked for a law of your own
    assert "powerlaw_alpha" not in row and "alpha_powerlaw" not in printed
    assert main([*argv, "--compare-powerlaw", "--out", str(out), "--overwrite"]) == 0
    (compared,) = read(out / "fits.csv")
    assert "alpha_powerlaw" in capsys.readouterr().out
    n, y = np.loadtxt(sat_csv, delimiter=",", skiprows=1).T
    slope = np.polyfit(np.log(n), np.log(y), 1)[0]  # the power law: OLS of ln S on ln n
    assert float(compared["powerlaw_alpha"]) == pytest.approx(-slope, rel=1e-6)
    assert {k: compared[k] for k in row} == row  # the law's own columns are unchanged


def test_linear_space_law_intervals_contain_the_estimate():
    law = parse_law("S_inf - A * n**(-a)", starts={"S_inf": 80.0, "A": 50.0, "a": 0.5})
    res = fit_curves(curves_from_arrays(N, saturating_scores(1)), law)
    assert np.all(res.ci_low <= res.estimates) and np.all(res.estimates <= res.ci_high)
    assert np.all(res.ci_high - res.ci_low > 0)


def test_a_law_of_any_real_predictor(tmp_path, capsys):
    x = np.linspace(-3.0, 3.0, 12)
    y = 2.0 + 1.5 * x - 0.7 * x**2 + np.random.default_rng(2).normal(0.0, 0.05, x.size)
    path = tmp_path / "quad.csv"
    path.write_text(
        "dose,response\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(x, y, strict=True))
    )
    argv = ["fit", str(path), "--x-col", "dose", "--y-col", "response", "--loss", "linear",
            "--law", "c0 + c1*x + c2*x**2", "--out", str(tmp_path / "q")]  # fmt: skip
    assert main(argv) == 0
    (row,) = read(tmp_path / "q" / "fits.csv")
    coef, *_ = np.linalg.lstsq(np.stack([x**0, x, x**2], 1), y, rcond=None)
    np.testing.assert_allclose([float(row[c]) for c in ("c0", "c1", "c2")], coef, rtol=1e-6)
    assert "powerlaw_alpha" not in row  # no power law for a general predictor


def test_a_law_from_the_users_file(sat_csv, tmp_path):
    module = tmp_path / "mylaw.py"
    module.write_text(
        "def sat(x, theta):\n    return theta['S_inf'] - theta['A'] * x ** -theta['a']\n"
    )
    out = tmp_path / "f"
    argv = ["fit", str(sat_csv), "--law", f"{module}:sat", "--params", "S_inf,A,a",
            "--start", "S_inf=80,A=50,a=0.5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (row,) = read(out / "fits.csv")
    assert abs(float(row["a"]) - 0.5) < 5 * float(row["a_se"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--law", "S_inf - A * n^(-a)"], "operator '^' at column 14"),
        (["--law", "__import__('os')"], "function '__import__' at column 1"),
        (["--law", "S_inf - A * n.real"], "not allowed"),
        (["--law", "nosuch.py:f"], "no such file"),
        (["--law", "S - A*n", "--start", "S80"], "--start takes NAME=VALUE"),
        (["--x-col", "n"], "--x-col names the predictor of a --law"),
        (["--max-nfev", "0"], "--max-nfev must be in [1, 10000000], got 0"),
        (["--max-nfev", "99999999"], "--max-nfev must be in [1, 10000000], got 99999999"),
    ],
)
def test_bad_laws_are_one_line_and_exit_2(sat_csv, capsys, extra, message):
    assert main(["fit", str(sat_csv), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_function_law_needs_its_parameters(sat_csv, tmp_path, capsys):
    module = tmp_path / "law.py"
    module.write_text("def f(x, theta):\n    return theta['a'] * x\n")
    assert main(["fit", str(sat_csv), "--law", f"{module}:f"]) == 2
    assert "needs --params" in capsys.readouterr().err


def test_max_nfev_caps_the_least_squares_fit(sat_csv, tmp_path):
    """``--max-nfev`` is MINPACK's budget: 3 evaluations leave the fit of a law (Levenberg-
    Marquardt) short and say so; the default budget converges."""
    argv = ["fit", str(sat_csv), "--law", "S_inf - A * n**(-a)", "--start", "a=0.05",
            "--loss", "linear"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--max-nfev", "3", "--out", str(tmp_path / "b")]) == 0
    (full,), (short,) = read(tmp_path / "a" / "fits.csv"), read(tmp_path / "b" / "fits.csv")
    assert full["converged"] == "True" and short["converged"] == "False"
