r"""Levenberg-Marquardt for least-squares laws, with an honest convergence test.

L-BFGS on ``(1/2) sum r^2`` stalls on ill-conditioned problems (NIST StRD MGH09, Thurber, Hahn1,
Lanczos): the gradient is tiny long before the parameters are right to six digits, so a gradient
test would call a wrong answer converged. :func:`levenberg_marquardt` (run from every start of a
law fitted as least squares, ``Model.polish``) iterates Marquardt-scaled damped Gauss-Newton steps

    (D^-1 J'J D^-1 + lam I) z = -D^-1 J'r,      dx = D^-1 z,

``D`` the running maximum of the column norms of ``J`` (More 1978), ``lam`` updated from the gain
ratio (Nielsen 1999), solved by an unrolled Cholesky factorisation (:func:`spd_solve`: elementwise
arithmetic that vectorises across vmapped fits, where batched LAPACK calls on tiny matrices cost
several times more). The loop stops when the normal-equation form of the test below passes, when
MINPACK's ``ftol`` rule sees no progress, or after ``max_iter`` steps; plain Gauss-Newton steps on
the SVD ``J D^-1 = U diag(s) V'`` then refine the point, and the test on the SVD decides.

The fit counts as converged when the Jacobian has full rank and the full Gauss-Newton step at the
final point is negligible: every ``|dx_i| <= xtol |u_i|``, or the relative offset (Bates &
Watts 1981) ``sqrt(|P_J r|^2 / p) / sqrt(|r|^2 / (m - p)) <= rotol`` (the step is a negligible
fraction of the standard errors; this covers parameters at 0). Near the optimum Gauss-Newton
converges quadratically, so a negligible step means the point is the optimum to that accuracy.

The function knows nothing about models: it takes a residual function and is jit/vmap friendly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Polished(NamedTuple):
    """Result of :func:`levenberg_marquardt` (arrays; vmappable).

    ``u`` (p,) the point, ``rss`` ``sum r^2`` there, ``iterations`` LM steps taken,
    ``converged`` the Gauss-Newton step test of the module docstring, ``relative_offset``.
    """

    u: Any
    rss: Any
    iterations: Any
    converged: Any
    relative_offset: Any


def _gn_parts(res_fn, u, scale):
    r = res_fn(u)
    jac = jax.jacfwd(res_fn)(u)
    scale = jnp.maximum(scale, jnp.linalg.norm(jac, axis=0))
    d = jnp.where(scale > 0, scale, 1.0)
    uu, s, vt = jnp.linalg.svd(jac / d, full_matrices=False)
    return r, uu, s, vt, d


def _step(uu, s, vt, d, r, lam):
    """Damped step for ``lam`` (0: Gauss-Newton, minimum-norm) and its predicted residual norm^2."""
    ur = uu.T @ r
    tiny = jnp.finfo(s.dtype).eps * jnp.max(s) * s.shape[0]
    filt = jnp.where(s > tiny, s / (s * s + lam), 0.0)
    z = -vt.T @ (filt * ur)
    # predicted |r + J dx|^2 = |r|^2 - |U'r|^2 + |(1 - s filt) U'r|^2
    pred = jnp.sum(r * r) - jnp.sum(ur * ur) + jnp.sum(((1 - s * filt) * ur) ** 2)
    return z / d, pred


def spd_solve(a, b):
    """Solve ``a x = b`` for symmetric positive definite ``a`` (p, p) -> ``(x, min_pivot)``.

    Unrolled Cholesky for ``p <= 12`` (NaN when ``a`` is not positive definite), else LAPACK;
    ``min_pivot`` is the smallest squared Cholesky pivot (a rank proxy; ``nan`` past 12).
    """
    p = b.shape[0]
    if p > 12:
        return jnp.linalg.solve(a, b), jnp.asarray(jnp.nan, a.dtype)
    low: list[list[Any]] = [[None] * p for _ in range(p)]
    for j in range(p):
        low[j][j] = jnp.sqrt(a[j, j] - sum((low[j][k] ** 2 for k in range(j)), 0.0))
        for i in range(j + 1, p):
            dot = sum((low[i][k] * low[j][k] for k in range(j)), 0.0)
            low[i][j] = (a[i, j] - dot) / low[j][j]
    y: list[Any] = []
    for i in range(p):
        y.append((b[i] - sum((low[i][k] * y[k] for k in range(i)), 0.0)) / low[i][i])
    x: list[Any] = [None] * p
    for i in reversed(range(p)):
        x[i] = (y[i] - sum((low[k][i] * x[k] for k in range(i + 1, p)), 0.0)) / low[i][i]
    return jnp.stack(x), jnp.min(jnp.stack([low[i][i] ** 2 for i in range(p)]))


def _normal_parts(res_fn, u):
    """Residuals (m,), Jacobian (m, p) and its column norms at ``u`` in one forward pass."""
    jac, r = jax.jacfwd(lambda x: (res_fn(x), res_fn(x)), has_aux=True)(u)
    return r, jac, jnp.linalg.norm(jac, axis=0)


def _scaled(jac, r, d):
    """``(A, g) = (D^-1 J'J D^-1, D^-1 J'r)`` for the column scale ``d`` (p,)."""
    js = jac / d
    return js.T @ js, js.T @ r


def levenberg_marquardt(
    res_fn: Callable[[Any], Any],
    u0,
    *,
    max_iter: int = 500,
    xtol: float = 1e-8,
    rotol: float = 1e-8,
    rank_tol: float = 1e-10,
    gn_steps: int = 20,
    ftol: float = 1e-14,
) -> Polished:
    """Minimise ``sum res_fn(u)^2`` from ``u0`` (p,) by Levenberg-Marquardt -> :class:`Polished`.

    Args:
        res_fn: ``u (p,) -> r (m,)`` residuals (weights already applied), differentiable.
        u0: starting point (p,).
        max_iter: most LM steps.
        xtol: relative Gauss-Newton step that counts as converged (at least ``1e3 eps``).
        rotol: relative offset that counts as converged (at least ``1e3 eps``).
        rank_tol: smallest singular value of the column-normalised Jacobian, relative to the
            largest, for a converged fit (below: a flat direction, not converged).
        ftol: stop when an accepted step reduces ``sum r^2`` by at most this fraction, and so
            was predicted to (MINPACK's ``ftol``; the test above still decides ``converged``).
        gn_steps: plain Gauss-Newton steps after LM stops (linear convergence with large
            residuals, e.g. ENSO, needs a dozen), taken while the step is below
            1e-4 relative (they refine the point below the resolution of the RSS).

    >>> import jax.numpy as jnp
    >>> x = jnp.array([1.0, 2.0, 3.0, 4.0]); y = 2.0 * jnp.exp(-0.5 * x)
    >>> out = levenberg_marquardt(lambda u: y - u[0] * jnp.exp(-u[1] * x), jnp.array([1.0, 1.0]))
    >>> [round(float(v), 8) for v in out.u], bool(out.converged)
    ([2.0, 0.5], True)
    """
    u0 = jnp.asarray(u0)
    p = u0.shape[0]
    eps = float(jnp.finfo(u0.dtype).eps)  # float32: tolerances no finer than the arithmetic
    xtol, rotol = max(xtol, 1e3 * eps), max(rotol, 1e3 * eps)

    def test(u):
        # Gauss-Newton step scaled by the *current* column norms: a running scale would hide a
        # direction gone flat (a parameter drifting to infinity) behind the SVD cut-off
        r, uu, s, vt, d = _gn_parts(res_fn, u, jnp.zeros_like(u))
        dx, _ = _step(uu, s, vt, d, r, 0.0)
        rss = jnp.sum(r * r)
        explained = jnp.sum((uu.T @ r) ** 2)
        m = r.shape[0]
        ro = jnp.sqrt(explained / p) / jnp.sqrt(jnp.maximum(rss, 1e-300) / max(m - p, 1))
        small = jnp.all(jnp.abs(dx) <= xtol * jnp.abs(u))
        full_rank = jnp.min(s) > rank_tol * jnp.max(s)
        finite = jnp.isfinite(rss) & jnp.all(jnp.isfinite(u))
        return finite & full_rank & (small | (ro <= rotol) | (rss == 0)), ro

    def quick_test(u, r, jac, norms):
        # the test below on the normal equations (the loop's stopping rule; the SVD decides)
        d = jnp.where(norms > 0, norms, 1.0)
        a, g = _scaled(jac, r, d)
        z, pivot = spd_solve(a + p * eps * jnp.eye(p, dtype=a.dtype), -g)
        rss = jnp.sum(r * r)
        explained = -jnp.dot(g, z)  # |P_J r|^2
        m = r.shape[0]
        ro = jnp.sqrt(jnp.maximum(explained, 0.0) / p) / jnp.sqrt(
            jnp.maximum(rss, 1e-300) / max(m - p, 1)
        )
        small = jnp.all(jnp.abs(z / d) <= xtol * jnp.abs(u))
        full_rank = pivot > rank_tol**2
        finite = jnp.isfinite(rss) & jnp.all(jnp.isfinite(z))
        return finite & full_rank & (small | (ro <= rotol) | (rss == 0))

    def body(carry):
        u, r, jac, norms, scale, lam, nu, k, _ = carry
        scale = jnp.maximum(scale, norms)
        d = jnp.where(scale > 0, scale, 1.0)
        a, g = _scaled(jac, r, d)
        z, _ = spd_solve(a + lam * jnp.eye(p, dtype=a.dtype), -g)
        pred_decrease = lam * jnp.dot(z, z) - jnp.dot(z, g)  # |r|^2 - |r + J dx|^2
        u_new = u + z / d
        r_new, jac_new, norms_new = _normal_parts(res_fn, u_new)
        rss, rss_new = jnp.sum(r * r), jnp.sum(r_new * r_new)
        gain = (rss - rss_new) / jnp.maximum(pred_decrease, jnp.finfo(rss.dtype).tiny)
        accept = jnp.isfinite(rss_new) & jnp.all(jnp.isfinite(jac_new)) & (rss_new < rss)
        lam = jnp.where(accept, lam * jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3), lam * nu)
        nu = jnp.where(accept, 2.0, 2 * nu)
        u, r, jac, norms = (
            jnp.where(accept, new, old)
            for new, old in ((u_new, u), (r_new, r), (jac_new, jac), (norms_new, norms))
        )
        stuck = (lam > 1e30) | ~jnp.isfinite(lam)
        # MINPACK's ftol rule: actual and predicted relative reductions both below ftol (a fit
        # crawling along a valley towards a limit at infinity stops here, unconverged)
        stall = accept & (rss - rss_new <= ftol * rss) & (pred_decrease <= ftol * rss)
        done = (accept & quick_test(u, r, jac, norms)) | stuck | stall
        return u, r, jac, norms, d, lam, nu, k + 1, done

    r0, jac0, norms0 = _normal_parts(res_fn, u0)
    d0 = jnp.where(norms0 > 0, norms0, 1.0)
    a0, _ = _scaled(jac0, r0, d0)
    lam0 = 1e-3 * jnp.max(jnp.diagonal(a0))
    done0 = quick_test(u0, r0, jac0, norms0)
    init = (u0, r0, jac0, norms0, d0, lam0, jnp.asarray(2.0, u0.dtype), jnp.asarray(0), done0)
    u, *_, k, _ = jax.lax.while_loop(
        lambda c: (c[7] < max_iter) & ~c[8] & jnp.all(jnp.isfinite(c[0])), body, init
    )

    def gauss_newton(_, u):
        # plain Gauss-Newton steps close to the optimum: they solve J'r = 0 beyond the point where
        # RSS stops resolving differences (LM's acceptance test sees only the RSS)
        r, uu, s, vt, d = _gn_parts(res_fn, u, jnp.zeros_like(u))
        dx, _ = _step(uu, s, vt, d, r, 0.0)
        near = jnp.all(jnp.abs(dx) <= 1e-4 * jnp.abs(u)) & jnp.all(jnp.isfinite(dx))
        return jnp.where(near, u + dx, u)

    u = jax.lax.fori_loop(0, gn_steps, gauss_newton, u)
    ok, ro = test(u)
    return Polished(u, jnp.sum(res_fn(u) ** 2), k, ok, ro)
