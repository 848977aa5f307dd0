"""Width-free exact Monte Carlo of D(n) and psi(n): the "gram" method (issue 12).

Every statistic of :func:`tokenscale_sim.theory.divergence.branch_statistics` is a function of inner
products of the tokens, and Gaussian tokens (iid feature columns ``~ N(0, Sigma / d)``) have a
law invariant under one common rotation of ``R^d``. For a structure whose terms all have kernel
``Identity``, ``Ones`` or ``Exponential`` the tokens follow a linear recursion with a small state:
per term ``C (x) K`` with ``F F' = C`` (``F`` is 2 x k_r, k_r <= 2 independent streams), each
stream ``g_i in R^d`` (iid ``N(0, I_d)`` coordinates) is

- ``Identity``: ``g_i = z_i`` (fresh);
- ``Ones``: ``g_i = g`` (one shared vector, carried);
- ``Exponential`` (AR(1), ``phi = exp(-1/length)``): ``g_i = phi g_{i-1} + sqrt(1 - phi^2) z_i``
  with ``g_0`` a fresh vector (so ``g_1`` is stationary; carried).

and ``h_i^X = d^{-1/2} sum_r sum_b F_r[X, b] g_i^{r,b}``. Terms with the same kernel are merged
first (their branch matrices add), so ``k_p``, the number of carried stream vectors, is at most
2 per distinct kernel. The statistics need, besides the carried streams, the cumulative sums
``S = sum_{i<=n} (t_i^A - t_i^B)`` of the (token-model transformed) tokens ``t`` and
``S^A = sum u_i^A``, ``S^B = sum u_i^B`` of the unit tokens ``u = h / |h|`` (unit tokens:
``S = S^A - S^B`` is not carried; divergence only: ``S`` alone). These ``k`` vectors
(:func:`gram_state_dim`) are kept as coordinates ``X`` (``p x k``, ``p = min(k, d)``) in an
orthonormal basis ``Q`` (``d x p``) of a space containing them; ``Q`` itself is never formed.

One step, exactly. Let ``Z = [z_1 .. z_q]`` be the ``q`` fresh vectors of the step (one per
``Identity`` stream and per ``Exponential`` innovation), independent of the past, hence of
``Q``. By rotation invariance ``Q'Z`` is ``p x q`` iid ``N(0, 1)``, and the part of ``Z``
orthogonal to ``Q`` is ``Q_perp W`` with ``W`` a ``(d - p) x q`` Gaussian matrix, independent of
``Q'Z``. Its QR factor ``W = Q_2 T`` has the Bartlett law: ``T`` is ``q' x q``,
``q' = min(q, d - p)``, upper triangular (trapezoidal when ``q' < q``), ``T_jj^2 ~
chi^2_{d - p - j}`` (``j = 0..q'-1``) and ``T_ij ~ N(0, 1)`` for ``i < j``, all independent. So in
the orthonormal basis ``[Q, Q_perp Q_2]`` of dimension ``p + q'`` the fresh vectors have the
coordinates ``[Q'Z; T]`` (exact for every ``d``: ``d <= p`` gives ``q' = 0``, the basis is all of
``R^d``). The new streams, tokens and cumulative sums are linear in these coordinates; their
norms and inner products are read off directly, and a QR factorisation of the new ``(p + q') x
k`` coordinate matrix, ``X' = Q_3 R``, re-expresses them in the ``p``-dimensional orthonormal
basis ``[Q, Q_perp Q_2] Q_3`` (a function of the past only, as the next step needs). The first
step draws the carried streams the same way (Bartlett with ``d`` degrees of freedom). Student-t
scales and unit normalisation are per-token scalars and stay inside the span.

Cost per replicate and step: ``O(k^2 (k + q))`` flops (one small QR), ``p q + q (q - 1) / 2``
normals and ``q'`` chi-square variates, independent of ``d``. Positions run in a
``jax.lax.scan``, in blocks of 128 whose random numbers are drawn at once (vectorised
Marsaglia-Tsang chi-squares); memory per replicate is the ``p x k`` state, one block of random
numbers and the ``(S, n_max)`` output.

Which method is faster depends on ``k`` against ``d``: see :func:`prefer_gram` and
``benchmarks/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import TokenModel, as_token_model

__all__ = [
    "GRAM_CROSSOVER",
    "GRAM_CROSSOVER_DIFFERENCE",
    "GramPlan",
    "gram_plan",
    "gram_state_dim",
    "gram_statistics_sampler",
    "prefer_gram",
    "statistics_from_sums",
]

_PSD_TOL = 1e-10

GRAM_CROSSOVER = 0.8
"""Token-pair steps: the gram method is preferred when ``2 d >= GRAM_CROSSOVER * k^2``."""
GRAM_CROSSOVER_DIFFERENCE = 0.25
"""Gaussian divergence-only (difference) steps: preferred when ``d >= 0.25 k^2``."""


@dataclass(frozen=True, eq=False)
class GramPlan:
    """The linear recursion of a structure's streams, concrete NumPy float64 (built once).

    Carried stream vectors ``P`` (``k_p`` columns) and fresh vectors ``Z`` (``q`` columns) of a
    step give ``P <- P * decay + Z @ innovation`` and tokens ``H = (P @ out_state + Z @
    out_fresh) / sqrt(d)``, with ``n_out = 2`` columns (branches A, B) or 1 (the difference
    ``h^A - h^B`` when ``difference`` is True).

    Attributes:
        decay: ``(k_p,)``: 1 for a ``Ones`` stream, ``phi`` for an AR(1) stream.
        innovation: ``(q, k_p)``: ``sqrt(1 - phi^2)`` from an AR(1) stream's fresh column.
        out_state: ``(k_p, n_out)``. out_fresh: ``(q, n_out)``.
        difference: the single output is ``h^A - h^B`` (Gaussian divergence-only runs).
        cumulative: number of carried cumulative sums (1: ``S``; 2: ``S^A, S^B``; 3: all).
        tokens: the token model.
    """

    decay: np.ndarray
    innovation: np.ndarray
    out_state: np.ndarray
    out_fresh: np.ndarray
    difference: bool
    cumulative: int
    tokens: TokenModel

    @property
    def k(self) -> int:
        """Number of carried vectors: streams plus cumulative sums."""
        return self.decay.shape[0] + self.cumulative

    @property
    def q(self) -> int:
        """Fresh vectors per step."""
        return self.out_fresh.shape[0]


def _psd_columns(c: np.ndarray) -> np.ndarray | None:
    """F (2 x k, k <= 2) with F F' = c for a symmetric PSD c, zero directions dropped."""
    if not np.allclose(c, c.T, atol=1e-12):
        return None
    lam, vec = np.linalg.eigh(c)
    top = max(float(lam.max()), 0.0)
    if lam.min() < -_PSD_TOL * max(1.0, top):
        return None
    keep = lam > _PSD_TOL * max(1.0, top)
    return vec[:, keep] * np.sqrt(lam[keep])


