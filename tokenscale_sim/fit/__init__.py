"""Fit scaling laws with optax: the paper's power law, alpha(n), divergence and broken laws.

Typical use::

    from tokenscale_sim import fit
    curves = fit.load_paper_scores(exact_only=True)
    res = fit.fit_curves(curves, "alpha_n")          # FitResult, one row per curve
    boot = fit.bootstrap(key, curves, res, m=1000)   # vmapped resamples

Modules, imports pointing down this list: :mod:`.data` (curves in, input checks;
:mod:`.frames`: DataFrames, dicts, pairs; :mod:`.checks`; :mod:`.precision`: fits in float64
whatever ``jax_enable_x64`` says),
:mod:`.models` (the laws; users build their own :class:`Model`), :mod:`.options` (options and
status enums), :mod:`.engine` (optax L-BFGS, vmapped), :mod:`.likelihood` (deviance,
covariance, AIC/BIC, profile thresholds), :mod:`.profile` (profile intervals of every
parameter), :mod:`.results` (:class:`FitResult`: parameters by name, report, table; checks of
what evaluates a fit), :mod:`.estimate` (:func:`fit_curves`, :func:`predict`),
:mod:`.uncertainty` (bootstrap, prediction and alpha(n) bands, per-parameter profiles),
:mod:`.transition` (transition test, tied fits), :mod:`.coverage` (coverage of every interval
method on synthetic curves). Laws of your own: :func:`define_law` (a JAX function, curve_fit's
``f(x, a, b)`` or ``f(x, theta)``) and :func:`parse_law` (an expression); :mod:`.compare`
(which law?) and :mod:`.curvature` (the shape test) are attributes too.
"""

from tokenscale_sim.fit import buckets, compare, curvature, expression, laws, models, table
from tokenscale_sim.fit.compare import compare_laws
from tokenscale_sim.fit.data import (
    DATASETS,
    CurveArrays,
    CurveSet,
    check_curves,
    curves_from_arrays,
    load_dataset,
    load_paper_scores,
    read_curves,
)
from tokenscale_sim.fit.estimate import (
    FitResult,
    fit_arrays,
    fit_curves,
    fit_divergence,
    fit_record,
    predict,
)
from tokenscale_sim.fit.expression import load_law, parse_law
from tokenscale_sim.fit.frames import as_curves, curves_from_frame, curves_from_pairs
from tokenscale_sim.fit.laws import define_law
from tokenscale_sim.fit.models import MODELS, Model, alpha_curve, get_model
from tokenscale_sim.fit.options import (
    BOUNDARY,
    LOSSES,
    Boundary,
    FitOptions,
    IntervalMethod,
    NbStatus,
)
from tokenscale_sim.fit.precision import fit_precision
from tokenscale_sim.fit.results import Parameter, Parameters, fit_report
from tokenscale_sim.fit.transition import TiedResult, TransitionTest, fit_tied, transition_test
from tokenscale_sim.fit.uncertainty import (
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

__all__ = [
    "BOUNDARY",
    "DATASETS",
    "KINDS",
    "LOSSES",
    "MODELS",
    "AlphaBand",
    "BootstrapResult",
    "Boundary",
    "CurveArrays",
    "CurveSet",
    "FitOptions",
    "FitResult",
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
