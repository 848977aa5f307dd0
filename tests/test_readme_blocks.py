"""The README as a user runs it: every fenced ``bash`` / ``python`` / ``console`` block is run in
a folder holding the example files (``tokenscale examples``), and every output it shows is
checked against what it prints.

How a block is marked (an HTML comment on the line before its fence; ``tests/readme_blocks.py``):

- ``<!--test: fast-->``: run in ``make test``, in-process (``tokenscale ...`` lines through
  ``tokenscale_sim.cli.main``, Python statement by statement), and again as a user runs it in the
  slow tier;
- ``<!--test: slow-->`` or no marker: the slow tier only, as a user runs it (``bash -c`` each
  command with the package's ``tokenscale`` on PATH; ``python`` on the block in a fresh process);
  a new block is picked up there without any change here;
- ``<!--test: hf, WHAT-->``: the slow tier, as a user runs it, with tiny random models standing
  in for the checkpoints it names (:func:`_hf_stand_ins`: the same kinds and layer counts, under
  ``~`` and in the Hugging Face cache, nothing downloaded; ``--device cuda`` runs on the CPU where
  torch has no GPU), and for a Python block the names a notebook would already hold;
- ``<!--test: skip, REASON-->``: never run (several hosts, the set-up, a run of minutes another
  test makes); pytest reports REASON;
- ``<!--test: output-->`` on a ``text`` block: the lines the runnable block before it prints.

A Python line ``stmt  # -> TEXT`` shows what ``stmt`` prints. Shown and printed text must read the
same, each number compared at the precision shown (``readme_quotes.agrees``). Blocks needing the
vision extra are skipped without it. The example files are what ``tests/readme_examples.py``
builds (checked here).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import readme_blocks as rb
import readme_examples as rx

from tokenscale_sim.cli import main
from tokenscale_sim.cli.demo import EXAMPLES

BLOCKS = rb.readme_blocks()
RUNNABLE = [b for b in BLOCKS if b.lang in rb.RUNNABLE]
FAST = [b for b in RUNNABLE if b.tier == "fast"]
TIMEOUT_S = 1800


def _param(block: rb.Block):
    marks = [pytest.mark.skip(reason=block.reason)] if block.tier == "skip" else []
    return pytest.param(block, id=block.name, marks=marks)


def _outputs_after(block: rb.Block) -> list[rb.Block]:
    """The ``output`` blocks right after ``block`` (before the next runnable one)."""
    at = BLOCKS.index(block)
    shown = []
    for later in BLOCKS[at + 1 :]:
        if later.tier != "output":
            break
        shown.append(later)
    return shown


def _folder(tmp_path: Path, block: rb.Block) -> Path:
    """A fresh folder with the example files, unless the block copies them itself."""
    folder = tmp_path / "work"
    folder.mkdir()
    if not any(c.split()[:2] == ["tokenscale", "examples"] for c in rb.commands(block)):
        for name in EXAMPLES:
            shutil.copy(rx.SHIPPED / name, folder / name)
    return folder


def _needs_vision(block: rb.Block) -> None:
    if "vit" in block.text and block.lang != "python":
        pytest.importorskip("onnxruntime", reason="the vision extra is not installed")


def _check_python(block: rb.Block, statements: list[rb.Statement]) -> None:
    problems = [
        f"README.md:{block.line + s.first - 1}: shows {s.shown!r}, printed {s.printed.strip()!r}"
        for s in statements
        if s.shown and not rb.shows(s.shown, s.printed)
    ]
    printed = "".join(s.printed for s in statements)
    for shown in _outputs_after(block):
        problems += [
            f"README.md:{shown.line}: output line {line!r} is not printed"
            for line in rb.missing_lines(shown.text.splitlines(), printed)
        ]
    assert not problems, "\n".join(problems) + "\n--- printed:\n" + printed


def _check_console(block: rb.Block, printed: dict[str, str]) -> None:
    problems = []
    for command, shown in rb.console_outputs(block):
        problems += [f"{command}: {line!r} not printed" for line in
                     rb.missing_lines(shown, printed[command])]  # fmt: skip
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- the markers


def test_every_block_has_a_tier_and_every_output_follows_a_runnable_block():
    assert len(RUNNABLE) >= 8 and FAST  # the parser finds the README's blocks
    for i, block in enumerate(BLOCKS):
        if block.lang in rb.RUNNABLE:
            assert block.tier in ("fast", "slow", "hf", "skip"), block.name
            assert block.tier != "skip" or block.reason, f"{block.name}: skip without a reason"
        elif block.tier == "output":
            before = [b for b in BLOCKS[:i] if b.tier != "output"]
            assert before and before[-1].lang == "python", f"{block.name}: output of what?"
        else:  # toml, text and the like without a marker: shown, not run
            assert block.tier in ("", "skip"), f"{block.name}: a {block.lang} block is not run"


def test_fast_blocks_are_commands_of_tokenscale_or_python():
    for block in FAST:
        for command in rb.commands(block) if block.lang != "python" else []:
            assert command.split()[0] == "tokenscale", f"{block.name}: {command}"


def test_the_shown_structure_file_is_the_shipped_example():
    first = next(b for b in BLOCKS if b.lang == "toml")  # the one the commands read
    assert first.text == rx.STRUCTURE_TOML == (rx.SHIPPED / "my_structure.toml").read_text()


def test_the_shipped_examples_are_what_readme_examples_builds(tmp_path):
    rx.build(tmp_path)
    assert sorted(p.name for p in rx.SHIPPED.iterdir()) == sorted(EXAMPLES)
    for name in EXAMPLES:
        shipped, built = rx.SHIPPED / name, tmp_path / name
        if name.endswith(".npz"):
            with np.load(shipped) as a, np.load(built) as b:
                assert list(a) == list(b) == ["hidden"]
                np.testing.assert_array_equal(a["hidden"], b["hidden"])
        else:
            assert shipped.read_bytes() == built.read_bytes(), name


def test_the_comparison_reads_numbers_at_the_precision_shown():
    assert rb.shows("iterations = 5", "    iterations    = 5")
    assert not rb.shows("iterations = 7", "    iterations    = 5")  # the drift
    assert rb.shows("c = 0.401913 +/- 0.00197684", "c = 0.4019131 +/- 0.001976841")
    assert not rb.shows("c = 0.401913", "c = 0.401923")
    assert not rb.shows("22 of 54 converged", "22 of 54 converged in float32")  # whole lines
    assert rb.missing_lines(["a = 1", "b = 2"], "a = 1.7\nx\nb = 2") == ["a = 1"]
    assert rb.missing_lines(["b = 2", "a = 1"], "a = 1\nb = 2") == ["a = 1"]  # in order


# ----------------------------------------------------------------------------- fast: in-process


@pytest.fixture
def _restore_x64():
    """The CLI and the snippets switch float64 on for the whole process: put it back."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("block", [_param(b) for b in FAST])
