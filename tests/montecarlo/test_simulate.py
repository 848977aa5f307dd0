"""simulate: Monte Carlo against the exact Gaussian oracle, invariances, resume, plots."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

from tokenscale_sim.montecarlo.simulation import (
    ALL_STATS,
    BLOCK,
    SimulationConfig,
    SimulationState,
    load_state,
    result_columns,
    save_state,
    simulate,
)
from tokenscale_sim.plots.simulation import plot_divergence, plot_psi, plot_simulation
from tokenscale_sim.structures import terms as st

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = {
    "exchangeable": st.exchangeable(0.6, 0.4, psi_bb=0.3, psi_ab=0.2),
    "decaying": st.decaying(3.0, coupling=0.4),
    "powerlaw": st.decaying(0.8, coupling=0.2, kernel="powerlaw"),
    "patch-grid": st.patch_grid(2.0, coupling=0.3),
    "sum-with-shared": 0.7 * st.decaying(3.0, 0.3) + st.shared(0.3),
    "dense": st.dense(np.kron(np.array([[1.0, 0.3], [0.3, 1.0]]), st.PowerLaw(1.2).dense(16))),
}
SMALL = {"n_max": 12, "d": 6, "m": 50, "chunk": 16}
CONFIG = SimulationConfig(**SMALL)
GRAM = {"n_max": 12, "d": 64, "m": 50, "chunk": 16, "sampler": "gram"}


def zmax(moments, exact) -> float:
    """max over n of |mean - exact| / SE (NaN entries, the pairwise psi's at n = 1, skipped)."""
    return float(np.nanmax(np.abs((moments.mean - exact) / moments.se)))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_gaussian_oracle_every_structure(name):
    s = STRUCTURES[name]
    r = simulate(jax.random.key(2024), s, SimulationConfig(n_max=16, d=8, m=1200, chunk=600))
    assert zmax(r.divergence, r.exact.gaussian_mean) < 5
    assert zmax(r.squared_divergence, r.exact.v) < 5
    for field in ("psi_eq", "psi_aa", "psi_bb", "psi_ab", "upsilon"):
        assert zmax(getattr(r, field), getattr(r.exact, field)) < 5, field
    np.testing.assert_allclose(r.exact.bound, np.sqrt(2 * s.upsilon(16)), rtol=1e-12)
    assert np.all(r.divergence.ci_low < r.divergence.mean)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["exchangeable", "powerlaw", "dense"])
def test_difference_fast_path_matches_oracle(name):
    config = SimulationConfig(n_max=16, d=8, m=1200, chunk=600, divergence_only=True)
    r = simulate(jax.random.key(7), STRUCTURES[name], config)
    assert r.psi_eq is None and r.upsilon is None and r.metadata["fast_path"]
    assert zmax(r.divergence, r.exact.gaussian_mean) < 5
    assert zmax(r.squared_divergence, r.exact.v) < 5


@pytest.mark.slow
def test_unit_and_student_t_tokens_against_their_oracles():
    s = STRUCTURES["decaying"]
    size = {"n_max": 16, "d": 8, "m": 1200, "chunk": 600}
    unit = simulate(jax.random.key(3), s, SimulationConfig(**size, tokens="unit"))
    assert zmax(unit.squared_divergence, unit.exact.mean_squared) < 5
    assert np.all(unit.divergence.mean <= unit.exact.bound + 3 * unit.divergence.se)
    for field in ("psi_eq", "psi_ab", "upsilon"):
        assert zmax(getattr(unit, field), getattr(unit.exact, field)) < 5
    config = SimulationConfig(**size, tokens="student-t", divergence_only=True)
    heavy = simulate(jax.random.key(4), s, config)
    assert zmax(heavy.squared_divergence, heavy.exact.mean_squared) < 5


@pytest.fixture(scope="module")
def reference_run():
    return simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG)


def assert_same_result(a, b, rtol=1e-12):
    for name in ALL_STATS:
        ma, mb = getattr(a, name), getattr(b, name)
        for x, y in zip(ma, mb, strict=True):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-13, equal_nan=True)


def test_chunk_size_invariance(reference_run):
    again = simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG)
    for x, y in zip(reference_run.divergence, again.divergence, strict=True):
        np.testing.assert_array_equal(x, y)  # same chunks: bitwise
    for chunk in (7, 50):
        other = simulate(
            jax.random.key(5), STRUCTURES["decaying"], SimulationConfig(**{**SMALL, "chunk": chunk})
        )
        assert_same_result(reference_run, other)


