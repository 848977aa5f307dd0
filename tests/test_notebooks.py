"""The example notebooks: stored with their outputs (every figure shown, no error, the run time
stated), in step with ``notebooks/make_notebooks.py``, and executing at a tiny size (slow tier)
so that they never rot."""

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL_VARIABLE = "TOKENSCALE_NOTEBOOK_SMALL"
MAX_BYTES = 1_000_000


def plot_functions() -> frozenset[str]:
    """Public function names defined in ``tokenscale_sim/plots`` (read, not imported)."""
    names = set()
    for path in (ROOT / "tokenscale_sim" / "plots").glob("*.py"):
        tree = ast.parse(path.read_text())
        names |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
        }
    return frozenset(names)


DRAWS = re.compile(r"\bplt\.\w+\(|\b(" + "|".join(sorted(plot_functions())) + r")\(")


def drawing_cells(nb) -> list[int]:
    """Indices of the code cells that draw: call a plot function of the package or pyplot."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and DRAWS.search(c.source)]


def count_images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def check_outputs(nb, name: str) -> None:
    """Every code cell ran without an error output and every drawing cell shows an image."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: a cell never ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: {[(o.ename, o.evalue) for o in errors]}"
    drawing = drawing_cells(nb)
    missing = [i for i in drawing if count_images(nb.cells[i]) == 0]
    assert not missing, f"{name}: cells {missing} draw but show no image"


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_notebooks", ROOT / "notebooks" / "make_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_functions_are_found():
    assert {
        "divergence_curves",
        "plot_simulation",
        "phase_diagram",
        "fit_panel",
    } <= plot_functions()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebook_has_outputs_and_shows_every_figure(path):
    assert len(NOTEBOOKS) == 4
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    nb = nbformat.read(path, as_version=4)
    check_outputs(nb, path.name)
    assert drawing_cells(nb), f"{path.name} draws nothing"
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert re.search(r"\*\*Run time:\*\* \d+ s wall, \d+ s CPU", first.source), first.source


def test_check_outputs_fails_on_a_figure_that_is_not_shown():
    """The stored-notebook test can fail: a drawing cell without an image is caught."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    i = drawing_cells(nb)[0]
    nb.cells[i].outputs = [o for o in nb.cells[i].outputs if "image/png" not in o.get("data", {})]
    with pytest.raises(AssertionError, match=rf"cells \[{i}\] draw but show no image"):
        check_outputs(nb, "edited")
    nb.cells[i].outputs = [nbformat.v4.new_output("error", ename="E", evalue="v", traceback=[])]
    with pytest.raises(AssertionError, match="'E', 'v'"):
        check_outputs(nb, "edited")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebook_matches_its_generator(path):
    """The stored cells are those of make_notebooks.py (the source of truth), the size parameters
    live in one hidden setup cell, and no other cell reads the test's environment variable."""
    generator = load_generator()
    generated = generator.build(generator.NOTEBOOKS[path.name])
    stored = nbformat.read(path, as_version=4)
    assert [c.source for c in stored.cells[1:]] == [c.source for c in generated.cells[1:]]
    code = [c for c in stored.cells if c.cell_type == "code"]
    setup = code[0]
    assert {"parameters", "remove-input"} <= set(setup.metadata["tags"])
    assert setup.metadata["jupyter"]["source_hidden"] is True
    assert SMALL_VARIABLE in setup.source
    assert not [c for c in code[1:] if "SMALL" in c.source or c.metadata.get("tags")]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv(SMALL_VARIABLE, "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # as in a user's Jupyter
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    check_outputs(nb, path.name)
