"""tokenscale_sim: how vision-language models scale with the number of vision tokens.

Theory (closed forms), correlation structures, JAX Monte Carlo of the branch divergence D(n),
psi(n) similarities, and optax fitters of the scaling law S(n) = c * n^(-alpha(n)).
See ``README.md`` and the module docstrings; the pipeline is

    structures -> sampling -> divergence -> fit -> plots -> cli
    structures -> theory ------^
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenscale_sim")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
