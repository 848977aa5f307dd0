r"""Student-t and normal quantiles and tails in plain Python (``math``/``numpy``, no JAX, no SciPy).

The thresholds of a fit (:func:`tokenscale_sim.fit.inference.likelihood.lr_threshold`, t intervals,
the curvature t-test) need a handful of scalar quantiles per fit. Eager ``jax.scipy.special`` calls
compile a program per call site in every fresh process (~0.1 s each); these functions cost
microseconds and are exact to double precision:

- :func:`regularized_incomplete_beta` ``I_x(a, b) = B(x; a, b) / B(a, b)`` by the Lentz continued
  fraction (Numerical Recipes ``betacf``) and the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)``;
- :func:`t_cdf` / :func:`t_upper_tail` / :func:`t_upper_tails` (arrays): for ``t >= 0``,
  ``P(|T_nu| > t) = I_{nu/(nu+t^2)}(nu/2, 1/2)``, with DiDonato & Morris's large-``a`` expansion
  where the continued fraction loses digits (``nu`` large, ``t^2 < 0.43 nu``);
- :func:`t_quantile`: a Cornish-Fisher or power-law start, then Newton in ``ln t`` safeguarded by
  bisection on the exact tail;
- :func:`normal_quantile`: :meth:`statistics.NormalDist.inv_cdf` (Wichura's AS241, exact to double
  precision).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np

_STANDARD_NORMAL = NormalDist()
_TINY = 1e-300
"""Lentz's guard against a zero denominator."""
_CF_TOLERANCE = 1e-15
"""The continued fraction stops when a step changes it by less than this, relatively."""
_LOG_MAX = math.log(np.finfo(float).max)
"""``ln`` of the largest float: a quantile past ``exp(_LOG_MAX)`` is ``inf``."""
_NORMAL_DF = 1e25
"""Past this many degrees of freedom the t law is the normal one to double precision (relative
difference ``O(t^4 / nu)``, below 1e-18 for ``|t| < 40``, i.e. tails down to 1e-300)."""


def normal_quantile(p: float) -> float:
    """``Phi^{-1}(p)`` of the standard normal (Wichura's AS241 via :mod:`statistics`).

    ``p`` in ``[0, 1]``: 0 and 1 give ``-inf`` and ``inf``.

    >>> round(normal_quantile(0.975), 6)
    1.959964
    """
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return _STANDARD_NORMAL.inv_cdf(p)


# ----------------------------------------------------------------------------- incomplete beta


def _stirling_remainder(z: float) -> float:
    """``lgamma(z) - [(z - 1/2) ln z - z + ln(2 pi)/2]`` for ``z >= 8``: the series
    ``1/(12z) - 1/(360z^3) + 1/(1260z^5) - 1/(1680z^7) + 1/(1188z^9) - 691/(360360z^11)``
    (next term below 1e-14 there)."""
    r = 1.0 / (z * z)
    series = 1 / 12 - r * (
        1 / 360 - r * (1 / 1260 - r * (1 / 1680 - r * (1 / 1188 - r * 691 / 360360)))
    )
    return series / z


