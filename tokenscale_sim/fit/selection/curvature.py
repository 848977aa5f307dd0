r"""The shape test: is ``ln S`` convex in ``ln n``, as the theory says?

The theory's law ``ln S = ln c + (beta/2)(ln n + ln(n + n_b) - ln(1 + n_b))`` has the local
slope ``d ln S / d ln n`` moving from ``beta/2`` to ``beta``: for rising scores (``beta > 0``) the
curve is convex in log-log space, for falling scores concave. In both cases the curvature has
the sign of the slope (|slope| grows with n). A saturating benchmark curve is the opposite:
concave while it rises.

Per curve, with ``x = ln n`` and ``y = ln S``, the quadratic ``y = b0 + b1 x + b2 x^2`` is fitted by
least squares in an orthogonal basis ``(1, x - xbar, q)``, ``q`` = ``(x - xbar)^2`` made orthogonal
to ``(1, x)``: the coefficient of ``q`` *is* ``b2`` (Frisch-Waugh-Lovell), the coefficient of
``x - xbar`` is the slope of the straight-line fit, and both come in closed form (vmappable, no
solver). ``curvature = b2`` (half the second derivative ``d^2 ln S / d(ln n)^2``).

- **Interval**: residual bootstrap around the quadratic fit (residuals rescaled by
  ``sqrt(m / (m - 3))``), percentile interval of ``b2*``.
- **p-value**: one-sided, for curvature in the expected direction ``d`` (``direction="theory"``:
  ``d = sign(b1)``, the straight-line slope, which under Gaussian errors is independent of
  ``b2``; ``"convex"``: ``d = +1``). Null: a straight line. The statistic ``t = d b2 / se(b2)``
  is referred to a residual bootstrap from the straight-line fit (residuals rescaled by
  ``sqrt(m / (m - 2))``): ``p = (1 + #{t* >= t}) / (B + 1)``. ``p_t`` is the classical Student
  ``t_{m-3}`` p-value (exact under Gaussian errors).
- **Pooled**: the sign test (``X`` of ``Y`` curves with ``d b2 > 0`` against Binomial(Y, 1/2))
  and Fisher's combination ``-2 sum ln p ~ chi2_{2Y}`` of the per-curve p-values. Both assume
  independent curves; the paper's 54 curves are 18 benchmarks x 3 model variants, so read them
  as descriptive there.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays, CurveSet, distinct_slots
from tokenscale_sim.fit.engine.precision import in_fit_precision
from tokenscale_sim.fit.inference.distributions import t_upper_tails
from tokenscale_sim.runtime.validation import as_key

DIRECTIONS = ("theory", "convex")
"""Expected sign of the curvature: the slope's sign (``theory``) or always positive."""


class CurvatureTest(NamedTuple):
    """Shape test of G curves (NumPy; see the module docstring).

    Attributes:
        curvature, se: (G,) ``b2`` and its least-squares standard error.
        slope: (G,) slope of the straight-line fit of ln S on ln n.
        expected_sign: (G,) +1 or -1, the direction the test looks for.
        holds: (G,) bool, ``sign(b2) == expected_sign``.
        ci_low, ci_high: (G,) bootstrap percentile interval of ``b2`` (NaN without resamples).
        p_value: (G,) one-sided p for curvature in the expected direction (bootstrap, or
            ``p_t`` when ``m = 0``); ``p_method`` says which.
        p_t: (G,) Student-t p-value of the same hypothesis.
        n_holds, n_curves: "the theory's sign holds on n_holds of n_curves curves".
        sign_test_p: one-sided binomial p of ``n_holds`` under Binomial(n_curves, 1/2).
        fisher_stat, fisher_p: Fisher's combination of ``p_value``.
        pooled, pooled_low, pooled_high: mean over curves of ``expected_sign * b2`` with its
            bootstrap percentile interval.
        direction, level, m, p_method: settings.
    """

    curvature: np.ndarray
    se: np.ndarray
    slope: np.ndarray
    expected_sign: np.ndarray
    holds: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    p_t: np.ndarray
    n_holds: int
    n_curves: int
    sign_test_p: float
    fisher_stat: float
    fisher_p: float
    pooled: float
    pooled_low: float
    pooled_high: float
    direction: str
    level: float
    m: int
    p_method: str


