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

_CIRCULANT_DOUBLINGS = 2  # embedding sizes tried: M, 2M, 4M, then Cholesky
_NEG_TOL = 1e-10  # relative size of a negative circulant eigenvalue treated as rounding
_AR1_BLOCK = 16  # positions per Toeplitz block of the AR(1) filter
_GRID_DENSE_WIDTH = 64  # grids up to this width filter along columns with the dense AR(1) factor

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


def _dtypes() -> tuple[Any, Any]:
    return jax.dtypes.canonicalize_dtype(jnp.float64), jax.dtypes.canonicalize_dtype(jnp.complex128)


def _psd_factor(matrix: np.ndarray) -> np.ndarray:
    """F with F F' = matrix: Cholesky, or V sqrt(max(lambda, 0)) for a singular PSD matrix."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(matrix)
        return vec * np.sqrt(np.clip(lam, 0.0, None))


def _linear_scan(factor: float, b: jax.Array) -> jax.Array:
    """y_k = factor * y_{k-1} + b_k along axis 0 (y_0 = b_0), by a log-depth associative scan."""
    a = jnp.full((b.shape[0],) + (1,) * (b.ndim - 1), factor, b.dtype)

    def combine(left, right):
        a1, b1 = left
        a2, b2 = right
        return a1 * a2, a2 * b1 + b2

    return jax.lax.associative_scan(combine, (jnp.broadcast_to(a, b.shape), b))[1]


def _ar1_blocks(z: jax.Array, phi: float) -> jax.Array:
    """AR(1) filter of normals in *block-strided* layout: ``z[i, k, ...]`` is position
    ``k * size + i`` (``size = z.shape[0]``); returns the filtered values in the same layout.

    x_1 = z_1, x_p = phi x_{p-1} + sqrt(1 - phi^2) z_p. Inside every block of ``size`` positions
    one ``size x size`` lower-triangular Toeplitz matrix times ``z`` viewed as ``(size, rest)``:
    a plain GEMM over the leading axis, no transposes; across blocks a log-depth associative
    scan of the blocks' last values (``O(n d)`` work, ``O(log n)`` depth). Fresh normals can be
    drawn directly in this layout, so the filter costs one GEMM pass over them.
    """
    size, blocks = z.shape[0], z.shape[1]
    trailing = (1,) * (z.ndim - 2)
    s = math.sqrt(max(1.0 - phi * phi, 0.0))
    i = np.arange(size)
    lag = i[:, None] - i[None, :]
    toeplitz = np.where(lag >= 0, np.float64(phi) ** np.clip(lag, 0, None), 0.0)  # (size, size)
    power = np.float64(phi) ** (i + 1.0)  # decay of the previous block's last value
    innovation = np.full((size, blocks), s)
    innovation[0, 0] = 1.0  # x_1 = z_1: the stationary start
    zz = z * jnp.asarray(innovation, z.dtype).reshape(size, blocks, *trailing)
    y = jnp.tensordot(jnp.asarray(toeplitz, z.dtype), zz, axes=1)  # (size, blocks, ...)
    if blocks == 1:
        return y
    carry = _linear_scan(np.float64(phi) ** size, y[-1])  # last value of every block
    previous = jnp.concatenate([jnp.zeros_like(carry[:1]), carry[:-1]])
    return y + jnp.asarray(power, z.dtype).reshape(size, 1, *trailing) * previous[None]


def _block_shape(n: int) -> tuple[int, int]:
    size = min(_AR1_BLOCK, n)
    return size, -(-n // size)


def _from_blocks(x: jax.Array, n: int, axis: int) -> jax.Array:
    """Block-strided ``(size, blocks, ...)`` -> positions at ``axis`` of the rest, first ``n``."""
    size, blocks = x.shape[0], x.shape[1]
    x = jnp.moveaxis(x, (0, 1), (axis + 1, axis))  # outer axes only: inner ones stay contiguous
    shape = (*x.shape[:axis], blocks * size, *x.shape[axis + 2 :])
    return jax.lax.slice_in_dim(x.reshape(shape), 0, n, axis=axis)


def _ar1(z: jax.Array, phi: float) -> jax.Array:
    """AR(1) filter along axis 0 of ``z`` (any layout): :func:`_ar1_blocks` after a reorder."""
    n, rest = z.shape[0], z.shape[1:]
    size, blocks = _block_shape(n)
    zz = jnp.pad(z, [(0, blocks * size - n)] + [(0, 0)] * len(rest))
    zz = jnp.swapaxes(zz.reshape(blocks, size, *rest), 0, 1)
    return _from_blocks(_ar1_blocks(zz, phi), n, 0)


@dataclass(frozen=True, eq=False)
class _Plan:
    """A kernel's draw: ``method`` names it; ``draw(key, n, lead, d)`` -> ``(*lead, n, d)``:
    ``prod(lead) * d`` iid columns ``N(0, K)`` along the positions axis."""

    method: str
    draw: Callable[[jax.Array, int, tuple[int, ...], int], jax.Array]


def _normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(key, shape, _dtypes()[0])


def _identity_plan() -> _Plan:
    return _Plan("iid", lambda key, n, lead, d: _normal(key, (*lead, n, d)))


def _ones_plan() -> _Plan:
    return _Plan(
        "factor",
        lambda key, n, lead, d: jnp.broadcast_to(_normal(key, (*lead, 1, d)), (*lead, n, d)),
    )


def _ar1_plan(phi: float) -> _Plan:
    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        size, blocks = _block_shape(n)
        z = _normal(key, (size, blocks, *lead, d))  # drawn in the filter's layout
        return _from_blocks(_ar1_blocks(z, phi), n, len(lead))

    return _Plan(f"ar1-scan(phi={phi:.6g})", draw)


def _ar1_factor(size: int, phi: float) -> np.ndarray:
    """Lower Cholesky factor of the AR(1) correlation phi^|i-j| (size x size)."""
    i = np.arange(size)
    lag = i[:, None] - i[None, :]
    factor = np.where(lag >= 0, np.float64(phi) ** np.clip(lag, 0, None), 0.0)
    factor[:, 1:] *= math.sqrt(max(1.0 - phi * phi, 0.0))
    return factor


def _grid_plan(phi: float, width: int) -> _Plan:
    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        rows = -(-n // width)
        size, blocks = _block_shape(rows)
        z = _normal(key, (size, blocks, *lead, width, d))  # grid rows in the filter's layout
        z = _ar1_blocks(z, phi)  # along grid rows
        if width <= _GRID_DENSE_WIDTH:  # along grid columns: one GEMM with the dense factor,
            f = jnp.asarray(_ar1_factor(width, phi), z.dtype)  # grid columns moved to the front
            z = jnp.moveaxis(jnp.tensordot(f, jnp.moveaxis(z, -2, 0), axes=1), 0, -2)
        else:
            z = jnp.moveaxis(_ar1(jnp.moveaxis(z, -2, 0), phi), 0, -2)
        z = _from_blocks(z, rows, len(lead))  # (*lead, rows, width, d)
        return z.reshape(*lead, rows * width, d)[..., :n, :]

    return _Plan(f"grid-ar1-kronecker(width={width})", draw)


def _cholesky_plan(kernel_matrix: np.ndarray, why: str = "") -> _Plan:
    factor = _psd_factor(np.asarray(kernel_matrix, dtype=np.float64))

    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        f = jnp.asarray(factor[:n, :n], _dtypes()[0])
        return f @ _normal(key, (*lead, n, d))

    return _Plan("cholesky" + (f" ({why})" if why else ""), draw)


def _fast_len(x: int) -> int:
    """Smallest 2^a 3^b 5^c >= x (FFT-friendly size)."""
    best = 1 << max(x - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < x:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _circulant_plan(kernel: Any, n_max: int) -> _Plan:
    size = _fast_len(2 * (n_max - 1))
    worst = 0.0
    for _ in range(_CIRCULANT_DOUBLINGS + 1):
        lags = np.asarray(kernel.lags(size // 2 + 1), dtype=np.float64)
        k = np.arange(size)
        row = lags[np.minimum(k, size - k)]
        lam = np.fft.fft(row).real
        worst = float(lam.min() / lam.max())
        if worst >= -_NEG_TOL:
            break
        size *= 2
    else:
        return _cholesky_plan(
            kernel.dense(n_max),
            f"circulant embedding not PSD up to size {size // 2}: min/max eigenvalue {worst:.3g}",
        )
    scale = np.sqrt(np.clip(lam, 0.0, None) / size)

    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        real, cplx = _dtypes()
        cols = math.prod(lead) * d
        half = -(-cols // 2)
        z = _normal(key, (2, half, size))  # FFT along the last (contiguous) axis
        w = (jnp.asarray(scale, real) * (z[0] + 1j * z[1])).astype(cplx)
        y = jnp.fft.fft(w, axis=-1)[:, :n]  # real and imaginary parts: independent N(0, K) rows
        y = jnp.concatenate([y.real, y.imag], axis=0)[:cols]
        return jnp.swapaxes(y.reshape(*lead, d, n), -1, -2)

    return _Plan(f"circulant-fft(size={size})", draw)


def _kernel_plan(kernel: Any, n_max: int) -> _Plan:
    if n_max == 1 or isinstance(kernel, st.Identity):
        return _identity_plan()
    if isinstance(kernel, st.Ones):
        return _ones_plan()
    if isinstance(kernel, st.Exponential):
        return _ar1_plan(math.exp(-1.0 / kernel.length))
    if isinstance(kernel, st.Grid2D):
        return _grid_plan(math.exp(-1.0 / kernel.length), kernel.grid_width(n_max))
    if getattr(kernel, "stationary", False):
        return _circulant_plan(kernel, n_max)
    return _cholesky_plan(kernel.dense(n_max))


# ---------------------------------------------------------------------------------------------
# structure plans


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
    if lam.min() < -_NEG_TOL * max(1.0, lam.max()):
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
