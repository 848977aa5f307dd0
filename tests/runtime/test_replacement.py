"""Replacing an output folder cannot be split by a signal; what a killed run left is put right.

Signals are real (``os.kill`` of this process, a handler of Python's own); the window between
the two renames of the fallback swap is hit on purpose by sending the signal from inside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tokenscale_sim.runtime import outputs, replacement


def run_folder(path, text: str):
    path.mkdir()
    (path / "result.txt").write_text(text)
    return path


@pytest.fixture
def sigint_raises():
    """Python's default SIGINT handler (KeyboardInterrupt) for the test, whatever pytest set."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


def test_signals_in_the_block_are_delivered_after_it(sigint_raises):
    done = []
    with pytest.raises(KeyboardInterrupt), replacement.signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("atomic", [True, False])
def test_a_signal_during_the_swap_leaves_the_new_run_and_nothing_else(
    tmp_path, monkeypatch, sigint_raises, atomic
):
    final = run_folder(tmp_path / "out", "old")
    staging = run_folder(tmp_path / ".out.1-0.x.tmp", "new")
    real_replace = os.replace
    if not atomic:
        monkeypatch.setattr(replacement, "exchange", lambda a, b: False)

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # lands between the two renames

    monkeypatch.setattr(replacement.os, "replace", replace_then_signal)
    exchanged = []
    real_exchange = replacement.exchange

    def exchange_then_signal(a, b):
        exchanged.append(real_exchange(a, b))
        os.kill(os.getpid(), signal.SIGINT)
        return exchanged[-1]

    if atomic:
        monkeypatch.setattr(replacement, "exchange", exchange_then_signal)
    with pytest.raises(KeyboardInterrupt):
        replacement.swap(staging, final)
    assert (final / "result.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .old, no staging
    if atomic and exchanged != [True]:
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the fallback was tested instead")


def test_the_exchange_swaps_two_folders_in_one_call(tmp_path):
    a = run_folder(tmp_path / "a", "A")
    b = run_folder(tmp_path / "b", "B")
    if not replacement.exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this system or file system")
    assert (a / "result.txt").read_text() == "B" and (b / "result.txt").read_text() == "A"


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_killed_between_the_renames_is_put_back_on_the_next_run(tmp_path):
    host = replacement.hidden_sibling(tmp_path / "probe", "tmp").name.split(".")[2].split("-")[1]
    pid = dead_pid()
    old = tmp_path / f".out.{pid}-{host}.abc.old"
    old.mkdir()
    run_folder(old / "run", "the earlier run")
    (old / "run" / "run.json").write_text('{"kind": "fit", "complete": true}')
    staging = run_folder(tmp_path / f".out.{pid}-{host}.def.tmp", "half written")
    alive = run_folder(tmp_path / f".out.{os.getpid()}-{host}.ghi.tmp", "a live run's")
    other_host = run_folder(tmp_path / f".out.{pid}-00000000.jkl.tmp", "another machine's")
    outputs.check_output_folder(tmp_path / "out", "fit", overwrite=True)
    assert (tmp_path / "out" / "result.txt").read_text() == "the earlier run"
    assert not old.exists() and not staging.exists()
    assert alive.exists() and other_host.exists()  # not ours to judge


def test_orphans_beside_a_landed_run_are_removed(tmp_path):
    host = replacement.hidden_sibling(tmp_path / "probe", "tmp").name.split(".")[2].split("-")[1]
    pid = dead_pid()
    final = run_folder(tmp_path / "out", "the new run")
    old = run_folder(tmp_path / f".out.{pid}-{host}.abc.old", "x")
    assert replacement.recover_orphans(final) == [old]
    assert (final / "result.txt").read_text() == "the new run" and not old.exists()
