r"""A parametric structure family in ``jax.numpy``: exact psi(n), v_n and n_b, vmapped.

The family behind ``tokenscale sweep`` and ``tokenscale calibrate`` (parameters in brackets):

    Sigma = s [[1, 1], [1, 1]] (x) J          shared: image-independent, every cosine + s
          + g [[1, 0], [0, 1]] (x) J          image: one component per image, within-branch only
          + w [[1, c], [c, 1]] (x) K(length)  decaying along the sequence, coupled by c
          + r [[1, q], [q, 1]] (x) I          local: position by position, coupled by q

with ``r = 1 - s - g - w`` (unit diagonal) and K the exponential kernel ``exp(-|i-j|/length)``
(or, with ``kernel="powerlaw"``, ``(1 + |i-j|)^(-length)``). Natural parameters
(:data:`PARAMS`): ``shared`` s, ``image`` g, ``weight`` w (all >= 0, s + g + w <= 1), ``length``
(> 0), ``coupling`` c and ``local_coupling`` q (in [-1, 1]). Every term's branch matrix is PSD,
so every parameter value in that domain is a valid structure. With ``m(n)`` the mean off-diagonal
entry of ``K[:n,:n]``:

    psi_eq(n) = s + w c + r q                       psi_AA(n) = psi_BB(n) = s + g + w m(n)
    psi_AB(n) = s + w c m(n)                        Delta(n) = g + w (1 - c) m(n)

(the built-in ``decaying --shared S`` is ``g = 0, w = 1 - s``; ``exchangeable`` with equal
psi_AA, psi_BB is ``w = 0``). Prefix sums follow :mod:`tokenscale_sim.structures.terms`:
``s_K(n) = sum_{k<=n} (r(0) + 2 sum_{j<k} r(j))`` from the lag profile ``r``.
:func:`exact_psi` and :func:`transition_jax` are pure ``jax.numpy`` (jit, vmap and grad), and
:func:`to_structure` gives the :class:`~tokenscale_sim.structures.terms.Structure` of a point, so
every number here can be checked against :mod:`tokenscale_sim.structures.exact`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from tokenscale_sim.structures import terms as st
from tokenscale_sim.structures.exact import CONSTANT_TOL
from tokenscale_sim.structures.kernels import Exponential, Identity, Ones, PowerLaw, param_error
from tokenscale_sim.theory import closed_forms as theory

PARAMS = ("shared", "image", "weight", "length", "coupling", "local_coupling")
"""Natural parameters of the family, in the order of a parameter vector."""

DEFAULTS = {
    "shared": 0.0,
    "image": 0.0,
    "weight": 1.0,
    "length": 4.0,
    "coupling": 0.3,
    "local_coupling": 0.0,
}
"""Values of the parameters a sweep or a calibration does not vary (``decaying(4, 0.3)``)."""

KERNEL_KINDS = ("exponential", "powerlaw")

STATUSES = ("crossing", "beyond", "linear_from_start", "no_transition", "constant")
"""Codes of :func:`transition_jax` (the statuses of
:func:`tokenscale_sim.structures.exact.transition`)."""


def check_params(theta: np.ndarray, func: str = "families") -> np.ndarray:
    """``theta`` (..., 6) as float64 if every point lies in the family's domain, else raise
    ``ValueError`` naming the parameter and the first bad value."""
    theta = np.asarray(theta, dtype=float)
    if theta.shape[-1:] != (len(PARAMS),):
        raise param_error(func, "theta", f"shape (..., {len(PARAMS)})", theta.shape)
    if not np.all(np.isfinite(theta)):
        raise param_error(func, "theta", "finite", "non-finite values")
    checks = (
        ("shared", theta[..., 0] >= 0, ">= 0"),
        ("image", theta[..., 1] >= 0, ">= 0"),
        ("weight", theta[..., 2] >= 0, ">= 0"),
        ("shared + image + weight", theta[..., :3].sum(-1) <= 1 + 1e-12, "<= 1"),
        ("length", theta[..., 3] > 0, "> 0"),
        ("coupling", np.abs(theta[..., 4]) <= 1, "in [-1, 1]"),
        ("local_coupling", np.abs(theta[..., 5]) <= 1, "in [-1, 1]"),
    )
    for name, ok, expected in checks:
        if not np.all(ok):
            bad = theta.reshape(-1, len(PARAMS))[int(np.argmin(np.ravel(ok)))]
            raise param_error(func, name, expected, dict(zip(PARAMS, bad.tolist(), strict=True)))
    return theta


def valid_mask(theta: np.ndarray) -> np.ndarray:
    """Boolean (...,): which points of ``theta`` (..., 6) lie in the family's domain."""
    t = np.asarray(theta, dtype=float)
    return (
        np.all(np.isfinite(t), axis=-1)
        & np.all(t[..., :3] >= 0, axis=-1)
        & (t[..., :3].sum(-1) <= 1 + 1e-12)
        & (t[..., 3] > 0)
        & np.all(np.abs(t[..., 4:]) <= 1, axis=-1)
    )


