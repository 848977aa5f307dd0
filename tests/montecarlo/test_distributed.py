"""simulate under multi-process JAX: two local processes (2 CPU devices each, gloo collectives)
joined by ``jax.distributed.initialize`` on 127.0.0.1 give every process the single-process
result; resume takes process 0's state; ``tokenscale simulate --distributed`` writes on process
0 only."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tokenscale_sim.cli import main
from tokenscale_sim.montecarlo.simulation import (
    ALL_STATS,
    SimulationConfig,
    SimulationState,
    simulate,
)
from tokenscale_sim.structures import terms as st

ROOT = Path(__file__).resolve().parents[2]
STRUCTURE = st.decaying(3.0, coupling=0.4)
KW = {"n_max": 12, "d": 6, "m": 50, "chunk": 12}
TIMEOUT = 120
ARGV = ["simulate", "--structure", "decaying", "--length", "3", "--coupling", "0.4", "--quiet",
        "--n-max", "12", "--d", "6", "--m", "50", "--chunk", "12", "--seed", "5"]  # fmt: skip

PRELUDE = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
port, pid = sys.argv[1], int(sys.argv[2])
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid,
    initialization_timeout=60,
)
assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two(body: str, *args: str, prelude: bool = True) -> list[str]:
    """Run [PRELUDE +] body as processes 0 and 1 of one job; returns their stderr."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    port = str(free_port())
    script = (PRELUDE if prelude else "import sys\n") + textwrap.dedent(body)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, port, str(pid), *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    deadline = time.monotonic() + TIMEOUT
    try:  # a failed process leaves the other waiting in a collective: stop at the first failure
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = [p.communicate() for p in procs]
    for pid, (p, (_, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, f"process {pid} failed ({p.returncode}):\n{err[-4000:]}"
    return [err for _, err in results]


def stacked(r) -> np.ndarray:
    return np.stack(
        [getattr(r, f).mean for f in ALL_STATS] + [getattr(r, f).std for f in ALL_STATS]
    )


@pytest.fixture(scope="module")
def single():
    return simulate(jax.random.key(5), STRUCTURE, SimulationConfig(**KW))


@pytest.mark.slow
def test_two_processes_match_a_single_process_run(single, tmp_path):
    body = f"""
    import numpy as np
    from jax.experimental import multihost_utils
    from tokenscale_sim.structures import terms as st
    from tokenscale_sim.montecarlo.simulation import ALL_STATS, SimulationConfig, simulate
    out = sys.argv[3]
    s = st.decaying(3.0, coupling=0.4)
    config = SimulationConfig(**{KW!r})

    def stacked(r):
        return np.stack([getattr(r, f).mean for f in ALL_STATS]
                        + [getattr(r, f).std for f in ALL_STATS])

    saved = []
    r = simulate(jax.random.key(5), s, config, progress=True, checkpoint=saved.append,
                 checkpoint_seconds=0)
    assert len(r.metadata["sharded_over"]) == 4 and r.metadata["processes"] == 2
    assert len(saved) == (6 if pid == 0 else 0)  # 5 chunks + the end; process 0 only
    # resume: only process 0 holds the state (after 2 chunks); it is broadcast to process 1
    resumed = simulate(jax.random.key(5), s, config,
                       state=saved[1] if pid == 0 else None)
    # local devices only: each process runs the whole simulation by itself
    local = simulate(jax.random.key(5), s, config, devices=jax.local_devices())
    try:
        simulate(jax.random.key(5 + pid), s, config)
    except ValueError as err:
        assert "every process must pass the same key" in str(err), err
    else:
        raise AssertionError("differing keys were not refused")
    try:
        simulate(jax.random.key(5), s, config, devices=jax.devices()[2:])
    except ValueError as err:
        assert pid == 0 and "must include a device of this process (0)" in str(err), err
    else:
        assert pid == 1
    multihost_utils.sync_global_devices("done")
    np.savez(f"{{out}}/p{{pid}}.npz", full=stacked(r), resumed=stacked(resumed),
             local=stacked(local))
    """
    run_two(body, str(tmp_path))
    here = stacked(single)
    for pid in (0, 1):
        got = np.load(tmp_path / f"p{pid}.npz")
        for name in ("full", "resumed", "local"):
            np.testing.assert_allclose(got[name], here, rtol=1e-12, atol=1e-13, equal_nan=True)
        np.testing.assert_array_equal(got["full"], got["resumed"])  # same layout: bitwise
    p0, p1 = np.load(tmp_path / "p0.npz"), np.load(tmp_path / "p1.npz")
    np.testing.assert_array_equal(p0["full"], p1["full"])  # identical on every process


@pytest.mark.slow
def test_cli_distributed_writes_on_process_0_only(tmp_path):
    body = """
    import os
    port, pid = sys.argv[1], int(sys.argv[2])
    os.environ.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                      JAX_PROCESS_ID=str(pid))
    from tokenscale_sim.cli import main
    bad = os.path.join(sys.argv[3], "bad")  # process 0 refuses it: every process stops
    code = main([*sys.argv[4:], "--out", bad, "--distributed"])
    assert code == 2, code
    out = os.path.join(sys.argv[3], "run")
    code = main([*sys.argv[4:], "--out", out, "--distributed"])
    assert code == 0, code
    """
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "notes.txt").write_text("not a run")
    errs = run_two(body, str(tmp_path), *ARGV, prelude=False)  # initialised from the environment
    assert "is not empty and holds no tokenscale run" in errs[0]
    assert "error: process 0 could not prepare --out" in errs[1]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad", "run"]
    assert sorted(f.name for f in (tmp_path / "bad").iterdir()) == ["notes.txt"]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["metadata"]["processes"] == 2
    assert main([*ARGV, "--out", str(tmp_path / "here")]) == 0  # one process
    here = json.loads((tmp_path / "here" / "result.json").read_text())
    assert here["metadata"]["processes"] == 1
    for name in ("divergence_mean", "psi_ab_std", "upsilon_se"):
        got = np.asarray(result["columns"][name], dtype=float)
        want = np.asarray(here["columns"][name], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, equal_nan=True)


def test_state_broadcast_is_a_no_op_on_one_process(single):
    """The multi-process helpers on a single process (process_allgather / broadcast paths)."""
    from tokenscale_sim.montecarlo.checkpoints import (
        agree_across_processes,
        fetch,
        state_from_process_0,
    )

    agree_across_processes("anything")
    state = SimulationState(16, np.ones((2, 3)), np.full((2, 3), 2.0), np.zeros((1, 2, 3)), "fp")
    back = state_from_process_0(state, "fp", (2, 3))
    assert back is not None and back.count == 16 and back.fingerprint == "fp"
    for x, y in zip(back[1:4], state[1:4], strict=True):
        np.testing.assert_array_equal(x, y)
    other = state_from_process_0(state, "another", (2, 3))
    assert other is not None and other.fingerprint == "" and other.done == 17
    assert state_from_process_0(None, "fp", (2, 3)) is None
    np.testing.assert_array_equal(fetch(jax.numpy.arange(3.0)), [0.0, 1.0, 2.0])


def test_cli_distributed_without_environment_is_a_usage_error(monkeypatch, tmp_path, capsys):
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    argv = ["simulate", "--n-max", "4", "--d", "4", "--m", "10", "--quiet", "--distributed",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    assert "--distributed: jax.distributed.initialize() failed" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    assert main(argv) == 2
    assert "JAX_NUM_PROCESSES must be an integer, got 'two'" in capsys.readouterr().err
