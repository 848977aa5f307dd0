"""tokenscale_sim: how vision-language models scale with the number of vision tokens.

Theory (closed forms), correlation structures, JAX Monte Carlo of the branch divergence D(n),
psi(n) similarities, and optax fitters of the scaling law S(n) = c * n^(-alpha(n)).
See ``README.md`` (its module map) and the folders' docstrings. One folder a stage, each
importing only those above it here (declared in ``layers.toml``):

    runtime       checks, output folders, compiled programs kept on disk
    theory        closed forms (Upsilon, bound, E[D], n_b, alpha(n)); D(n) and psi(n) of states
    fit           laws -> data -> engine -> inference -> selection
    structures    Sigma = sum_r C_r (x) K_r, every exact curve, families, files, calibration
    montecarlo    samplers -> steps -> simulate (chunked, sharded, resumable); sweeps
    hidden        real hidden states: files, a ViT-S, measurements
    design        experiment design and power
    study         the demo study (computes, writes nothing)
    plots         every figure (matplotlib only here)
    cli           the ``tokenscale`` command

``enable_compilation_cache()`` keeps compiled programs on disk between runs
(:mod:`tokenscale_sim.runtime.compile_cache`); importing the package loads neither JAX nor
matplotlib.
"""

from importlib.metadata import PackageNotFoundError, version

from tokenscale_sim.runtime.compile_cache import enable_compilation_cache

__all__ = ["enable_compilation_cache"]

try:
    __version__ = version("tokenscale_sim")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
