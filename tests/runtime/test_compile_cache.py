"""The persistent compilation cache (``tokenscale_sim.runtime.compile_cache``) and fast start.

A second process loads the programs the first compiled (counted by JAX's own monitoring event
``/jax/compilation_cache/cache_hits``), with identical results; an unusable folder or damaged
entries give one warning and the run goes on; ``import tokenscale_sim`` and ``tokenscale --help``
import neither JAX nor matplotlib. Processes are real subprocesses: the cache is per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tokenscale_sim.runtime import compile_cache
from tokenscale_sim.runtime.compile_cache import CacheWarning, cache_trouble_as_one_warning

ROOT = Path(__file__).resolve().parents[2]

# One process: switch the cache on (folder argv[1]) as the CLI does, run a jitted function of the
# package, print the cache hits JAX recorded, then the result to full precision.
PROGRAM = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
from jax import monitoring
hits = []
monitoring.register_event_listener(
    lambda event, **kw: hits.append(1) if event == "/jax/compilation_cache/cache_hits" else None
)
import tokenscale_sim
from tokenscale_sim.runtime.compile_cache import cache_trouble_as_one_warning
from tokenscale_sim.theory.divergence import divergence
folder = tokenscale_sim.enable_compilation_cache(sys.argv[1])
print("folder", folder)
with cache_trouble_as_one_warning(folder):
    h = jax.random.normal(jax.random.key(0), (2, 3, 16, 8))
    d = divergence(h[0], h[1])
print("hits", len(hits))
print("result", repr(d.tolist()))
"""


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with this checkout first on the path."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full_env.pop(compile_cache.ENV_SWITCH, None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
        timeout=300,
    )  # fmt: skip


def field(out: str, name: str) -> str:
    """The value printed after ``name`` on its own line of the program's output."""
    return next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(name + " "))


def test_second_process_loads_the_first_ones_programs_damage_warns_once(tmp_path):
    folder = tmp_path / "cache"
    first = run_python(PROGRAM, str(folder))
    assert first.returncode == 0, first.stderr
    written = sorted(p.name for p in folder.iterdir())
    assert written, "the first process wrote no compiled program"
    assert int(field(first.stdout, "hits")) == 0
    second = run_python(PROGRAM, str(folder))
    assert second.returncode == 0, second.stderr
    assert int(field(second.stdout, "hits")) >= 1  # loaded, not compiled
    assert sorted(p.name for p in folder.iterdir()) == written  # nothing new to write
    off = run_python(PROGRAM, str(folder), TOKENSCALE_CACHE="0")
    assert field(off.stdout, "folder") == "None" and int(field(off.stdout, "hits")) == 0
    # identical numbers: compiled, loaded from disk, and with the cache off
    assert field(first.stdout, "result") == field(second.stdout, "result")
    assert field(first.stdout, "result") == field(off.stdout, "result")
    assert "Warning" not in first.stderr + second.stderr
    # damaged entries: one warning, compiled again, the same numbers
    entries = [p for p in folder.iterdir() if p.name.endswith("-cache")]
    assert len(entries) >= 2
    for p in entries:
        p.write_bytes(b"not a compiled program")
    again = run_python(PROGRAM, str(folder))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("CacheWarning") == 1, again.stderr
    assert "could not be read or written" in again.stderr
    assert field(again.stdout, "result") == field(first.stdout, "result")


def test_unusable_folder_gives_one_warning_and_no_cache(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.warns(CacheWarning, match="is not usable") as record:
        assert compile_cache.enable_compilation_cache(blocker / "cache") is None
    assert len(record) == 1
    assert not (blocker / "cache").exists()


def test_switch_and_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_cache_dir() == tmp_path / "xdg" / "tokenscale" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_cache_dir() == tmp_path / "home" / ".cache" / "tokenscale" / "jax"
    monkeypatch.setenv(compile_cache.ENV_DIR, str(tmp_path / "mine"))
    assert compile_cache.default_cache_dir() == tmp_path / "mine"
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv(compile_cache.ENV_SWITCH, off)
        assert compile_cache.enable_compilation_cache() is None
    assert not (tmp_path / "mine").exists()  # switched off: nothing created


TROUBLE, ENTRY = "Error", "persistent compilation cache entry"  # JAX's words


def test_cache_trouble_is_folded_into_one_warning_others_pass(tmp_path):
    with pytest.warns(Warning) as record, cache_trouble_as_one_warning(tmp_path):
        for name in ("jit_a", "jit_b", "jit_c"):
            warnings.warn(
                f"Error reading persistent compilation cache entry for '{name}': x", stacklevel=1
            )
        warnings.warn(
            "Error writing persistent compilation cache entry for 'jit_d': y", stacklevel=1
        )
        warnings.warn("something else", RuntimeWarning, stacklevel=1)
    kinds = [(w.category, str(w.message)) for w in record]
    assert kinds[0] == (RuntimeWarning, "something else")
    assert len(kinds) == 2 and kinds[1][0] is CacheWarning
    assert kinds[1][1].startswith("4 compiled program(s)")


def test_help_and_import_load_neither_jax_nor_matplotlib():
    code = (
        "import sys, tokenscale_sim\n"
        "from tokenscale_sim.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('loaded', sorted(m for m in ('jax', 'jaxlib', 'matplotlib') if m in sys.modules))"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert field(proc.stdout, "loaded") == "[]"
    assert "fit" in proc.stdout and "simulate" in proc.stdout  # every subcommand listed


def test_importing_the_fitter_and_cli_initialises_no_backend():
    code = (
        "import sys\n"
        "import tokenscale_sim.fit, tokenscale_sim.cli.fit, tokenscale_sim.study\n"
        "from jax._src import xla_bridge\n"
        "print('backend', xla_bridge.backends_are_initialized())\n"
        "print('mpl', 'matplotlib' in sys.modules)"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert field(proc.stdout, "backend") == "False" and field(proc.stdout, "mpl") == "False"


@pytest.mark.slow
def test_cli_fit_same_files_with_cache_on_and_off(tmp_path):
    """End to end: ``tokenscale fit`` compiles and fills the cache, loads it on a rerun, runs
    without it, and writes the same fits.csv each time; damaged entries: one warning line."""
    data = tmp_path / "one.csv"
    data.write_text("n,score\n1,20.1\n2,24.5\n4,27.4\n8,29.8\n16,31.2\n32,32.4\n64,33.2\n")
    folder = tmp_path / "cache"
    code = "import sys\nfrom tokenscale_sim.cli import main\nsys.exit(main(sys.argv[1:]))"

    def fit(out: str, **env: str) -> str:
        args = ["fit", str(data), "--law", "S_inf - A * n**(-a)", "--start", "S_inf=35,A=15,a=0.5"]
        proc = run_python(code, *args, "--out", str(tmp_path / out), TOKENSCALE_CACHE_DIR=str(
            folder), **env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    fit("first")
    assert any(folder.iterdir())
    fit("second")
    fit("off", TOKENSCALE_CACHE="0")
    # both kinds of entry: JAX's compiled programs and the whole stored executables
    damaged = [*folder.glob("*-cache"), *folder.glob("programs/*.program")]
    assert any(p.suffix == ".program" for p in damaged)
    for p in damaged:
        p.write_bytes(b"damaged")
    err = fit("damaged")
    warning_lines = [line for line in err.splitlines() if "warning" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("tokenscale fit: warning:")
    table = (tmp_path / "first" / "fits.csv").read_text()
    for out in ("second", "off", "damaged"):
        assert (tmp_path / out / "fits.csv").read_text() == table
