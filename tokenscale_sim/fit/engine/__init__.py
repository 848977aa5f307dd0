"""The optimizers: multistart L-BFGS and Levenberg-Marquardt, vmapped over curves and resamples.

:mod:`.precision` and :mod:`.options` (:class:`~.options.FitOptions`, status enums) ->
:mod:`.polish` (the Levenberg-Marquardt step on a QR of the scaled Jacobian), :mod:`.lanes`
(many problems in a fixed pool of vmapped lanes), :mod:`.buckets` (padded shapes so programs are
reused) -> :mod:`.solver` (starts, solve, limits of n_b). Hands on: optima (``Solution``) with
their status, never an interval.
"""