def test_fast_block_runs_in_process(block, tmp_path, monkeypatch, capsys, _restore_x64):
    monkeypatch.chdir(_folder(tmp_path, block))
    if block.lang == "python":
        _check_python(block, rb.run_statements(block.text))
        return
    printed = {}
    for command in rb.commands(block):
        argv = shlex.split(command, comments=True)
        capsys.readouterr()
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{command}\n{err}"
        printed[command] = out
    if block.lang == "console":
        _check_console(block, printed)


# ----------------------------------------------------------------------------- slow: as a user


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


STAND_INS = {  # checkpoint named in the README -> (kind, layers of the language model)
    "~/models/Qwen2-0.5B-Instruct": ("llama", 24),
    "meta-llama/Llama-3.1-8B-Instruct": ("llama", 32),
    "llava-hf/llava-1.5-7b-hf": ("llava", 32),
}
NOTEBOOK = """from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained({path!r})
tokenizer = AutoTokenizer.from_pretrained({path!r})
"""


def _hf_stand_ins(tmp_path: Path, folder: Path, env: dict[str, str]) -> Path:
    """Tiny random models where the README's ``hf`` blocks look for checkpoints: a folder under
    ``~`` (``HOME`` a fresh folder) and ids in the Hugging Face cache (``HF_HUB_CACHE``); the
    pairs file and the photo folder the commands read; and the notebook's loaded ``model`` and
    ``tokenizer`` (the returned file, run before a Python block)."""
    hf_models = pytest.importorskip("hf_models", reason="the hf extra is not installed")
    pytest.importorskip("transformers", reason="the hf extra is not installed")
    from PIL import Image

    home, hub = tmp_path / "home", tmp_path / "hub"
    env.update(HOME=str(home), HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    save = {"llama": hf_models.save_llama, "llava": hf_models.save_llava}
    for name, (kind, layers) in STAND_INS.items():
        if name.startswith("~/"):
            save[kind](home / name[2:], layers=layers)
        else:
            hf_models.cache_as(hub, name, save[kind], layers=layers)
    hf_models.write_pairs(folder / "prefs.jsonl", hf_models.long_pairs(12, 70, seed=0))
    (home / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(home / "photos" / f"photo{i}.png")
    notebook = tmp_path / "notebook.py"
    notebook.write_text(NOTEBOOK.format(path=str(home / "models/Qwen2-0.5B-Instruct")))
    return notebook


def _on_this_machine(command: str) -> str:
    """``--device cuda`` as ``--device cpu`` where torch has no GPU (the only change made)."""
    import torch

    gpu = torch.cuda.is_available()
    return command if gpu else command.replace("--device cuda", "--device cpu")


@pytest.mark.slow
@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_block_runs_as_a_user_runs_it(block, tmp_path):
    """``bash -c`` each command (``tokenscale`` on PATH), ``python`` on each Python block."""
    _needs_vision(block)
    folder, env = _folder(tmp_path, block), _env()
    notebook = _hf_stand_ins(tmp_path, folder, env) if block.tier == "hf" else None
    if block.lang == "python":
        snippet, result = folder / "snippet.py", tmp_path / "statements.json"
        snippet.write_text(block.text)
        runner = [sys.executable, str(Path(rb.__file__)), "run", str(snippet), str(result)]
        runner += [str(notebook)] if notebook else []
        done = subprocess.run(runner, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        statements = [rb.Statement(**s) for s in json.loads(result.read_text())]
        _check_python(block, statements)
        return
    printed = {}
    for command in rb.commands(block):
        command = _on_this_machine(command) if notebook else command
        done = subprocess.run(["bash", "-c", command], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr[-4000:]}"
        printed[command] = done.stdout
    if block.lang == "console":
        _check_console(block, printed)
