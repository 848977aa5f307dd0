"""Closed forms of the token-scaling theory (THEORY.md), in pure ``jax.numpy``.

Every function is elementwise and broadcasts over its arguments (arrays over ``n`` and over
parameter batches), and is safe under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Nothing here
samples: Monte Carlo and theory meet only in tests, studies and the CLI.

Notation (one name per concept): ``n`` tokens per branch, ``d`` embedding width, ``psi_*`` averaged
cosines, ``delta = psi_aabb - psi_ab``, ``n_b`` the regime transition point, ``beta`` the exponent
linking score and divergence (``S ∝ E[D]^beta``).

    Upsilon(n) = n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab) = delta * n * (n + n_b)
    n_b        = (1 - psi_eq) / delta - 1                          ("authors" convention)
    alpha(n)   = (beta/2) log_n((1 + n_b) / (n + n_b)) - beta/2

Domain: for ``delta < 0`` the transition point is negative and Upsilon(n) turns negative for
``n > -n_b``; :func:`curves` flags those ``n`` in ``valid`` and :func:`check_upsilon` raises.
The raw elementwise functions return NaN outside their domain (documented per function) and are
never called there by the package's own entry points.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

REGIMES = ("sublinear", "transition", "linear", "decreasing")
"""Names of the codes returned by :func:`regime` (``"decreasing"``: Upsilon falls with n, only
when delta < 0)."""

CONVENTIONS = ("authors", "literal")
"""Transition-point conventions of :func:`transition_point`."""

_HYP_TERMS = 1024  # series terms of 2F1 in expected_cosine (see its docstring)


def upsilon(n, psi_eq, psi_aabb, psi_ab):
    r"""Upsilon(n) = n (1 - psi_eq) + n (n - 1) (psi_aabb - psi_ab).

    Args:
        n: token counts, any shape (``n >= 1``).
        psi_eq, psi_aabb, psi_ab: similarities, scalars or arrays broadcasting with ``n`` (e.g.
            measured curves over ``n``). At ``n = 1`` the pairwise psi's are undefined and do not
            enter (their factor ``n - 1`` is 0): NaN there is ignored.

    Returns:
        Array of the broadcast shape. For unit-norm tokens ``D(n)^2 = 2 Upsilon(n)`` exactly.

    >>> round(float(upsilon(10.0, 0.5, 0.3, 0.2)), 12)
    14.0
    """
    n = jnp.asarray(n)
    quadratic = jnp.where(n > 1, n * (n - 1) * (psi_aabb - psi_ab), 0.0)
    return n * (1 - psi_eq) + quadratic


def upsilon_from_nb(n, delta, n_b):
    """Upsilon(n) = delta * n * (n + n_b), the constant-psi form (``delta != 0``)."""
    return delta * n * (n + n_b)


def divergence_bound(upsilon_n):
    """The bound sqrt(2 Upsilon(n)) >= E[D(n)] (Jensen); 0 where Upsilon <= 0.

    >>> float(divergence_bound(8.0))
    4.0
    """
    u = jnp.asarray(upsilon_n)
    return jnp.sqrt(2.0 * jnp.where(u > 0, u, 0.0))


_SERIES_FROM = 100.0  # x = d/2 from which the asymptotic series of _chi_log_correction is used


def _chi_log_correction(d):
    r"""s(d) = ln(E[chi_d]^2 / d) = 2 ln(Gamma((d+1)/2) / Gamma(d/2)) - ln(d/2), free of
    cancellation in any precision (s ~ -1/(2d) is small; the naive difference of log-gammas
    loses |lgamma| * eps of it, 58 % at d = 1e6 in float32).

    With x = d/2: for x >= 100 the asymptotic series (Bernoulli polynomials at 1/2)
    s = -1/(4x) + 1/(96 x^3) - 1/(320 x^5) + 17/(7168 x^7) - 31/(9216 x^9) (truncation error
    below 1e-22); below, the exact recurrence
    s(x) = s(x + k) + sum_{j<k} log1p(-1/(2x + 2j + 1)^2) shifts x past 100. Every term has the
    sign of s, so float32 keeps a few ulps (compensated sum, smallest terms first).
    """
    d = jnp.asarray(d, dtype=jnp.result_type(d, float))
    x = d / 2
    steps = jnp.where(x < _SERIES_FROM, jnp.ceil(_SERIES_FROM - x), 0.0)
    xs = x + steps
    series = (
        -1 / (4 * xs)
        + 1 / (96 * xs**3)
        - 1 / (320 * xs**5)
        + 17 / (7168 * xs**7)
        - 31 / (9216 * xs**9)
    )

    def add(i, carry):  # Kahan summation, j = 99 down to 0
        total, comp = carry
        j = _SERIES_FROM - 1 - i
        term = jnp.where(j < steps, jnp.log1p(-1 / (2 * x + 2 * j + 1) ** 2), 0.0)
        y = term - comp
        t = total + y
        return t, (t - total) - y

    zero = jnp.zeros_like(x)
    total, _ = lax.fori_loop(0, int(_SERIES_FROM), add, (zero, zero))
    return series + total


def gaussian_mean_divergence(v, d):
    r"""Exact E[D(n)] for Gaussian tokens: D = sqrt(v/d) * chi_d.

        E[D] = sqrt(v) * sqrt(2/d) * Gamma((d+1)/2) / Gamma(d/2)     (ratio to sqrt(v) ~ 1 - 1/(4d))

    computed as ``sqrt(v) * exp(s/2)`` with ``s = ln(E[chi_d]^2/d)`` free of cancellation, so the
    1/(4d) correction survives in float32 up to d = 1e8 and beyond.

    Args:
        v: v_n = 1'(S_AA + S_BB - S_AB - S_BA)[:n,:n] 1 = E[D(n)^2], any shape, >= 0.
        d: embedding width (>= 1), broadcasting with ``v``.

    >>> round(float(gaussian_mean_divergence(1.0, 1)), 12)  # E|N(0,1)| = sqrt(2/pi)
    0.797884560803
    """
    v = jnp.asarray(v)
    return jnp.sqrt(jnp.where(v > 0, v, 0.0)) * jnp.exp(_chi_log_correction(d) / 2)


def gaussian_divergence_std(v, d):
    """Exact standard deviation of D(n) for Gaussian tokens: sqrt(v - E[D]^2) =
    sqrt(v * (-expm1(s))), ``s = ln(E[chi_d]^2/d)`` (no cancellation in ``1 - E[chi]^2/d``).

    >>> round(float(gaussian_divergence_std(1.0, 1)), 12)  # sqrt(1 - 2/pi)
    0.602810274989
    """
    v = jnp.asarray(v)
    return jnp.sqrt(jnp.where(v > 0, v, 0.0) * -jnp.expm1(_chi_log_correction(d)))


def transition_point(psi_eq, delta, convention: str = "authors"):
    r"""The regime transition point n_b.

    ``"authors"`` (default, the source's code): ``n_b = (1 - psi_eq)/delta - 1``, the ``n`` at
    which the quadratic part of Upsilon, written ``delta * n^2``, equals the linear part
    ``delta * n_b * n``; it is also the fixed point of ``n_b(n) = (1 - psi_eq(n))/delta(n) - 1``.
    ``"literal"``: the ``n`` where ``n (n - 1) delta = n (1 - psi_eq)``, i.e.
    ``(1 - psi_eq)/delta + 1``, two tokens later.

    ``delta == 0`` gives ``inf`` (no transition, sqrt(n) scaling for all n); ``delta < 0`` gives a
    negative value (Upsilon turns negative past ``-n_b``; see :func:`curves`).

    >>> float(transition_point(0.5, 0.1)), float(transition_point(0.5, 0.1, "literal"))
    (4.0, 6.0)
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"transition_point: convention must be one of {CONVENTIONS}, got {convention!r}"
        )
    delta = jnp.asarray(delta)
    safe = jnp.where(delta == 0, 1.0, delta)
    ratio = jnp.where(delta == 0, jnp.inf, (1 - psi_eq) / safe)
    return ratio - 1 if convention == "authors" else ratio + 1


