"""Correlation structures: what the token correlations are, exactly, and what they imply.

``Sigma = sum_r C_r (x) K_r``: :mod:`.kernels` (position kernels and their prefix sums) ->
:mod:`.terms` (the term algebra, psi curves; re-exported here) -> :mod:`.exact` (every exact
curve of a structure and token model) -> :mod:`.families` (the parametrised family) and
:mod:`.files` (structure files) -> :mod:`.calibrate` (a family fitted to measured psi(n)).
Hands on: structures and exact curves to ``montecarlo`` (sampling), ``hidden`` and the CLI.
"""

from tokenscale_sim.structures.terms import *  # noqa: F403 (terms.__all__: this package's face)
