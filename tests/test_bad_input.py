"""Issue 14: what bad input gets. One test per reported case (see "What bad input gets" in the
README): one line on stderr and exit code 2, nothing lost or overwritten, no silently wrong
numbers."""

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tokenscale_sim import fit
from tokenscale_sim.cli import main
from tokenscale_sim.runtime import validation
from tokenscale_sim.structures import terms as structures
from tokenscale_sim.theory import closed_forms as theory

SIM = ["simulate", "--structure", "decaying", "--n-max", "4", "--d", "4", "--m", "16",
       "--chunk", "16", "--quiet"]  # fmt: skip


def error_line(capsys, command: str) -> str:
    """The one stderr line of a refused command (no traceback, no usage block)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tokenscale {command}: error:"), err
    assert "Traceback" not in err
    return lines[0]


def exits_2(argv) -> int:
    """``main(argv)``'s exit code, argparse's SystemExit included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@contextlib.contextmanager
def unwritable(folder):
    """Make ``folder`` unwritable: ``chattr +i`` as root (root ignores permissions), else 0o500."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: no way to make a folder unwritable")
        if subprocess.run(["chattr", "+i", str(folder)], check=False).returncode:
            pytest.skip("chattr +i is not supported on this file system")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)


def write_curves(path, curves: dict[str, list[float]], n=(1, 2, 4, 8, 16, 32)):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["curve", "n", "score"])
        for name, ys in curves.items():
            w.writerows([name, k, y] for k, y in zip(n, ys, strict=True))


# ---------------------------------------------------------------- output paths: one clean line


def test_theory_csv_into_a_folder(tmp_path, capsys):
    assert main(["theory", "--csv", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys, "theory")
    assert main(["theory", "--csv", ""]) == 2  # not silently skipped
    assert "is a folder" in error_line(capsys, "theory")


def test_theory_csv_under_a_file(tmp_path, capsys):
    (tmp_path / "file.csv").write_text("x")
    assert main(["theory", "--csv", str(tmp_path / "file.csv" / "t.csv")]) == 2
    assert "is a file, not a folder" in error_line(capsys, "theory")
    assert (tmp_path / "file.csv").read_text() == "x"


def test_theory_csv_into_an_unwritable_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        assert main(["theory", "--csv", str(locked / "t.csv")]) == 2
    assert "cannot write" in error_line(capsys, "theory")
    assert not list(locked.iterdir())


def test_fit_out_in_an_unwritable_folder(tmp_path, capsys):
    write_curves(tmp_path / "s.csv", {"a": [1.0, 1.1, 1.3, 1.4, 1.6, 1.9]})
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = ["fit", str(tmp_path / "s.csv"), "--group", "curve", "--model", "powerlaw"]
    with unwritable(locked):
        assert main([*argv, "--out", str(locked / "fits")]) == 2
    assert "cannot write" in error_line(capsys, "fit")
    assert not list(locked.iterdir())


# ----------------------------------------------------------------- sizes: estimated, refused


def test_theory_huge_n_max_is_refused_with_the_estimate(capsys):
    assert main(["theory", "--n-max", "1000000000"]) == 2
    line = error_line(capsys, "theory")
    assert "needs about" in line and "GiB" in line and "--n-max" in line


def test_simulate_max_chunk_gb_beyond_the_machine(tmp_path, capsys):
    huge = validation.machine_memory() / 2**30 * 4
    assert main([*SIM, "--out", str(tmp_path / "r"), "--max-chunk-gb", str(huge)]) == 2
    assert "memory available on this machine" in error_line(capsys, "simulate")
    assert not (tmp_path / "r").exists()


def test_measure_chunk_beyond_memory_is_refused(tmp_path, capsys):
    side = int(np.sqrt(validation.machine_memory() / 64)) + 1024  # one pair needs 64 side^2 bytes
    path = tmp_path / "big.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(1, 2, side, side)).flush()
    assert main(["measure", "--hidden", str(path), "--out", str(tmp_path / "m")]) == 2
    assert "needs about" in error_line(capsys, "measure")
    assert not (tmp_path / "m").exists()


def test_fit_bootstrap_beyond_memory_is_refused(tmp_path, capsys):
    write_curves(tmp_path / "s.csv", {"a": [1.0, 1.1, 1.3, 1.4, 1.6, 1.9]})
    argv = ["fit", str(tmp_path / "s.csv"), "--group", "curve", "--bootstrap", str(10**15)]
    assert main(argv) == 2
    assert "needs about" in error_line(capsys, "fit")


# ------------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize("seed", ["100000000000000000000000", "-1", str(2**63)])
def test_seed_outside_jax_range(tmp_path, capsys, seed):
    assert exits_2([*SIM, "--out", str(tmp_path / "r"), "--seed", seed]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "seed" in line and "--help" in line
    assert not (tmp_path / "r").exists()


def test_float32_keys_of_large_seeds_do_not_collide():
    jax.config.update("jax_enable_x64", False)
    try:
        a = jax.random.key_data(validation.key_from_seed("t", 2**32 + 5))
        b = jax.random.key_data(validation.key_from_seed("t", 5))
    finally:
        jax.config.update("jax_enable_x64", True)
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    c = jax.random.key_data(validation.key_from_seed("t", 2**32 + 5))
    assert np.array_equal(np.asarray(a), np.asarray(c))  # the same key with float64


# --------------------------------------------------------------------- resume: bad checkpoints


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "keyless"])
def test_resume_from_a_damaged_checkpoint(tmp_path, capsys, kind):
    out = tmp_path / "r"
    assert main([*SIM, "--out", str(out)]) == 0
    ckpt = out / "checkpoint.npz"
    if kind == "keyless":  # a valid .npz without the checkpoint's arrays
        np.savez(ckpt, a=np.zeros(3))
    else:
        data = ckpt.read_bytes()
        ckpt.write_bytes(
            {"truncated": data[: len(data) // 2], "empty": b"", "text": b"m = 16\n"}[kind]
        )
    before = ckpt.read_bytes()
    assert main([*SIM, "--out", str(out), "--m", "32", "--resume"]) == 2
    line = error_line(capsys, "simulate")
    assert str(ckpt) in line and "not a valid checkpoint" in line and "pickle" not in line
    assert ckpt.read_bytes() == before


# ---------------------------------------------------------------- measure: bad hidden states


def test_measure_bad_hidden_files_name_the_file(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"abcde")
    arr = np.ones((2, 2, 3, 4), dtype="<f4")
    head = json.dumps(
        {"hidden": {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}}
    ).encode()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((len(head).to_bytes(8, "little") + head + arr.tobytes())[:-8])
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([1, "a"], dtype=object), allow_pickle=True)
    for path in (junk, cut, obj):
        assert main(["measure", "--hidden", str(path), "--out", str(tmp_path / "m")]) == 2
        line = error_line(capsys, "measure")
        assert str(path) in line and "not a valid" in line and "pickle" not in line
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------- API


def test_fit_curves_of_nothing():
    with pytest.raises(TypeError, match="must be a CurveSet"):
        fit.fit_curves([], "alpha_n")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one curve"):
        fit.curves_from_arrays([], [])
    with pytest.raises(ValueError, match="at least one curve"):
        fit.curves_from_arrays(np.arange(1, 4), np.zeros((0, 3)))


def test_check_key_says_pass_a_key():
    validation.check_key("simulate", jax.random.key(0))
    validation.check_key("simulate", jax.random.PRNGKey(0))
    for bad in (0, np.uint32(3), jnp.zeros(3)):
        with pytest.raises(TypeError, match=r"simulate: key must be .*jax\.random\.key\(seed\)"):
            validation.check_key("simulate", bad)


# --------------------------------------------------------------- nothing lost or overwritten


def test_theory_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    csv_path = tmp_path / "existing.csv"
    csv_path.write_text("mine\n")
    assert main(["theory", "--csv", str(csv_path)]) == 2
    assert "--overwrite" in error_line(capsys, "theory")
    assert csv_path.read_text() == "mine\n"
    assert main(["theory", "--csv", str(csv_path), "--overwrite"]) == 0
    assert csv_path.read_text().startswith("n,")


def test_theory_checks_the_plot_before_writing_the_csv(tmp_path, capsys):
    part = tmp_path / "part.csv"
    assert main(["theory", "--csv", str(part), "--plot", str(tmp_path / "t.xyz")]) == 2
    assert "--plot" in error_line(capsys, "theory")
    assert not part.exists()


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failed_overwrite_keeps_the_previous_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main([*SIM, "--out", str(out)]) == 0
    before = _snapshot(out)

    def broken(*args, **kwargs):
        raise ValueError("simulate: broken on purpose")

    monkeypatch.setattr("tokenscale_sim.cli.simulate.simulate", broken)
    assert main([*SIM, "--out", str(out), "--overwrite", "--m", "32"]) == 2
    error_line(capsys, "simulate")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging folder left


def test_failed_run_does_not_block_a_plain_rerun(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"

    def broken(*args, **kwargs):
        raise ValueError("simulate: broken on purpose")

    with monkeypatch.context() as m:
        m.setattr("tokenscale_sim.cli.simulate.simulate", broken)
        assert main([*SIM, "--out", str(out)]) == 2
    error_line(capsys, "simulate")
    assert main([*SIM, "--out", str(out)]) == 0
    assert (out / "simulation.csv").exists()


def test_fit_overwrite_leaves_no_stale_files(tmp_path):
    write_curves(tmp_path / "s.csv", {"a": [1.0, 1.1, 1.3, 1.4, 1.6, 1.9]})
    argv = ["fit", str(tmp_path / "s.csv"), "--group", "curve", "--model", "powerlaw",
            "--out", str(tmp_path / "fits")]  # fmt: skip
    assert main([*argv, "--bootstrap", "8"]) == 0
    assert (tmp_path / "fits" / "alpha_band.csv").exists()
    assert main([*argv, "--overwrite"]) == 0
    assert not (tmp_path / "fits" / "alpha_band.csv").exists()


# ------------------------------------------------------------------- silently wrong numbers


def test_negative_delta_is_cut_before_upsilon_reaches_zero(tmp_path, capsys):
    args = ["theory", "--psi-eq", "0.5", "--psi-aa", "0.2", "--psi-ab", "0.3"]
    assert main([*args, "--n-max", "6"]) == 2
    assert "n_max <= 5" in error_line(capsys, "theory")
    assert main([*args, "--n-max", "64"]) == 2
    assert "n_max <= 5" in error_line(capsys, "theory")
    path = tmp_path / "t.csv"
    assert main([*args, "--n-max", "5", "--csv", str(path)]) == 0
    t = np.genfromtxt(path, delimiter=",", names=True)
    np.testing.assert_allclose(t["upsilon"], [0.5, 0.8, 0.9, 0.8, 0.5], rtol=1e-12)
    # slope of sqrt(Upsilon) = (1/2) d ln Upsilon / d ln n: 0 at the peak n = 3, negative after
    n = t["n"]
    np.testing.assert_allclose(t["slope"], 0.5 * (1 + n / (n - 6)), rtol=1e-12, atol=1e-12)
    assert [theory.REGIMES[int(r)] for r in t["regime"]][3:] == ["decreasing"] * 2
    assert t["alpha"][-1] == pytest.approx(0.0, abs=1e-12)  # Upsilon(5) = Upsilon(1)


def test_theory_applies_shared(tmp_path):
    plain, mixed = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["theory", "--n-max", "16", "--csv", str(plain)]) == 0
    assert main(["theory", "--n-max", "16", "--shared", "0.5", "--csv", str(mixed)]) == 0
    a = np.genfromtxt(plain, delimiter=",", names=True)
    b = np.genfromtxt(mixed, delimiter=",", names=True)
    s = 0.5 * structures.exchangeable(0.5, 0.3, psi_ab=0.25) + structures.shared(0.5)
    np.testing.assert_allclose(b["upsilon"], s.upsilon(16), rtol=1e-12)  # what simulate uses
    np.testing.assert_allclose(b["upsilon"], 0.5 * a["upsilon"], rtol=1e-12)
    np.testing.assert_allclose(b["n_b"][1:], a["n_b"][1:], rtol=1e-12)


def test_shared_out_of_range_reports_its_value(capsys):
    assert main(["theory", "--structure", "decaying", "--shared", "1.5"]) == 2
    assert "--shared must be a weight in [0, 1], got 1.5" in error_line(capsys, "theory")


def test_resume_in_another_precision_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*SIM, "--out", str(out)]) == 0
    before = _snapshot(out)
    try:
        rc = main([*SIM, "--out", str(out), "--m", "32", "--resume", "--float32"])
    finally:
        jax.config.update("jax_enable_x64", True)
    assert rc == 2
    line = error_line(capsys, "simulate")
    assert "float64 run" in line and "without --float32" in line
    assert _snapshot(out) == before


def test_constant_curve_is_reported_as_degenerate(tmp_path, capsys):
    alone = tmp_path / "alone.csv"
    write_curves(alone, {"flat": [0.5] * 6})
    assert main(["fit", str(alone), "--group", "curve"]) == 2
    assert "flat is degenerate" in error_line(capsys, "fit")
    among = tmp_path / "among.csv"
    write_curves(among, {"ok": [1.0, 1.1, 1.3, 1.4, 1.6, 1.9], "flat": [0.5] * 6})
    assert main(["fit", str(among), "--group", "curve"]) == 2
    assert "flat is degenerate" in error_line(capsys, "fit")


def test_gaussian_divergence_float32_matches_float64():
    d = np.geomspace(1, 1e8, 57)
    d = np.concatenate([np.arange(1.0, 20.0), d])
    mean64 = np.asarray(theory.gaussian_mean_divergence(1.0, d))
    std64 = np.asarray(theory.gaussian_divergence_std(1.0, d))
    d32, one = jnp.asarray(d, jnp.float32), jnp.float32(1.0)
    mean32 = np.asarray(theory.gaussian_mean_divergence(one, d32))
    std32 = np.asarray(theory.gaussian_divergence_std(one, d32))
    assert mean32.dtype == np.float32 and std32.dtype == np.float32
    ulp = np.finfo(np.float32).eps
    # float32 d is d rounded (relative 2^-24): E[D] moves by ~1/(4d) of that, std by ~1/2 of it
    assert np.max(np.abs(mean32 / mean64 - 1)) < 4 * ulp
    assert np.max(np.abs(std32 / std64 - 1)) < 4 * ulp
    # the exact E[cos] of Gaussian tokens (simulate's exact psi curves) has the same prefactor
    cos64 = np.asarray(theory.expected_cosine(0.5, d))
    cos32 = np.asarray(theory.expected_cosine(jnp.float32(0.5), d32))
    assert np.max(np.abs(cos32 / cos64 - 1)) < 8 * ulp
    # 1/(4d) survives in float32: E[D]/sqrt(v) = 1 - 1/(4d) + ..., to the spacing of float32 at 1
    big = d > 1e3
    np.testing.assert_allclose(1 - mean32[big].astype(float), 1 / (4 * d[big]), rtol=0, atol=ulp)
    assert np.all(mean32[d < 1e6] < 1)


def test_simulate_float32_exact_curves_match_float64(tmp_path):
    argv = ["simulate", "--n-max", "4", "--d", "64", "--m", "16", "--chunk", "16", "--quiet",
            "--out", str(tmp_path / "r"), "--float32"]  # fmt: skip
    try:
        assert main(argv) == 0
    finally:
        jax.config.update("jax_enable_x64", True)
    cols = json.loads((tmp_path / "r" / "result.json").read_text())["columns"]
    v = np.asarray(cols["exact_v"], dtype=float)
    np.testing.assert_allclose(
        cols["exact_gaussian_mean"], theory.gaussian_mean_divergence(v, 64), rtol=1e-6
    )
    np.testing.assert_allclose(
        cols["exact_gaussian_std"], theory.gaussian_divergence_std(v, 64), rtol=1e-6
    )


# -------------------------------------------------------------------------------- smaller


def test_argparse_errors_are_one_line(capsys):
    assert exits_2(["theory", "--n-max", "many"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "usage:" not in err
    assert "--n-max" in err and "tokenscale theory --help" in err


def test_demo_help_says_what_tiny_takes(capsys):
    assert exits_2(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "runs in seconds" not in text and "~1 min" in text


def test_infinite_values_are_null_with_a_status(tmp_path):
    path = tmp_path / "t.json"
    args = ["theory", "--psi-aa", "0.25", "--psi-ab", "0.25", "--n-max", "8", "--json", str(path)]
    assert main(args) == 0
    doc = json.loads(path.read_text())
    assert doc["n_b"] is None and doc["n_b_status"] == "no_transition"
    assert doc["table"]["n_b"][1:] == [None] * 7 and doc["table"]["delta"][1:] == [0.0] * 7


def test_fit_input_that_is_not_a_csv(tmp_path, capsys):
    binary = tmp_path / "scores.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 8)
    assert main(["fit", str(binary)]) == 2
    assert "is not a text (CSV) file" in error_line(capsys, "fit")
    assert main(["fit", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys, "fit")


def test_interrupted_run_keeps_its_checkpoint_for_resume(tmp_path, capsys, monkeypatch):
    from tokenscale_sim.montecarlo.checkpoints import save_state

    calls = []

    def interrupt_after_first(path, state):
        save_state(path, state)
        calls.append(state.done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    out = tmp_path / "r"
    argv = [*SIM, "--m", "48", "--checkpoint-every", "0", "--seed", "7"]
    with monkeypatch.context() as m:
        m.setattr("tokenscale_sim.cli.simulate.save_state", interrupt_after_first)
        assert main([*argv, "--out", str(out)]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging folder left
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2  # a plain rerun would throw the replicates away
    assert "--resume" in error_line(capsys, "simulate")
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert main([*argv, "--out", str(tmp_path / "fresh")]) == 0
    resumed, fresh = (
        json.loads((tmp_path / o / "result.json").read_text())["columns"] for o in ("r", "fresh")
    )
    np.testing.assert_allclose(resumed["divergence_mean"], fresh["divergence_mean"], rtol=1e-12)


def test_out_cannot_be_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*SIM, "--out", "."]) == 2
    assert "current folder" in error_line(capsys, "simulate")
    assert not list(tmp_path.iterdir())


def test_simulate_accumulators_beyond_memory(tmp_path, capsys):
    n_max = int(validation.machine_memory() / (7 * 8 * 24)) + 1
    argv = ["simulate", "--n-max", str(n_max), "--d", "1", "--chunk", "1", "--quiet",
            "--max-chunk-gb", "0.5", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    assert "accumulators" in error_line(capsys, "simulate")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------- design: edge truths (issue 26)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("100,0,16", "binomial noise needs S\\(n\\) < 100"),
        ("99.99,0,16", "at least one expected right and one wrong answer per point"),
        ("0.001,0.1,16", "at least one expected right and one wrong answer per point"),
        ("0,0.1,16", "alpha_n needs c > 0, got 0"),
        ("30,0.1,-1", "alpha_n needs n_b >= 0, got -1"),
    ],
)
def test_design_truths_outside_the_law_or_the_noise(tmp_path, capsys, params, message):
    """The runnable edges (beta = 0, n_b = 0, n_b huge) run: tests/design/test_design_null.py."""
    out = tmp_path / "d"
    argv = ["design", "--params", params, "--m", "20", "--top", "1", "--out", str(out)]
    assert main(argv) == 2
    assert re.search(message, error_line(capsys, "design"))
    assert not out.exists()


# ------------------------------------------------- issue 22: odd CSVs, user laws, sizes, work

GOOD_ROWS = "curve,n,score\na,1,1.0\na,2,1.1\na,4,1.3\na,8,1.5\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"curve,n,score\na,1,1.0\na,2\na,4,1.3\n", "line 3 has 2 fields, the header has 3"),
        (b"curve,n,score\na,1,1.0,7\na,2,1.1\n", "line 2 has 4 fields, the header has 3"),
        (b"curve,n,score\na,1," + b"1" * 5_000_000 + b"\n", "line 2 is not valid CSV: field"),
        (b"curve,n,score,score\na,1,1.0,2\n", "names column 'score' more than once"),
        (b"", "is empty"),
        (b'curve,n,score\n"a,1,1.0\na,2,1.1\n', "is not valid CSV: unexpected end of data"),
        (bytes(range(256)), "is not a text (CSV) file"),
    ],
    ids=[
        "short-row",
        "long-row",
        "megabyte-cell",
        "repeated-column",
        "empty",
        "open-quote",
        "binary",
    ],
)
def test_csv_shapes_that_cannot_be_read_are_one_line(tmp_path, capsys, body, expected):
    path = tmp_path / "s.csv"
    path.write_bytes(body)
    argv = [
        "fit",
        str(path),
        "--group",
        "curve",
        "--model",
        "powerlaw",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    line = error_line(capsys, "fit")
    assert expected in line and len(line) < 300
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: b"\xef\xbb\xbf" + t.encode(),  # UTF-8 with a byte-order mark (spreadsheets)
        lambda t: t.encode("utf-16"),
        lambda t: t.replace(",", ";").encode(),
        lambda t: t.replace(",", "\t").encode(),
        lambda t: t.replace("\n", "\r\n").encode(),
        lambda t: t.replace("a,", '"a",').encode(),
    ],
    ids=["bom", "utf16", "semicolon", "tab", "crlf", "quoted"],
)
def test_csv_from_spreadsheets_reads_as_the_plain_file(tmp_path, encode):
    plain, odd = tmp_path / "plain.csv", tmp_path / "odd.csv"
    plain.write_text(GOOD_ROWS)
    odd.write_bytes(encode(GOOD_ROWS))
    want, got = (fit.read_curves(p, group=("curve",)) for p in (plain, odd))
    assert got.keys == want.keys == (("a",),)
    for a, b in zip(got.arrays, want.arrays, strict=True):
        np.testing.assert_array_equal(a, b)


def test_csv_labels_and_numbers(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes('curve,n,score\n"caf\u00e9\nnoir",1,1.0\n'.encode("latin-1"))
    assert fit.read_curves(path, group=("curve",), token_counts=True).keys == (
        ("caf\u00e9\nnoir",),
    )
    # numbers as CSV writers spell them, never Python's extras; the line counts physical lines
    for cell, message in [("1_0", "must be numeric"), ("\u0661", "must be numeric"),
                          ("1,5", "decimal comma"), ("nan", "must be finite"),
                          ("1e400", "must be finite")]:  # fmt: skip
        path.write_text(f'curve,n,score\n"x\ny",1,1.0\n"x\ny",2,"{cell}"\n')
        with pytest.raises(ValueError, match=f"({message}.*line 4|line 4.*{message})"):
            fit.read_curves(path, group=("curve",))


LAW_FILES = {
    "syntax.py": ("def law(x, t)\n    return t['c']\n", "syntax.py line 1: SyntaxError"),
    "on_import.py": ("import jax\nCONFIG = {}['missing']\n", "on_import.py line 2: KeyError"),
    "missing.py": ("import no_such_module_here\n", "missing.py line 1: ModuleNotFoundError"),
    "exits.py": ("import sys\nsys.exit(3)\n", "exits.py line 2: it called sys.exit(3)"),
    "key.py": ("def law(x, t):\n    return t['c'] * x ** t['b']\n", "key.py line 2: KeyError: 'b'"),
    "helper.py": (
        "def helper(x):\n    raise RuntimeError('not finished\\nmore')\n"
        "def law(x, t):\n    return helper(x) * t['c']\n",
        "helper.py line 2: RuntimeError: not finished",
    ),
    "arity.py": ("def law(x):\n    return x\n", "arity.py line 1 (calling it): TypeError"),
    "shape.py": ("def law(x, t):\n    return (t['c'] * x)[:, None]\n", "shape (3,)"),
    "cplx.py": ("def law(x, t):\n    return t['c'] * x + 1j\n", "must return real numbers"),
}


@pytest.mark.parametrize("name", sorted(LAW_FILES))
def test_errors_in_a_users_law_name_file_line_and_message(tmp_path, name):
    from tokenscale_sim.fit.laws.expression import load_law

    text, expected = LAW_FILES[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError) as info:
        fn = load_law(f"{tmp_path / name}:law")
        fn(jnp.arange(1.0, 4.0), {"c": jnp.asarray(2.0), "a": jnp.asarray(0.5)})  # pyright: ignore[reportCallIssue]
    message = str(info.value)
    assert expected in message and "\n" not in message and str(tmp_path / name) in message


def test_users_law_error_from_the_cli_is_one_line(tmp_path, capsys):
    (tmp_path / "law.py").write_text("def law(x, t):\n    return t['c'] * x ** t['b']\n")
    write_curves(tmp_path / "s.csv", {"a": [1.0, 1.1, 1.3, 1.4, 1.6, 1.9]})
    law = f"{tmp_path / 'law.py'}:law"
    argv = ["fit", str(tmp_path / "s.csv"), "--group", "curve", "--law", law,
            "--params", "c,a", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 2
    assert "law.py line 2: KeyError: 'b'" in error_line(capsys, "fit")
    assert main([*argv[:-4], "--law", "no_such_module_x:law", "--params", "c"]) == 2
    assert "no module named 'no_such_module_x'" in error_line(capsys, "fit")
    assert not (tmp_path / "o").exists()


def test_expressions_have_a_size_and_depth_limit(capsys):
    from tokenscale_sim.fit.laws.expression import parse_law

    long = " + ".join(f"a{i} * n" for i in range(12_000))
    deep = "c * " + "-" * 500 + "n"
    for text, expected in [(long, "more than the 2000 allowed"),
                           (deep, "nests 503 operations deep, more than the 100 allowed"),
                           ("c * n**1e999", "beyond the float range")]:  # fmt: skip
        with pytest.raises(ValueError, match=expected):
            parse_law(text)
    assert exits_2(["fit", "--paper", "--law", long]) == 2
    assert "2000 allowed" in error_line(capsys, "fit")


def test_design_and_fit_sizes_past_memory_are_refused(tmp_path, capsys, monkeypatch):
    from tokenscale_sim.fit.inference.estimate import memory_estimate

    assert main(["design", "--m", "1000000000", "--out", str(tmp_path / "d")]) == 2
    line = error_line(capsys, "design")
    assert "1000000000 experiments of 10 points needs about" in line and "available" in line
    assert not (tmp_path / "d").exists()
    # linear in the points (no n x n matrix), and refused above the memory available
    assert memory_estimate("alpha_n", 1, 400_000) == 2 * memory_estimate("alpha_n", 1, 200_000)
    n = np.arange(1, 200_001)
    (tmp_path / "long.csv").write_text("n,score\n" + "".join(f"{k},{1 + k % 7}\n" for k in n))
    monkeypatch.setattr(validation, "machine_memory", lambda: 2**30)
    assert main(["fit", str(tmp_path / "long.csv"), "--out", str(tmp_path / "f")]) == 2
    line = error_line(capsys, "fit")
    assert "a fit of 1 curve of up to 200000 points needs about" in line and "1 GiB" in line
    assert not (tmp_path / "f").exists()


def test_jacobian_of_the_standard_errors_is_linear_in_points():
    """delta_method_se in forward mode: no (points x points) array in its program."""
    from tokenscale_sim.fit.inference.likelihood import delta_method_se

    big = 50_000
    x = jnp.linspace(1.0, 2.0, big)

    def se(p):
        return delta_method_se(lambda q: q[0] * x + q[1], lambda q: q, p, jnp.zeros(2, bool), 1.0)

    text = jax.jit(se).lower(jnp.ones(2)).as_text()
    assert f"{big}x{big}" not in text


def test_measure_one_token_without_fit_prints(tmp_path, capsys):
    path = tmp_path / "h.npy"
    np.save(path, np.random.default_rng(0).normal(size=(4, 2, 1, 8)))
    assert main(["measure", "--hidden", str(path), "--no-fit", "--out", str(tmp_path / "m")]) == 0
    assert "Delta in [-, -]" in capsys.readouterr().out
    one = tmp_path / "one.npy"  # one pair: no pair-bootstrap interval (it would have width 0)
    np.save(one, np.random.default_rng(0).normal(size=(1, 2, 5, 8)))
    assert main(["measure", "--hidden", str(one), "--out", str(tmp_path / "p")]) == 0
    assert "pair bootstrap" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "p" / "measure.json").read_text())["layers"]["all"]
    assert summary["lambda_ci"] is None


def test_simulate_says_its_size_before_it_starts(tmp_path, capsys):
    argv = [a for a in SIM if a != "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    first = err.strip().splitlines()[0]
    assert first.startswith("simulate: 16 replicates x 2 x 4 tokens x width 4 (")
    assert "chunk of 16" in first and "rep/s" in err


def test_out_of_device_memory_is_one_line(capsys, monkeypatch):
    def exhausted(args):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 48 GB\nmore")

    monkeypatch.setattr("tokenscale_sim.cli.theory.run", exhausted)
    assert main(["theory"]) == 2
    assert "out of memory" in error_line(capsys, "theory")


def test_patch_grid_wider_than_n_max_is_one_row(tmp_path, capsys):
    """--width 1e9 once allocated a 1e9 x 1e9 column sum (theory) or 1e9 columns (simulate)."""
    from tokenscale_sim.structures.kernels import Grid2D

    wide, exact = Grid2D(2.0, 10**9), Grid2D(2.0, 16)
    np.testing.assert_allclose(wide.prefix_sums(16), exact.prefix_sums(16), rtol=1e-14)
    np.testing.assert_allclose(wide.prefix_sums(16), [wide.dense(k).sum() for k in range(1, 17)])
    argv = ["simulate", "--structure", "patch-grid", "--n-max", "16", "--d", "4", "--m", "16",
            "--quiet"]  # fmt: skip
    for w in ("16", str(10**9)):
        assert main([*argv, "--width", w, "--out", str(tmp_path / w)]) == 0
    assert (tmp_path / "16" / "simulation.csv").read_text() == (
        tmp_path / str(10**9) / "simulation.csv"
    ).read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["design", "--n-b", "0"], "--n-b values must be finite and > 0"),
        (["design", "--noise", "lognormal", "--sigma", "1e300"], "at most 10"),
        (["design", "--questions", "3000,1000000000"], "at most 1e+07 questions per point"),
        (["design", "--questions", "1e400"], "expected comma-separated integers"),
        (["design", "--k", "3"], "expected >= 4 token counts"),
        (["fit", "--paper", "--law", "c*n**a", "--start", "a=1,a=2"], "names 'a' twice"),
    ],
    ids=["nb-zero", "sigma-huge", "questions-huge", "questions-inf", "k-3", "start-twice"],
)
def test_audit_round_3_sizes_and_values(capsys, argv, expected):
    assert exits_2(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "Traceback" not in line and expected in line


def test_measure_bootstrap_beyond_memory(tmp_path, capsys):
    path = tmp_path / "h.npy"
    np.save(path, np.random.default_rng(0).normal(size=(4, 2, 3, 8)))
    argv = [
        "measure",
        "--hidden",
        str(path),
        "--bootstrap",
        str(10**12),
        "--out",
        str(tmp_path / "m"),
    ]
    assert main(argv) == 2
    assert "bootstrap replicates of 3 token counts needs about" in error_line(capsys, "measure")
    assert not (tmp_path / "m").exists()


# ------------------------------------------------- issue 32: the compile cache and interruption


def test_a_cache_others_can_write_is_not_read(tmp_path, capsys, monkeypatch):
    import pickle
    import warnings

    from tokenscale_sim.runtime import stored_programs

    marker = tmp_path / "MARKER"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    shared = tmp_path / "shared-cache"
    (shared / "programs").mkdir(parents=True)
    for name in ("solve_and_summarize-0.program", "jit_divergence-cache"):
        where = shared / "programs" if name.endswith(".program") else shared
        (where / name).write_bytes(pickle.dumps(Payload()))
    shared.chmod(0o777)
    monkeypatch.setenv("TOKENSCALE_CACHE_DIR", str(shared))
    monkeypatch.delenv("TOKENSCALE_CACHE", raising=False)
    before = stored_programs.folder()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", stored_programs.CacheWarning)  # shown, as in a shell
            argv = ["fit", "--paper", "--model", "powerlaw", "--out", str(tmp_path / "f")]
            assert main(argv) == 0
    finally:
        stored_programs.use_folder(before)
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "Traceback" not in err, err
    assert warning[0].startswith("tokenscale fit: warning: compilation cache")
    assert "is not used" in warning[0] and "writable by group and others" in warning[0]
    assert not marker.exists(), "an entry of a shared cache ran"


def test_sigterm_ends_a_run_with_143_and_leaves_no_staging_folder(tmp_path):
    import signal
    import sys
    import time

    out = tmp_path / "sw"
    out.mkdir()
    (out / "run.json").write_text('{"kind": "sweep", "complete": true}')
    argv = ["sweep", "--grid", "image=0.001:0.3:10:log", "--grid", "length=1:100:10:log",
            "--mc", "10000", "--no-plot", "--overwrite", "--out", str(out)]  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    command = [sys.executable, "-m", "tokenscale_sim.cli", *argv]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        while not list(tmp_path.glob(".sw.*.tmp")):  # the run is working
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.02)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "tokenscale sweep: interrupted (SIGTERM)", err
    assert "Traceback" not in err and "Segmentation" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sw"]  # no staging, no .old
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # the earlier run, whole


# ----------------------------------------------------------------- issue 32, round 4 (h32b)
# fit, compare, measure, design and the Python options: one test per class of the issue.


def _frame_of_two_benchmarks():
    pd = pytest.importorskip("pandas")
    n = [1.0, 2.0, 4.0, 8.0] * 2
    y = [1.0, 1.2, 1.5, 1.9, 2.0, 2.4, 2.9, 3.6]
    return pd.DataFrame({"benchmark": ["A"] * 4 + ["B"] * 4, "n": n, "score": y})


def test_round4_silent_wrong_numbers_are_refused_or_said(tmp_path, capsys):
    """Class 3: pooled benchmarks, dates as n, NaN predictions, calibrated intervals on short
    curves."""
    df = _frame_of_two_benchmarks()
    with pytest.raises(ValueError, match=r"columns \['benchmark'\] besides n, score.*group=\(\)"):
        fit.fit_curves(df, "powerlaw")
    assert fit.curves_from_frame(df, group=()).keys == ((),)  # stated: one curve
    assert len(fit.curves_from_frame(df, group="benchmark").keys) == 2
    dates = df.assign(n=pd_dates(df))
    with pytest.raises(ValueError, match=r"column 'n' must be numbers, got dates"):
        fit.curves_from_frame(dates, group="benchmark")
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    assert exits_2(["fit", str(path), "--model", "powerlaw"]) == 2
    line = error_line(capsys, "fit")
    assert "['benchmark']" in line and "--group benchmark" in line and "--single-curve" in line
    # a law of x outside its own domain: a NaN is refused, not returned
    law = fit.parse_law("a * log(x) + b", predictor="x")
    x = np.array([1.0, 2, 3, 4, 5])
    res = fit.fit_curves(fit.curves_from_arrays(x, 2 * np.log(x) + 1 + 0.01 * np.sin(x)), law)
    with pytest.raises(ValueError, match="not defined at x = -1"):
        fit.predict(res, [-1.0, 2.0])
    # calibrated is the default kind; 3-point curves keep the fit's own intervals, said so
    short = fit.curves_from_arrays([1.0, 4.0, 16.0], [2.0, 2.9, 4.1])
    fitted = fit.fit_curves(short, "powerlaw")
    with pytest.warns(fit.IntervalFallbackWarning, match="fewer than 10 points"):
        boot = fit.bootstrap(0, short, fitted, m=20)
    assert boot.interval == "calibrated" and boot.interval_used.tolist() == ["fit"]
    np.testing.assert_array_equal(boot.ci_low, fitted.ci_low)
    np.testing.assert_array_equal(boot.ci_high, fitted.ci_high)


def pd_dates(df):
    pd = pytest.importorskip("pandas")
    return pd.to_datetime(df["n"], unit="D")


@pytest.mark.parametrize(
    ("call", "error", "expected"),
    [
        (lambda: fit.FitOptions(chunk=0), ValueError, r"chunk must be an integer in \[1, "),
        (lambda: fit.FitOptions(chunk=-3), ValueError, r"chunk must be an integer in \[1, "),
        (lambda: fit.FitOptions(n_starts=2.0), TypeError, "n_starts must be an integer"),
        (lambda: fit.FitOptions(max_iter=True), TypeError, "max_iter must be an integer"),
        (lambda: fit.bootstrap(0, *_short_fit(), m=20.0), TypeError, "bootstrap: m must be an"),
        (lambda: fit.bootstrap(0, *_short_fit(), n_starts=0), ValueError, "n_starts must be an"),
        (
            lambda: fit.fit_curves(_short_fit()[0], "powerlaw", "log"),
            TypeError,
            "fit_curves: opts must be a FitOptions",
        ),
        (
            lambda: fit.compare_laws(0, _short_fit()[0], ["powerlaw"], bootstrap=2.5),
            TypeError,
            "compare_laws: bootstrap must be an integer",
        ),
        (
            lambda: fit.transition_test(0, _short_fit()[0], m=10.5),
            TypeError,
            "transition_test: m must be an integer",
        ),
        (lambda: fit.predict("fits", [2.0]), TypeError, "predict: result must be a FitResult"),
    ],
    ids=[
        "chunk-0",
        "chunk-negative",
        "n_starts-float",
        "max_iter-bool",
        "m-float",
        "starts-0",
        "opts-str",
        "compare-float",
        "transition-float",
        "predict-str",
    ],
)
def test_round4_option_arguments_raise_one_line_not_a_traceback(call, error, expected):
    """Class 4: arguments that make no sense end in a TypeError/ValueError naming them."""
    with pytest.raises(error, match=expected):
        call()


def _short_fit():
    cs = fit.curves_from_arrays([1.0, 2, 4, 8, 16], [1.0, 1.2, 1.5, 1.9, 2.3])
    return cs, fit.fit_curves(cs, "powerlaw")


def test_round4_huge_bootstrap_and_fifo_end_at_once(tmp_path, capsys):
    """Class 5: m = 10**8 in Python is refused with the estimate (the interpreter aborted); a
    FIFO given as a CSV or as hidden states is named, never opened (reading it blocks)."""
    cs, res = _short_fit()
    with pytest.raises(ValueError, match=r"bootstrap: 100000000 resamples .* needs about"):
        fit.bootstrap(0, cs, res, m=10**8)
    fifo = tmp_path / "scores.csv"
    os.mkfifo(fifo)
    assert exits_2(["fit", str(fifo)]) == 2
    assert "is a named pipe (FIFO), not a CSV file" in error_line(capsys, "fit")
    pipe = tmp_path / "h.npy"
    os.mkfifo(pipe)
    assert exits_2(["measure", "--hidden", str(pipe), "--out", str(tmp_path / "m")]) == 2
    assert "is a named pipe (FIFO)" in error_line(capsys, "measure")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("huber_delta", -1.0, "huber_delta must be a finite number > 0, got -1.0"),
        ("huber_delta", float("nan"), "huber_delta must be a finite number > 0, got nan"),
        ("gtol", -1e-9, "gtol must be a finite number >= 0"),
        ("gtol", float("nan"), "gtol must be a finite number >= 0, got nan"),
        ("boundary_span", float("inf"), r"boundary_span must be a number in \(0, 700\]"),
        ("boundary_rtol", -0.1, "boundary_rtol must be a finite number >= 0"),
        ("profile_points", 0, r"profile_points must be an integer in \[3, 100000\], got 0"),
        ("adam_steps", -1, r"adam_steps must be an integer in \[0, 1000000\], got -1"),
        ("n_starts", 10**9, r"n_starts must be an integer in \[1, 10000\], got 1000000000"),
        ("max_iter", 400.0, "max_iter must be an integer"),
        ("memory_size", 0, "memory_size must be an integer"),
        ("level", float("nan"), r"level must be in \(0, 1\), got nan"),
    ],
)
def test_round4_every_fit_option_is_checked_where_made(option, value, expected):
    """Class 6: every FitOptions field, named with its bound and the value."""
    with pytest.raises((ValueError, TypeError), match=f"FitOptions: {expected}"):
        fit.FitOptions(**{option: value})
    accepted = fit.FitOptions(chunk=np.int64(8), level=1 - 0.5)  # NumPy ints and floats
    assert type(accepted.chunk) is int and accepted.chunk == 8 and hash(accepted)


def test_round4_misleading_lines_say_what_is_wrong(tmp_path, capsys):
    """Class 7: a folder named as such, a BOM CSV read, out-of-memory advice with the command's
    own options, --level and unused design options refused first."""
    from tokenscale_sim.cli import build_parser, memory_hint

    folder = tmp_path / "scores"
    folder.mkdir()
    assert exits_2(["compare", str(folder)]) == 2
    assert "is a folder, not a CSV file" in error_line(capsys, "compare")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfn,score\n1,1.0\n2,1.2\n4,1.5\n8,1.9\n")
    assert fit.read_curves(bom).keys == ((),)
    for command, option in [("fit", "--bootstrap"), ("compare", "--bootstrap"),
                            ("design", "--m"), ("measure", "--chunk")]:  # fmt: skip
        args = build_parser([command]).parse_args(
            [command, "--paper"] if command in ("fit", "compare") else
            [command, "--hidden", "h.npy", "--out", "o"] if command == "measure" else [command]
        )  # fmt: skip
        assert option in memory_hint(args) and "n-max" not in memory_hint(args)
    h = tmp_path / "h.npy"
    np.save(h, np.random.default_rng(0).normal(size=(4, 2, 3, 8)))
    assert exits_2(["measure", "--hidden", str(h), "--level", "2", "--out", str(tmp_path)]) == 2
    assert "measure: --level must be in (0, 1), got 2.0" in error_line(capsys, "measure")
    assert exits_2(["design", "--sigma", "nan"]) == 2
    assert "--sigma applies to --noise lognormal" in error_line(capsys, "design")


def test_round4_safetensors_shape_beyond_integers_is_a_damaged_file(tmp_path):
    """Class 4: a shape of 1e400 (inf in JSON) raised OverflowError from int()."""
    import struct

    from tokenscale_sim.hidden import arrays

    header = b'{"hidden": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}}'
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(ValueError, match=r"is not a valid \.safetensors file"):
        arrays.open_hidden(path)


def test_calibrate_on_constant_psi_prints_no_raw_numpy_warning(tmp_path, capsys):
    """Identical tokens within each branch (psi constant at 1): the pair bootstrap's refits end
    at a limit, and numpy's "invalid value encountered in subtract" reached the terminal."""
    rng = np.random.default_rng(0)
    hidden = tmp_path / "constant.npy"
    np.save(hidden, np.broadcast_to(rng.normal(size=(8, 2, 1, 32)), (8, 2, 24, 32)).copy())
    argv = ["calibrate", "--hidden", str(hidden), "--n-fit", "10", "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "RuntimeWarning" not in err and "Traceback" not in err, err
