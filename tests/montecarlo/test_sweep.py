"""tokenscale sweep: the family's exact curves, the vmapped grid against single runs, the CLI."""

from __future__ import annotations

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.montecarlo import sweep
from tokenscale_sim.structures import exact, families


def _random_theta(rng, count):
    w = rng.dirichlet([1, 1, 1, 1], size=count)[:, :3]
    return np.column_stack(
        [w, rng.uniform(0.3, 40, count), rng.uniform(-1, 1, count), rng.uniform(-1, 1, count)]
    )


@pytest.mark.parametrize("kernel", families.KERNEL_KINDS)
def test_family_curves_match_the_structure(kernel):
    rng = np.random.default_rng(0)
    for theta in _random_theta(rng, 6):
        s = families.to_structure(theta, kernel)
        c = families.exact_psi(jnp.asarray(theta), 40, kernel)
        p = s.psi(40)
        np.testing.assert_allclose(c.v, s.v(40), rtol=1e-12)
        np.testing.assert_allclose(c.psi_eq, p.psi_eq, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c.psi_aa[1:], p.psi_aa[1:], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c.psi_aa[1:], p.psi_bb[1:], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c.psi_ab[1:], p.psi_ab[1:], rtol=1e-12, atol=1e-15)


def _check_against_single_runs(axes, fixed) -> set[str]:
    """Every row of the sweep against exact.transition / theory_table / exact_curves of the
    point's Structure; returns the transition statuses met."""
    grid = sweep.make_grid(axes, fixed, d=48)
    cols = sweep.sweep(grid, at=25).columns
    assert cols["valid"].all()
    statuses = set()
    for p in range(len(grid.theta)):
        n_max, at = int(cols["n_max"][p]), int(cols["at"][p])
        assert at == min(25, n_max)
        s = families.to_structure(grid.theta[p])
        tp = exact.transition(s.psi(n_max))
        statuses.add(tp.status)
        assert cols["n_b_status"][p] == tp.status
        np.testing.assert_allclose(cols["n_b"][p], tp.n_b, rtol=1e-10)
        table, _ = exact.theory_table(s.psi(n_max), d=48)
        np.testing.assert_allclose(cols["slope_at"][p], table["slope"][at - 1], rtol=1e-9)
        assert (
            cols["regime_at"][p] == ("sublinear", "transition", "linear")[table["regime"][at - 1]]
        )
        curves = exact.exact_curves(s, n_max, 48, psi=False)
        np.testing.assert_allclose(cols["mean_d_at"][p], curves.gaussian_mean[at - 1], rtol=1e-12)
        np.testing.assert_allclose(cols["bound_at"][p], curves.bound[at - 1], rtol=1e-12)
        np.testing.assert_allclose(cols["delta_at"][p], table["delta"][at - 1], rtol=1e-10)
        np.testing.assert_allclose(cols["psi_eq_at"][p], table["psi_eq"][at - 1], rtol=1e-12)
    return statuses


def test_sweep_agrees_with_single_runs():
    axes = {"length": np.array([0.7, 30.0]), "local_coupling": np.array([0.4]),
            "n_max": np.array([17, 60])}  # fmt: skip
    statuses = _check_against_single_runs(axes, {"shared": 0.1, "weight": 0.6, "coupling": 0.2})
    assert len(statuses) == 2  # beyond and linear_from_start


@pytest.mark.slow
def test_sweep_agrees_with_single_runs_on_a_wider_grid():
    rng = np.random.default_rng(1)
    axes = {"image": np.array([0.0, 0.05]), "length": np.array([0.7, 3.0, 30.0]),
            "local_coupling": np.array([-0.3, 0.4]), "n_max": np.array([2, 17, 60])}  # fmt: skip
    fixed = {"shared": 0.1, "weight": 0.6, "coupling": float(rng.uniform(-1, 1))}
    assert len(_check_against_single_runs(axes, fixed)) >= 2


def test_constant_psis_and_invalid_points():
    grid = sweep.make_grid({"shared": np.array([0.2, 0.9])}, {"weight": 0.0, "image": 0.3},
                           n_max=30)  # fmt: skip
    cols = sweep.sweep(grid).columns
    assert cols["valid"].tolist() == [True, False]
    s = families.to_structure(grid.theta[0])
    tp = exact.transition(s.psi(30))
    assert cols["n_b_status"][0] == tp.status == "constant"
    np.testing.assert_allclose(cols["n_b"][0], tp.n_b, rtol=1e-12)
    assert np.isnan(cols["n_b"][1]) and cols["n_b_status"][1] == ""


def test_parse_axis_and_grid_errors():
    assert sweep.parse_axis("coupling=0:1:3")[1].tolist() == [0.0, 0.5, 1.0]
    for bad, message in [
        ("colour=1,2", "NAME one of"),
        ("length", "NAME one of"),
        ("length=0:4:3:log", "lo, hi > 0"),
        ("length=1:4", "lo:hi:count"),
        ("length=1:4:x", "lo:hi:count"),
        ("length=1,nan", "finite"),
        ("d=2.5,4", "integers >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            sweep.parse_axis(bad)
    with pytest.raises(ValueError, match="both on the grid and fixed"):
        sweep.make_grid({"length": np.ones(2)}, {"length": 2.0})
    with pytest.raises(ValueError, match="unknown parameter"):
        sweep.make_grid({"lenght": np.ones(2)})
    with pytest.raises(ValueError, match="n_max must be an integer"):
        sweep.make_grid({"length": np.ones(2)}, {"n_max": 0})


def test_monte_carlo_per_point_matches_exact():
    jax.config.update("jax_enable_x64", True)
    grid = sweep.make_grid({"length": np.array([2.0, 10.0])}, {"shared": 0.2}, d=16, n_max=12)
    result = sweep.sweep(grid)
    mc = sweep.monte_carlo_column(jax.random.key(3), result, 400)
    assert np.all(np.abs(mc["mc_z_at"]) < 5)
    assert np.all(mc["mc_se_at"] > 0)


def test_cli_sweep(tmp_path, capsys):
    grid_file = tmp_path / "g.toml"
    grid_file.write_text('[grid]\nlength = "1:20:4:log"\nimage = [0.0, 0.1]\n[set]\nshared = 0.1\n')
    out = tmp_path / "sw"
    argv = ["sweep", "--grid-file", str(grid_file), "--grid", "coupling=0,0.5", "--n-max", "32",
            "--at", "8", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {r["at"] for r in rows} == {"8"}
    assert {r["shared"] for r in rows} == {"0.1"}
    assert json.loads((out / "sweep.json").read_text())["points"] == 16
    assert (out / "phase.png").stat().st_size > 0
    capsys.readouterr()
    assert main([*argv, "--mc", "4"]) == 2  # exists, no --overwrite
    assert "already holds a 'sweep' run" in capsys.readouterr().err
    for bad, message in [
        (["--grid", "length=1:2"], "lo:hi:count"),
        (["--set", "shared"], "--set expects NAME=NUMBER"),
        ([], "at least one --grid"),
        (["--grid-file", str(tmp_path / "none.toml")], "does not exist"),
    ]:
        assert main(["sweep", *bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert not (tmp_path / "x").exists()
