"""The compile cache reads nothing another user could have written, and no entry runs code.

Real folders and files whose mode is changed with chmod and, where the tests run as root, whose
owner is changed with chown to another uid; the checks of :mod:`tokenscale_sim.runtime.ownership`
on them, then :func:`enable_compilation_cache` refusing such a folder (one warning, the cache
off for JAX and the stored programs). A crafted entry, a pickle that writes a marker file when
unpickled, is placed where a stored program would be: the marker never appears. A copied cache
folder is read as the original (programs are keyed on content, not on the folder's path).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
import warnings
from pathlib import Path

import pytest
from test_compile_cache import field, run_python
from test_stored_programs import PROGRAM, programs

from tokenscale_sim.runtime import compile_cache, ownership, program_files, stored_programs
from tokenscale_sim.runtime.compile_cache import CacheWarning

AS_ROOT = hasattr(os, "getuid") and os.getuid() == 0
OTHER_UID = 54321
needs_uids = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no user ids here")
needs_root = pytest.mark.skipif(not AS_ROOT, reason="chown to another uid needs root")


def private_tree(tmp_path: Path) -> Path:
    """A private cache folder with one entry and a programs/ folder with one entry."""
    folder = tmp_path / "cache"
    ownership.make_private(folder)
    (folder / "jax-entry-cache").write_bytes(b"x")
    ownership.make_private(folder / "programs")
    entry = folder / "programs" / "p.program"
    entry.write_bytes(b"y")
    entry.chmod(0o600)
    return folder


@needs_uids
def test_a_private_folder_passes_and_is_created_private(tmp_path):
    folder = private_tree(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "programs").stat().st_mode) == 0o700
    assert ownership.folder_problem(folder) is None


@needs_uids
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_folder_writable_by_group_or_others_is_refused(tmp_path, mode):
    folder = private_tree(tmp_path)
    folder.chmod(mode)
    assert "is writable by" in ownership.folder_problem(folder)
    folder.chmod(0o700)
    (folder / "programs").chmod(mode)
    assert "programs' is writable by" in ownership.folder_problem(folder)


@needs_uids
def test_a_group_writable_entry_counts_only_where_the_group_can_reach_it(tmp_path):
    folder = private_tree(tmp_path)
    (folder / "jax-entry-cache").chmod(0o664)  # a umask of 002: the folder keeps it private
    assert ownership.folder_problem(folder) is None
    folder.chmod(0o755)
    assert "jax-entry-cache' is writable by group" in ownership.folder_problem(folder)


@needs_uids
def test_a_folder_above_writable_by_others_without_sticky_bit_is_refused(tmp_path):
    folder = private_tree(tmp_path)
    tmp_path.chmod(0o777)
    assert "without the sticky bit" in ownership.folder_problem(folder)
    tmp_path.chmod(0o1777)  # like /tmp
    assert ownership.folder_problem(folder) is None


@needs_root
def test_a_folder_or_entry_owned_by_another_user_is_refused(tmp_path):
    folder = private_tree(tmp_path)
    os.chown(folder / "programs" / "p.program", OTHER_UID, OTHER_UID)
    assert f"owned by uid {OTHER_UID}" in ownership.folder_problem(folder)
    os.chown(folder / "programs" / "p.program", 0, 0)
    os.chown(folder, OTHER_UID, OTHER_UID)
    assert f"owned by uid {OTHER_UID}" in ownership.folder_problem(folder)
    os.chown(folder, 0, 0)
    (folder / "link").symlink_to(folder / "jax-entry-cache")
    os.chown(folder / "jax-entry-cache", OTHER_UID, OTHER_UID)  # reached through a link too
    assert f"owned by uid {OTHER_UID}" in ownership.folder_problem(folder)


@needs_uids
def test_enable_refuses_a_shared_folder_with_one_warning(tmp_path, monkeypatch):
    import jax

    monkeypatch.delenv(compile_cache.ENV_SWITCH, raising=False)
    folder = private_tree(tmp_path)
    folder.chmod(0o777)
    before_dir = jax.config.jax_compilation_cache_dir  # pyright: ignore
    before_programs = stored_programs.folder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_cache.enable_compilation_cache(folder) is None
    assert [w.category for w in caught] == [CacheWarning]
    assert "writable by group and others" in str(caught[0].message)
    assert jax.config.jax_compilation_cache_dir == before_dir  # pyright: ignore
    assert stored_programs.folder() is None
    stored_programs.use_folder(before_programs)


@needs_uids
def test_enable_creates_a_missing_folder_private(tmp_path, monkeypatch):
    import jax

    monkeypatch.delenv(compile_cache.ENV_SWITCH, raising=False)
    before_dir = jax.config.jax_compilation_cache_dir  # pyright: ignore
    before_programs = stored_programs.folder()
    try:
        tmp_path.chmod(0o755)
        folder = tmp_path / "new" / "cache"
        assert compile_cache.enable_compilation_cache(folder) == folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        jax.config.update("jax_compilation_cache_dir", before_dir)
        stored_programs.use_folder(before_programs)


# ----------------------------------------------------------------------------- the entry file


class WritesMarker:
    """Unpickling this runs ``open(marker, 'w').write('ran')``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_read_entry_checks_before_anything_is_built():
    meta = {"key": "K", "lapack": False}
    blob = program_files.entry_bytes(meta, b"EXECUTABLE")
    header, executable = program_files.read_entry(blob, "K")
    assert executable == b"EXECUTABLE" and header["key"] == "K"
    assert header["executable"]["sha256"] == hashlib.sha256(b"EXECUTABLE").hexdigest()
    cases = {
        "no header": b"\x80\x04" + blob,
        "another program": None,
        "size differs": blob + b"!",
        "sha256 differs": blob[:-1] + b"?",
        "is not JSON": program_files.MAGIC + b"{" * 100000 + b"\n",
        "written by": blob.replace(b'"jax":"', b'"jax":"0.0.0-'),
    }
    for reason, damaged in cases.items():
        with pytest.raises(program_files.DamagedEntry, match=reason):
            program_files.read_entry(blob if damaged is None else damaged,
                                     "other" if damaged is None else "K")  # fmt: skip