class QuadraticFit(NamedTuple):
    """Closed-form quadratic fit of ln y on ln n per curve (arrays with the batch shape).

    ``fit`` and ``line`` (..., M) are the quadratic and straight-line fitted values of ln y;
    ``curvature``/``se``/``slope`` (...,) as in :class:`CurvatureTest`; ``t = curvature / se``.
    """

    curvature: jax.Array
    se: jax.Array
    slope: jax.Array
    t: jax.Array
    fit: jax.Array
    line: jax.Array


def quadratic_fit(n, log_y, weight) -> QuadraticFit:
    """Weighted least squares of ``log_y`` on ``(1, ln n, (ln n)^2)`` for one curve (M,).

    >>> import numpy as np
    >>> x = np.log(np.array([1.0, 2, 4, 8, 16]))
    >>> q = quadratic_fit(np.exp(x), 1.0 + 0.5 * x + 0.1 * x**2, np.ones(5))
    >>> round(float(q.curvature), 10), round(float(q.slope), 4)
    (0.1, 0.7773)
    """
    x = jnp.log(jnp.asarray(n))
    w = jnp.where(jnp.asarray(weight) > 0, weight, 0.0)
    y = jnp.where(w > 0, log_y, 0.0)
    sw = jnp.sum(w)
    xc = x - jnp.sum(w * x) / sw
    x2 = xc**2
    sxx = jnp.sum(w * xc**2)
    q = x2 - jnp.sum(w * x2) / sw - xc * jnp.sum(w * x2 * xc) / sxx
    sqq = jnp.sum(w * q**2)
    b0 = jnp.sum(w * y) / sw
    b1 = jnp.sum(w * xc * y) / sxx
    b2 = jnp.sum(w * q * y) / sqq
    line = b0 + b1 * xc
    fit = line + b2 * q
    rss = jnp.sum(w * (y - fit) ** 2)
    se = jnp.sqrt(rss / jnp.maximum(sw - 3.0, 1.0) / sqq)
    t = jnp.where(se > 0, b2 / jnp.where(se > 0, se, 1.0), 0.0)
    return QuadraticFit(b2, se, b1, t, fit, line)


def _draw(key, resid, weight, scale, m: int):
    """``m`` residual vectors drawn with replacement from the valid entries, times ``scale``."""
    logits = jnp.where(weight > 0, 0.0, -jnp.inf)
    idx = jax.random.categorical(key, logits, shape=(m, resid.shape[0]))
    return resid[idx] * scale


@partial(jax.jit, static_argnames=("m",))
def _bootstrap(key, data: CurveArrays, m: int):
    """Per curve: quadratic resamples of ln y (m, G, M), their b2*, and null t* (m, G)."""
    log_y = jnp.log(jnp.where(data.weight > 0, data.y, 1.0))

    def one(key, n, ly, w):
        q = quadratic_fit(n, ly, w)
        count = jnp.sum(w > 0)
        r = jnp.where(w > 0, ly - q.fit, 0.0)
        r0 = jnp.where(w > 0, ly - q.line, 0.0)
        k1, k2 = jax.random.split(key)
        star = q.fit + _draw(k1, r, w, jnp.sqrt(count / jnp.maximum(count - 3, 1)), m)
        null = q.line + _draw(k2, r0, w, jnp.sqrt(count / jnp.maximum(count - 2, 1)), m)
        fit = jax.vmap(lambda s: quadratic_fit(n, s, w))
        return jnp.where(w > 0, star, 0.0), fit(star).curvature, fit(null).t

    keys = jax.random.split(key, data.n.shape[0])
    star, b2, t0 = jax.vmap(one)(keys, data.n, log_y, data.weight)
    return jnp.swapaxes(star, 0, 1), b2.T, t0.T