def test_interrupted_run_resumes_to_the_same_result(reference_run, tmp_path):
    saved: list[SimulationState] = []

    def checkpoint(state):
        saved.append(state)
        if len(saved) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(
            jax.random.key(5), STRUCTURES["decaying"], CONFIG, checkpoint=checkpoint,
            checkpoint_seconds=0,
        )  # fmt: skip
    assert len(saved) == 3 and saved[-1].done == 2 * SMALL["chunk"]
    path = save_state(tmp_path / "ckpt.npz", saved[-1])
    state = load_state(path)
    assert state.done == saved[-1].done and state.fingerprint == saved[-1].fingerprint
    resumed = simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG, state=state)
    for name in ALL_STATS:
        for x, y in zip(getattr(reference_run, name), getattr(resumed, name), strict=True):
            np.testing.assert_array_equal(x, y)  # same chunk layout: bitwise


def test_resume_can_extend_m():
    states: list[SimulationState] = []
    short = SimulationConfig(**{**SMALL, "m": 20})
    simulate(jax.random.key(6), STRUCTURES["decaying"], short, checkpoint=states.append)
    assert states[-1].count == BLOCK and states[-1].pending.shape[0] == 20 - BLOCK
    extended = simulate(jax.random.key(6), STRUCTURES["decaying"], CONFIG, state=states[-1])
    direct = simulate(jax.random.key(6), STRUCTURES["decaying"], CONFIG)
    assert_same_result(extended, direct)


def test_state_from_another_run_is_refused(reference_run):
    states: list[SimulationState] = []
    simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG, checkpoint=states.append)
    with pytest.raises(ValueError, match=r"simulate: state must come from a run with the same"):
        simulate(jax.random.key(6), STRUCTURES["decaying"], CONFIG, state=states[-1])
    with pytest.raises(ValueError, match=r"simulate: m must be >= the 50 replicates"):
        simulate(jax.random.key(5), STRUCTURES["decaying"], SimulationConfig(**{**SMALL, "m": 10}),
                 state=states[-1])  # fmt: skip


@pytest.mark.slow
def test_device_count_invariance(reference_run, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import jax
        jax.config.update("jax_enable_x64", True)
        import numpy as np
        from tokenscale_sim.structures import terms as st
        from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate
        assert len(jax.devices()) == 4, jax.devices()
        out = {{}}
        for name, devices in (("four", jax.devices()), ("one", jax.devices()[:1])):
            r = simulate(jax.random.key(5), st.decaying(3.0, coupling=0.4),
                         SimulationConfig(**{SMALL!r}), devices=devices)
            assert len(r.metadata["sharded_over"]) == len(devices)
            out[name] = np.stack([getattr(r, f).mean for f in {ALL_STATS!r}]
                                 + [getattr(r, f).std for f in {ALL_STATS!r}])
            g = simulate(jax.random.key(5), st.decaying(3.0, coupling=0.4),
                         SimulationConfig(**{GRAM!r}), devices=devices)
            assert g.metadata["method"] == "gram"
            out["gram_" + name] = np.stack([getattr(g, f).mean for f in {ALL_STATS!r}])
        np.savez(sys.argv[1], **out)
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    out = tmp_path / "devices.npz"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, cwd=ROOT)
    got = np.load(out)
    here = np.stack([getattr(reference_run, f).mean for f in ALL_STATS]
                    + [getattr(reference_run, f).std for f in ALL_STATS])  # fmt: skip
    np.testing.assert_allclose(got["four"], got["one"], rtol=1e-12, atol=1e-13, equal_nan=True)
    gram = got["gram_four"], got["gram_one"]  # the gram method: the same on 4 devices as on 1
    np.testing.assert_allclose(*gram, rtol=1e-12, atol=1e-13, equal_nan=True)
    np.testing.assert_allclose(got["four"], here, rtol=1e-12, atol=1e-13, equal_nan=True)


def test_result_columns_and_metadata(reference_run):
    cols = result_columns(reference_run)
    assert cols["n"].tolist() == list(range(1, 13))
    assert {"divergence_mean", "psi_ab_se", "upsilon_ci_high", "exact_gaussian_mean"} <= set(cols)
    assert all(v.shape == (12,) for v in cols.values())
    meta = reference_run.metadata
    assert meta["structure"]["name"] == "decaying-exponential" and meta["m"] == 50
    assert meta["structure"]["params"] == {"length": 3.0, "coupling": 0.4}
    assert meta["sampler"] == ["ar1-scan(phi=0.716531)"] and meta["x64"] is True
    assert reference_run.m == 50


