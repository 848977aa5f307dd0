"""Whole compiled programs on disk (``tokenscale_sim.runtime.stored_programs``).

A second process calls the programs the first one stored (counted by the module's ``STATS``),
with identical numbers, as does a run with the cache off; a law of Python functions is never
stored; a damaged entry or an unwritable folder gives one warning and the same numbers. The
processes are real subprocesses: what a process has loaded stays in it.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_cache import field, run_python

from tokenscale_sim.fit import CurveArrays, FitOptions, define_law, fit_arrays, parse_law
from tokenscale_sim.fit.engine.solver import solve_batch, start_grid
from tokenscale_sim.fit.laws.models import get_model, program_token, stable_name
from tokenscale_sim.runtime import stored_programs

# One process: the cache in folder argv[1] (as the CLI switches it on), a law given as argv[2]
# ("expression" or "python"), one fit; prints what was loaded and stored, then the numbers.
PROGRAM = """
import sys, warnings
import numpy as np
import tokenscale_sim
from tokenscale_sim.runtime import stored_programs
from tokenscale_sim.fit import CurveArrays, define_law, fit_arrays, parse_law
warnings.simplefilter("default")
folder = tokenscale_sim.enable_compilation_cache(sys.argv[1])
n = np.array([1.0, 2, 4, 8, 16, 32, 64, 128, 256])
y = 35 - 15 * n**-0.5 + 0.1 * np.sin(n)
if sys.argv[2] == "expression":
    law = parse_law("S_inf - A * n**(-a)", starts={"a": 0.5})
else:
    law = define_law("sat", lambda n, S_inf, A, a: S_inf - A * n**(-a), starts={"a": 0.5})
