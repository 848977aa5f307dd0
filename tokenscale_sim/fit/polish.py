r"""Levenberg-Marquardt polish of a least-squares optimum, with an honest convergence test.

L-BFGS on ``(1/2) sum r^2`` stalls on ill-conditioned problems (NIST StRD MGH09, Thurber, Hahn1,
Lanczos): the gradient is tiny long before the parameters are right to six digits, so a gradient
test would call a wrong answer converged. :func:`levenberg_marquardt` restarts from the optimizer's
point and iterates Marquardt-scaled damped Gauss-Newton steps

    dx = -D^-1 V diag(s / (s^2 + lam)) U' r,      J D^-1 = U diag(s) V'   (SVD),

``D`` the running maximum of the column norms of ``J`` (More 1978), ``lam`` updated from the gain
ratio (Nielsen 1999), then plain Gauss-Newton steps. The fit counts as converged when the
Jacobian has full rank and the full Gauss-Newton step at the final point is negligible: every
``|dx_i| <= xtol |u_i|``, or the relative offset (Bates & Watts 1981)
``sqrt(|P_J r|^2 / p) / sqrt(|r|^2 / (m - p)) <= rotol`` (the step is a negligible fraction of
the standard errors; this covers parameters at 0). Near the optimum Gauss-Newton converges
quadratically, so a negligible step means the point is the optimum to that accuracy.

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


def levenberg_marquardt(
    res_fn: Callable[[Any], Any],
    u0,
    *,
    max_iter: int = 500,
    xtol: float = 1e-8,
    rotol: float = 1e-8,
    rank_tol: float = 1e-10,
    gn_steps: int = 20,
) -> Polished:
    """Minimise ``sum res_fn(u)^2`` from ``u0`` (p,) by Levenberg-Marquardt -> :class:`Polished`.

    Args:
        res_fn: ``u (p,) -> r (m,)`` residuals (weights already applied), differentiable.
        u0: starting point (p,), e.g. the L-BFGS optimum.
        max_iter: most LM steps.
        xtol: relative Gauss-Newton step that counts as converged (at least ``1e3 eps``).
        rotol: relative offset that counts as converged (at least ``1e3 eps``).
        rank_tol: smallest singular value of the column-normalised Jacobian, relative to the
            largest, for a converged fit (below: a flat direction, not converged).
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

    def body(carry):
        u, scale, lam, nu, k, _, _ = carry
        r, uu, s, vt, d = _gn_parts(res_fn, u, scale)
        rss = jnp.sum(r * r)
        dx, pred = _step(uu, s, vt, d, r, lam)
        u_new = u + dx
        rss_new = jnp.sum(res_fn(u_new) ** 2)
        gain = (rss - rss_new) / jnp.maximum(rss - pred, jnp.finfo(rss.dtype).tiny)
        accept = jnp.isfinite(rss_new) & (rss_new < rss)
        lam = jnp.where(accept, lam * jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3), lam * nu)
        nu = jnp.where(accept, 2.0, 2 * nu)
        u = jnp.where(accept, u_new, u)
        ok, _ = test(u)
        stuck = (lam > 1e30) | ~jnp.isfinite(lam)
        return u, d, lam, nu, k + 1, ok | stuck, ok & ~stuck

    _, _, s0, _, d0 = _gn_parts(res_fn, u0, jnp.zeros(p, u0.dtype))
    ok0, _ = test(u0)
    lam0 = 1e-3 * jnp.max(s0) ** 2
    init = (u0, d0, lam0, jnp.asarray(2.0, u0.dtype), jnp.asarray(0), ok0, ok0)
    u, _, _, _, k, _, _ = jax.lax.while_loop(
        lambda c: (c[4] < max_iter) & ~c[5] & jnp.all(jnp.isfinite(c[0])), body, init
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
