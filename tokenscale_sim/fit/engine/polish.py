r"""Levenberg-Marquardt for least-squares laws (MINPACK's ``lmder`` design), with an honest
convergence test.

L-BFGS on ``(1/2) sum r^2`` stalls on ill-conditioned problems (NIST StRD MGH09, Thurber, Hahn1,
Lanczos, MGH10, Bennett5): the gradient is tiny long before the parameters are right to six
digits, so a gradient test would call a wrong answer converged. :func:`levenberg_marquardt` (run
from every start of a law fitted as least squares, ``Model.polish``) follows More (1978), the
algorithm of MINPACK's ``lmder``:

- **QR, never the normal equations**: at each point the Jacobian ``J`` (m, p) is factorised
  ``J = Q R`` (Householder, ``R`` (p, p)); everything after works on ``R`` and ``Q'r`` (p,), so
  the condition number is that of ``J``, not its square, and the work per step is one pass over
  the m points (memory linear in m). The small scaled factor ``R D^-1 = U diag(s) V'`` (an SVD of
  a p x p matrix) then gives the damped step for any ``lambda`` in closed form:

      z(lambda) = -V diag(s / (s^2 + lambda)) U'Q'r,      dx = D^-1 z,

  the minimiser of ``|r + J dx|^2 + lambda |D dx|^2``.
- **Column scaling** ``D``: the running maximum of the column norms of ``J`` (MINPACK's
  ``mode = 1``), so the method is invariant to the units of the parameters.
- **Trust region** (More's update): ``lambda`` is the one for which ``|D dx| = Delta`` (0 when the
  Gauss-Newton step fits inside), found by safeguarded Newton steps on ``1/|z(lambda)| - 1/Delta``
  (MINPACK's ``lmpar``); ``Delta`` shrinks (by MINPACK's interpolated factor in [0.1, 0.5]) when
  the gain ratio ``actual / predicted reduction`` is below 1/4 and doubles above 3/4; a step is
  accepted when the ratio is at least ``1e-4``. The first ``Delta`` is ``100 |D x0|``.

The loop stops on MINPACK's own tests, at tolerances of the arithmetic's resolution so that a fit
still making progress towards a finite optimum is never ended: the test below passes at an
accepted point; relative reduction (``ftol``: an accepted step reduced ``sum r^2`` by at most
``ftol`` of itself, as predicted); step size (``xtol``: ``Delta`` fell below ``10 eps |D x|``);
orthogonality (``gtol``: every column of ``J`` makes a cosine of at most ``gtol`` with ``r``;
MINPACK's default 0, met at an exact fit); or MINPACK's budget, ``max_iter`` trial steps (one
function evaluation each). Only where asked (``runaway``: the batched fits of
:func:`~tokenscale_sim.fit.selection.compare.compare_laws`, where the demo's speed depends on it)
it also stops a fit that runs away to a limit the law has at infinity: over a window of 20 trial
steps ``|u|`` grew 1.2-fold while ``sum r^2`` fell by at most 1e-3 of itself (a saturating law
on a straight curve crawling towards ``S_inf, A -> inf``), and says so (``Polished.runaway``).
Plain Gauss-Newton steps then refine the point, and the test decides.

The fit counts as converged when the Jacobian has full rank and the full Gauss-Newton step at the
final point is negligible: every ``|dx_i| <= xtol |u_i|``, or the relative offset (Bates &
Watts 1981) ``sqrt(|P_J r|^2 / p) / sqrt(|r|^2 / (m - p)) <= rotol`` (the step is a negligible
fraction of the standard errors; this covers parameters at 0). Near the optimum Gauss-Newton
converges quadratically, so a negligible step means the point is the optimum to that accuracy.

The function knows nothing about models: it takes a residual function and is jit/vmap friendly
(one ``lax.while_loop``: a small program, vmapped over curves, starts and resamples).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Polished(NamedTuple):
    """Result of :func:`levenberg_marquardt` (arrays; vmappable).

    ``u`` (p,) the point, ``rss`` ``sum r^2`` there, ``iterations`` trial steps taken,
    ``converged`` the Gauss-Newton step test of the module docstring, ``relative_offset``,
    ``runaway`` whether the run-away rule ended the trial steps (``LMSettings.runaway``).
    """

    u: Any
    rss: Any
    iterations: Any
    converged: Any
    relative_offset: Any
    runaway: Any


class Reduced(NamedTuple):
    """The least-squares problem at one point, reduced by QR to p x p (module docstring).

    ``r`` (m,) residuals; ``norms`` (p,) column norms of ``J``; ``d`` (p,) the column scale;
    ``uu``, ``s``, ``vt``: SVD of ``R D^-1``; ``b = U'Q'r`` (p,).
    """

    r: Any
    norms: Any
    d: Any
    uu: Any
    s: Any
    vt: Any
    b: Any


def reduce(res_fn: Callable[[Any], Any], u, scale) -> Reduced:
    """Residuals and Jacobian at ``u`` (one forward pass, p tangents: memory O(m p)), then the
    QR of ``J`` and the SVD of the p x p factor ``R D^-1``, ``D = max(scale, column norms)``."""
    jac, r = jax.jacfwd(lambda x: (res_fn(x), res_fn(x)), has_aux=True)(u)
    q, rr = jnp.linalg.qr(jac)
    norms = jnp.linalg.norm(rr, axis=0)  # column norms of J = those of R
    d = jnp.maximum(scale, norms)
    d = jnp.where(d > 0, d, 1.0)
    uu, s, vt = jnp.linalg.svd(rr / d, full_matrices=False)
    return Reduced(r, norms, d, uu, s, vt, uu.T @ (q.T @ r))


def damped_step(red: Reduced, lam):
    """``(z, |R D^-1 z|^2)`` for damping ``lam`` (0: minimum-norm Gauss-Newton); ``dx = z / d``.

    ``z = -V diag(s / (s^2 + lam)) b`` minimises ``|b + diag(s) V'z|^2 + lam |z|^2``; singular
    values below ``p eps s_max`` are treated as 0 (no step along them).

    >>> import jax.numpy as jnp
    >>> red = Reduced(None, None, jnp.ones(2), jnp.eye(2), jnp.array([2.0, 1.0]), jnp.eye(2),
    ...               jnp.array([4.0, 1.0]))
    >>> [float(v) for v in damped_step(red, 0.0)[0]]
    [-2.0, -1.0]
    """
    s, b = red.s, red.b
    tiny = jnp.finfo(s.dtype).eps * jnp.max(s) * s.shape[0]
    filt = jnp.where(s > tiny, s / (s * s + lam), 0.0)
    coef = filt * b
    return -red.vt.T @ coef, jnp.sum((s * coef) ** 2)


def trust_region_lambda(red: Reduced, delta, iterations: int = 12):
    """MINPACK's ``lmpar``: the ``lam >= 0`` with ``|z(lam)| = delta`` within 10%, 0 when the
    Gauss-Newton step is already inside; safeguarded Newton steps on ``1/|z| - 1/delta``
    (concave and increasing in ``lam``, so Newton from below converges monotonically)."""
    s, b = red.s, red.b
    tiny = jnp.finfo(s.dtype).eps * jnp.max(s) * s.shape[0]
    live = s > tiny
    sb2 = jnp.where(live, (s * b) ** 2, 0.0)

    def norm_and_slope(lam):
        den = jnp.where(live, s * s + lam, 1.0)
        z2 = jnp.sum(sb2 / den**2)
        dz2 = -2.0 * jnp.sum(sb2 / den**3)  # d |z|^2 / d lam
        return jnp.sqrt(z2), dz2

    gn_norm, _ = norm_and_slope(0.0)
    upper = jnp.sqrt(jnp.sum(sb2)) / delta  # |A'b| / delta: |z(upper)| <= delta

    def newton(_, lam):
        z, dz2 = norm_and_slope(lam)
        f = 1.0 / z - 1.0 / delta
        fprime = -0.5 * dz2 / z**3
        step = jnp.where((fprime > 0) & jnp.isfinite(f), f / fprime, 0.0)
        done = jnp.abs(z - delta) <= 0.1 * delta
        return jnp.where(done, lam, jnp.clip(lam - step, 0.0, upper))

    lam = jax.lax.fori_loop(0, iterations, newton, jnp.zeros_like(delta))
    return jnp.where(gn_norm <= 1.1 * delta, 0.0, lam)


START, LM, POST, GAUSS_NEWTON, DONE = range(5)
"""Phases of :class:`LMState`: evaluate the start, Levenberg-Marquardt trial steps, evaluate the
end point afresh (running scale dropped), Gauss-Newton refinement, finished."""


class LMSettings(NamedTuple):
    """Static settings of :func:`levenberg_marquardt` (Python numbers; see its arguments);
    ``runaway``: stop a fit running away to a limit at infinity (``runaway_window`` trial steps
    in which ``|u|`` grew ``runaway_growth``-fold while ``sum r^2`` fell by at most
    ``runaway_rtol`` of itself)."""

    max_iter: int = 2000
    xtol: float = 1e-8
    rotol: float = 1e-8
    rank_tol: float = 1e-10
    gn_steps: int = 20
    ftol: float = 1e-15
    gtol: float = 0.0
    runaway: bool = False
    runaway_window: int = 20
    runaway_rtol: float = 1e-3
    runaway_growth: float = 1.2


class LMState(NamedTuple):
    """One Levenberg-Marquardt problem in flight (arrays; vmappable), see :func:`lm_step`.

    ``phase`` (START ... DONE), ``u`` (p,) the point, ``red`` the :class:`Reduced` problem at
    ``u``, ``delta`` the trust radius, ``k`` trial steps taken, ``j`` Gauss-Newton steps taken,
    ``converged`` and ``relative_offset`` (the test at ``u``; final once DONE); ``mark``:
    ``(sum r^2, |u|)`` at the start of the current window of trial steps (the run-away rule);
    ``runaway``: that rule ended the trial steps.
    """

    phase: Any
    u: Any
    red: Reduced
    delta: Any
    k: Any
    j: Any
    converged: Any
    relative_offset: Any
    mark: Any
    runaway: Any


def lm_start(u0, m: int) -> LMState:
    """The state of a problem not yet evaluated: ``u0`` (p,), ``m`` residuals."""
    u0 = jnp.asarray(u0)
    p = u0.shape[0]
    zero = jnp.zeros((), u0.dtype)
    red = Reduced(
        jnp.zeros(m, u0.dtype), jnp.ones_like(u0), jnp.ones_like(u0), jnp.eye(p, dtype=u0.dtype),
        jnp.ones_like(u0), jnp.eye(p, dtype=u0.dtype), jnp.zeros_like(u0),
    )  # fmt: skip
    no = jnp.asarray(False)
    return LMState(jnp.asarray(START), u0, red, zero, jnp.asarray(0), jnp.asarray(0), no, zero,
                   jnp.zeros(2, u0.dtype), no)  # fmt: skip


def lm_step(res_fn: Callable[[Any], Any], state: LMState, cfg: LMSettings) -> LMState:
    """One evaluation of ``res_fn`` (one :func:`reduce`) for a problem in any phase.

    Every phase costs the same (one residual-and-Jacobian evaluation at one point), so many
    problems can share a vmapped loop and a finished problem can hand its lane to the next one
    (:func:`tokenscale_sim.fit.engine.lanes.drain`). The sequence of points and decisions is that of
    the module docstring: evaluate ``u0``; trial steps (accepted or not) until the test passes,
    MINPACK's ``ftol`` rule sees no progress, ``Delta`` falls below ``eps |D x|`` or
    ``max_iter`` trial steps; a fresh evaluation of the end point; Gauss-Newton steps while
    they are small; the test at the final point. A DONE state is returned unchanged.
    """
    s = state
    u, red = s.u, s.red
    p = u.shape[0]
    dtype = u.dtype
    eps = float(jnp.finfo(dtype).eps)  # float32: tolerances no finer than the arithmetic
    xtol, rotol = max(cfg.xtol, 1e3 * eps), max(cfg.rotol, 1e3 * eps)
    phase = s.phase
    in_lm = phase == LM
    in_gn = phase == GAUSS_NEWTON

    # the point to evaluate: a trial step (LM), a Gauss-Newton step, or u itself
    lam = trust_region_lambda(red, s.delta)
    z, pred_fit = damped_step(red, lam)
    znorm = jnp.linalg.norm(z)
    delta = jnp.where(s.k == 0, jnp.minimum(s.delta, znorm), s.delta)  # MINPACK's first step
    u_trial = u + z / red.d
    z_gn, _ = damped_step(red, 0.0)
    dx = z_gn / red.d
    near = jnp.all(jnp.abs(dx) <= 1e-4 * jnp.abs(u)) & jnp.all(jnp.isfinite(dx))
    u_gn = jnp.where(near, u + dx, u)
    point = jnp.where(in_lm, u_trial, jnp.where(in_gn, u_gn, u))
    new = reduce(res_fn, point, jnp.where(in_lm, red.d, jnp.zeros_like(u)))

    # LM: MINPACK's acceptance and trust-region update
    rss, rss_new = jnp.sum(red.r**2), jnp.sum(new.r**2)
    ok = jnp.isfinite(rss_new) & jnp.all(jnp.isfinite(new.s)) & jnp.all(jnp.isfinite(new.b))
    rss_new = jnp.where(ok, rss_new, jnp.inf)
    # relative reductions as in lmder: predicted from the linear model plus the damping
    pred = (pred_fit + 2.0 * lam * znorm**2) / jnp.maximum(rss, jnp.finfo(dtype).tiny)
    actual = jnp.where(rss_new < 100.0 * rss, 1.0 - rss_new / rss, -1.0)
    ratio = jnp.where(pred > 0, actual / pred, 0.0)
    dirder = -(pred_fit + lam * znorm**2) / jnp.maximum(rss, jnp.finfo(dtype).tiny)
    shrink = jnp.where(actual >= 0, 0.5, 0.5 * dirder / (dirder + 0.5 * actual))
    shrink = jnp.where((rss_new >= 100.0 * rss) | (shrink < 0.1), 0.1, shrink)
    delta = jnp.where(
        ratio <= 0.25,
        shrink * jnp.minimum(delta, znorm / 0.1),
        jnp.where((lam == 0) | (ratio >= 0.75), 2.0 * znorm, delta),
    )
    accept = ok & (ratio >= 1e-4)
    u_lm = jnp.where(accept, u_trial, u)
    red_lm = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, red)

    # the next state of each phase, then the test there
    start = phase == START
    keep = (~in_lm) & (~in_gn) & (~start) & (phase != POST)  # DONE: unchanged
    u_next = jnp.where(in_lm, u_lm, jnp.where(in_gn, u_gn, u))
    red_next = jax.tree.map(
        lambda a, b, c: jnp.where(keep, c, jnp.where(in_lm, a, b)), red_lm, new, red
    )
    passed, ro = _test(u_next, red_next, p, xtol, rotol, cfg.rank_tol)
    xnorm = jnp.linalg.norm(red_next.d * u_next)
    delta0 = jnp.where(xnorm > 0, 100.0 * xnorm, 100.0)
    stall = accept & (jnp.abs(actual) <= cfg.ftol) & (pred <= cfg.ftol)
    tiny_region = delta <= 10 * eps * jnp.maximum(xnorm, 1e-300)
    if cfg.gtol > 0:  # MINPACK's orthogonality test; at its default 0 it is an exact fit
        orthogonal = in_lm & (_gradient_cosine(red_next) <= cfg.gtol)
    else:
        orthogonal = in_lm & (jnp.sum(red_next.r**2) == 0)
    k_next = s.k + in_lm
    # run-away: over the last runaway_window trial steps |u| grew by runaway_growth while
    # sum r^2 fell by at most runaway_rtol of itself: the fit is crawling along a valley
    # towards a limit at infinity (a saturating law on a straight curve: S_inf, A -> inf,
    # a -> 0), where every further step buys less; the test below then reports it not converged
    rss_next = jnp.sum(red_next.r**2)
    unorm = jnp.linalg.norm(u_next)
    window_end = in_lm & (k_next % cfg.runaway_window == 0)
    runaway = (
        cfg.runaway
        & window_end
        & (s.mark[0] - rss_next <= cfg.runaway_rtol * rss_next)
        & (unorm >= cfg.runaway_growth * s.mark[1])
    )
    mark = jnp.where(start | window_end, jnp.stack([rss_next, unorm]), s.mark)
    lm_done = (accept & passed) | stall | tiny_region | orthogonal | ~jnp.isfinite(delta)
    lm_done = lm_done | runaway
    j_next = s.j + in_gn
    finite = jnp.all(jnp.isfinite(u_next))
    more_lm = (k_next < cfg.max_iter) & finite
    moving = near & jnp.any(jnp.abs(dx) > 4 * eps * jnp.abs(u))
    after_post = GAUSS_NEWTON if cfg.gn_steps > 0 else DONE
    phase_next = jnp.select(
        [start, in_lm, phase == POST, in_gn],
        [
            jnp.where(more_lm & ~passed, LM, POST),
            jnp.where(more_lm & ~lm_done, LM, POST),
            after_post,
            jnp.where((j_next < cfg.gn_steps) & moving, GAUSS_NEWTON, DONE),
        ],
        DONE,
    ).astype(phase.dtype)
    finished = (phase_next == DONE) & ~keep
    return LMState(
        phase_next,
        u_next,
        red_next,
        jnp.where(start, delta0, jnp.where(in_lm, delta, s.delta)),
        k_next,
        j_next,
        jnp.where(finished, passed, s.converged),
        jnp.where(finished, ro, s.relative_offset),
        mark,
        s.runaway | runaway,
    )


def lm_result(state: LMState) -> Polished:
    """The :class:`Polished` result of a DONE state."""
    return Polished(
        state.u,
        jnp.sum(state.red.r**2),
        state.k,
        state.converged,
        state.relative_offset,
        state.runaway,
    )


def levenberg_marquardt(
    res_fn: Callable[[Any], Any],
    u0,
    *,
    max_iter: int = 2000,
    xtol: float = 1e-8,
    rotol: float = 1e-8,
    rank_tol: float = 1e-10,
    gn_steps: int = 20,
    ftol: float = 1e-15,
    gtol: float = 0.0,
    runaway: bool = False,
) -> Polished:
    """Minimise ``sum res_fn(u)^2`` from ``u0`` (p,) by Levenberg-Marquardt -> :class:`Polished`.

    Args:
        res_fn: ``u (p,) -> r (m,)`` residuals (weights already applied), differentiable.
        u0: starting point (p,).
        max_iter: most trial steps (accepted or not).
        xtol: relative Gauss-Newton step that counts as converged (at least ``1e3 eps``).
        rotol: relative offset that counts as converged (at least ``1e3 eps``).
        rank_tol: smallest singular value of the column-normalised Jacobian, relative to the
            largest, for a converged fit (below: a flat direction, not converged).
        ftol: stop when an accepted step reduces ``sum r^2`` by at most this fraction, and so
            was predicted to (MINPACK's ``ftol``; the test above still decides ``converged``).
        gtol: stop when the cosine of every column of ``J`` with ``r`` is at most this
            (MINPACK's ``gtol``, default 0: an exact fit).
        runaway: stop a fit running away to a limit at infinity (:class:`LMSettings`).
        gn_steps: most plain Gauss-Newton steps after LM stops (linear convergence with large
            residuals, e.g. ENSO, needs a dozen), taken while the step is below 1e-4 relative
            and above the rounding of ``u`` (they refine the point below the resolution of the
            RSS).

    One ``lax.while_loop`` of :func:`lm_step` (one residual-and-Jacobian evaluation per pass:
    a small program); many problems at once: :func:`tokenscale_sim.fit.engine.lanes.drain`.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([1.0, 2.0, 3.0, 4.0]); y = 2.0 * jnp.exp(-0.5 * x)
    >>> out = levenberg_marquardt(lambda u: y - u[0] * jnp.exp(-u[1] * x), jnp.array([1.0, 1.0]))
    >>> [round(float(v), 8) for v in out.u], bool(out.converged)
    ([2.0, 0.5], True)
    """
    cfg = LMSettings(max_iter, xtol, rotol, rank_tol, gn_steps, ftol, gtol, runaway)
    u0 = jnp.asarray(u0)
    m = jax.eval_shape(res_fn, u0).shape[0]
    state = jax.lax.while_loop(
        lambda s: s.phase != DONE, lambda s: lm_step(res_fn, s, cfg), lm_start(u0, m)
    )
    return lm_result(state)


def _test(u, red: Reduced, p: int, xtol: float, rotol: float, rank_tol: float):
    """The convergence test of the module docstring -> (passed, relative offset), scaled by the
    *current* column norms (a running scale would hide a direction gone flat behind the SVD
    cut-off)."""
    fresh = red._replace(d=jnp.where(red.norms > 0, red.norms, 1.0))
    fresh = _rescale(fresh, red.d)
    z, explained = damped_step(fresh, 0.0)
    rss = jnp.sum(red.r**2)
    m = red.r.shape[0]
    ro = jnp.sqrt(explained / p) / jnp.sqrt(jnp.maximum(rss, 1e-300) / max(m - p, 1))
    small = jnp.all(jnp.abs(z / fresh.d) <= xtol * jnp.abs(u))
    full_rank = jnp.min(fresh.s) > rank_tol * jnp.max(fresh.s)
    finite = jnp.isfinite(rss) & jnp.all(jnp.isfinite(u)) & jnp.all(jnp.isfinite(z))
    return finite & full_rank & (small | (ro <= rotol) | (rss == 0)), ro


def _gradient_cosine(red: Reduced):
    """MINPACK's orthogonality measure ``max_j |J_j' r| / (|J_j| |r|)`` (0 when ``r = 0``), from
    the reduced problem: ``J'r = R'Q'r = D V diag(s) b``."""
    jtr = red.d * (red.vt.T @ (red.s * red.b))
    rnorm = jnp.linalg.norm(red.r)
    live = red.norms > 0
    cos = jnp.where(live, jnp.abs(jtr) / jnp.where(live, red.norms, 1.0), 0.0)
    return jnp.where(rnorm > 0, jnp.max(cos) / jnp.where(rnorm > 0, rnorm, 1.0), 0.0)


def _rescale(red: Reduced, old_d) -> Reduced:
    """``red`` with the SVD of ``R D^-1`` redone for the new scale ``red.d`` (was ``old_d``)."""
    rd = (red.uu * red.s) @ red.vt  # R D_old^-1
    uu, s, vt = jnp.linalg.svd(rd * old_d / red.d, full_matrices=False)
    return red._replace(uu=uu, s=s, vt=vt, b=uu.T @ (red.uu @ red.b))
