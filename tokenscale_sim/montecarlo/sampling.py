"""Structure-aware samplers of branch token embeddings (JIT-compiled JAX, key first).

Gaussian token model (THEORY.md): the ``2n`` tokens ``[A_1..A_n, B_1..B_n]`` have iid feature
columns ``~ N(0, Sigma / d)`` with ``Sigma = sum_r C_r (x) K_r``
(:mod:`tokenscale_sim.structures.terms`), so ``E|h_i|^2 = 1``. A term ``C (x) K`` is drawn as ``X =
F G`` where ``G`` has iid columns ``N(0, K)`` along positions and ``F F' = C`` (the 2 x 2 lower
Cholesky factor, zero columns dropped, so a rank-one C such as a shared component draws one branch
of normals) mixes the branches elementwise, fused by XLA into the pass that writes ``h``; terms add
independent draws. Each kernel is drawn at the cost its structure allows (all factors are computed
once, in NumPy float64, when the sampler is built; no 2n x 2n Cholesky for structured kernels, and
never ``jax.random.multivariate_normal``, which can return NaN in float32):

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

Everything a run needs from the structure is computed once, in :func:`plan`: validation, the
term-by-term branch mixes and kernel draws (factors, FFT eigenvalues), and the method names. The
samplers (:meth:`SamplingPlan.token_sampler`, :meth:`SamplingPlan.difference_sampler`), the
reported methods and :func:`tokenscale_sim.montecarlo.simulation.simulate` reuse that plan.

Token models (:class:`~tokenscale_sim.structures.exact.TokenModel`):

- ``"gaussian"``: as above; exact oracle ``D(n) ~ sqrt(v_n / d) chi_d``.
- ``"unit"``: each Gaussian token scaled to unit length (the theory's setting). Cosines are
  unchanged, so the exact E of every sampled psi is ``Structure.expected_cosine_psi``; per
  sample ``D(n)^2 = 2 Upsilon-hat(n)``, hence ``E[D(n)^2] = 2 Upsilon(n)`` at those expected psi's.
- ``"student-t"``: heavy-tailed tokens, a scale mixture ``h_i = s_i g_i`` of the Gaussian tokens
  with an independent scale per token, ``s_i^2 = (df - 2) / chi^2_df`` (so each token is
  multivariate t with ``df`` degrees of freedom and ``E|h_i|^2 = 1``; needs ``df > 2``). Oracle:
  cosines are scale-free, so E[psi] is again ``expected_cosine_psi``; ``E[D(n)^2] = q v_n +
  2 n (1 - q)`` with ``q = E[s]^2 = (df - 2) Gamma((df-1)/2)^2 / (2 Gamma(df/2)^2)``; E[D] has no
  closed form (bounded by ``sqrt(E[D^2])``). See
  :func:`tokenscale_sim.structures.exact.expected_squared_divergence`.

Fast path: when only D(n) is wanted for Gaussian tokens, :func:`difference_sampler` draws the
difference process ``h^A - h^B ~ N(0, K_diff / d)`` directly, ``K_diff = sum_r (C00 + C11 - 2 C01)
K_r``: half the normals (and terms with ``C00 + C11 = 2 C01``, such as a shared component,
cost nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.montecarlo.kernel_draws import (
    NEG_TOL,
    KernelDraw,
    cholesky_draw,
    float_dtypes,
    kernel_draw,
)
from tokenscale_sim.runtime.validation import as_key
from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import TOKEN_KINDS, TokenModel, as_token_model

__all__ = [
    "TOKEN_KINDS",
    "SamplingPlan",
    "TermDraw",
    "TokenModel",
    "difference_sampler",
    "plan",
    "sample_tokens",
    "sampler_methods",
    "token_sampler",
]

Sampler = Callable[[jax.Array], jax.Array]


@dataclass(frozen=True, eq=False)
class TermDraw:
    """How one term ``C (x) K`` is drawn.

    Attributes:
        mix: (2, k) F with F F' = C, lower triangular, zero columns dropped (k <= 2).
        diff_scale: sqrt(C00 + C11 - 2 C01), the term's weight in the difference process.
        kernel: the kernel's :class:`~tokenscale_sim.montecarlo.kernel_draws.KernelDraw`.
    """

    mix: np.ndarray
    diff_scale: float
    kernel: KernelDraw


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


def _term_draws(structure: st.Structure, n_max: int) -> tuple[TermDraw, ...] | None:
    """Term-by-term draws, or None when the structure must be drawn from one dense factor."""
    if not structure.separable_psd:
        return None
    draws = []
    for term in structure.terms:
        c = np.asarray(term.branch, dtype=np.float64)
        if not np.any(c):
            continue
        mix = _factor_2x2(c)
        if mix is None:
            return None
        diff = max(float(c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0]), 0.0)
        draws.append(TermDraw(mix, math.sqrt(diff), kernel_draw(term.kernel, n_max)))
    return tuple(draws)


def _apply_tokens(key: jax.Array, h: jax.Array, tokens: TokenModel) -> jax.Array:
    if tokens.kind == "unit":
        return h / jnp.linalg.norm(h, axis=-1, keepdims=True)
    if tokens.kind == "student-t":
        chi2 = 2.0 * jax.random.gamma(key, tokens.df / 2, (*h.shape[:-1], 1), h.dtype)
        return h * jnp.sqrt((tokens.df - 2.0) / chi2)
    return h


@dataclass(frozen=True, eq=False)
class SamplingPlan:
    """Everything sampling needs from a validated structure, built once by :func:`plan`.

    Attributes:
        structure: the validated structure. n_max: positions per branch.
        terms: one :class:`TermDraw` per nonzero term, or None when the structure is drawn
            from one factor of the dense Sigma (a structure whose terms are not all PSD).
        dense: that dense ``2 n_max x 2 n_max`` draw (None for term-by-term plans).
    """

    structure: st.Structure
    n_max: int
    terms: tuple[TermDraw, ...] | None
    dense: KernelDraw | None

    @property
    def methods(self) -> tuple[str, ...]:
        """The draw method of each term, or ``("dense-sigma-factor",)``."""
        if self.terms is None:
            return ("dense-sigma-factor",)
        return tuple(t.kernel.method for t in self.terms)

    def token_sampler(self, d: int, tokens: TokenModel | str = "gaussian") -> Sampler:
        """Jitted ``sample(key) -> h`` of shape ``(2, n_max, d)`` (branch, position, feature);
        see :func:`token_sampler`."""
        d = st.check_count("token_sampler", "d", d)
        tokens = as_token_model(tokens)
        n_max, scale = self.n_max, 1.0 / math.sqrt(d)
        terms, dense = self.terms, self.dense

        def gaussian(key: jax.Array) -> jax.Array:
            if terms is None:
                assert dense is not None
                return dense.draw(key, 2 * n_max, (), d).reshape(2, n_max, d)
            # every term's columns drawn as (k, n, d), k <= 2 (no slicing of a wide draw), and
            # mixed elementwise: XLA fuses the mix and the sum over terms into the one pass that
            # writes h (the triangular F keeps the normals recomputed inside it to 3 per pair)
            keys = jax.random.split(key, max(len(terms), 1))
            h = [jnp.zeros((n_max, d), float_dtypes()[0])] * 2
            for k, term in zip(keys, terms, strict=False):
                g = term.kernel.draw(k, n_max, (term.mix.shape[1],), d)
                for a in range(2):
                    for b, m in enumerate(term.mix[a].tolist()):
                        if m != 0.0:
                            h[a] = h[a] + m * g[b]
            return jnp.stack(h)

        def sample(key: jax.Array) -> jax.Array:
            k_gauss, k_tokens = jax.random.split(key)
            return _apply_tokens(k_tokens, scale * gaussian(k_gauss), tokens)

        return jax.jit(sample)

    def difference_sampler(self, d: int) -> Sampler:
        """Jitted ``sample(key) -> h^A - h^B`` of shape ``(n_max, d)``, Gaussian tokens; see
        :func:`difference_sampler`."""
        d = st.check_count("difference_sampler", "d", d)
        n_max, scale = self.n_max, 1.0 / math.sqrt(d)
        if self.terms is None:
            sigma = np.asarray(self.structure.sigma(n_max), dtype=np.float64)
            a, b = sigma[:n_max, :n_max], sigma[n_max:, n_max:]
            factor = cholesky_draw(a + b - sigma[:n_max, n_max:] - sigma[n_max:, :n_max])

            def sample(key: jax.Array) -> jax.Array:
                return scale * factor.draw(key, n_max, (), d)

            return jax.jit(sample)
        active = [t for t in self.terms if t.diff_scale > 0]

        def sample_terms(key: jax.Array) -> jax.Array:
            keys = jax.random.split(key, max(len(active), 1))
            x = jnp.zeros((n_max, d), float_dtypes()[0])
            for k, term in zip(keys, active, strict=False):
                x = x + (scale * term.diff_scale) * term.kernel.draw(k, n_max, (), d)
            return x

        return jax.jit(sample_terms)


def plan(structure: st.Structure, n_max: int, *, caller: str = "plan") -> SamplingPlan:
    """Validate ``structure`` for ``n_max`` tokens and build its :class:`SamplingPlan` (once).

    All factors are computed here, in NumPy float64, before any tracing.

    Args:
        structure: a :class:`tokenscale_sim.structures.terms.Structure`.
        n_max: positions per branch (>= 1).
        caller: the function named in validation errors.

    Raises:
        ValueError: a bad ``n_max`` or a structure that fails validation.

    >>> from tokenscale_sim import structures
    >>> plan(structures.decaying(4.0, coupling=0.3), 16).methods
    ('ar1-scan(phi=0.778801)',)
    """
    n_max = st.check_count(caller, "n_max", n_max)
    max_n = structure.max_n
    if max_n is not None and n_max > max_n:
        raise ValueError(
            f"{caller}: n_max must be <= {max_n} for this dense structure, got {n_max}"
        )
    structure.validate(n_max)
    terms = _term_draws(structure, n_max)
    dense = cholesky_draw(structure.sigma(n_max)) if terms is None else None
    return SamplingPlan(structure, n_max, terms, dense)


def sampler_methods(structure: st.Structure, n_max: int) -> tuple[str, ...]:
    """The draw method of each term (or ``("dense-sigma-factor",)``) for ``n_max`` tokens.

    >>> from tokenscale_sim import structures
    >>> sampler_methods(structures.exchangeable(0.5, 0.3, psi_ab=0.1), 16)
    ('factor', 'iid')
    """
    return plan(structure, n_max, caller="sampler_methods").methods


def token_sampler(
    structure: st.Structure, n_max: int, d: int, tokens: TokenModel | str = "gaussian"
) -> Sampler:
    """Build a jitted ``sample(key) -> h`` of shape ``(2, n_max, d)`` (branch, position, feature).

    Builds the structure's :func:`plan` (validated before any tracing); the returned function
    is pure in ``key`` and can be ``jax.vmap``-ed over keys. Its dtype follows
    ``jax_enable_x64`` at call time. The first ``n`` positions of a draw are a draw for ``n``.

    Args:
        structure: a :class:`tokenscale_sim.structures.terms.Structure`.
        n_max: number of positions per branch (>= 1).
        d: embedding width (>= 1).
        tokens: a :class:`~tokenscale_sim.structures.exact.TokenModel` or its ``kind``.

    Returns:
        ``sample(key)`` -> array ``(2, n_max, d)``; ``h[0]`` is branch A.

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> sample = token_sampler(structures.exchangeable(0.5, 0.3, psi_ab=0.1), 8, 64)
        >>> sample(jax.random.key(0)).shape
        (2, 8, 64)
    """
    tokens = as_token_model(tokens)
    d = st.check_count("token_sampler", "d", d)
    return plan(structure, n_max, caller="token_sampler").token_sampler(d, tokens)


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
    d = st.check_count("difference_sampler", "d", d)
    return plan(structure, n_max, caller="difference_sampler").difference_sampler(d)


def sample_tokens(
    key: jax.Array | int,
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
    key = as_key("sample_tokens", key)
    return token_sampler(structure, n_max, d, tokens)(key)
