"""Per-kernel draws: for each position kernel K, a :class:`KernelDraw` that turns iid normals into
draws with covariance K along the token axis, at the cost the kernel allows (identity and ones:
O(n); AR(1): blocked Toeplitz matmuls plus an associative scan of the carries, O(n); stationary
kernels: circulant embedding with FFT, O(n log n), with a Cholesky fallback when the embedding is
not PSD; 2-D grids: AR(1) along rows times a dense column factor; dense kernels: a factor computed
once). Used by :mod:`tokenscale_sim.montecarlo.sampling`, which mixes branches and tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.structures import terms as st

_CIRCULANT_DOUBLINGS = 2  # embedding sizes tried: M, 2M, 4M, then Cholesky
NEG_TOL = 1e-10  # relative size of a negative circulant eigenvalue treated as rounding
_AR1_BLOCK = 16  # positions per Toeplitz block of the AR(1) filter
_GRID_DENSE_WIDTH = 64  # grids up to this width filter along columns with the dense AR(1) factor


def float_dtypes() -> tuple[Any, Any]:
    """The (real, complex) dtypes in force: float64/complex128 under ``jax_enable_x64``, else
    float32/complex64."""
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
class KernelDraw:
    """A kernel's draw: ``method`` names it; ``draw(key, n, lead, d)`` -> ``(*lead, n, d)``:
    ``prod(lead) * d`` iid columns ``N(0, K)`` along the positions axis."""

    method: str
    draw: Callable[[jax.Array, int, tuple[int, ...], int], jax.Array]


def _normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(key, shape, float_dtypes()[0])


def _identity_draw() -> KernelDraw:
    return KernelDraw("iid", lambda key, n, lead, d: _normal(key, (*lead, n, d)))


def _ones_draw() -> KernelDraw:
    return KernelDraw(
        "factor",
        lambda key, n, lead, d: jnp.broadcast_to(_normal(key, (*lead, 1, d)), (*lead, n, d)),
    )


def _ar1_draw(phi: float) -> KernelDraw:
    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        size, blocks = _block_shape(n)
        z = _normal(key, (size, blocks, *lead, d))  # drawn in the filter's layout
        return _from_blocks(_ar1_blocks(z, phi), n, len(lead))

    return KernelDraw(f"ar1-scan(phi={phi:.6g})", draw)


def _ar1_factor(size: int, phi: float) -> np.ndarray:
    """Lower Cholesky factor of the AR(1) correlation phi^|i-j| (size x size)."""
    i = np.arange(size)
    lag = i[:, None] - i[None, :]
    factor = np.where(lag >= 0, np.float64(phi) ** np.clip(lag, 0, None), 0.0)
    factor[:, 1:] *= math.sqrt(max(1.0 - phi * phi, 0.0))
    return factor


def _grid_draw(phi: float, width: int) -> KernelDraw:
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

    return KernelDraw(f"grid-ar1-kronecker(width={width})", draw)


def cholesky_draw(kernel_matrix: np.ndarray, why: str = "") -> KernelDraw:
    """Draws ``F z`` with ``F F' = kernel_matrix`` (Cholesky, or the eigen-factor of a singular
    PSD matrix), the factor computed once here in NumPy float64; ``why`` goes into the method
    name (e.g. why a circulant embedding fell back to it)."""
    factor = _psd_factor(np.asarray(kernel_matrix, dtype=np.float64))

    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        f = jnp.asarray(factor[:n, :n], float_dtypes()[0])
        return f @ _normal(key, (*lead, n, d))

    return KernelDraw("cholesky" + (f" ({why})" if why else ""), draw)


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


def _circulant_draw(kernel: Any, n_max: int) -> KernelDraw:
    size = _fast_len(2 * (n_max - 1))
    worst = 0.0
    for _ in range(_CIRCULANT_DOUBLINGS + 1):
        lags = np.asarray(kernel.lags(size // 2 + 1), dtype=np.float64)
        k = np.arange(size)
        row = lags[np.minimum(k, size - k)]
        lam = np.fft.fft(row).real
        worst = float(lam.min() / lam.max())
        if worst >= -NEG_TOL:
            break
        size *= 2
    else:
        return cholesky_draw(
            kernel.dense(n_max),
            f"circulant embedding not PSD up to size {size // 2}: min/max eigenvalue {worst:.3g}",
        )
    scale = np.sqrt(np.clip(lam, 0.0, None) / size)

    def draw(key: jax.Array, n: int, lead: tuple[int, ...], d: int) -> jax.Array:
        real, cplx = float_dtypes()
        cols = math.prod(lead) * d
        half = -(-cols // 2)
        z = _normal(key, (2, half, size))  # FFT along the last (contiguous) axis
        w = (jnp.asarray(scale, real) * (z[0] + 1j * z[1])).astype(cplx)
        y = jnp.fft.fft(w, axis=-1)[:, :n]  # real and imaginary parts: independent N(0, K) rows
        y = jnp.concatenate([y.real, y.imag], axis=0)[:cols]
        return jnp.swapaxes(y.reshape(*lead, d, n), -1, -2)

    return KernelDraw(f"circulant-fft(size={size})", draw)


def kernel_draw(kernel: Any, n_max: int) -> KernelDraw:
    """The cheapest exact draw of ``kernel`` for up to ``n_max`` positions (module docstring):
    every factor and FFT eigenvalue is computed here, once."""
    if n_max == 1 or isinstance(kernel, st.Identity):
        return _identity_draw()
    if isinstance(kernel, st.Ones):
        return _ones_draw()
    if isinstance(kernel, st.Exponential):
        return _ar1_draw(math.exp(-1.0 / kernel.length))
    if isinstance(kernel, st.Grid2D):
        # a grid at least n_max wide holds the n_max positions in its first row: the same
        # kernel as a grid exactly n_max wide, whose draw does not allocate the unused columns
        width = min(kernel.grid_width(n_max), n_max)
        return _grid_draw(math.exp(-1.0 / kernel.length), width)
    if getattr(kernel, "stationary", False):
        return _circulant_draw(kernel, n_max)
    return cholesky_draw(kernel.dense(n_max))
