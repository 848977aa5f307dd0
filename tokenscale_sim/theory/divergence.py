"""Branch divergence D(n) and the psi(n) similarities, for every n at once.

Works the same on sampled token embeddings and on hidden states users bring. Shapes:

- ``h_a``, ``h_b``: ``(..., n, d)``: branch A and branch B, ``n`` positions, width ``d``, any
  leading batch axes (replicates, layers, prompts...), broadcast against each other;
- or one array ``h`` of shape ``(..., 2, n, d)`` with branches on axis ``-3`` (``h[..., 0, :, :]``
  is A), passed alone: ``branch_statistics(h)``.

Every statistic is returned for ``n = 1..N`` along the last axis, shape ``(..., N)``, computed
from cumulative sums in ``O(N d)`` per sample (never ``O(N^2 d)``). With ``u_i = h_i / |h_i|``
and ``S^X(n) = sum_{i<=n} u_i^X``, ``E(n) = sum_{i<=n} u_i^A . u_i^B``::

    D(n)        = | sum_{i<=n} (h_i^A - h_i^B) |
    psi_eq(n)   = E(n) / n
    psi_AA(n)   = (|S^A(n)|^2 - n) / (n (n - 1))           (psi_BB likewise)
    psi_AB(n)   = (S^A(n) . S^B(n) - E(n)) / (n (n - 1))
    Upsilon(n)  = n (1 - psi_eq) + n (n - 1) ((psi_AA + psi_BB)/2 - psi_AB)

The pairwise averages psi_AA, psi_BB, psi_AB run over ``i != j`` and are undefined at ``n = 1``:
they are NaN there (a documented "missing" value, the same convention as
:class:`tokenscale_sim.structures.terms.PsiCurves`); Upsilon(1) = 1 - psi_eq(1) is defined (its
pairwise term has weight zero). For unit-norm tokens ``D(n)^2 = 2 Upsilon(n)`` holds per sample up
to rounding (THEORY.md). A zero token has no direction: its cosines are NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "BranchStats",
    "branch_statistics",
    "divergence",
    "unit_normalise",
]


class BranchStats(NamedTuple):
    """Per-sample statistics of a branch pair, each of shape ``(..., n)`` for n = 1..N.

    Attributes:
        divergence: D(n) = |sum_{i<=n} (h_i^A - h_i^B)| (raw, not normalised, tokens).
        psi_eq: mean cosine of the same position in the two branches.
        psi_aa: mean cosine over pairs i != j within branch A (NaN at n = 1).
        psi_bb: the same within branch B (NaN at n = 1).
        psi_ab: mean cross-branch cosine over i != j, symmetrised (NaN at n = 1).
        upsilon: Upsilon-hat(n) = n(1 - psi_eq) + n(n-1)((psi_aa + psi_bb)/2 - psi_ab).
    """

    divergence: jax.Array
    psi_eq: jax.Array
    psi_aa: jax.Array
    psi_bb: jax.Array
    psi_ab: jax.Array
    upsilon: jax.Array


def _split(h_a: jax.Array, h_b: jax.Array | None, name: str) -> tuple[jax.Array, jax.Array]:
    h_a = jnp.asarray(h_a)
    if h_b is None:
        if h_a.ndim < 3 or h_a.shape[-3] != 2:
            raise ValueError(
                f"{name}: h must have shape (..., 2, n, d) with branches on axis -3 when h_b is "
                f"not given, got shape {h_a.shape}"
            )
        return h_a[..., 0, :, :], h_a[..., 1, :, :]
    h_b = jnp.asarray(h_b)
    if h_a.ndim < 2 or h_b.ndim < 2 or h_a.shape[-2:] != h_b.shape[-2:]:
        raise ValueError(
            f"{name}: h_a and h_b must have shapes (..., n, d) with equal (n, d), got "
            f"{h_a.shape} and {h_b.shape}"
        )
    if h_a.shape[-2] < 1 or h_a.shape[-1] < 1:
        raise ValueError(f"{name}: need n >= 1 and d >= 1, got (n, d) = {h_a.shape[-2:]}")
    return h_a, h_b


def divergence(h_a: jax.Array, h_b: jax.Array | None = None) -> jax.Array:
    """Branch divergence D(n) = |sum_{i<=n} (h_i^A - h_i^B)| for every n from one cumsum.

    Args:
        h_a: branch A, shape ``(..., n, d)``; or both branches ``(..., 2, n, d)`` if ``h_b`` is
            None.
        h_b: branch B, shape ``(..., n, d)`` (broadcast with ``h_a``), or None.

    Returns:
        D, shape ``(..., n)``; ``D[..., k]`` is D(k + 1).

    Example:
        >>> import jax.numpy as jnp
        >>> h = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # (2, n=2, d=2)
        >>> divergence(h).tolist()
        [1.4142135623730951, 1.4142135623730951]
    """
    return _divergence(*_split(h_a, h_b, "divergence"))


@jax.jit
def _divergence(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.linalg.norm(jnp.cumsum(a - b, axis=-2), axis=-1)


def unit_normalise(h: jax.Array) -> jax.Array:
    """Scale every token (last axis) to unit length: ``h / |h|`` (a zero token gives NaN)."""
    h = jnp.asarray(h)
    return h / jnp.linalg.norm(h, axis=-1, keepdims=True)


def branch_statistics(h_a: jax.Array, h_b: jax.Array | None = None) -> BranchStats:
    """D(n), psi_eq(n), psi_AA(n), psi_BB(n), psi_AB(n) and Upsilon-hat(n) for n = 1..N.

    ``O(N d)`` per sample through the cumulative-sum identities of the module docstring; jit- and
    vmap-able (shapes are checked at trace time).

    Args:
        h_a: branch A hidden states ``(..., n, d)``, or both branches ``(..., 2, n, d)`` when
            ``h_b`` is None. Any float dtype; the result has the promoted dtype.
        h_b: branch B hidden states ``(..., n, d)`` or None.

    Returns:
        :class:`BranchStats`, each field of shape ``(..., n)``. Pairwise psi's are NaN at n = 1.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0]])  # two identical tokens in A
        >>> b = jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> s = branch_statistics(a, b)
        >>> s.psi_eq.tolist(), s.psi_aa.tolist()[1], s.psi_ab.tolist()[1]
        ([0.0, 0.5], 1.0, 0.5)
        >>> bool(jnp.allclose(s.divergence**2, 2 * s.upsilon))  # unit tokens: D^2 = 2 Upsilon
        True
    """
    return _branch_statistics(*_split(h_a, h_b, "branch_statistics"))


@jax.jit
def _branch_statistics(a: jax.Array, b: jax.Array) -> BranchStats:
    a, b = jnp.broadcast_arrays(a, b)
    div = _divergence(a, b)
    ua, ub = unit_normalise(a), unit_normalise(b)
    eq = jnp.cumsum(jnp.sum(ua * ub, axis=-1), axis=-1)  # E(n)
    sa, sb = jnp.cumsum(ua, axis=-2), jnp.cumsum(ub, axis=-2)
    n = jnp.arange(1, a.shape[-2] + 1, dtype=div.dtype)
    pairs = n * (n - 1)
    safe = jnp.where(pairs > 0, pairs, 1.0)
    missing = jnp.where(pairs > 0, 0.0, jnp.nan).astype(div.dtype)  # NaN at n = 1

    def pairwise(total: jax.Array) -> jax.Array:
        return total / safe + missing

    psi_eq = eq / n
    psi_aa = pairwise(jnp.sum(sa * sa, axis=-1) - n)
    psi_bb = pairwise(jnp.sum(sb * sb, axis=-1) - n)
    psi_ab = pairwise(jnp.sum(sa * sb, axis=-1) - eq)
    cross = jnp.where(pairs > 0, (psi_aa + psi_bb) / 2 - psi_ab, 0.0)
    upsilon = n * (1 - psi_eq) + pairs * cross
    return BranchStats(div, psi_eq, psi_aa, psi_bb, psi_ab, upsilon)