def test_progress_bar_and_memory_flat_in_m(capsys):
    small = SimulationConfig(n_max=12, d=6, m=10_000)
    large = SimulationConfig(n_max=12, d=6, m=10_000_000)
    assert small.chunk_for(1) == large.chunk_for(1)  # device memory does not grow with m
    simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG, progress=True)
    assert "50/50" in capsys.readouterr().err


def test_float32_smoke(float32):
    config = SimulationConfig(n_max=8, d=4, m=20, chunk=10)
    r = simulate(jax.random.key(1), STRUCTURES["exchangeable"], config)
    assert np.all(np.isfinite(r.divergence.mean)) and r.metadata["x64"] is False
    assert r.divergence.mean.dtype == np.float64  # accumulators are float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"m": 0}, r"SimulationConfig: m must be an integer >= 1, got 0"),
        ({"m": 2**32}, r"SimulationConfig: m must be <= 2\^32 - chunk"),
        ({"chunk": 0}, r"SimulationConfig: chunk must be an integer >= 1"),
        ({"n_max": 0}, r"SimulationConfig: n_max must be an integer >= 1"),
        ({"d": -2}, r"SimulationConfig: d must be an integer >= 1"),
        ({"n_max": 4.0}, r"SimulationConfig: n_max must be an integer >= 1"),
        ({"confidence": 1.0}, r"SimulationConfig: confidence must be in \(0, 1\)"),
        ({"tokens": "laplace"}, r"TokenModel: kind must be one of"),
        ({"max_chunk_bytes": 0}, r"SimulationConfig: max_chunk_bytes must be an integer >= 1"),
    ],
)
def test_config_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimulationConfig(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    ("config", "kwargs", "match"),
    [
        (CONFIG, {"devices": []}, r"simulate: devices must name at least one device"),
        (
            SimulationConfig(**{**SMALL, "max_chunk_bytes": 1000}),
            {},
            r"simulate: chunk must keep chunk \* \d+ bytes .* <= max_chunk_bytes = 1000",
        ),
        (
            SimulationConfig(**{**SMALL, "chunk": None, "max_chunk_bytes": 1000}),
            {},
            r"simulate: one replicate per device needs \d+ bytes .* max_chunk_bytes = 1000",
        ),
    ],
)
def test_run_validation_errors(config, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(jax.random.key(0), STRUCTURES["decaying"], config, **kwargs)


@pytest.mark.parametrize("key", ["0", 1.5, np.zeros(2, np.uint32)])
def test_a_key_that_is_not_a_key_is_refused(key):
    with pytest.raises(TypeError, match=r"simulate: key must be .*pass jax\.random\.key\(seed\)"):
        simulate(key, STRUCTURES["decaying"], CONFIG)


def test_a_state_of_another_precision_is_refused(float32):
    states: list[SimulationState] = []
    simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG, checkpoint=states.append)
    jax.config.update("jax_enable_x64", True)
    with pytest.raises(ValueError, match=r"simulate: state must come from a run with the same"):
        simulate(jax.random.key(5), STRUCTURES["decaying"], CONFIG, state=states[-1])


def test_default_chunk_adapts_to_the_memory_budget():
    wide = SimulationConfig(n_max=1024, d=4096, m=512)  # 512 MiB per replicate in float64
    assert wide.chunk_for(1) == 8  # 4 GiB budget
    assert SimulationConfig(n_max=12, d=6, m=50).chunk_for(4) == 52  # m, rounded to devices
    assert SimulationConfig(n_max=12, d=6, m=5000).chunk_for(1) == 256


def test_a_run_validates_the_structure_and_builds_its_plan_once(monkeypatch):
    from tokenscale_sim.montecarlo import sampling

    calls = {"validate": 0, "plan": 0}
    structure = st.decaying(2.5, coupling=0.3)
    real_validate, real_plan = st.Structure.validate, sampling.plan

    def counting_validate(self, n_max):
        calls["validate"] += 1
        return real_validate(self, n_max)

    def counting_plan(*args, **kwargs):
        calls["plan"] += 1
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(st.Structure, "validate", counting_validate)
    monkeypatch.setattr(sampling, "plan", counting_plan)
    r = simulate(jax.random.key(0), structure, CONFIG)
    assert calls == {"validate": 1, "plan": 1}
    assert r.metadata["sampler"] == ["ar1-scan(phi=0.67032)"]


