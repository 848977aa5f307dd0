"""Property-based bad input at every ``tokenscale`` subcommand (issue 32).

Each door gets a small valid command with one or two hostile changes (an option's value, a
generated file, the state of ``--out``) and must keep the promise of
:func:`bad_input_strategies.check_cli`: exit 0, or exit 2 with one line
``tokenscale CMD: error: ...`` and its folder untouched; never a traceback or a hang. The
commands run in this process (``tokenscale_sim.cli.main``); a few run as real processes at the
end. Quick tier in ``make test``, long tier (hundreds of examples a door) in the slow tier.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_input_strategies import (
    OUT_STATES,
    TIERS,
    check_cli,
    costly,
    example_folder,
    hostile_words,
    prepare_out,
)
from hypothesis import given
from hypothesis import strategies as st
from structure_cases import (
    csv_tables,
    grid_files,
    grid_specs,
    hidden_files,
    lay_down,
    measure_folders,
    npy_bytes,
    structure_files,
)

from tokenscale_sim.cli import main

small_or_bad = st.one_of(
    st.sampled_from(["0", "-1", "nan", "inf", "2.5", "1e3", "1" * 400, "x", "", "-0", "1_0"]),
    st.integers(-3, 24).map(str),
)
"""Values for options that size the work (replicates, resamples): wrong, or small enough to
run in a moment (a valid huge value is honest work, not bad input)."""


@st.composite
def options(draw, base: dict[str, str | None], sizes: tuple[str, ...] = (), extra=None):
    """``base`` (option -> value, None for a flag) with one or two options given a hostile
    value (``sizes``: options that size the work get :data:`small_or_bad`), as argv."""
    opts = dict(base)
    names = sorted(set(base) | set(extra or {}))
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
        pool = (extra or {}).get(name)
        if pool is None:
            pool = small_or_bad if name in sizes else hostile_words
        opts[name] = draw(pool)
    argv = []
    for name, value in opts.items():
        argv += [name] if value is None else [f"{name}={value}"]
    return argv


def run_door(command: str, argv: list[str], files=None, out_state: str | None = None):
    """Lay down ``files``, make ``--out`` as ``out_state`` says, run, check the promise.
    ``{root}`` / ``{main}`` / ``{out}`` in ``argv`` become the example's paths."""
    with example_folder() as root:
        main_file = lay_down(root, files) if files is not None else root / "none"
        out = prepare_out(root, out_state, command) if out_state is not None else None
        subst = {"{root}": str(root), "{main}": str(main_file), "{out}": str(root / "out")}
        real = []
        for a in argv:
            for key, value in subst.items():
                a = a.replace(key, value)
            real.append(a)
        return check_cli(command, real, root, out=out)


out_states = st.sampled_from(OUT_STATES)


# ------------------------------------------------------------------------------ theory, simulate

THEORY = {"--n-max": "16", "--psi-eq": "0.5", "--psi-aa": "0.3", "--psi-ab": "0.25",
          "--length": "4", "--coupling": "0.3", "--width": "4", "--shared": "0.1",
          "--beta": "1", "--d": "64", "--rows": "3", "--structure": "exchangeable"}  # fmt: skip
STRUCTURE_CHOICE = st.sampled_from(["exchangeable", "decaying", "patch-grid", "nope", ""])


@pytest.mark.parametrize("tier", TIERS)
def test_theory_options(tier):
    @tier
    @given(argv=options(THEORY, extra={"--structure": STRUCTURE_CHOICE}), out=out_states)
    def door(argv, out):
        run_door("theory", [*argv, "--csv={out}"], out_state=out if out != "same_kind" else None)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_theory_structure_files(tier):
    @tier
    @given(files=structure_files())
    def door(files):
        run_door("theory", ["--structure-file={main}", "--n-max=8", "--rows=2"], files)

    door()


SIM = {"--n-max": "4", "--d": "4", "--m": "16", "--chunk": "16", "--seed": "0",
       "--tokens": "gaussian", "--df": "5", "--confidence": "0.95", "--max-chunk-gb": "1",
       "--checkpoint-every": "60", "--sampler": "auto", "--quiet": None}  # fmt: skip


@pytest.mark.parametrize("tier", TIERS)
def test_simulate_options(tier):
    @costly(tier)
    @given(argv=options(SIM, sizes=("--m", "--chunk", "--n-max", "--d")), out=out_states,
           resume=st.booleans())  # fmt: skip
    def door(argv, out, resume):
        run_door("simulate", [*argv, "--out={out}", *(["--resume"] if resume else [])],
                 out_state=out)  # fmt: skip

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_simulate_structure_files(tier):
    @costly(tier)
    @given(files=structure_files())
    def door(files):
        argv = ["--structure-file={main}", "--n-max=4", "--d=4", "--m=8", "--quiet"]
        run_door("simulate", [*argv, "--out={out}"], files, out_state="absent")

    door()