def transition_curve(psi_eq, delta) -> np.ndarray:
    """n_b(n) = (1 - psi_eq(n))/Delta(n) - 1 of measured curves (NumPy): NaN where Delta is
    undefined (NaN, as at n = 1), inf where Delta = 0.

    >>> transition_curve(np.array([0.5, 0.5]), np.array([np.nan, 0.1])).tolist()
    [nan, 4.0]
    """
    delta = np.asarray(delta, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.array(transition_point(psi_eq, np.nan_to_num(delta)), dtype=float)
    return np.where(np.isnan(delta), np.nan, curve)


class TransitionPoint(NamedTuple):
    """The fixed point of n_b(n) = (1 - psi_eq(n))/Delta(n) - 1.

    Attributes:
        n_b: where n_b(n) = n, linearly interpolated between integers; NaN unless ``status`` is
            ``"crossing"``.
        status: ``"crossing"`` (found), ``"beyond"`` (n_b(n) > n for every n with Delta > 0: still
            sublinear at N), ``"linear_from_start"`` (n_b(n) < n from n = 2 on), or
            ``"no_transition"`` (Delta <= 0 for every n >= 2).
    """

    n_b: float
    status: str


def fixed_point(n: np.ndarray, n_b_curve: np.ndarray, delta: np.ndarray) -> TransitionPoint:
    """First n where n_b(n) - n changes sign from + to -, among consecutive n with Delta > 0.

    NumPy (concrete curves, not traced): the authors' transition point when psi's vary with n.
    ``delta`` may hold NaN where undefined (n = 1).

    >>> n = np.arange(1.0, 6.0)
    >>> fixed_point(n, np.array([np.nan, 4.0, 3.0, 2.0, 1.0]), np.full(5, 0.1))
    TransitionPoint(n_b=3.0, status='crossing')
    """
    delta = np.nan_to_num(np.asarray(delta, dtype=float), nan=-1.0)  # undefined: not > 0
    ok = (delta > 0) & np.isfinite(n_b_curve)
    gap = n_b_curve - n
    if not ok.any():
        return TransitionPoint(float("nan"), "no_transition")
    for k in range(len(n) - 1):
        if ok[k] and ok[k + 1] and gap[k] >= 0 > gap[k + 1]:
            frac = gap[k] / (gap[k] - gap[k + 1])
            return TransitionPoint(float(n[k] + frac * (n[k + 1] - n[k])), "crossing")
    first = np.flatnonzero(ok)[0]
    if gap[first] < 0:
        return TransitionPoint(float("nan"), "linear_from_start")
    return TransitionPoint(float("nan"), "beyond")


def rho(n, n_b):
    """rho(n) = n / n_b, the quadratic over the linear part of Upsilon (0 when n_b = inf)."""
    return n / n_b


def sqrt_upsilon_slope(n, n_b):
    """Local log-log slope of sqrt(Upsilon): 1/2 + (1/2) n / (n + n_b), from 0.5 to 1.

    >>> float(sqrt_upsilon_slope(5.0, 5.0))
    0.75
    """
    n = jnp.asarray(n)
    frac = jnp.where(jnp.isinf(n_b), 0.0, n / (n + jnp.where(jnp.isinf(n_b), 1.0, n_b)))
    return 0.5 + 0.5 * frac


def regime_of_slope(slope):
    """Regime code of a log-log slope of sqrt(Upsilon): 0 sublinear (< 0.625), 1 transition,
    2 linear (> 0.875), 3 decreasing (< 0; names in :data:`REGIMES`).

    >>> regime_of_slope(jnp.array([-0.5, 0.5, 0.75, 1.0])).tolist()
    [3, 0, 1, 2]
    """
    slope = jnp.asarray(slope)
    code = jnp.where(slope < 0.625, 0, jnp.where(slope > 0.875, 2, 1))
    return jnp.where(slope < 0, 3, code)


def regime(n, n_b):
    """Regime code per n: 0 sublinear (n < n_b/3), 1 transition, 2 linear (n > 3 n_b); for
    delta < 0 (n_b < 0) 3 where Upsilon decreases (n > -n_b/2).

    The cut-offs are where the slope of sqrt(Upsilon) is 0.625 and 0.875, symmetric around n_b
    in log n. Names in :data:`REGIMES`. ``n_b = inf`` is sublinear everywhere.
    """
    return regime_of_slope(sqrt_upsilon_slope(n, n_b))


def _log1p_ratio(n, n_b):
    """ln((n + n_b)/(1 + n_b)) = log1p((n - 1)/(1 + n_b)); 0 for n_b = inf, ln n for n_b = 0."""
    return jnp.log1p((n - 1) / (1 + n_b))


def log_score(n, log_c, beta, n_b):
    r"""ln S(n) = ln c + (beta/2) (ln n + ln(n + n_b) - ln(1 + n_b)).

    The three-parameter scaling curve implied by ``S ∝ E[D]^beta`` with constant psi's; its
    log-log slope moves from beta/2 (n << n_b) to beta (n >> n_b). ``n_b = inf`` and
    ``n_b = 0`` are the pure power laws n^(beta/2) and n^beta. NaN where ``n + n_b <= 0``.

    >>> float(log_score(1.0, 0.0, 1.0, 3.0))
    0.0
    """
    n = jnp.asarray(n)
    return log_c + 0.5 * beta * (jnp.log(n) + _log1p_ratio(n, n_b))


def alpha(n, beta, n_b):
    r"""The varying exponent alpha(n) of S(n) = c n^(-alpha(n)), c = S(1).

        alpha(n) = (beta/2) log_n((1 + n_b)/(n + n_b)) - beta/2        (delta > 0)
        alpha(n) = -beta/2                                            (n_b = inf, delta = 0)

    At ``n = 1`` (where log_n is 0/0) the limit ``-beta/2 - beta/(2 (1 + n_b))`` is returned,
    also for its gradient. Negative alpha means the score rises with n.

    >>> round(float(alpha(2.46, 1.0, 2.0)), 4)
    -0.7203
    >>> float(alpha(1.0, 1.0, 1.0))
    -0.75
    """
    n = jnp.asarray(n, dtype=jnp.result_type(n, float))
    near_one = jnp.abs(n - 1) < 1e-6
    n_safe = jnp.where(near_one, 2.0, n)
    ratio = _log1p_ratio(n_safe, n_b) / jnp.log(n_safe)
    # second-order expansion of log1p(x/(1+n_b))/log1p(x) at x = n - 1
    x = n - 1
    k = 1 / (1 + n_b)
    limit = k * (1 + x * (1 - k) / 2)
    return -0.5 * beta * (1 + jnp.where(near_one, limit, ratio))


def alpha_from_upsilon(n, upsilon_n, beta):
    r"""alpha(n) implied by any Upsilon curve: S(n)/S(1) = (Upsilon(n)/Upsilon(1))^(beta/2), so

        alpha(n) = -(beta/2) ln(Upsilon(n)/Upsilon(1)) / ln n        (n > 1; NaN at n = 1)

    For constant psi's this is exactly :func:`alpha`; for structures whose psi's vary with n it
    is the exact exponent of the implied score curve.

    Args:
        n: (..., N) token counts with ``n[..., 0] == 1``. upsilon_n: Upsilon at those n.
    """
    n = jnp.asarray(n, dtype=jnp.result_type(n, float))
    u = jnp.asarray(upsilon_n)
    log_n = jnp.log(jnp.where(n > 1, n, 2.0))
    return jnp.where(n > 1, -0.5 * beta * jnp.log(u / u[..., :1]) / log_n, jnp.nan)


def expected_cosine(correlation, d):
    r"""Exact E[cos(x, y)] for x, y in R^d whose d coordinate pairs are iid bivariate normal
    with zero mean, unit variances and correlation ``correlation``.

        E[cos] = rho Gamma((d+1)/2)^2 / (Gamma(d/2) Gamma(d/2 + 1)) 2F1(1/2, 1/2; d/2 + 1; rho^2)

    (the uncentred sample correlation with d degrees of freedom). It differs from rho by
    about ``rho (1 - rho^2) / (2 d)``. The hypergeometric series is summed to 1024 terms:
    relative error below 1e-12 for ``d >= 8`` at any ``|rho| <= 1`` and for ``|rho| <= 0.97`` at
    any ``d``; ``|rho| = 1`` is returned exactly.

    >>> round(float(expected_cosine(0.5, 10_000)), 6)
    0.499981
    """
    r = jnp.asarray(correlation, dtype=jnp.result_type(correlation, float))
    d = jnp.asarray(d, dtype=r.dtype)
    x = jnp.where(r * r >= 1, 0.5, r * r)
    c = d / 2 + 1

    def add_term(k, carry):  # term_{k+1} = term_k * x (k + 1/2)^2 / ((c + k)(k + 1))
        term, total = carry
        term = term * x * (k + 0.5) ** 2 / ((c + k) * (k + 1))
        return term, total + term

    one = jnp.ones(jnp.broadcast_shapes(x.shape, c.shape), r.dtype)
    _, series = lax.fori_loop(0, _HYP_TERMS, add_term, (one, one))
    # Gamma((d+1)/2)^2 / (Gamma(d/2) Gamma(d/2 + 1)) = E[chi_d]^2 / d, free of cancellation
    prefactor = jnp.exp(_chi_log_correction(d))
    return jnp.where(r * r >= 1, jnp.sign(r), r * prefactor * series)


class TheoryCurves(NamedTuple):
    """Theory curves over ``n`` for constant (or per-n) psi's; every field has ``n``'s shape.

    Fields: n, upsilon, bound (sqrt(2 Upsilon)), gaussian_mean (exact E[D] for Gaussian tokens
    of width d, v = 2 Upsilon), slope (log-log slope of sqrt(Upsilon)), regime (codes into
    REGIMES), alpha (alpha(n; beta, n_b)), n_b (scalar or per-n transition point), valid (bool:
    Upsilon(n) > 0, False only when delta < 0 and n >= -n_b). Arrays (jax or NumPy).
    """

    n: Any
    upsilon: Any
    bound: Any
    gaussian_mean: Any
    slope: Any
    regime: Any
    alpha: Any
    n_b: Any
    valid: Any


def curves(n, psi_eq, psi_aabb, psi_ab, *, beta=1.0, d=256, convention="authors"):
    """All theory curves at once (see :class:`TheoryCurves`).

    Where ``valid`` is False (Upsilon <= 0, possible only for delta < 0) ``bound`` and
    ``gaussian_mean`` are 0 and ``alpha`` is NaN; callers must report it (the CLI does, via
    :func:`check_upsilon`).

    >>> c = curves(jnp.arange(1.0, 4.0), 0.5, 0.3, 0.2, d=64)
    >>> [round(float(u), 3) for u in c.upsilon]
    [0.5, 1.2, 2.1]
    """
    n = jnp.asarray(n, dtype=jnp.result_type(n, float))
    delta = jnp.asarray(psi_aabb) - jnp.asarray(psi_ab)
    ups = upsilon(n, psi_eq, psi_aabb, psi_ab)
    n_b = transition_point(psi_eq, delta, convention="authors")
    n_b_reported = transition_point(psi_eq, delta, convention=convention)
    valid = ups > 0
    return TheoryCurves(
        n=n,
        upsilon=ups,
        bound=divergence_bound(ups),
        gaussian_mean=gaussian_mean_divergence(2 * ups, d),
        slope=jnp.where(valid, sqrt_upsilon_slope(n, n_b), jnp.nan),
        regime=regime(n, n_b),
        alpha=jnp.where(valid, alpha(n, beta, n_b), jnp.nan),
        n_b=n_b_reported,
        valid=valid,
    )


def check_upsilon(n_max: int, psi_eq: float, psi_aabb: float, psi_ab: float) -> None:
    """Raise ``ValueError`` if Upsilon(n) <= 0 for some n in 1..n_max (NumPy, before tracing).

    Upsilon(n)/n = (1 - psi_eq) + (n - 1) delta is linear in n, so with delta < 0 it is positive
    exactly for ``n < 1 + (1 - psi_eq)/(-delta)``.
    """
    delta = psi_aabb - psi_ab
    if not 1 - psi_eq > 0:
        raise ValueError(f"check_upsilon: psi_eq must be < 1 (Upsilon(1) > 0), got {psi_eq}")
    if delta < 0:
        scale = 1 - psi_eq

        def positive(n: int) -> bool:  # Upsilon(n)/n > 0, a rounding-level value counting as 0
            return scale + (n - 1) * delta > 64 * np.finfo(float).eps * scale

        largest = int(np.floor(1 + scale / -delta)) + 1
        while largest > 1 and not positive(largest):
            largest -= 1
        if n_max > largest:
            raise ValueError(
                f"check_upsilon: delta = psi_aabb - psi_ab = {delta:.6g} < 0 makes Upsilon(n) <= 0 "
                f"for n >= {largest + 1}; use n_max <= {largest} (got n_max = {n_max})"
            )
