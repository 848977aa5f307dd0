"""``tokenscale examples DIR``: the README's example files, copied; nothing replaced silently."""

import csv

import numpy as np

from tokenscale_sim.cli import main
from tokenscale_sim.cli.demo import EXAMPLES


def test_examples_are_copied_and_read_as_the_readme_says(tmp_path, capsys):
    folder = tmp_path / "new" / "here"  # created
    assert main(["examples", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXAMPLES)
    assert "copied my_scores.csv" in capsys.readouterr().out
    with (folder / "my_scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["benchmark", "n", "score"] and len(rows) == 40
    with np.load(folder / "states.npz") as z:
        assert z["hidden"].shape == (6, 2, 48, 24)
    block = np.load(folder / "block.npy")
    np.testing.assert_allclose(np.diag(block), 1.0)
    assert np.linalg.eigvalsh(block).min() > -1e-10  # PSD, as a dense term needs


def test_examples_refuse_to_replace_a_file_without_overwrite(tmp_path, capsys):
    (tmp_path / "data.csv").write_text("mine\n")
    assert main(["examples", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenscale examples: error: example file") and "data.csv" in err
    assert err.count("\n") == 1
    assert (tmp_path / "data.csv").read_text() == "mine\n"
    assert not (tmp_path / "my_scores.csv").exists()  # checked before anything is written
    assert main(["examples", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "data.csv").read_text().startswith("dose,response\n")
    (tmp_path / "file").write_text("")
    assert main(["examples", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