def quadratic_resample(key, data: CurveArrays, m: int) -> CurveArrays:
    """``m`` residual-bootstrap copies of every curve around its quadratic fit in log-log space:
    CurveArrays (m, G, M) (``y* = exp(fit + r*)``; padding keeps ``y = 1``, weight 0).

    This law-neutral smoother (three parameters, any convexity) is the resampling world of
    :func:`curvature_arrays` and of the model-selection bootstrap of
    :func:`tokenscale_sim.fit.selection.compare.compare_laws`.
    """
    key = as_key("quadratic_resample", key)
    star, _, _ = _bootstrap(key, data, m)
    return _as_curves(data, star)


def _as_curves(data: CurveArrays, log_star) -> CurveArrays:
    m = log_star.shape[0]
    rep = [jnp.broadcast_to(jnp.asarray(x), (m, *jnp.shape(x))) for x in data]
    y = jnp.where(rep[3] > 0, jnp.exp(log_star), 1.0)
    return CurveArrays(rep[0], y, rep[2], rep[3], rep[4])


def sign_test(holds: int, total: int) -> float:
    """One-sided binomial p-value ``P(X >= holds)`` for X ~ Binomial(total, 1/2).

    >>> round(sign_test(9, 10), 5)
    0.01074
    """
    if total <= 0:
        return float("nan")
    return sum(math.comb(total, k) for k in range(holds, total + 1)) / 2**total  # exact ints


def fisher_combination(p) -> tuple[float, float]:
    """Fisher's ``X = -2 sum ln p`` and its chi-square (2k df) upper tail (closed form for even
    df: a Poisson(X/2) CDF at k - 1). Non-finite p-values are left out.

    >>> x, p = fisher_combination([0.05])
    >>> round(x, 4), round(p, 6)
    (5.9915, 0.05)
    """
    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return float("nan"), float("nan")
    x = float(-2 * np.sum(np.log(np.clip(p, 1e-300, 1.0))))
    lam = x / 2
    if lam <= 0:
        return x, 1.0
    log_terms = np.array([k * math.log(lam) - lam - math.lgamma(k + 1.0) for k in range(p.size)])
    top = log_terms.max()
    return x, float(min(1.0, math.exp(top) * np.sum(np.exp(log_terms - top))))