one = np.ones((1, n.size))
res = fit_arrays(law, CurveArrays(n[None], y[None], one, one, one))
print("loaded", stored_programs.STATS["loaded"])
print("stored", stored_programs.STATS["stored"])
print("result", repr([res.estimates.tolist(), res.se.tolist(), res.aic.tolist()]))
"""


def programs(folder) -> list[str]:
    return sorted(p.name for p in (folder / "programs").glob("*.program"))


def test_second_process_calls_the_stored_program_with_identical_numbers(tmp_path):
    folder = tmp_path / "cache"
    first = run_python(PROGRAM, str(folder), "expression")
    assert first.returncode == 0, first.stderr
    assert int(field(first.stdout, "stored")) >= 1 and int(field(first.stdout, "loaded")) == 0
    written = programs(folder)
    assert written, "the first process stored no program"
    second = run_python(PROGRAM, str(folder), "expression")
    assert second.returncode == 0, second.stderr  # a LAPACK program: loaded without a crash
    assert int(field(second.stdout, "loaded")) >= 1 and int(field(second.stdout, "stored")) == 0
    assert programs(folder) == written
    off = run_python(PROGRAM, str(folder), "expression", TOKENSCALE_CACHE="0")
    assert int(field(off.stdout, "loaded")) == 0 and int(field(off.stdout, "stored")) == 0
    assert field(first.stdout, "result") == field(second.stdout, "result")
    assert field(first.stdout, "result") == field(off.stdout, "result")
    assert "Warning" not in first.stderr + second.stderr


def test_a_program_lost_from_the_folder_is_stored_again_from_a_fresh_compile(tmp_path):
    # JAX's persistent cache still holds what the first process compiled; an executable read
    # back from there serialises without its machine code, so storing it would break the next
    # run: the second process must compile afresh
    folder = tmp_path / "cache"
    first = run_python(PROGRAM, str(folder), "expression")
    for name in programs(folder):
        (folder / "programs" / name).unlink()
    second = run_python(PROGRAM, str(folder), "expression")
    assert int(field(second.stdout, "stored")) >= 1
    third = run_python(PROGRAM, str(folder), "expression")
    assert third.returncode == 0, third.stderr
    assert int(field(third.stdout, "loaded")) >= 1
    assert field(third.stdout, "result") == field(first.stdout, "result")


def test_a_law_of_python_functions_is_never_stored(tmp_path):
    folder = tmp_path / "cache"
    out = run_python(PROGRAM, str(folder), "python")
    assert out.returncode == 0, out.stderr
    assert int(field(out.stdout, "stored")) == 0 and not programs(folder)


def test_damaged_entry_warns_once_and_is_compiled_again(tmp_path):
    folder = tmp_path / "cache"
    clean = run_python(PROGRAM, str(folder), "expression")
    for name in programs(folder):
        (folder / "programs" / name).write_bytes(b"not a program")
    damaged = run_python(PROGRAM, str(folder), "expression")
    assert damaged.returncode == 0, damaged.stderr
    assert damaged.stderr.count("CacheWarning") == 1, damaged.stderr
    assert "could not be loaded" in damaged.stderr
    assert int(field(damaged.stdout, "stored")) >= 1  # rewritten
    assert field(damaged.stdout, "result") == field(clean.stdout, "result")
    again = run_python(PROGRAM, str(folder), "expression")
    assert int(field(again.stdout, "loaded")) >= 1 and "Warning" not in again.stderr


def test_unwritable_programs_folder_warns_once_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "programs").write_text("a file where the folder should be")
    out = run_python(PROGRAM, str(folder), "expression")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("CacheWarning") == 1 and "could not be stored" in out.stderr
    assert int(field(out.stdout, "stored")) == 0


# ----------------------------------------------------------------------------- in one process


@pytest.fixture
def stored_in(tmp_path):
    """Store programs in a fresh folder for one test; storing is off again afterwards."""
    before = stored_programs.folder()
    stored_programs.use_folder(tmp_path / "programs")
    try:
        yield tmp_path / "programs"
    finally:
        stored_programs.use_folder(before)


def one_curve(m: int = 9) -> CurveArrays:
    n = np.geomspace(1.0, 256.0, m)
    y = 3.0 * n**-0.3
    one = np.ones((1, m))
    return CurveArrays(n[None], y[None], one, one, one)


def test_stable_names_only_for_models_named_by_value():
    assert stable_name(get_model("powerlaw")) == "builtin:powerlaw"
    law = parse_law("a * n**(-b)", starts={"b": 0.5})
    assert stable_name(law) is not None
    assert stable_name(parse_law("a * n**(-b)", starts={"b": 0.5})) == stable_name(law)
    assert stable_name(parse_law("a * n**(-b)", starts={"b": 0.7})) != stable_name(law)
    assert stable_name(dataclasses.replace(law, name="renamed")) is None  # a changed copy
    assert stable_name(define_law("pl", lambda n, a, b: a * n ** (-b))) is None
    opts = FitOptions()
    assert program_token(law, opts) != program_token(law, FitOptions(loss="linear"))
    assert program_token(define_law("pl", lambda n, a, b: a * n ** (-b)), opts) is None


def test_keys_follow_shapes_and_stay_equal_for_equal_calls(stored_in):
    model, opts = get_model("powerlaw"), FitOptions()
    data9, data12 = one_curve(9), one_curve(12)
    grid9, grid12 = start_grid(model, data9), start_grid(model, data12)
    key9 = solve_batch._key((model, opts, data9, grid9))
    key12 = solve_batch._key((model, opts, data12, grid12))
    assert key9 is not None and key12 is not None and key9 != key12
    assert solve_batch._key((model, opts, data9, start_grid(model, data9))) == key9
    with jax.enable_x64(False):  # the same arrays, another program
        assert solve_batch._key((model, opts, data9, grid9)) != key9


def test_calls_under_a_transformation_are_plain_jit_calls(stored_in):
    model, opts = get_model("powerlaw"), FitOptions()
    data = one_curve()
    grid = start_grid(model, data)
    direct = solve_batch(model, opts, data, grid)  # stored
    assert len(list(stored_in.glob("*.program"))) == 1
    traced = jax.jit(lambda d: solve_batch(model, opts, d, grid).u)(data)  # tracers: not stored
    assert len(list(stored_in.glob("*.program"))) == 1
    np.testing.assert_array_equal(np.asarray(traced), np.asarray(direct.u))


def test_results_identical_with_storing_on_and_off(stored_in):
    law = parse_law("S_inf - A * n**(-a)", starts={"a": 0.5})
    n = np.geomspace(1.0, 256.0, 9)
    y = 35 - 15 * n**-0.5 + 0.05 * np.cos(n)
    one = np.ones((1, 9))
    data = CurveArrays(n[None], y[None], one, one, one)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cache trouble
        on = fit_arrays(law, data)
    stored_programs.use_folder(None)
    off = fit_arrays(law, data)
    for a, b in [(on.estimates, off.estimates), (on.se, off.se), (on.aic, off.aic)]:
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(jnp.asarray(on.se)))
