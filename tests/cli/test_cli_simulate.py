"""tokenscale simulate: files written, resume, and every refusal (exit 2, nothing touched)."""

import csv
import json

import numpy as np
import pytest

from tokenscale_sim.cli import main

BASE = ["simulate", "--structure", "decaying", "--n-max", "8", "--d", "4", "--chunk", "16",
        "--quiet"]  # fmt: skip


def run(tmp_path, *extra, out="run"):
    return main([*BASE, "--out", str(tmp_path / out), *extra])


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    assert run(tmp, "--m", "40", "--seed", "3", "--plot") == 0
    return tmp / "run"


def test_writes_csv_npz_json_plot_and_checkpoint(finished):
    names = {p.name for p in finished.iterdir()}
    assert {"run.json", "simulation.csv", "simulation.npz", "result.json", "simulation.png",
            "checkpoint.npz"} <= names  # fmt: skip
    rows = read_csv(finished / "simulation.csv")
    assert len(rows) == 8 and rows[0]["psi_aa_mean"] == ""  # NaN at n = 1 written empty
    assert float(rows[-1]["divergence_mean"]) > 0 and "exact_gaussian_mean" in rows[0]
    meta = json.loads((finished / "result.json").read_text())["metadata"]
    assert meta["seed"] == 3 and meta["m"] == 40
    assert meta["structure"]["name"] == "decaying-exponential"  # structured, never a repr
    assert meta["structure"]["terms"][0]["kernel"]["kind"] == "Exponential"
    with np.load(finished / "simulation.npz") as z:
        assert z["divergence_mean"].shape == (8,)
        assert json.loads(str(z["metadata"]))["seed"] == 3


def test_resume_extends_to_the_same_result_as_a_fresh_run(tmp_path, finished):
    assert run(tmp_path, "--m", "40", "--seed", "3", out="ext") == 0
    assert run(tmp_path, "--m", "70", "--seed", "3", "--resume", out="ext") == 0
    assert run(tmp_path, "--m", "70", "--seed", "3", out="fresh") == 0
    ext, fresh = (read_csv(tmp_path / o / "simulation.csv") for o in ("ext", "fresh"))
    for a, b in zip(ext, fresh, strict=True):
        for k in ("divergence_mean", "divergence_std", "psi_ab_mean", "upsilon_se"):
            if a[k]:
                assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-12)


def test_existing_run_is_not_overwritten(finished, capsys):
    before = (finished / "simulation.csv").read_bytes()
    assert main([*BASE, "--out", str(finished), "--m", "20"]) == 2
    assert "already holds a 'simulate' run" in capsys.readouterr().err
    assert (finished / "simulation.csv").read_bytes() == before


def test_overwrite_replaces_and_clears_checkpoint(tmp_path):
    assert run(tmp_path, "--m", "20") == 0
    assert run(tmp_path, "--m", "30", "--overwrite", "--divergence-only", "--tokens", "unit") == 0
    rows = read_csv(tmp_path / "run" / "simulation.csv")
    assert "psi_eq_mean" not in rows[0]
    meta = json.loads((tmp_path / "run" / "result.json").read_text())["metadata"]
    assert meta["m"] == 30 and meta["tokens"] == "unit"


def test_float32_and_summary(tmp_path, capsys):
    argv = ["simulate", "--n-max", "4", "--d", "4", "--m", "10", "--out", str(tmp_path / "f"),
            "--float32", "--checkpoint-every", "0"]  # fmt: skip
    try:
        assert main(argv) == 0
    finally:
        import jax

        jax.config.update("jax_enable_x64", True)
    captured = capsys.readouterr()
    assert "exact E[D]" in captured.out and "simulate" in captured.err  # table and progress bar
    meta = json.loads((tmp_path / "f" / "result.json").read_text())["metadata"]
    assert meta["x64"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--psi-aa", "0.2", "--psi-ab", "0.5", "--structure", "exchangeable"], "exchangeable"),
        (["--coupling", "1.5"], "coupling"),
        (["--max-chunk-gb", "1e-9"], "lower chunk"),
        (["--max-chunk-gb", "0"], "--max-chunk-gb must be > 0"),
        (["--df", "2", "--tokens", "student-t"], "df must be finite and > 2"),
        (["--confidence", "2"], "confidence must be in (0, 1)"),
        (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
        (["--resume", "--overwrite"], "exclude each other"),
    ],
)
def test_bad_input_exits_2_and_touches_nothing(tmp_path, capsys, extra, message):
    assert run(tmp_path, "--m", "10", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenscale simulate: error:") and message in err
    assert not (tmp_path / "run").exists()


def test_argparse_rejects_nonpositive_sizes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, "--m", "0")
    assert exc.value.code == 2 and "--m" in capsys.readouterr().err


def test_folder_of_another_kind_or_foreign_files_is_refused(tmp_path, capsys):
    other = tmp_path / "run"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"kind": "fit"}))
    assert run(tmp_path, "--m", "10") == 2
    assert "holds a 'fit' run" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert run(tmp_path, "--m", "10", "--resume", out="foreign") == 2
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1


def test_resume_with_other_settings_is_refused(finished, capsys):
    assert main([*BASE, "--out", str(finished), "--m", "50", "--seed", "4", "--resume"]) == 2
    assert "state must come from a run with the same" in capsys.readouterr().err
