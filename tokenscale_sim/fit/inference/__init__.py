"""How sure: deviance and covariance, profile and bootstrap intervals, bands, coverage.

:mod:`.distributions` (t and normal quantiles) -> :mod:`.likelihood` -> :mod:`.profile` ->
:mod:`.results` (:class:`~.results.FitResult` as a user reads it) -> :mod:`.estimate`
(:func:`~.estimate.fit_curves`, :func:`~.estimate.predict`) -> :mod:`.calibrated` and
:mod:`.uncertainty` (bootstrap, prediction and alpha(n) bands) -> :mod:`.coverage`.
Hands on: a ``FitResult`` with estimates, intervals and criteria for every curve.
"""