def _lags(length, n_max: int, kernel: str):
    k = jnp.arange(n_max, dtype=jnp.result_type(length, float))
    return jnp.exp(-k / length) if kernel == "exponential" else (1.0 + k) ** (-length)


def _prefix(lags):
    """``s(n) = 1' K[:n,:n] 1`` (n = 1..N) of a Toeplitz kernel from its lags (N,)."""
    tail = jnp.concatenate([jnp.zeros(1, lags.dtype), jnp.cumsum(lags[1:])])
    return jnp.cumsum(lags[0] + 2 * tail)


class FamilyCurves(NamedTuple):
    """Exact population curves of one family point, each (n_max,): ``v`` = 2 Upsilon(n) (=
    E[D^2] of Gaussian tokens), ``psi_eq``, ``psi_aa`` (= psi_BB), ``psi_ab`` (NaN at n = 1)."""

    v: jnp.ndarray
    psi_eq: jnp.ndarray
    psi_aa: jnp.ndarray
    psi_ab: jnp.ndarray


def exact_psi(theta, n_max: int, kernel: str = "exponential") -> FamilyCurves:
    """Exact curves of the family at ``theta`` (6,) for n = 1..n_max (module docstring).

    Pure ``jax.numpy``: vmap over ``theta`` for a grid. Points outside the domain give
    meaningless numbers (check with :func:`check_params` or :func:`valid_mask`).

    >>> c = exact_psi(jnp.array([0.2, 0.0, 0.8, 4.0, 0.3, 0.0]), 3)
    >>> s = 0.8 * st.decaying(4.0, 0.3) + st.shared(0.2)
    >>> bool(jnp.allclose(c.v, s.v(3))), bool(jnp.allclose(c.psi_ab[1:], s.psi(3).psi_ab[1:]))
    (True, True)
    """
    if kernel not in KERNEL_KINDS:
        raise param_error("exact_psi", "kernel", f"one of {KERNEL_KINDS}", kernel)
    theta = jnp.asarray(theta)
    s, g, w, length, c, q = (theta[i] for i in range(len(PARAMS)))
    r = 1 - s - g - w
    n = jnp.arange(1, n_max + 1, dtype=theta.dtype)
    decay = _prefix(_lags(length, n_max, kernel))  # 1'K[:n,:n]1
    v = 2 * g * n**2 + 2 * w * (1 - c) * decay + 2 * r * (1 - q) * n  # the shared term cancels
    pairs = jnp.where(n > 1, n * (n - 1), jnp.nan)
    m = (decay - n) / pairs  # mean off-diagonal entry of K[:n,:n]
    return FamilyCurves(
        v=v,
        psi_eq=jnp.full(n_max, s + w * c + r * q),
        psi_aa=s + g + w * m,
        psi_ab=s + w * c * m,
    )


def expected_cosine_psi(theta, n_max: int, d: int, kernel: str = "exponential") -> FamilyCurves:
    """Exact expectations of the *sampled* cosine psi's of Gaussian tokens of width d at
    ``theta`` (the curves a measurement of such tokens estimates), n = 1..n_max.

    Every block of Sigma is Toeplitz: ``rho_AA(k) = s + g + w K(k) + r [k = 0]``,
    ``rho_AB(k) = s + w c K(k) + r q [k = 0]``; with ``m(k) = E cos`` at ``rho(k)``
    (:func:`tokenscale_sim.theory.closed_forms.expected_cosine`), ``psi_eq = m_AB(0)`` and
    ``psi(n) = (s_m(n) - n m(0)) / (n (n - 1))`` (``s_m`` the prefix sums of :func:`_prefix`).
    ``v`` is then ``2 Upsilon(n)`` at these psi's (E[D^2] of unit-normalised tokens).
    Pure ``jax.numpy``; agrees with ``Structure.expected_cosine_psi`` of :func:`to_structure`.
    """
    theta = jnp.asarray(theta)
    s, g, w, length, c, q = (theta[i] for i in range(len(PARAMS)))
    r = 1 - s - g - w
    lag = _lags(length, n_max, kernel)
    first = (jnp.arange(n_max) == 0).astype(lag.dtype)
    m_aa = theory.expected_cosine(s + g + w * lag + r * first, d)
    m_ab = theory.expected_cosine(s + w * c * lag + r * q * first, d)
    n = jnp.arange(1, n_max + 1, dtype=lag.dtype)
    pairs = jnp.where(n > 1, n * (n - 1), jnp.nan)
    psi_aa = (_prefix(m_aa) - n * m_aa[0]) / pairs
    psi_ab = (_prefix(m_ab) - n * m_ab[0]) / pairs
    psi_eq = jnp.full(n_max, m_ab[0])
    cross = jnp.where(n > 1, psi_aa - psi_ab, 0.0)
    v = 2 * (n * (1 - psi_eq) + n * (n - 1) * cross)
    return FamilyCurves(v=v, psi_eq=psi_eq, psi_aa=psi_aa, psi_ab=psi_ab)