def test_invalid_structure_is_refused():
    bad = st.Structure((st.Term(((0.5, 0.0), (0.0, 1.0)), st.Identity()),), "bad")
    with pytest.raises(ValueError, match=r"diagonal of Sigma"):
        simulate(jax.random.key(0), bad, CONFIG)


def test_plots_draw_a_result(reference_run):
    fig = plot_simulation(reference_run, fit=reference_run.exact.bound, n_b=4.0)
    assert len(fig.axes) == 2
    plt.close(fig)
    fig, ax = plt.subplots()
    assert plot_divergence(reference_run, ax) is fig and ax.get_xscale() == "log"
    assert plot_psi(reference_run, ax) is fig
    plt.close(fig)
    only_d = reference_run._replace(psi_eq=None, psi_aa=None, psi_bb=None, psi_ab=None)
    fig = plot_simulation(only_d)
    assert len(fig.axes) == 1
    plt.close(fig)


GRAM_SMALL = SimulationConfig(n_max=12, d=64, m=50, chunk=16, sampler="gram")


def test_gram_method_is_chosen_by_width_and_can_be_forced_or_forbidden():
    s = STRUCTURES["decaying"]
    wide = simulate(jax.random.key(0), s, SimulationConfig(n_max=8, d=4096, m=16))
    assert wide.metadata["method"] == "gram" and wide.metadata["sampler"][0].startswith("gram(")
    narrow = simulate(jax.random.key(0), s, SimulationConfig(n_max=8, d=4, m=16))
    assert narrow.metadata["method"] == "direct"
    forbidden = SimulationConfig(n_max=8, d=4096, m=16, sampler="direct", chunk=2)
    assert simulate(jax.random.key(0), s, forbidden).metadata["method"] == "direct"
    with pytest.raises(ValueError, match=r"sampler 'gram' serves structures with Identity"):
        simulate(jax.random.key(0), STRUCTURES["powerlaw"], GRAM_SMALL)
    power = simulate(jax.random.key(0), STRUCTURES["powerlaw"], CONFIG)
    assert power.metadata["gram"].startswith("not served")
    with pytest.raises(ValueError, match=r"SimulationConfig: sampler must be one of"):
        SimulationConfig(**SMALL, sampler="fast")


@pytest.mark.slow
def test_gram_runs_are_chunk_invariant_and_resume():
    s = STRUCTURES["sum-with-shared"]
    ref = simulate(jax.random.key(8), s, GRAM_SMALL)
    other = simulate(jax.random.key(8), s, SimulationConfig(**{**GRAM_SMALL.__dict__, "chunk": 7}))
    assert_same_result(ref, other)
    states: list[SimulationState] = []
    short = SimulationConfig(**{**GRAM_SMALL.__dict__, "m": 20})
    simulate(jax.random.key(8), s, short, checkpoint=states.append)
    assert_same_result(simulate(jax.random.key(8), s, GRAM_SMALL, state=states[-1]), ref)
    direct = SimulationConfig(**{**GRAM_SMALL.__dict__, "sampler": "direct"})
    with pytest.raises(ValueError, match=r"same key, structure.*method"):
        simulate(jax.random.key(8), s, direct, state=states[-1])


@pytest.mark.slow
def test_gram_runs_match_the_exact_oracle_at_realistic_width():
    s = STRUCTURES["exchangeable"]
    r = simulate(jax.random.key(9), s, SimulationConfig(n_max=64, d=4096, m=2000))
    assert r.metadata["method"] == "gram"
    assert zmax(r.divergence, r.exact.gaussian_mean) < 5
    assert zmax(r.squared_divergence, r.exact.v) < 5
    for field in ("psi_eq", "psi_aa", "psi_bb", "psi_ab", "upsilon"):
        assert zmax(getattr(r, field), getattr(r.exact, field)) < 5, field


def test_default_chunk_of_a_gram_run_does_not_depend_on_the_width():
    from tokenscale_sim.montecarlo.config import run_plan

    s = STRUCTURES["decaying"]
    narrow = run_plan(s, SimulationConfig(n_max=1024, d=64, m=10_000, sampler="gram"), 1)
    wide = run_plan(s, SimulationConfig(n_max=1024, d=8192, m=10_000), 1)
    assert wide.method == "gram" and narrow.chunk == wide.chunk == 256