# ------------------------------------------------------------------------------ fit, compare

FIT = {"--group": "curve", "--model": "powerlaw", "--loss": "log", "--level": "0.95",
       "--seed": "0", "--y-col": "score", "--n-col": "n"}  # fmt: skip
LAWS = st.sampled_from(["S_inf - A * n**(-a)", "c * n**b", "n**", "exp(n)", "__import__('os')",
                        "a*" * 3000 + "n", "a * x", "1e999 * n**a", "log(-a) + n"])  # fmt: skip
FIT_EXTRA = {
    "--bootstrap": small_or_bad,
    "--transition-test": small_or_bad,
    "--law": LAWS,
    "--start": st.sampled_from(["a=0.5", "a=x", "a=nan", "=1", "a=1/2/inf", "zz=1", ","]),
    "--bootstrap-interval": st.sampled_from(["percentile", "calibrated", "studentized", "x"]),
    "--shared": st.sampled_from(["alpha", "c", "nope", ""]),
    "--layout": st.sampled_from(["auto", "long", "wide", "x"]),
}


@pytest.mark.parametrize("tier", TIERS)
def test_fit_tables_and_options(tier):
    @costly(tier)
    @given(files=csv_tables(), argv=options(FIT, extra=FIT_EXTRA), out=out_states,
           write=st.booleans())  # fmt: skip
    def door(files, argv, out, write):
        outs = ["--out={out}"] if write else []
        run_door("fit", ["{main}", *argv, *outs], files, out_state=out if write else None)

    door()


COMPARE = {"--group": "curve", "--laws": "powerlaw", "--bootstrap": "0", "--holdout-last": "1",
           "--level": "0.95", "--direction": "theory"}  # fmt: skip
COMPARE_EXTRA = {
    "--laws": st.sampled_from(
        ["powerlaw,powerlaw", "", ",", "nope", "powerlaw,loglinear", "S_inf - A*n**(-a)"]
    ),
    "--bootstrap": small_or_bad,
    "--holdout-last": small_or_bad,
}


@pytest.mark.parametrize("tier", TIERS)
def test_compare_tables_and_options(tier):
    @costly(tier)
    @given(files=csv_tables(), argv=options(COMPARE, extra=COMPARE_EXTRA), out=out_states)
    def door(files, argv, out):
        run_door("compare", ["{main}", *argv, "--out={out}"], files, out_state=out)

    door()


# ------------------------------------------------------------------------------ measure, calibrate

MEASURE = {"--chunk": "2", "--bootstrap": "0", "--level": "0.95", "--seed": "0",
           "--loss": "linear", "--no-fit": None}  # fmt: skip


@pytest.mark.parametrize("tier", TIERS)
def test_measure_hidden_files(tier):
    @costly(tier)
    @given(files=hidden_files(), argv=options(MEASURE, sizes=("--chunk", "--bootstrap")),
           out=out_states)  # fmt: skip
    def door(files, argv, out):
        hidden = ["--hidden", "{main}"] + (["{root}/b.npy"] if files.main == "a.npy" else [])
        run_door("measure", [*hidden, *argv, "--out={out}"], files, out_state=out)

    door()


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, bytes]:
    """curves.csv and measure.json of a small valid ``measure`` run (calibrate's input)."""
    root = tmp_path_factory.mktemp("measured")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 1, 12, 6))
    (root / "h.npy").write_bytes(npy_bytes(base + 0.6 * rng.standard_normal((4, 2, 12, 6))))
    argv = ["measure", "--hidden", str(root / "h.npy"), "--bootstrap", "0", "--out",
            str(root / "m")]  # fmt: skip
    assert main(argv) == 0
    return {name: (root / "m" / name).read_bytes() for name in ("curves.csv", "measure.json")}


CALIBRATE = {"--n-fit": "6", "--free": "shared,weight,length", "--level": "0.95",
             "--kernel": "exponential", "--seed": "0"}  # fmt: skip
CALIBRATE_EXTRA = {
    "--free": st.sampled_from(["shared", "nope", "", ",", "shared,shared", "length,d"]),
    "--set": st.sampled_from(
        ["image=0.1", "image=inf", "length=-1", "x=1", "image", "d=4", "shared=nan", "weight=1e400"]
    ),
    "--mc": small_or_bad,
    "--layer": st.sampled_from(["0", "12", "x", "-1", ""]),
    "--n-fit": small_or_bad,
}