def _kernel_key(kernel: st.Kernel, n_max: int) -> tuple[str, float] | None:
    if n_max == 1 or isinstance(kernel, st.Identity):
        return ("iid", 0.0)
    if isinstance(kernel, st.Ones):
        return ("ones", 1.0)
    if isinstance(kernel, st.Exponential):
        return ("ar1", math.exp(-1.0 / kernel.length))
    return None


def gram_plan(
    structure: st.Structure,
    n_max: int,
    tokens: TokenModel | str = "gaussian",
    divergence_only: bool = False,
) -> GramPlan | None:
    """The :class:`GramPlan` of a structure, or None when the gram method cannot serve it.

    It serves structures that are ``separable_psd`` with every kernel ``Identity``, ``Ones`` or
    ``Exponential`` (terms with equal kernels are merged). Not served: stationary kernels
    without a finite linear state (``PowerLaw``: circulant FFT), ``Grid2D`` (its state is a whole
    grid row of ``width`` vectors: cheaper drawn directly for the widths in use), dense matrices.
    """
    tokens = as_token_model(tokens)
    if not getattr(structure, "separable_psd", False):
        return None
    difference = divergence_only and tokens.kind == "gaussian"
    groups: dict[tuple[str, float], np.ndarray] = {}
    for term in structure.terms:
        key = _kernel_key(term.kernel, n_max)
        if key is None:
            return None
        c = np.asarray(term.branch, dtype=np.float64)
        groups[key] = groups.get(key, np.zeros((2, 2))) + c
    decay, inno, out_state, out_fresh = [], [], [], []
    for (kind, phi), c in groups.items():
        if difference:
            w = float(c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0])
            cols = np.array([[math.sqrt(w)]]) if w > _PSD_TOL else np.zeros((1, 0))
        else:
            f = _psd_columns(c)
            if f is None:
                return None
            cols = f
        for b in range(cols.shape[1]):
            weights = cols[:, b]
            if kind == "iid":
                out_fresh.append(weights)
                continue
            decay.append(phi)
            out_state.append(weights)
            if kind == "ar1":
                inno.append((len(out_fresh), len(decay) - 1, math.sqrt(max(1 - phi * phi, 0.0))))
                out_fresh.append(np.zeros_like(weights))
    n_out = 1 if difference else 2
    innovation = np.zeros((len(out_fresh), len(decay)))
    for i, j, s in inno:
        innovation[i, j] = s
    cumulative = 1 if divergence_only else 2 if tokens.kind == "unit" else 3
    return GramPlan(
        decay=np.asarray(decay, dtype=np.float64).reshape(-1),
        innovation=innovation,
        out_state=np.asarray(out_state, dtype=np.float64).reshape(-1, n_out),
        out_fresh=np.asarray(out_fresh, dtype=np.float64).reshape(-1, n_out),
        difference=difference,
        cumulative=cumulative,
        tokens=tokens,
    )