def log_beta(a: float, b: float) -> float:
    """``ln B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b)`` for ``a, b > 0``.

    When the larger argument ``z = max(a, b) >= 8`` the difference ``lgamma(z + h) - lgamma(z)``
    (``h = min(a, b)``) is taken from Stirling's series,
    ``(z - 1/2) log1p(h/z) + h ln(z + h) - h + delta(z + h) - delta(z)``, so that no digits cancel
    for large ``z`` (``nu = 1e7`` in a t tail loses 1e-8 relative through plain ``lgamma``).

    >>> round(log_beta(0.5, 0.5), 12) == round(math.log(math.pi), 12)
    True
    """
    small, big = min(a, b), max(a, b)
    if big < 8.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    rise = (
        (big - 0.5) * math.log1p(small / big)
        + small * math.log(big + small)
        - small
        + _stirling_remainder(big + small)
        - _stirling_remainder(big)
    )
    return math.lgamma(small) - rise


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (Numerical Recipes ``betacf``, modified Lentz):
    ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 1/(1 + d_1/(1 + d_2/(1 + ...)))`` with
    ``d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1))`` and ``d_{2m} = m(b-m) x / ((a+2m-1)(a+2m))``.

    Converges fast for ``x < (a+1)/(a+b+2)``; in ``O(sqrt(max(a, b)))`` steps at worst."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    max_steps = 1000 + int(20 * math.sqrt(max(a, b)))
    for m in range(1, max_steps + 1):
        m2 = 2 * m
        for coef in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + coef / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            h *= step
        if abs(step - 1.0) < _CF_TOLERANCE:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def incomplete_beta_pair(
    a: float, b: float, x: float, y: float, logs: tuple[float, float] | None = None
) -> tuple[float, float]:
    """``(I_x(a, b), I_y(b, a))`` for ``x + y = 1`` given separately (so that ``1 - x`` loses no
    digits when ``x`` is near 1): the two sum to 1 and the smaller is exact to relative precision.

    The one with the fast continued fraction (``x < (a+1)/(a+b+2)``: ``I_x(a, b)``, else
    ``I_y(b, a)``) is ``exp(a ln x + b ln y - ln B(a, b)) * cf / a`` (:func:`log_beta`); the other
    is 1 minus it. The fraction's ``1 - x (...)`` terms cancel for large ``a`` and ``x`` near 1
    (1e-8 relative lost at ``a = 5e8``): for ``b = 1/2``, ``a >= 15`` and ``y < 0.3``
    :func:`_large_a_half_b_expansion` takes over there (as TOMS 708 does). ``logs``: ``(ln x,
    ln y)`` when the caller has them more precisely than ``x`` and ``y`` (e.g. ``x`` below the
    smallest float).
    """
    if logs is None:
        if x <= 0.0:
            return 0.0, 1.0
        if y <= 0.0:
            return 1.0, 0.0
        logs = (
            math.log1p(-y) if x > 0.5 else math.log(x),
            math.log1p(-x) if y > 0.5 else math.log(y),
        )
    lower_is_fast = y > (b + 1.0) / (a + b + 2.0)  # x < (a+1)/(a+b+2), decided on the exact y
    if lower_is_fast and y < 0.3 and a >= 15.0 and b == 0.5:
        lower = _large_a_half_b_expansion(a, logs[0])
        return lower, 1.0 - lower
    log_front = a * logs[0] + b * logs[1] - log_beta(a, b)
    if lower_is_fast:
        lower = math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
        return lower, 1.0 - lower
    upper = math.exp(log_front) * _beta_continued_fraction(b, a, y) / b
    return 1.0 - upper, upper


