"""Structure files: every kernel, bad files with errors naming term and field, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.files import load_structure, structure_from_data

TOML = """
name = "every kernel"

[[terms]]
weight = 0.1
branch = [[1.0, 1.0], [1.0, 1.0]]
kernel = { kind = "ones" }

[[terms]]
weight = 0.2
coupling = 0.3
kernel = { kind = "exponential", length = 5.0 }

[[terms]]
weight = 0.2
coupling = 0.1
kernel = { kind = "powerlaw", gamma = 1.5 }

[[terms]]
weight = 0.2
coupling = -0.2
kernel = { kind = "grid", length = 2.0, width = 3 }

[[terms]]
weight = 0.1
branch = [[1.0, 0.5], [0.5, 1.0]]
kernel = { kind = "dense", path = "block.npy" }

[[terms]]
weight = 0.2
branch = [[1.0, 0.4], [0.4, 1.0]]
kernel = "identity"
"""

N = 9


def _block(n: int = N) -> np.ndarray:
    idx = np.arange(n)
    return 0.6 ** np.abs(idx[:, None] - idx[None, :])  # AR(1): PSD, unit diagonal


def _reference() -> st.Structure:
    """The structure of TOML built in Python from the constructors."""
    c = [((1, 1), (1, 1)), ((1, 0.3), (0.3, 1)), ((1, 0.1), (0.1, 1)), ((1, -0.2), (-0.2, 1)),
         ((1, 0.5), (0.5, 1)), ((1, 0.4), (0.4, 1))]  # fmt: skip
    kernels = [st.Ones(), st.Exponential(5.0), st.PowerLaw(1.5), st.Grid2D(2.0, 3),
               st.DenseKernel(_block()), st.Identity()]  # fmt: skip
    weights = [0.1, 0.2, 0.2, 0.2, 0.1, 0.2]
    terms = tuple(
        st.Term(b, k).scaled(w)
        for b, k, w in zip(c, kernels, weights, strict=True)  # type: ignore[arg-type]
    )
    return st.Structure(terms, "every kernel")


@pytest.fixture
def toml_file(tmp_path):
    np.save(tmp_path / "block.npy", _block())
    path = tmp_path / "s.toml"
    path.write_text(TOML)
    return path


def test_every_kernel_matches_the_python_structure(toml_file):
    s = load_structure(toml_file)
    ref = _reference()
    assert s.name == "every kernel"
    np.testing.assert_allclose(s.sigma(N), ref.sigma(N), atol=1e-15)
    np.testing.assert_allclose(s.v(N), ref.v(N), rtol=1e-13)
    dense = s.terms[4].kernel
    assert isinstance(dense, st.DenseKernel)
    assert dense.source == str((toml_file.parent / "block.npy").resolve())


def test_round_trip_through_describe_and_json(toml_file, tmp_path):
    s = load_structure(toml_file)
    out = tmp_path / "again.json"
    out.write_text(json.dumps(s.describe()))
    again = load_structure(out)
    np.testing.assert_array_equal(again.sigma(N), s.sigma(N))
    assert again.describe() == s.describe()


def test_inline_dense_and_presets_round_trip():
    s = 0.7 * st.decaying(3.0, 0.2) + st.shared(0.3)
    again = structure_from_data(json.loads(json.dumps(s.describe())))
    np.testing.assert_array_equal(again.sigma(6), s.sigma(6))
    d = st.dense(np.kron(np.array([[1.0, 0.4], [0.4, 1.0]]), _block(4)))
    np.testing.assert_array_equal(structure_from_data(d.describe()).sigma(4), d.sigma(4))
    preset = structure_from_data(
        {"terms": [{"structure": "exchangeable", "psi_eq": 0.5, "psi_aa": 0.3, "psi_ab": 0.2}]}
    )
    np.testing.assert_array_equal(preset.sigma(5), st.exchangeable(0.5, 0.3, psi_ab=0.2).sigma(5))


GOOD = {"weight": 1.0, "coupling": 0.3, "kernel": {"kind": "exponential", "length": 4.0}}


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ({**GOOD, "kernel": {"kind": "exponential", "length": -1.0}}, "terms[0].kernel.length"),
        ({**GOOD, "kernel": {"kind": "exponential"}}, "terms[0].kernel.length must be given"),
        ({**GOOD, "kernel": {"kind": "wavelet"}}, "terms[0].kernel.kind must be one of"),
        ({**GOOD, "kernel": {"kind": "ones", "length": 2}}, "terms[0].kernel must be fields"),
        ({**GOOD, "kernel": {"kind": "grid", "length": 2, "width": 0}}, "kernel.width"),
        ({**GOOD, "coupling": 1.5}, "terms[0].coupling must be finite and in [-1.0, 1.0]"),
        ({**GOOD, "weight": -0.5}, "terms[0].weight"),
        ({**GOOD, "weight": "x"}, "terms[0].weight must be a number"),
        ({**GOOD, "branch": [[1, 0], [0, 1]]}, "one of 'branch' (2 x 2) or 'coupling'"),
        ({"branch": [[1, 0, 0], [0, 1, 0]], "kernel": "ones"}, "terms[0].branch must be a 2 x 2"),
        ({"branch": [[1, 2], [2, 1]], "kernel": "ones"}, "terms[0].branch must be symmetric pos"),
        ({"branch": [[1, 0.2], [0.1, 1]], "kernel": "ones"}, "terms[0].branch must be symmetric"),
        ({"coupling": 0.1}, "terms[0].kernel must be given"),
        ({**GOOD, "colour": "red"}, "terms[0] must be fields among"),
        ({"structure": "exchangeable", "psi_eq": 2.0, "psi_aa": 0.3}, "terms[0] (exchangeable)"),
        ({"structure": "spiral"}, "terms[0].structure must be one of"),
        ({**GOOD, "weight": 0.5}, "weighted C_AA summed over terms (terms[0]: 0.5)"),
    ],
)
def test_bad_terms_name_the_term_and_field(term, message):
    with pytest.raises(ValueError, match=r"^f\.toml: ") as err:
        structure_from_data({"terms": [term]}, source="f.toml")
    assert message in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="terms must be a non-empty list"):
        structure_from_data({"terms": []})
    with pytest.raises(ValueError, match="top level must be fields among"):
        structure_from_data({"terms": [GOOD], "extra": 1})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_structure(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[terms]\n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_structure(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_structure(bad_json)
    dense = {"branch": [[1, 0], [0, 1]], "kernel": {"kind": "dense", "path": "nope.npy"}}
    with pytest.raises(ValueError, match=r"terms\[0\].kernel.path must be a readable .npy"):
        structure_from_data({"terms": [dense]}, base=tmp_path)
    np.save(tmp_path / "rect.npy", np.ones((3, 4)))
    dense["kernel"]["path"] = "rect.npy"
    with pytest.raises(ValueError, match="must be a square matrix"):
        structure_from_data({"terms": [dense]}, base=tmp_path)
    np.save(tmp_path / "notpsd.npy", np.array([[1.0, 2.0], [2.0, 1.0]]))
    dense["kernel"]["path"] = "notpsd.npy"
    with pytest.raises(ValueError, match="positive semi-definite"):
        structure_from_data({"terms": [dense]}, base=tmp_path)
    two = [
        {"branch": [[0.5, 0], [0, 0.5]], "kernel": {"kind": "dense", "matrix": np.eye(2).tolist()}},
        {"branch": [[0.5, 0], [0, 0.5]], "kernel": {"kind": "dense", "matrix": np.eye(3).tolist()}},
    ]
    with pytest.raises(ValueError, match="dense kernels must be of one size"):
        structure_from_data({"terms": two})


def test_theory_and_simulate_take_a_structure_file(toml_file, tmp_path, capsys):
    out = tmp_path / "theory.json"
    argv = ["theory", "--structure-file", str(toml_file), "--n-max", str(N), "--json", str(out)]
    assert main(argv) == 0
    table = json.loads(out.read_text())
    np.testing.assert_allclose(table["table"]["upsilon"], _reference().upsilon(N), rtol=1e-12)
    sim = tmp_path / "sim"
    argv = ["simulate", "--structure-file", str(toml_file), "--n-max", str(N), "--d", "8",
            "--m", "16", "--out", str(sim), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    written = json.loads((sim / "result.json").read_text())["metadata"]["structure"]
    whole = sim / "result.json"  # the run's own file reads as the structure it records
    np.testing.assert_array_equal(
        load_structure(whole).sigma(N), load_structure(toml_file).sigma(N)
    )
    again = tmp_path / "from_result.json"
    again.write_text(json.dumps(written))
    assert main(["theory", "--structure-file", str(again), "--n-max", str(N)]) == 0
    first = load_structure(toml_file)
    np.testing.assert_array_equal(load_structure(again).sigma(N), first.sigma(N))
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text(TOML.replace("gamma = 1.5", "gamma = -1.5"))
    np.save(tmp_path / "block.npy", _block())
    assert main(["simulate", "--structure-file", str(bad), "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "terms[2].kernel.gamma must be finite and in (0.0, inf]" in err
    assert err.count("\n") == 1 and not (tmp_path / "no").exists()
    assert main(["theory", "--structure-file", str(toml_file), "--shared", "0.1"]) == 2
    assert "--shared does not combine" in capsys.readouterr().err
