"""Fit scaling laws with optax: the paper's power law, alpha(n), divergence and broken laws.

Typical use::

    from tokenscale_sim import fit
    curves = fit.load_paper_scores(exact_only=True)
    res = fit.fit_curves(curves, "alpha_n")          # FitResult, one row per curve
    boot = fit.bootstrap(key, curves, res, m=1000)   # vmapped resamples

Modules: :mod:`.models` (the laws), :mod:`.engine` (optax L-BFGS, vmapped), :mod:`.estimate`
(SEs, Wald and profile intervals, R^2, AIC/BIC), :mod:`.uncertainty`
(bootstrap, profile likelihood, alpha(n) bands, model comparison), :mod:`.data` (input checks).
"""

from tokenscale_sim.fit.data import (
    DATASETS,
    CurveSet,
    check_curves,
    curves_from_arrays,
    load_dataset,
    load_paper_scores,
    read_curves,
)
from tokenscale_sim.fit.engine import BOUNDARY, LOSSES, CurveArrays, FitOptions
from tokenscale_sim.fit.estimate import FitResult, fit_arrays, fit_curves, fit_divergence, predict
from tokenscale_sim.fit.laws import define_law
from tokenscale_sim.fit.models import MODELS, Model, alpha_curve, get_model

__all__ = [
    "BOUNDARY",
    "DATASETS",
    "LOSSES",
    "MODELS",
    "CurveArrays",
    "CurveSet",
    "FitOptions",
    "FitResult",
    "Model",
    "alpha_curve",
    "check_curves",
    "curves_from_arrays",
    "define_law",
    "fit_arrays",
    "fit_curves",
    "fit_divergence",
    "get_model",
    "load_dataset",
    "load_paper_scores",
    "predict",
    "read_curves",
]