def gram_state_dim(
    structure: st.Structure,
    n_max: int,
    tokens: TokenModel | str = "gaussian",
    divergence_only: bool = False,
) -> int | None:
    """Dimension ``k`` of the state the gram method carries (None when it cannot serve).

    ``k = k_p + c``: ``k_p`` carried stream vectors (up to 2 per distinct ``Ones`` or
    ``Exponential`` kernel, one each for a Gaussian divergence-only run, which draws the
    difference process) and ``c`` cumulative sums (``S``, ``S^A``, ``S^B``; ``S^A, S^B`` for
    unit tokens; ``S`` alone for divergence-only runs).

    >>> from tokenscale_sim import structures
    >>> s = structures.exchangeable(0.5, 0.3, psi_ab=0.1)   # Ones: 2 streams, + S, S^A, S^B
    >>> gram_state_dim(s, 64), gram_state_dim(s, 64, divergence_only=True)
    (5, 2)
    >>> gram_state_dim(structures.decaying(2.0, kernel="powerlaw"), 64) is None
    True
    """
    plan = gram_plan(structure, n_max, tokens, divergence_only)
    return None if plan is None else plan.k


def prefer_gram(
    structure: st.Structure,
    n_max: int,
    d: int,
    tokens: TokenModel | str = "gaussian",
    divergence_only: bool = False,
) -> bool:
    """Whether the automatic choice takes the gram method: ``e d >= c k^2``.

    ``k`` is :func:`gram_state_dim`; ``e`` is the number of ``d``-vectors a direct sampler
    draws per position. For Gaussian divergence-only runs (the gram step carries the
    difference process; the direct one is the difference sampler) ``e = 1`` and
    ``c = GRAM_CROSSOVER_DIFFERENCE = 0.25``; otherwise ``e = 2`` and ``c = GRAM_CROSSOVER =
    0.8``. A direct sampler costs ``O(e d)`` per position, the gram step ``O(k^3)`` flops that
    at the ``k <= 9`` in use run as ``O(k^2)``-sized batched operations, overhead-bound.

    Measurement (``benchmarks/bench_gram.py``, n = 1024, float32, a 2-core CPU under heavy
    shared load; ``benchmarks/README.md``): equal rates at ``d* = 5..19`` for k = 5 full-token
    (``e d* / k^2 = 0.4..1.6`` in two runs), ``d* = 19..30`` for k = 7 (``0.8..1.2``); for
    k = 2 divergence-only the gram method was faster at every width measured (d >= 2: 1.8x at
    d = 2). With these constants the choice stays within 1.5x of the faster method in both runs
    and picks the faster one by a wide margin away from the crossover (5-90x at d = 128).

    >>> from tokenscale_sim import structures
    >>> s = structures.decaying(4.0, coupling=0.3)  # k = 5 full-token, 2 divergence-only
    >>> prefer_gram(s, 1024, 4096), prefer_gram(s, 1024, 9), prefer_gram(s, 1024, 10)
    (True, False, True)
    >>> prefer_gram(s, 1024, 1, divergence_only=True)
    True
    """
    plan = gram_plan(structure, n_max, tokens, divergence_only)
    if plan is None:
        return False
    if plan.difference:
        return d >= GRAM_CROSSOVER_DIFFERENCE * plan.k**2
    return 2 * d >= GRAM_CROSSOVER * plan.k**2


