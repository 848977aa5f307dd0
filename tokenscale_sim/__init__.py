"""tokenscale_sim: how vision-language models scale with the number of vision tokens.

Theory (closed forms), correlation structures, JAX Monte Carlo of the branch divergence D(n),
psi(n) similarities, and optax fitters of the scaling law S(n) = c * n^(-alpha(n)).
See ``README.md`` and the module docstrings. The layers, each importing only those above it:

    validation, files            checks, run metadata and checked output files (utilities)
    theory                       closed forms (Upsilon, bound, E[D], n_b, alpha(n))
    kernels -> structures        Sigma = sum_r C_r (x) K_r, exact prefix sums
    exact                        every exact curve of a structure and token model
    divergence                   D(n), psi(n) of sampled or user-supplied hidden states
    montecarlo                   kernel_draws -> sampling -> steps -> moments, checkpoints
                                 -> simulation (SimulationConfig, simulate)
    fit                          laws, optax engine, intervals, model choice
    hidden                       real hidden states: files, a ViT-S, measurements
    study                        the demo study (computes, writes nothing)
    plots                        every figure (matplotlib only here)
    cli                          the ``tokenscale`` command

``enable_compilation_cache()`` keeps compiled programs on disk between runs
(:mod:`tokenscale_sim.compile_cache`); importing the package loads neither JAX nor matplotlib.
"""

from importlib.metadata import PackageNotFoundError, version

from tokenscale_sim.compile_cache import enable_compilation_cache

__all__ = ["enable_compilation_cache"]

try:
    __version__ = version("tokenscale_sim")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
