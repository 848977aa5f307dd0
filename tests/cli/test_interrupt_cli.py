"""Ctrl-C (SIGINT) and SIGTERM end every long command cleanly: real processes, real signals.

Each run starts ``tokenscale CMD ... --out DIR`` as its own process, waits until the run is
working (its staging folder has appeared beside ``DIR``), waits a little more, sends the signal,
and checks: exit code 130 (SIGINT) or 143 (SIGTERM), one line ``tokenscale CMD: interrupted
(SIGINT)`` on stderr, no traceback, no "Segmentation fault" or "pure virtual method called"
(the crashes this used to end in: Python tore JAX's client down while XLA still compiled), no
staging or set-aside folder left beside ``DIR``, and an earlier run in ``DIR`` intact when the
interrupted run was to replace it (``--overwrite``). The quick tier runs two of them; the slow
tier repeats every long command five times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CRASHES = ("Segmentation fault", "pure virtual", "Traceback", "Fatal Python error", "Aborted")


def long_commands(tmp: Path) -> dict[str, list[str]]:
    """Commands that run for many seconds: long enough to be caught in the middle."""
    hidden = tmp / "hidden.npy"
    if not hidden.exists():
        rng = np.random.default_rng(0)
        np.save(hidden, rng.normal(size=(12, 2, 16, 32)) + rng.normal(size=(12, 1, 1, 32)))
    return {
        "sweep": ["sweep", "--grid", "image=0.001:0.3:10:log", "--grid", "length=1:100:10:log",
                  "--mc", "10000", "--no-plot"],
        "calibrate": ["calibrate", "--hidden", str(hidden), "--n-fit", "10",
                      "--mc", "2000000"],
        "fit": ["fit", "--paper", "--model", "alpha_n", "--bootstrap", "20000"],
        "simulate": ["simulate", "--structure", "decaying", "--n-max", "64", "--d", "32",
                     "--m", "3000000", "--checkpoint-every", "1"],
        "compare": ["compare", "--paper", "--laws", "powerlaw,alpha_n,broken",
                    "--bootstrap", "5000"],
    }  # fmt: skip


def earlier_run(out: Path, kind: str) -> None:
    """A finished run of ``kind`` in ``out``, as ``--overwrite`` would replace it."""
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"kind": kind, "complete": True}))
    (out / "earlier.txt").write_text("the earlier run\n")


def interrupt(argv: list[str], out: Path, signum: int, *, delay: float) -> tuple[int, str]:
    """Run ``tokenscale *argv --out out``, send ``signum`` ``delay`` seconds after its staging
    folder appears; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenscale_sim.cli", *argv, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not any(p.name.endswith(".tmp") for p in out.parent.glob(f".{out.name}.*")):
            assert proc.poll() is None, f"{argv[0]} ended before it staged its run"
            assert time.monotonic() < deadline, f"{argv[0]} never staged its run"
            time.sleep(0.02)
        time.sleep(delay)
        assert proc.poll() is None, f"{argv[0]} finished before the signal: make it longer"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def check_clean_end(argv, out: Path, signum: int, code: int, err: str) -> None:
    name = signal.Signals(signum).name
    assert code == 128 + signum, (code, err)
    assert not any(crash in err for crash in CRASHES), err
    assert f"tokenscale {argv[0]}: interrupted ({name})" in err.splitlines(), err
    left = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    assert left == [], f"left beside the output: {left}"


def handlers_installed(pid: int) -> bool:
    """Whether process ``pid`` catches SIGTERM yet (Linux: ``SigCgt`` in /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.4])
def test_a_signal_while_jax_is_imported_ends_cleanly(tmp_path, delay):
    """A signal in the first second, while the command imports JAX (before the fix: a
    KeyboardInterrupt traceback, or death by SIGTERM; inside the C++ extension's start the
    signal can surface as an ImportError): still one line and 130, or 143."""
    signum = signal.SIGTERM if delay == 0.1 else signal.SIGINT
    argv = long_commands(tmp_path)["sweep"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenscale_sim.cli", *argv, "--out", str(tmp_path / "sw")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        while proc.poll() is None and not handlers_installed(proc.pid):
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    check_clean_end(argv, tmp_path / "sw", signum, proc.returncode, err)
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sweep_interrupted_ends_cleanly_and_keeps_the_earlier_run(tmp_path, signum):
    argv = long_commands(tmp_path)["sweep"]
    out = tmp_path / "sw"
    earlier_run(out, "sweep")
    code, err = interrupt([*argv, "--overwrite"], out, signum, delay=0.5)
    check_clean_end(argv, out, signum, code, err)
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt", "run.json"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sweep", "calibrate", "fit", "simulate", "compare"])
def test_every_long_command_ends_cleanly_five_times(tmp_path, command):
    argv = long_commands(tmp_path)[command]
    rng = random.Random(command)
    for attempt in range(5):
        signum = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
        out = tmp_path / f"{command}{attempt}"
        overwrite = attempt >= 3  # the last two replace an earlier run
        if overwrite:
            earlier_run(out, command)
        extra = ["--overwrite"] if overwrite else []
        code, err = interrupt([*argv, *extra], out, signum, delay=rng.uniform(0.0, 2.0))
        check_clean_end(argv, out, signum, code, err)
        if overwrite:
            assert sorted(p.name for p in out.iterdir()) == ["earlier.txt", "run.json"]
        elif command == "simulate" and out.exists():  # an interrupted run keeps its checkpoint
            kept = sorted(p.name for p in out.iterdir())
            assert kept in (["run.json"], ["checkpoint.npz", "run.json"])
        else:
            assert not out.exists(), sorted(p.name for p in out.iterdir())