def transition_jax(curves: FamilyCurves, n_valid):
    """The transition point of :func:`tokenscale_sim.structures.exact.transition`, traceable.

    Args:
        curves: one point's :class:`FamilyCurves` (n_max,).
        n_valid: the largest n that counts (<= n_max; a sweep over n_max computes once at the
            largest and masks).

    Returns:
        (n_b, status code in :data:`STATUSES`): constant psi's (to
        :data:`~tokenscale_sim.structures.exact.CONSTANT_TOL` over n <= n_valid) give the closed
        form ``(1 - psi_eq)/Delta - 1`` (code ``"constant"``, ``inf`` with ``"no_transition"`` when
        Delta = 0); otherwise the first crossing of n_b(n) = n, linearly interpolated.
    """
    n = jnp.arange(1, curves.v.shape[0] + 1, dtype=curves.v.dtype)
    inside = n <= n_valid
    delta = curves.psi_aa - curves.psi_ab
    delta_ok = jnp.where(inside & (n > 1), delta, jnp.nan)
    safe = jnp.where(delta_ok == 0, 1.0, delta_ok)
    curve = jnp.where(delta_ok == 0, jnp.inf, (1 - curves.psi_eq) / safe - 1)
    # constant psi's: the closed form
    d2 = jnp.where(n_valid > 1, delta[1], jnp.nan)
    spread = jnp.nanmax(jnp.where(inside & (n > 1), jnp.abs(delta - d2), 0.0))
    const = spread <= CONSTANT_TOL
    closed = jnp.where(d2 == 0, jnp.inf, (1 - curves.psi_eq[0]) / jnp.where(d2 == 0, 1.0, d2) - 1)
    const_code = jnp.where(jnp.isfinite(closed), 4, 3)
    # psi's varying with n: the first sign change of n_b(n) - n among consecutive Delta > 0
    ok = (delta_ok > 0) & jnp.isfinite(curve)
    gap = curve - n
    cross = ok[:-1] & ok[1:] & (gap[:-1] >= 0) & (gap[1:] < 0)
    k = jnp.argmax(cross)
    frac = gap[k] / jnp.where(cross[k], gap[k] - gap[k + 1], 1.0)
    first = jnp.argmax(ok)
    code = jnp.where(~jnp.any(ok), 3, jnp.where(jnp.any(cross), 0, jnp.where(gap[first] < 0, 2, 1)))
    n_b = jnp.where(code == 0, n[k] + frac, jnp.nan)
    return jnp.where(const, closed, n_b), jnp.where(const, const_code, code)


def slope_at(curves: FamilyCurves, n_b, status, n_eval, n_valid):
    """Log-log slope of sqrt(Upsilon) at ``n_eval`` by the rule of
    :func:`tokenscale_sim.structures.exact.theory_table`: ``1/2 + n/(2(n + n_b))`` for constant
    psi's, else half the numerical gradient of ln Upsilon in ln n over n <= n_valid (one-sided at
    the ends, as ``np.gradient``)."""
    v = curves.v
    n = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    i = n_eval - 1
    log_v, log_n = jnp.log(v), jnp.log(n)

    def diff(a, b):
        return (log_v[b] - log_v[a]) / (log_n[b] - log_n[a])

    lo, hi = jnp.maximum(i - 1, 0), jnp.minimum(i + 1, n_valid - 1)
    h1, h2 = log_n[i] - log_n[lo], log_n[hi] - log_n[i]
    inner = (h1**2 * log_v[hi] - h2**2 * log_v[lo] + (h2**2 - h1**2) * log_v[i]) / (
        h1 * h2 * (h1 + h2)
    )  # np.gradient's second-order formula on uneven spacing
    at_end = jnp.where(i == 0, diff(0, jnp.minimum(1, n_valid - 1)), diff(lo, i))
    numeric = 0.5 * jnp.where((i > 0) & (i < n_valid - 1), inner, at_end)
    numeric = jnp.where(n_valid > 1, numeric, 0.5)
    closed = theory.sqrt_upsilon_slope(n_eval, n_b)
    return jnp.where(status == 4, closed, numeric)


def to_structure(theta, kernel: str = "exponential", name: str = "family") -> st.Structure:
    """The :class:`~tokenscale_sim.structures.terms.Structure` of a family point (terms of zero
    weight left out); checked with :func:`check_params`.

    >>> to_structure([0.2, 0.1, 0.5, 8.0, 0.3, 0.0]).describe()["terms"][2]["kernel"]
    {'kind': 'Exponential', 'length': 8.0}
    """
    s, g, w, length, c, q = check_params(np.asarray(theta), "to_structure").tolist()
    r = max(0.0, 1 - s - g - w)
    decay = Exponential(length) if kernel == "exponential" else PowerLaw(length)
    parts = (
        (s, ((1.0, 1.0), (1.0, 1.0)), Ones()),
        (g, ((1.0, 0.0), (0.0, 1.0)), Ones()),
        (w, ((1.0, c), (c, 1.0)), decay),
        (r, ((1.0, q), (q, 1.0)), Identity()),
    )
    terms = tuple(st.Term(branch, k).scaled(x) for x, branch, k in parts if x > 0)
    params = (*zip(PARAMS, (s, g, w, length, c, q), strict=True), ("kernel", kernel))
    return st.Structure(terms, name, params)  # type: ignore[arg-type]