def curvature_arrays(
    key, data: CurveArrays, *, m: int = 1000, level: float = 0.95, direction: str = "theory"
) -> tuple[CurvatureTest, CurveArrays | None]:
    """The shape test on curves as arrays (G, M); also returns the quadratic resamples
    (:func:`quadratic_resample` of ``fold_in(key, 0)``, CurveArrays (m, G, M); None when
    ``m = 0``) so that callers refitting laws on them share one resampling world.

    Curves with fewer than 4 distinct ``n`` have no residual to test a quadratic with: their
    per-curve results are NaN (``holds`` False), they are left out of ``n_curves`` and the
    pooled statistics, and their "resamples" are the curve itself."""
    key = as_key("curvature_arrays", key)
    if direction not in DIRECTIONS:
        raise ValueError(
            f"curvature_test: direction must be one of {DIRECTIONS}, got {direction!r}"
        )
    if not 0 < level < 1:
        raise ValueError(f"curvature_test: level must be in (0, 1), got {level!r}")
    if m < 0 or m == 1:
        raise ValueError(f"curvature_test: m must be 0 or >= 2 resamples, got {m}")
    data = CurveArrays(*(jnp.asarray(x) for x in data))
    log_y = jnp.log(jnp.where(data.weight > 0, data.y, 1.0))
    q = jax.tree.map(np.asarray, jax.vmap(quadratic_fit)(data.n, log_y, data.weight))
    count = np.asarray(data.weight > 0).sum(axis=-1)
    _, distinct = distinct_slots(np.asarray(data.n), np.asarray(data.weight))
    testable = distinct >= 4
    q = q._replace(
        **{k: np.where(testable, getattr(q, k), np.nan) for k in ("curvature", "se", "t")}
    )
    sign = np.where(q.slope < 0, -1.0, 1.0) if direction == "theory" else np.ones_like(q.slope)
    t = sign * q.t
    p_t = t_upper_tails(t, np.maximum(count - 3, 1))
    g = int(testable.sum())
    nan = np.full(count.shape[0], np.nan)
    lo = hi = nan
    p, method, pooled_lo, pooled_hi = p_t, "t", float("nan"), float("nan")
    star = None
    if m:
        log_star, b2, t0 = (np.asarray(x) for x in _bootstrap(jax.random.fold_in(key, 0), data, m))
        log_star = np.where(testable[:, None], log_star, np.asarray(log_y))
        alpha = (1 - level) / 2
        b2 = np.where(testable, b2, np.nan)
        lo, hi = (
            np.where(testable, x, np.nan) for x in np.quantile(b2, [alpha, 1 - alpha], axis=0)
        )
        t0 = sign * t0
        p = np.where(testable, (1 + np.sum(t0 >= t - 1e-12 * np.abs(t), axis=0)) / (m + 1), np.nan)
        method = "bootstrap"
        if g:
            pooled_star = np.mean((sign * b2)[:, testable], axis=1)
            pooled_lo, pooled_hi = (float(x) for x in np.quantile(pooled_star, [alpha, 1 - alpha]))
        star = _as_curves(data, jnp.asarray(log_star))
    holds = np.where(testable, sign * q.curvature, 0.0) > 0
    n_holds = int(holds.sum())
    pooled = float(np.mean((sign * q.curvature)[testable])) if g else float("nan")
    fx, fp = fisher_combination(p)
    test = CurvatureTest(
        q.curvature, q.se, q.slope, sign.astype(int), holds, lo, hi, p, p_t, n_holds, g,
        sign_test(n_holds, g), fx, fp, pooled, pooled_lo, pooled_hi,
        direction, level, m, method,
    )  # fmt: skip
    return test, star


@in_fit_precision
def curvature_test(
    key,
    curves: CurveSet,
    *,
    m: int = 1000,
    level: float = 0.95,
    direction: str = "theory",
) -> CurvatureTest:
    """The shape test for every curve of ``curves``: is ``ln S`` convex (or, with
    ``direction="theory"``, curved like the theory says) in ``ln n``? See the module docstring.

    Args:
        key: ``jax.random`` key (resamples from ``fold_in(key, 0)``, null resamples from the
            split of the same key per curve).
        curves: G curves with at least 4 points each.
        m: bootstrap resamples (0: Student-t p-values only, no interval).
        level: interval level. direction: one of :data:`DIRECTIONS`.

    >>> import jax, numpy as np
    >>> from tokenscale_sim.fit import curves_from_arrays
    >>> n = np.geomspace(1, 512, 10)
    >>> rising = np.exp(0.2 * np.log(n) + 0.03 * np.log(n) ** 2 + 0.01 * np.sin(7 * np.log(n)))
    >>> r = curvature_test(jax.random.key(0), curves_from_arrays(n, rising), m=199)
    >>> r.n_holds, r.n_curves, bool(r.p_value[0] < 0.05)
    (1, 1, True)
    """
    key = as_key("curvature_test", key)
    if not isinstance(curves, CurveSet):
        raise TypeError(f"curvature_test: curves must be a CurveSet, got {type(curves).__name__}")
    a = curves.arrays
    for g in range(len(curves.keys)):
        ok = a.weight[g] > 0
        distinct = np.unique(a.n[g][ok]).size
        if distinct < 4 or np.any(a.y[g][ok] <= 0):
            raise ValueError(
                f"curvature_test: curve {curves.label(g)} needs at least 4 distinct n and scores "
                f"> 0, got {distinct} distinct n, min score {a.y[g][ok].min():g}"
            )
    return curvature_arrays(key, a, m=m, level=level, direction=direction)[0]
