"""Structure-aware samplers of branch token embeddings (JIT-compiled JAX, key first).

Gaussian token model (THEORY.md): the ``2n`` tokens ``[A_1..A_n, B_1..B_n]`` have iid feature
columns ``~ N(0, Sigma / d)`` with ``Sigma = sum_r C_r (x) K_r`` (:mod:`tokenscale_sim.structures`),
so ``E|h_i|^2 = 1``. A term ``C (x) K`` is drawn as ``X = F G`` where ``G`` has iid columns
``N(0, K)`` along positions and ``F F' = C`` (the 2 x 2 lower Cholesky factor, zero columns
dropped, so a rank-one C such as a shared component draws one branch of normals) mixes the
branches elementwise, fused by XLA into the pass that writes ``h``; terms add independent
draws. Each kernel is drawn at the cost its structure allows (all factors are computed once, in
NumPy float64, when the sampler is built; no 2n x 2n Cholesky for structured kernels, and never
``jax.random.multivariate_normal``, which can return NaN in float32):

==============================  ==============================================  ===============
kernel                          method                                          cost per column
==============================  ==============================================  ===============
``Identity``                    iid normals                                     O(n)
``Ones`` (exchangeable/shared)  one normal broadcast over positions (factor)    O(1)
``Exponential`` (AR(1))         x_i = phi x_{i-1} + sqrt(1-phi^2) z_i: one     O(n)
                                16 x 16 Toeplitz GEMM on normals drawn in the
                                block-strided layout it needs + associative
                                scan of the blocks' carries
stationary (``PowerLaw``...)    circulant embedding, one complex FFT gives two  O(n log n)
                                columns; not PSD after 2 doublings -> Cholesky
``Grid2D``                      AR(1) along grid rows (as above), the dense     O(n)
                                AR(1) factor along columns (width <= 64) as
                                a second GEMM (Kronecker)
``DenseKernel``                 Cholesky factor of K computed once              O(n^2)
==============================  ==============================================  ===============

Circulant embedding needs ``M >= 2(n - 1)`` normals per column of ``n``, so it runs at most at
half the raw-normal rate; AR(1), grids and the factor model need one normal per entry. Which
normal feeds which entry (hence the draw at a given key) is an implementation detail, chosen for
one pass over memory; it changed when the branch mixes were fused (the distributions did not).

A structure whose terms are not all PSD (``Structure.separable_psd`` False) is drawn from one
factor of the full ``Sigma`` (2n x 2n, computed once, O(n^2) per column). See
:func:`sampler_methods` for what a given structure uses.

Token models (:class:`TokenModel`):

- ``"gaussian"``: as above; exact oracle ``D(n) ~ sqrt(v_n / d) chi_d``.
- ``"unit"``: each Gaussian token scaled to unit length (the theory's setting). Cosines are
  unchanged, so the exact E of every sampled psi is ``Structure.expected_cosine_psi``; per
  sample ``D(n)^2 = 2 Upsilon-hat(n)``, hence ``E[D(n)^2] = 2 Upsilon(n)`` at those expected psi's.
- ``"student-t"``: heavy-tailed tokens, a scale mixture ``h_i = s_i g_i`` of the Gaussian tokens
  with an independent scale per token, ``s_i^2 = (df - 2) / chi^2_df`` (so each token is
  multivariate t with ``df`` degrees of freedom and ``E|h_i|^2 = 1``; needs ``df > 2``). Oracle:
  cosines are scale-free, so E[psi] is again ``expected_cosine_psi``; ``E[D(n)^2] = q v_n +
  2 n (1 - q)`` with ``q = E[s]^2 = (df - 2) Gamma((df-1)/2)^2 / (2 Gamma(df/2)^2)``; E[D] has no
  closed form (bounded by ``sqrt(E[D^2])``). See :func:`expected_squared_divergence`.

Fast path: when only D(n) is wanted for Gaussian tokens, :func:`difference_sampler` draws the
difference process ``h^A - h^B ~ N(0, K_diff / d)`` directly, ``K_diff = sum_r (C00 + C11 - 2 C01)
K_r``: half the normals (and terms with ``C00 + C11 = 2 C01``, such as a shared component,
cost nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim import structures as st
from tokenscale_sim.montecarlo.kernel_draws import (
    NEG_TOL,
    _cholesky_plan,
    _dtypes,
    _kernel_plan,
    _Plan,
)

__all__ = [
    "TOKEN_KINDS",
    "TokenModel",
    "difference_sampler",
    "expected_squared_divergence",
    "sample_tokens",
    "sampler_methods",
    "token_sampler",
]

TOKEN_KINDS = ("gaussian", "unit", "student-t")
"""Token models of :class:`TokenModel`."""


Sampler = Callable[[jax.Array], jax.Array]


@dataclass(frozen=True)
class TokenModel:
    """How token embeddings are drawn (see the module docstring for each model's oracle).

    Attributes:
        kind: ``"gaussian"``, ``"unit"`` (unit-normalised Gaussian) or ``"student-t"``.
        df: degrees of freedom of the Student-t scale mixture (``df > 2``); unused otherwise.
    """

    kind: str = "gaussian"
    df: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in TOKEN_KINDS:
            raise ValueError(f"TokenModel: kind must be one of {TOKEN_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.df) and self.df > 2):
            raise ValueError(f"TokenModel: df must be finite and > 2, got {self.df}")


def _as_tokens(tokens: TokenModel | str) -> TokenModel:
    return tokens if isinstance(tokens, TokenModel) else TokenModel(tokens)


# ---------------------------------------------------------------------------------------------
# validation (NumPy, before any tracing)


def _check_size(name: str, param: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: {param} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_structure(name: str, structure: st.Structure, n_max: int) -> None:
    max_n = getattr(structure, "max_n", None)
    if max_n is not None and n_max > max_n:
        raise ValueError(f"{name}: n_max must be <= {max_n} for this dense structure, got {n_max}")
    structure.validate(n_max)


# ---------------------------------------------------------------------------------------------
# kernel plans: concrete NumPy factors, and a draw of `cols` iid columns N(0, K) along positions


@dataclass(frozen=True, eq=False)
class _TermPlan:
    mix: np.ndarray  # (2, k) F with F F' = C, lower triangular, zero columns dropped (k <= 2)
    diff_scale: float  # sqrt(C00 + C11 - 2 C01)
    kernel: _Plan


def _factor_2x2(c: np.ndarray) -> np.ndarray | None:
    """F (2 x k) with F F' = C for a symmetric PSD 2 x 2 C (None if not PSD): the lower
    Cholesky factor with its zero columns dropped, so a rank-one C (a shared component) needs
    one normal per entry and a full-rank C three multiply-adds per token pair."""
    lam = np.linalg.eigvalsh(c)
    if lam.min() < -NEG_TOL * max(1.0, lam.max()):
        return None
    c00, c11, c10 = max(float(c[0, 0]), 0.0), max(float(c[1, 1]), 0.0), float(c[1, 0])
    l00 = math.sqrt(c00)
    l10 = float(np.clip(c10 / l00, -math.sqrt(c11), math.sqrt(c11))) if l00 > 0 else 0.0
    l11 = math.sqrt(max(c11 - l10 * l10, 0.0))
    factor = np.array([[l00, 0.0], [l10, l11]])
    return factor[:, np.any(factor != 0, axis=0)]


def _term_plans(structure: st.Structure, n_max: int) -> list[_TermPlan] | None:
    """Term-by-term plans, or None when the structure must be drawn from one dense factor."""
    if not getattr(structure, "separable_psd", False):
        return None
    plans = []
    for term in structure.terms:
        c = np.asarray(term.branch, dtype=np.float64)
        if not np.any(c):
            continue
        mix = _factor_2x2(c)
        if mix is None:
            return None
        diff = max(float(c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0]), 0.0)
        plans.append(_TermPlan(mix, math.sqrt(diff), _kernel_plan(term.kernel, n_max)))
    return plans


def _validated(name: str, structure: st.Structure, n_max: int, d: int) -> tuple[int, int]:
    n_max = _check_size(name, "n_max", n_max)
    d = _check_size(name, "d", d)
    _check_structure(name, structure, n_max)
    return n_max, d


def sampler_methods(structure: st.Structure, n_max: int) -> tuple[str, ...]:
    """The draw method of each term (or ``("dense-sigma-factor",)``) for ``n_max`` tokens.

    >>> from tokenscale_sim import structures
    >>> sampler_methods(structures.exchangeable(0.5, 0.3, psi_ab=0.1), 16)
    ('factor', 'iid')
    """
    n_max = _check_size("sampler_methods", "n_max", n_max)
    _check_structure("sampler_methods", structure, n_max)
    plans = _term_plans(structure, n_max)
    if plans is None:
        return ("dense-sigma-factor",)
    return tuple(p.kernel.method for p in plans)


def _apply_tokens(key: jax.Array, h: jax.Array, tokens: TokenModel) -> jax.Array:
    if tokens.kind == "unit":
        return h / jnp.linalg.norm(h, axis=-1, keepdims=True)
    if tokens.kind == "student-t":
        chi2 = 2.0 * jax.random.gamma(key, tokens.df / 2, (*h.shape[:-1], 1), h.dtype)
        return h * jnp.sqrt((tokens.df - 2.0) / chi2)
    return h


def token_sampler(
    structure: st.Structure, n_max: int, d: int, tokens: TokenModel | str = "gaussian"
) -> Sampler:
    """Build a jitted ``sample(key) -> h`` of shape ``(2, n_max, d)`` (branch, position, feature).

    All factors are computed here, once, in NumPy float64 (validated before any tracing); the
    returned function is pure in ``key`` and can be ``jax.vmap``-ed over keys. Its dtype follows
    ``jax_enable_x64`` at call time. The first ``n`` positions of a draw are a draw for ``n``.

    Args:
        structure: a :class:`tokenscale_sim.structures.Structure`.
        n_max: number of positions per branch (>= 1).
        d: embedding width (>= 1).
        tokens: a :class:`TokenModel` or its ``kind``.

    Returns:
        ``sample(key)`` -> array ``(2, n_max, d)``; ``h[0]`` is branch A.

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> sample = token_sampler(structures.exchangeable(0.5, 0.3, psi_ab=0.1), 8, 64)
        >>> sample(jax.random.key(0)).shape
        (2, 8, 64)
    """
    n_max, d = _validated("token_sampler", structure, n_max, d)
    tokens = _as_tokens(tokens)
    plans = _term_plans(structure, n_max)
    scale = 1.0 / math.sqrt(d)

    if plans is None:
        factor = _cholesky_plan(structure.sigma(n_max))

        def gaussian(key: jax.Array) -> jax.Array:
            x = factor.draw(key, 2 * n_max, (), d)
            return x.reshape(2, n_max, d)

    else:
        term_plans = plans

        def gaussian(key: jax.Array) -> jax.Array:
            # every term's columns drawn as (k, n, d), k <= 2 (no slicing of a wide draw), and
            # mixed elementwise: XLA fuses the mix and the sum over terms into the one pass that
            # writes h (the triangular F keeps the normals recomputed inside it to 3 per pair)
            keys = jax.random.split(key, max(len(term_plans), 1))
            h = [jnp.zeros((n_max, d), _dtypes()[0])] * 2
            for k, plan in zip(keys, term_plans, strict=False):
                g = plan.kernel.draw(k, n_max, (plan.mix.shape[1],), d)
                for a in range(2):
                    for b, m in enumerate(plan.mix[a].tolist()):
                        if m != 0.0:
                            h[a] = h[a] + m * g[b]
            return jnp.stack(h)

    def sample(key: jax.Array) -> jax.Array:
        k_gauss, k_tokens = jax.random.split(key)
        return _apply_tokens(k_tokens, scale * gaussian(k_gauss), tokens)

    return jax.jit(sample)


def difference_sampler(structure: st.Structure, n_max: int, d: int) -> Sampler:
    """Fast path for D(n), Gaussian tokens: jitted ``sample(key) -> h^A - h^B``, ``(n_max, d)``.

    Draws ``N(0, K_diff / d)`` columns directly, ``K_diff = sum_r (C00 + C11 - 2 C01) K_r`` (the
    matrix whose prefix sums are ``v_n``), with half the normals of :func:`token_sampler`. Its
    distribution equals that of ``h[0] - h[1]`` for Gaussian tokens (not the same draws).

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> diff = difference_sampler(structures.exchangeable(0.5, 0.3, psi_ab=0.1), 8, 64)
        >>> diff(jax.random.key(0)).shape
        (8, 64)
    """
    n_max, d = _validated("difference_sampler", structure, n_max, d)
    plans = _term_plans(structure, n_max)
    scale = 1.0 / math.sqrt(d)
    if plans is None:
        sigma = np.asarray(structure.sigma(n_max), dtype=np.float64)
        a, b = sigma[:n_max, :n_max], sigma[n_max:, n_max:]
        factor = _cholesky_plan(a + b - sigma[:n_max, n_max:] - sigma[n_max:, :n_max])

        def sample(key: jax.Array) -> jax.Array:
            return scale * factor.draw(key, n_max, (), d)

        return jax.jit(sample)
    active = [p for p in plans if p.diff_scale > 0]

    def sample_terms(key: jax.Array) -> jax.Array:
        keys = jax.random.split(key, max(len(active), 1))
        x = jnp.zeros((n_max, d), _dtypes()[0])
        for k, plan in zip(keys, active, strict=False):
            x = x + (scale * plan.diff_scale) * plan.kernel.draw(k, n_max, (), d)
        return x

    return jax.jit(sample_terms)


def sample_tokens(
    key: jax.Array,
    structure: st.Structure,
    n_max: int,
    d: int,
    tokens: TokenModel | str = "gaussian",
) -> jax.Array:
    """One draw of branch tokens, shape ``(2, n_max, d)`` (builds :func:`token_sampler`).

    For many draws build the sampler once and ``jax.vmap`` it over keys.

    >>> import jax
    >>> from tokenscale_sim import structures
    >>> h = sample_tokens(jax.random.key(1), structures.exchangeable(0.5, 0.3, psi_ab=0.1), 4, 8)
    >>> h.shape
    (2, 4, 8)
    """
    return token_sampler(structure, n_max, d, tokens)(key)


def expected_squared_divergence(
    structure: st.Structure, n_max: int, d: int, tokens: TokenModel | str = "gaussian"
) -> np.ndarray:
    """Exact E[D(n)^2], n = 1..n_max, for the token model (the oracle of the samplers).

    - gaussian: ``v_n``;
    - unit: ``2 Upsilon(n)`` at the exact expected sampled cosines
      (``Structure.expected_cosine_psi``): ``n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab)``;
    - student-t: ``q v_n + 2 n (1 - q)``, ``q = (df - 2) Gamma((df-1)/2)^2 / (2 Gamma(df/2)^2)``.

    Returns:
        float64 array ``(n_max,)``.
    """
    n_max, d = _validated("expected_squared_divergence", structure, n_max, d)
    tokens = _as_tokens(tokens)
    n = np.arange(1, n_max + 1, dtype=np.float64)
    v = np.asarray(structure.v(n_max), dtype=np.float64)
    if tokens.kind == "gaussian":
        return v
    if tokens.kind == "student-t":
        nu = tokens.df
        q = (nu - 2) / 2 * math.exp(2 * (math.lgamma((nu - 1) / 2) - math.lgamma(nu / 2)))
        return q * v + 2 * n * (1 - q)
    psi = structure.expected_cosine_psi(n_max, d)
    cross = np.where(n > 1, np.asarray(psi.psi_aabb) - np.asarray(psi.psi_ab), 0.0)
    return 2 * (n * (1 - np.asarray(psi.psi_eq)) + n * (n - 1) * cross)