@pytest.mark.parametrize("tier", TIERS)
def test_calibrate_measure_folders(tier, measured):
    @costly(tier)
    @given(files=measure_folders(measured), argv=options(CALIBRATE, extra=CALIBRATE_EXTRA),
           out=out_states)  # fmt: skip
    def door(files, argv, out):
        run_door("calibrate", ["--measure={main}", *argv, "--out={out}"], files, out_state=out)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_calibrate_hidden_files(tier):
    @costly(tier)
    @given(files=hidden_files(), bootstrap=small_or_bad)
    def door(files, bootstrap):
        hidden = ["--hidden", "{main}"] + (["{root}/b.npy"] if files.main == "a.npy" else [])
        argv = [*hidden, "--n-fit=3", "--free=shared", f"--bootstrap={bootstrap}"]
        run_door("calibrate", [*argv, "--out={out}"], files, out_state="absent")

    door()


# ------------------------------------------------------------------------------ design, sweep

DESIGN = {"--params": "30,0.1,16", "--questions": "3000", "--k": "3",
          "--candidates": "1,4,16,64", "--m": "8", "--top": "1", "--level": "0.05",
          "--no-intervals": None, "--seed": "0"}  # fmt: skip
numbers_list = st.lists(
    st.sampled_from(["30", "0.1", "16", "0", "-1", "nan", "inf", "1e400", "x", "", "100", "2.5"]),
    max_size=4,
).map(",".join)
DESIGN_EXTRA = {
    "--params": numbers_list,
    "--n-b": numbers_list,
    "--questions": numbers_list,
    "--candidates": numbers_list,
    "--k-sweep": numbers_list,
    "--m": small_or_bad,
    "--k": small_or_bad,
    "--top": small_or_bad,
    "--noise": st.sampled_from(["binomial", "lognormal", "residuals", "x"]),
    "--sigma": hostile_words,
    "--curve": st.sampled_from(["MME", "nope", ""]),
    "--law": st.sampled_from(["alpha_n", "powerlaw", "broken", "x"]),
}


@pytest.mark.parametrize("tier", TIERS)
def test_design_options(tier):
    @costly(tier)
    @given(argv=options(DESIGN, extra=DESIGN_EXTRA), out=out_states)
    def door(argv, out):
        run_door("design", [*argv, "--out={out}"], out_state=out)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_sweep_grid_specs(tier):
    @costly(tier)
    @given(grids=st.lists(grid_specs(), min_size=1, max_size=3),
           sets=st.lists(st.sampled_from(["shared=0.1", "image=nan", "weight=inf", "d=1e400",
                                          "length=2", "x=1", "shared", "n_max=8"]),
                         max_size=2),
           argv=options({"--n-max": "8", "--d": "16", "--at": "4"}, sizes=("--n-max", "--at")),
           mc=st.sampled_from([[], ["--mc=4"], ["--mc=0"]]), out=out_states)  # fmt: skip
    def door(grids, sets, argv, mc, out):
        args = [*(f"--grid={g}" for g in grids), *(f"--set={s}" for s in sets), *argv, *mc]
        run_door("sweep", [*args, "--no-plot", "--out={out}"], out_state=out)

    door()


@pytest.mark.parametrize("tier", TIERS)
def test_sweep_grid_files(tier):
    @tier
    @given(files=grid_files())
    def door(files):
        argv = ["--grid-file={main}", "--n-max=8", "--no-plot", "--out={out}"]
        run_door("sweep", argv, files, out_state="absent")

    door()


# ------------------------------------------------------------------------------ real processes

PROCESS_CASES = [
    ["theory", "--n-max", "nan"],
    ["sweep", "--grid-file", "{root}/deep.toml", "--out", "{root}/out"],
    ["fit", "{root}/bom.csv", "--model", "powerlaw", "--group", "curve", "--level", "1e400"],
]


@pytest.mark.parametrize("argv", PROCESS_CASES, ids=lambda a: a[0])
def test_real_processes_keep_the_promise(tmp_path, argv):
    """The console script itself (warnings, signals and exit codes as a user gets them)."""
    (tmp_path / "deep.toml").write_text(f"[grid]\nlength = {'[' * 5000}4{']' * 5000}\n")
    (tmp_path / "bom.csv").write_bytes("\ufeffcurve,n,score\na,1,x\n".encode())
    real = [a.replace("{root}", str(tmp_path)) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tokenscale_sim.cli import main; "
         "sys.exit(main())", *real], capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"tokenscale {argv[0]}: error: "), proc.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["bom.csv", "deep.toml"]
