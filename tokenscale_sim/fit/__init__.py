"""Fit scaling laws with optax: any law, with honest uncertainty, and which law fits best.

Typical use::

    from tokenscale_sim import fit
    curves = fit.load_paper_scores(exact_only=True)
    res = fit.fit_curves(curves, "alpha_n")          # FitResult, one row per curve
    boot = fit.bootstrap(key, curves, res, m=1000)   # vmapped resamples

Five layers, each importing only those before it (declared in ``layers.toml``, checked by the
house check): :mod:`.laws` (what is fitted: :class:`Model`, :func:`define_law`,
:func:`parse_law`) -> :mod:`.data` (curves in: CSV, frames, arrays, shipped data sets, checks
against a law) -> :mod:`.engine` (the optimizers: L-BFGS and Levenberg-Marquardt, vmapped;
:class:`FitOptions`) -> :mod:`.inference` (how sure: :func:`fit_curves`, :class:`FitResult`,
profile and bootstrap intervals, bands, coverage) -> :mod:`.selection` (which law:
:func:`compare_laws`, :func:`transition_test`, the shape test). Every public name is here, so
``fit.<name>`` is the one way in; the modules :mod:`.compare`, :mod:`.curvature`,
:mod:`.expression`, :mod:`.models`, :mod:`.table` and :mod:`.buckets` are attributes too.
"""

from tokenscale_sim.fit import laws
from tokenscale_sim.fit.data import table
from tokenscale_sim.fit.data.curves import (
    DATASETS,
    CurveArrays,
    CurveSet,
    check_curves,
    curves_from_arrays,
    load_dataset,
    load_paper_scores,
    read_curves,
)
from tokenscale_sim.fit.data.frames import as_curves, curves_from_frame, curves_from_pairs
from tokenscale_sim.fit.engine import buckets
from tokenscale_sim.fit.engine.options import (
    BOUNDARY,
    LOSSES,
    Boundary,
    FitOptions,
    IntervalMethod,
    NbStatus,
)
from tokenscale_sim.fit.engine.precision import fit_precision
from tokenscale_sim.fit.inference.estimate import (
    FitResult,
    fit_arrays,
    fit_curves,
    fit_divergence,
    fit_record,
    predict,
)
from tokenscale_sim.fit.inference.resampled import MEASURED_POINTS, IntervalFallbackWarning
from tokenscale_sim.fit.inference.results import Parameter, Parameters, fit_report
from tokenscale_sim.fit.inference.uncertainty import (
    KINDS,
    AlphaBand,
    BootstrapResult,
    PredictionBand,
    ProfileInterval,
    alpha_band,
    bootstrap,
    prediction_band,
    profile_interval,
)
from tokenscale_sim.fit.laws import expression, models
from tokenscale_sim.fit.laws.define import define_law
from tokenscale_sim.fit.laws.expression import load_law, parse_law
from tokenscale_sim.fit.laws.models import MODELS, Model, alpha_curve, get_model
from tokenscale_sim.fit.selection import compare, curvature
from tokenscale_sim.fit.selection.compare import compare_laws
from tokenscale_sim.fit.selection.transition import (
    TiedResult,
    TransitionTest,
    fit_tied,
    transition_test,
)

__all__ = [
    "BOUNDARY",
    "DATASETS",
    "KINDS",
    "LOSSES",
    "MEASURED_POINTS",
    "MODELS",
    "AlphaBand",
    "BootstrapResult",
    "Boundary",
    "CurveArrays",
    "CurveSet",
    "FitOptions",
    "FitResult",
    "IntervalFallbackWarning",
    "IntervalMethod",
    "Model",
    "NbStatus",
    "Parameter",
    "Parameters",
    "PredictionBand",
    "ProfileInterval",
    "TiedResult",
    "TransitionTest",
    "alpha_band",
    "alpha_curve",
    "as_curves",
    "bootstrap",
    "buckets",
    "check_curves",
    "compare",
    "compare_laws",
    "curvature",
    "curves_from_arrays",
    "curves_from_frame",
    "curves_from_pairs",
    "define_law",
    "expression",
    "fit_arrays",
    "fit_curves",
    "fit_divergence",
    "fit_precision",
    "fit_record",
    "fit_report",
    "fit_tied",
    "get_model",
    "laws",
    "load_dataset",
    "load_law",
    "load_paper_scores",
    "models",
    "parse_law",
    "predict",
    "prediction_band",
    "profile_interval",
    "read_curves",
    "table",
    "transition_test",
]