def test_trees_round_trip_through_json_without_importing(tmp_path):
    import jax

    from tokenscale_sim.fit.engine.solver import Solution

    value = ((Solution(*range(len(Solution._fields))), None, [1, {"b": 2, "a": ()}]), {})
    tree = jax.tree_util.tree_structure(value)
    desc = json.loads(json.dumps(program_files.describe_tree(tree)))
    assert program_files.rebuild_tree(desc) == tree
    marker = tmp_path / "imported"
    module = tmp_path / "planted_module.py"
    module.write_text(f"open({str(marker)!r}, 'w').write('ran')\nfrom typing import NamedTuple\n")
    desc = {"namedtuple": "planted_module:T", "children": ["*"]}
    with pytest.raises(program_files.DamagedEntry, match="not a named tuple of a loaded module"):
        program_files.rebuild_tree(desc)
    with pytest.raises(program_files.DamagedEntry):
        program_files.rebuild_tree({"namedtuple": "os:system", "children": []})
    assert not marker.exists()


def crafted_entries(folder: Path, marker: Path) -> list[str]:
    """Replace every stored program in ``folder`` by a pickle that writes ``marker``."""
    names = programs(folder)
    payload = pickle.dumps(WritesMarker(str(marker)))
    for name in names:
        path = folder / "programs" / name
        path.write_bytes(payload)
        path.chmod(0o600)
    return names


def test_a_copied_cache_is_read_and_a_crafted_entry_never_runs(tmp_path):
    folder = tmp_path / "cache"
    first = run_python(PROGRAM, str(folder), "expression")
    assert first.returncode == 0 and int(field(first.stdout, "stored")) >= 1, first.stderr
    # moved or copied elsewhere, the programs are found: keyed on content, not on the path
    copy = tmp_path / "elsewhere" / "copied"
    copy.parent.mkdir()
    shutil.copytree(folder, copy)
    copied = run_python(PROGRAM, str(copy), "expression")
    assert copied.returncode == 0, copied.stderr
    assert int(field(copied.stdout, "loaded")) >= 1 and int(field(copied.stdout, "stored")) == 0
    assert field(copied.stdout, "result") == field(first.stdout, "result")
    assert "Warning" not in copied.stderr
    # a pickle where a program was: read as damaged, never unpickled
    marker = tmp_path / "MARKER"
    assert crafted_entries(copy, marker)
    crafted = run_python(PROGRAM, str(copy), "expression")
    assert crafted.returncode == 0, crafted.stderr
    assert not marker.exists(), "a crafted cache entry ran"
    assert crafted.stderr.count("CacheWarning") == 1 and "no header" in crafted.stderr
    assert field(crafted.stdout, "result") == field(first.stdout, "result")


@needs_root
def test_an_entry_planted_by_another_user_is_not_even_opened(tmp_path):
    folder = tmp_path / "cache"
    first = run_python(PROGRAM, str(folder), "expression")
    assert first.returncode == 0, first.stderr
    marker = tmp_path / "MARKER"
    for name in crafted_entries(folder, marker):
        os.chown(folder / "programs" / name, OTHER_UID, OTHER_UID)
    second = run_python(PROGRAM, str(folder), "expression")
    assert second.returncode == 0, second.stderr
    assert not marker.exists(), "a planted cache entry ran"
    assert second.stderr.count("CacheWarning") == 1, second.stderr
    assert f"owned by uid {OTHER_UID}" in second.stderr and "is not used" in second.stderr
    assert int(field(second.stdout, "loaded")) == 0 and int(field(second.stdout, "stored")) == 0
    assert field(second.stdout, "result") == field(first.stdout, "result")


@needs_root
def test_an_entry_turned_foreign_after_the_check_is_not_read(tmp_path):
    """The folder passed at start; an entry that is then another user's is refused when opened
    (its open file's owner), and the cache is off for the rest of the process."""
    from functools import partial

    import jax
    import jax.numpy as jnp

    from tokenscale_sim.runtime.stored_programs import stored_program

    @stored_program(1, lambda k: f"k={k}")
    @partial(jax.jit, static_argnums=0)
    def scaled(k, x):
        return x * k

    before_dir = jax.config.jax_compilation_cache_dir  # pyright: ignore
    before = stored_programs.folder()
    stored_programs.use_folder(tmp_path / "programs")
    warned = stored_programs._STATE["warned"]
    stored_programs._STATE["warned"] = False
    try:
        x = jnp.arange(3.0)
        assert scaled(2, x).tolist() == [0.0, 2.0, 4.0]
        (entry,) = (tmp_path / "programs").glob("*.program")
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600
        stored_programs.forget_loaded()
        os.chown(entry, OTHER_UID, OTHER_UID)
        with pytest.warns(CacheWarning, match=f"owned by uid {OTHER_UID}"):
            assert scaled(2, x).tolist() == [0.0, 2.0, 4.0]
        assert stored_programs.folder() is None
        assert jax.config.jax_compilation_cache_dir is None  # pyright: ignore
    finally:
        stored_programs._STATE["warned"] = warned
        stored_programs.use_folder(before)
        jax.config.update("jax_compilation_cache_dir", before_dir)