BLOCK = 128
"""Positions whose random numbers are drawn at once (memory ``O(BLOCK (k + q) q)``)."""
_ROUNDS = 2  # Marsaglia-Tsang proposals drawn at once per chi-square (then a rare while loop)


def _chi2(key: jax.Array, dof: np.ndarray, lead: tuple[int, ...], dtype) -> jax.Array:
    """Exact chi-square variates, ``(*lead, len(dof))``, column ``j`` with ``dof[j] >= 1``.

    ``chi^2_nu = 2 Gamma(nu / 2)`` by Marsaglia-Tsang rejection (``a = nu / 2``; ``a < 1`` is
    boosted: ``Gamma(a) = Gamma(a + 1) U^(1/a)``). ``_ROUNDS`` proposals are drawn for every
    variate at once and the first accepted one kept; the few variates with none accepted are
    redrawn in a while loop (sequential iid trials: the law is exact). Much cheaper than
    ``jax.random.gamma``, which splits a key per variate.
    """
    a = np.asarray(dof, dtype=np.float64) / 2.0
    boost = a < 1.0
    dd_np = np.where(boost, a + 1.0, a) - 1.0 / 3.0
    dd = jnp.asarray(dd_np, dtype)
    c = jnp.asarray(1.0 / np.sqrt(9.0 * dd_np), dtype)
    shape = (*lead, a.shape[0])

    def propose(k: jax.Array, rounds: int) -> tuple[jax.Array, jax.Array]:
        k_z, k_u = jax.random.split(k)
        z = jax.random.normal(k_z, (rounds, *shape), dtype)
        u = jax.random.uniform(k_u, (rounds, *shape), dtype, minval=jnp.finfo(dtype).tiny)
        y = c * z  # v = (1 + y)^3; accept log u < z^2/2 + dd (1 - v + log v), written stably
        ys = jnp.where(y > -1.0, y, 0.0)
        log_ratio = 0.5 * z * z + dd * (3.0 * (jnp.log1p(ys) - ys) - 3.0 * ys * ys - ys**3)
        ok = (y > -1.0) & (jnp.log(u) < log_ratio)
        return ok, dd * (1.0 + y) ** 3

    k_first, k_more, k_boost = jax.random.split(key, 3)
    ok, value = propose(k_first, _ROUNDS)
    out = jnp.full(shape, jnp.nan, dtype)
    for r in reversed(range(_ROUNDS)):  # the first accepted proposal wins
        out = jnp.where(ok[r], value[r], out)

    def redraw(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        i, x = state
        ok1, value1 = propose(jax.random.fold_in(k_more, i), 1)
        return i + 1, jnp.where(jnp.isnan(x) & ok1[0], value1[0], x)

    _, out = jax.lax.while_loop(lambda st: jnp.any(jnp.isnan(st[1])), redraw, (jnp.asarray(0), out))
    if boost.any():
        u = jax.random.uniform(k_boost, shape, dtype, minval=jnp.finfo(dtype).tiny)
        out = out * jnp.where(jnp.asarray(boost), u ** jnp.asarray(1.0 / a, dtype), 1.0)
    return 2.0 * out


def _bartlett(key: jax.Array, dof: int, q: int, lead: tuple[int, ...], dtype) -> jax.Array:
    """Upper-trapezoidal ``(*lead, min(q, dof), q)`` R factor of a ``dof x q`` N(0, 1) matrix:
    ``T_jj = sqrt(chi^2_{dof - j})``, ``T_ij ~ N(0, 1)`` above the diagonal, 0 below."""
    r = max(min(q, dof), 0)
    if r == 0 or q == 0:
        return jnp.zeros((*lead, r, q), dtype)
    k_normal, k_chi = jax.random.split(key)
    rows, cols = np.triu_indices(r, 1, q)
    t = jnp.zeros((*lead, r, q), dtype)
    if rows.size:
        z = jax.random.normal(k_normal, (*lead, rows.size), dtype)
        t = t.at[..., rows, cols].set(z)
    chi = jnp.sqrt(_chi2(k_chi, dof - np.arange(r), lead, dtype))
    diag = np.arange(r)
    return t.at[..., diag, diag].set(chi)


def _householder_r(x: jax.Array) -> jax.Array:
    """R (``min(m, k) x k``) of a QR factorisation of ``x`` (``m x k``), by unrolled
    Householder reflections: an orthonormal basis even when ``x`` is rank deficient, in small
    elementwise operations that XLA fuses across a vmapped batch (faster than a batched LAPACK
    call per matrix)."""
    m, k = x.shape
    rows = np.arange(m)
    for j in range(min(m - 1, k)):
        col = jnp.where(rows >= j, x[:, j], 0.0)
        norm = jnp.sqrt(jnp.sum(col * col))
        sign = jnp.where(x[j, j] >= 0, 1.0, -1.0)
        v = col + jnp.where(rows == j, sign * norm, 0.0)
        vv = norm * (norm + jnp.abs(x[j, j]))  # = |v|^2 / 2
        beta = jnp.where(vv > 0, 1.0 / jnp.where(vv > 0, vv, 1.0), 0.0)
        x = x - (beta * v)[:, None] * (v @ x)[None, :]
    return x[: min(m, k)]


def statistics_from_sums(
    squared: jax.Array, aa: jax.Array, bb: jax.Array, ab: jax.Array, eq: jax.Array
) -> jax.Array:
    """The ``(7, n)`` statistics ``[D, D^2, psi_eq, psi_aa, psi_bb, psi_ab, upsilon]`` from the
    per-n sums, with the conventions of :func:`tokenscale_sim.theory.divergence.branch_statistics`.

    Args (each ``(n,)``): ``squared = |S(n)|^2``, ``aa = |S^A(n)|^2``, ``bb = |S^B(n)|^2``,
    ``ab = S^A(n) . S^B(n)``, ``eq = u_n^A . u_n^B`` (the last token's cosine; summed here).
    """
    n = jnp.arange(1, squared.shape[-1] + 1, dtype=squared.dtype)
    pairs = n * (n - 1)
    safe = jnp.where(pairs > 0, pairs, 1.0)
    missing = jnp.where(pairs > 0, 0.0, jnp.nan).astype(squared.dtype)
    eq = jnp.cumsum(eq, axis=-1)
    psi_eq = eq / n
    psi_aa = (aa - n) / safe + missing
    psi_bb = (bb - n) / safe + missing
    psi_ab = (ab - eq) / safe + missing
    cross = jnp.where(pairs > 0, (psi_aa + psi_bb) / 2 - psi_ab, 0.0)
    upsilon = n * (1 - psi_eq) + pairs * cross
    return jnp.stack([jnp.sqrt(squared), squared, psi_eq, psi_aa, psi_bb, psi_ab, upsilon])


def gram_statistics_sampler(
    structure: st.Structure,
    n_max: int,
    d: int,
    tokens: TokenModel | str = "gaussian",
    divergence_only: bool = False,
) -> Callable[[jax.Array], jax.Array]:
    """Build ``one(key)``: one replicate's statistics by the width-free gram recursion.

    The statistics have the law of ``branch_statistics(token_sampler(structure, n_max, d,
    tokens)(key))`` (not the same draws), at a cost independent of ``d`` (module docstring).

    Args:
        structure: a structure the method serves (:func:`gram_state_dim` not None).
        n_max: positions per branch (>= 1). d: embedding width (>= 1, any size: ``d < k`` is
            exact too).
        tokens: a :class:`TokenModel` or its kind.
        divergence_only: return only ``[D, D^2]``.

    Returns:
        A pure function ``one(key) -> (7, n_max)`` array ``[D, D^2, psi_eq, psi_aa, psi_bb,
        psi_ab, upsilon]`` (``(2, n_max)`` ``[D, D^2]`` when ``divergence_only``); pairwise psi's
        are NaN at n = 1. jit- and vmap-able; its dtype follows ``jax_enable_x64``.

    Raises:
        ValueError: bad sizes, a structure failing validation, or one the method cannot serve.

    Example:
        >>> import jax
        >>> from tokenscale_sim import structures
        >>> one = gram_statistics_sampler(structures.decaying(4.0, coupling=0.3), 16, 4096)
        >>> stats = jax.vmap(one)(jax.random.split(jax.random.key(0), 8))
        >>> stats.shape
        (8, 7, 16)
    """
    n_max = st.check_count("gram_statistics_sampler", "n_max", n_max)
    d = st.check_count("gram_statistics_sampler", "d", d)
    structure.validate(n_max)
    plan = gram_plan(structure, n_max, tokens, divergence_only)
    if plan is None:
        raise ValueError(
            "gram_statistics_sampler: structure must be separable PSD with Identity, Ones or "
            f"Exponential kernels only, got {structure.name!r} with kernels "
            f"{[type(t.kernel).__name__ for t in structure.terms]}"
        )
    return gram_sampler(plan, n_max, d)


def gram_sampler(plan: GramPlan, n_max: int, d: int) -> Callable[[jax.Array], jax.Array]:
    """``one(key)`` of :func:`gram_statistics_sampler` from a :class:`GramPlan` of a structure
    validated by the caller (a sampling plan), for ``n_max`` positions of width ``d``."""
    divergence_only = plan.cumulative == 1  # only S is carried: [D, D^2]
    kp, k, q = plan.decay.shape[0], plan.k, plan.q
    p = min(k, d)
    q2 = min(q, d - p)
    kind = plan.tokens.kind
    df = plan.tokens.df
    full = not divergence_only
    size = min(n_max, BLOCK)
    blocks = -(-n_max // size)

    def one(key: jax.Array) -> jax.Array:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        decay, innovation, out_state, out_fresh = (
            jnp.asarray(a, dtype)
            for a in (plan.decay, plan.innovation, plan.out_state, plan.out_fresh)
        )
        k_init, k_steps = jax.random.split(key)
        start = _bartlett(k_init, d, kp, (), dtype)  # carried streams: Wishart_d
        x0 = jnp.zeros((p, k), dtype).at[: start.shape[0], :kp].set(start)
        inv_sqrt_d = 1.0 / math.sqrt(d)

        def step(x: jax.Array, draw: tuple[jax.Array, jax.Array, jax.Array]):
            a, t, s = draw
            z = jnp.concatenate([a, t], axis=0)  # (p + q2, q)
            x = jnp.concatenate([x, jnp.zeros((q2, k), dtype)], axis=0)
            streams = x[:, :kp] * decay + z @ innovation
            h = (streams @ out_state + z @ out_fresh) * inv_sqrt_d  # (p + q2, n_out)
            cum = x[:, kp:]
            if plan.difference:
                cum = cum + h
                out = [jnp.sum(cum[:, 0] ** 2)]
            else:
                ha, hb = h[:, 0], h[:, 1]
                na, nb = jnp.sqrt(jnp.sum(ha * ha)), jnp.sqrt(jnp.sum(hb * hb))
                ua, ub = ha / na, hb / nb
                diff = ua - ub if kind == "unit" else s[0] * ha - s[1] * hb
                if full and kind == "unit":
                    cum = cum + jnp.stack([ua, ub], axis=1)
                    sum_d = cum[:, 0] - cum[:, 1]
                elif full:
                    cum = cum + jnp.stack([diff, ua, ub], axis=1)
                    sum_d = cum[:, 0]
                else:
                    cum = cum + diff[:, None]
                    sum_d = cum[:, 0]
                out = [jnp.sum(sum_d * sum_d)]
                if full:
                    sa, sb = cum[:, -2], cum[:, -1]
                    out += [jnp.sum(sa * sa), jnp.sum(sb * sb), jnp.sum(sa * sb), jnp.sum(ua * ub)]
            new = jnp.concatenate([streams, cum], axis=1)  # (p + q2, k)
            return _householder_r(new), jnp.stack(out)

        def block(x: jax.Array, i: jax.Array) -> tuple[jax.Array, jax.Array]:
            # the random numbers of one block of positions, drawn at once: O(block) memory
            k_in, k_out, k_t = jax.random.split(jax.random.fold_in(k_steps, i), 3)
            inside = jax.random.normal(k_in, (size, p, q), dtype)
            outside = _bartlett(k_out, d - p, q, (size,), dtype)
            if kind == "student-t":
                scale = jnp.sqrt((df - 2.0) / _chi2(k_t, np.array([df, df]), (size,), dtype))
            else:
                scale = jnp.ones((size, 2), dtype)
            return jax.lax.scan(step, x, (inside, outside, scale))

        _, sums = jax.lax.scan(block, x0, jnp.arange(blocks))
        sums = sums.reshape(blocks * size, -1)[:n_max]
        if full:
            return statistics_from_sums(*sums.T)
        return jnp.stack([jnp.sqrt(sums[:, 0]), sums[:, 0]])

    return one