def _large_a_half_b_expansion(a: float, log_x: float) -> float:
    """``I_x(a, 1/2)`` for ``a >= 15`` by DiDonato & Morris's asymptotic expansion (TOMS 708
    ``BGRAT``, with ``b = 1/2``): with ``T = a + (b-1)/2`` and ``z = -T ln x``,

    ``I_x(a, b) = Gamma(a+b) / (Gamma(a) T^b) * sum_n d_n J_n``, ``J_0 = Q(b, z) / r``,
    ``r = e^(-z) z^b / Gamma(b)``,
    ``J_n = [(b+2n-2)(b+2n-1) J_{n-1} + (z+b+2n-1) L^{n-1}] / (4T^2)`` (``L = (ln x / 2)^2``),
    ``d_0 = 1``, ``d_n = (b-1) c_n + (1/n) sum_{i<n} (i b - n) c_i d_{n-i}``,
    ``c_n = 1/(2n+1)!``; ``Q(1/2, z) = erfc(sqrt z)``. ``J_n`` is carried times ``r`` so that
    nothing overflows."""
    b = 0.5
    big_t = a + 0.5 * (b - 1.0)
    z = -big_t * log_x
    r = math.exp(-z) * math.sqrt(z / math.pi)
    scale = math.exp(0.5 * math.log(math.pi) - log_beta(a, b) - b * math.log(big_t))
    v = 0.25 / (big_t * big_t)
    half_log_sq = 0.25 * log_x * log_x
    j_r = math.erfc(math.sqrt(z))  # r J_0
    total, power_r, c_n = j_r, r, 1.0
    c: list[float] = []
    d: list[float] = []
    for n in range(1, 31):
        bp2n = b + 2 * (n - 1)
        j_r = (bp2n * (bp2n + 1.0) * j_r + (z + bp2n + 1.0) * power_r) * v
        power_r *= half_log_sq
        c_n /= 2 * n * (2 * n + 1)
        c.append(c_n)
        s = sum((i * b - n) * c[i - 1] * d[n - i - 1] for i in range(1, n))
        d.append((b - 1.0) * c_n + s / n)
        term = d[-1] * j_r
        total += term
        if abs(term) <= 1e-16 * total:
            break
    return scale * total


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b) = int_0^x s^(a-1) (1-s)^(b-1) ds / B(a, b)`` for ``a, b > 0``, ``x`` in [0, 1].

    >>> round(regularized_incomplete_beta(2.0, 3.0, 0.4), 12)  # 1 - 0.6^4 - 4 (0.4) 0.6^3
    0.5248
    """
    return incomplete_beta_pair(a, b, x, 1.0 - x)[0]


# ----------------------------------------------------------------------------- Student's t


def _t_geometry(abs_t: float, df: float) -> tuple[float, float, float, float]:
    """``(x, y, ln x, ln y)`` with ``x = nu / (nu + t^2)`` and ``y = t^2 / (nu + t^2)``, formed from
    ``w = t^2 / nu`` (``|t| <= sqrt(nu)``) or ``1 / w`` (beyond) so that no digits cancel and
    nothing overflows."""
    ratio = abs_t / math.sqrt(df)
    if ratio <= 1.0:
        w = ratio * ratio
        log_y = 2.0 * math.log(ratio) - math.log1p(w) if ratio > 0 else -math.inf
        return 1.0 / (1.0 + w), w / (1.0 + w), -math.log1p(w), log_y
    v = (1.0 / ratio) ** 2
    return v / (1.0 + v), 1.0 / (1.0 + v), -2.0 * math.log(ratio) - math.log1p(v), -math.log1p(v)


def _t_split(abs_t: float, df: float) -> tuple[float, float]:
    """``(P(|T| > |t|), P(|T| < |t|))``: ``I_x(nu/2, 1/2)`` and ``I_y(1/2, nu/2)``
    (:func:`_t_geometry`); the normal law's ``(erfc(|t|/sqrt 2), erf(|t|/sqrt 2))`` past
    ``_NORMAL_DF``."""
    if math.isinf(abs_t):
        return 0.0, 1.0
    if df > _NORMAL_DF:
        outside = math.erfc(abs_t / math.sqrt(2.0))
        return outside, math.erf(abs_t / math.sqrt(2.0))
    x, y, log_x, log_y = _t_geometry(abs_t, df)
    return incomplete_beta_pair(df / 2, 0.5, x, y, (log_x, log_y))


def t_upper_tail(t: float, df: float) -> float:
    """``P(T_nu >= t)`` for Student's t with ``nu = df > 0`` degrees of freedom (any real ``df``):
    ``I_x(nu/2, 1/2) / 2`` with ``x = nu / (nu + t^2)`` for ``t >= 0``, one minus that below.

    >>> round(t_upper_tail(1.0, 1.0), 12)  # Cauchy: 1/2 - atan(1)/pi
    0.25
    """
    if math.isnan(t) or math.isnan(df):
        return math.nan
    outside, inside = _t_split(abs(t), df)
    return 0.5 * outside if t >= 0 else 0.5 + 0.5 * inside


def t_cdf(t: float, df: float) -> float:
    """``P(T_nu <= t)`` for Student's t (see :func:`t_upper_tail`).

    >>> round(t_cdf(2.306004135, 8.0), 6)
    0.975
    """
    return t_upper_tail(-t, df)


def t_upper_tails(t, df) -> np.ndarray:
    """:func:`t_upper_tail` elementwise over broadcast arrays ``t`` and ``df`` (NaN stays NaN)."""
    t, df = np.broadcast_arrays(np.asarray(t, float), np.asarray(df, float))
    out = [t_upper_tail(float(ti), float(di)) for ti, di in zip(t.ravel(), df.ravel(), strict=True)]
    return np.array(out, float).reshape(t.shape)


def _log_t_density(abs_t: float, df: float) -> float:
    """``ln f(t)`` with ``f(t) = (1 + t^2/nu)^(-(nu+1)/2) / (sqrt(nu) B(nu/2, 1/2))``."""
    log_x = _t_geometry(abs_t, df)[2]  # -ln(1 + t^2/nu)
    return 0.5 * (df + 1) * log_x - 0.5 * math.log(df) - log_beta(df / 2, 0.5)


def _cornish_fisher(z: float, df: float) -> float:
    """Abramowitz & Stegun 26.7.5: ``t = z + g1/nu + g2/nu^2 + g3/nu^3 + g4/nu^4`` with
    ``g1 = (z^3 + z)/4``, ``g2 = (5z^5 + 16z^3 + 3z)/96``,
    ``g3 = (3z^7 + 19z^5 + 17z^3 - 15z)/384``,
    ``g4 = (79z^9 + 776z^7 + 1482z^5 - 1920z^3 - 945z)/92160``."""
    z2 = z * z
    g1 = z * (z2 + 1) / 4
    g2 = z * ((5 * z2 + 16) * z2 + 3) / 96
    g3 = z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384
    g4 = z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160
    return z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df


def _log_power_law_start(tail: float, df: float) -> float:
    """``ln t`` for the t with ``P(T > t) = tail`` by the leading term of the tail,
    ``P(T > t) ~ nu^(nu/2 - 1) t^(-nu) / B(nu/2, 1/2)``."""
    return ((df / 2 - 1) * math.log(df) - log_beta(df / 2, 0.5) - math.log(tail)) / df


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (any real ``df > 0``), to
    ~1e-13 relative; ``df <= 0`` gives ``inf``, ``q`` 0 or 1 gives ``-inf`` or ``inf`` (as does a
    quantile past the largest float).

    With ``p = min(q, 1 - q)`` the root ``t > 0`` of ``P(T > t) = p`` is found in ``u = ln t``: from
    the better of the Cornish-Fisher start (:func:`_cornish_fisher` of the normal quantile) and the
    power-law tail start (:func:`_log_power_law_start`), Newton steps on
    ``r(u) = ln 2p - ln P(|T| > e^u)`` (slope ``2 t f(t) / P(|T| > t)``) or, for ``p >= 1/4``, on
    ``r(u) = P(|T| < e^u) - (1 - 2p)`` (slope ``2 t f(t)``; no digits lost as ``q -> 1/2``), kept
    inside a bracket of ``r``'s sign change (:func:`_newton_in_bracket`). ``df > 1e25`` (up to
    ``inf``): the normal quantile.

    >>> round(t_quantile(0.975, 8), 3)
    2.306
    >>> round(t_quantile(0.25, 1.0), 12)  # Cauchy: tan(pi (q - 1/2))
    -1.0
    """
    if df <= 0:
        return math.inf
    if math.isnan(q) or math.isnan(df):
        return math.nan
    if q <= 0.0 or q >= 1.0:
        return math.inf if q >= 1.0 else -math.inf
    sign, tail = (1.0, 1.0 - q) if q > 0.5 else (-1.0, q)
    if tail == 0.5:
        return 0.0
    z = -normal_quantile(tail)
    if df > _NORMAL_DF:
        return sign * z
    central = tail >= 0.25
    target = 1.0 - 2.0 * tail if central else math.log(2.0 * tail)

    def residual(u: float) -> tuple[float, float]:
        """``(r(u), r'(u))``, increasing in ``u``; ``+inf`` past the largest float."""
        if u > _LOG_MAX:
            return math.inf, 0.0
        t = math.exp(u)
        outside, inside = _t_split(t, df)
        log_slope = math.log(2.0) + u + _log_t_density(t, df)  # ln(2 t f(t))
        if central:
            return inside - target, math.exp(log_slope)
        if outside == 0.0:
            return math.inf, 0.0
        log_outside = math.log(outside)
        return target - log_outside, math.exp(log_slope - log_outside)

    starts = [_log_power_law_start(tail, df)]
    if starts[0] > _LOG_MAX:  # the power law is the tail out there: t overflows
        return sign * math.inf
    normal_like = _cornish_fisher(z, df)
    if 0 < normal_like < math.inf:
        starts.append(math.log(normal_like))
    u = min(starts, key=lambda v: abs(residual(v)[0]))
    return sign * math.exp(_newton_in_bracket(residual, u))


def _newton_in_bracket(residual, u: float) -> float:
    """The root of an increasing ``residual(u) -> (r, r')`` near ``u``: Newton steps, kept inside
    the bracket ``[lo, hi]`` of ``r``'s sign change (first found by steps of 1, 2, 4, ... away from
    ``u``), bisecting it when a step would leave it; stops at a step below
    ``1e-15 max(1, |u|)``."""
    r, slope = residual(u)
    lo, hi = (u, math.inf) if r < 0 else (-math.inf, u)
    step = 1.0
    while math.isinf(lo) or math.isinf(hi):
        probe = hi - step if math.isinf(lo) else lo + step
        if residual(probe)[0] < 0:
            lo = probe
        else:
            hi = probe
        step *= 2
    for _ in range(200):
        if r == 0:
            return u
        tolerance = 1e-15 * max(1.0, abs(u))
        newton = u - r / slope if slope > 0 and math.isfinite(slope) else math.nan
        if abs(newton - u) <= tolerance:
            return newton
        u = newton if lo < newton < hi else 0.5 * (lo + hi)
        if hi - lo <= tolerance:
            return u
        r, slope = residual(u)
        if r < 0:
            lo = u
        else:
            hi = u
    return u
