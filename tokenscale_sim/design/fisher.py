r"""The fast screen: expected Fisher information of a design, and the design search built on it.

For a truth with unconstrained parameters ``u`` (the fitter's: ``(ln c, beta, ln n_b)`` for the
alpha(n) law) and design points ``n_i`` with log-score variances ``v_i`` (binomial:
``(1 - p_i)/(N_i p_i)``; log-normal: ``sigma^2``), ``J_i = d ln S(n_i) / du`` and

    I = sum_i J_i J_i' / v_i                                    (inverse-variance weighted fit)
    Cov = I^-1,   or  (J'J)^-1 (J' V J) (J'J)^-1                (unweighted fit: sandwich)

The expected interval width of ``ln n_b`` is ``2 z sqrt(Cov[ln n_b])`` (c-optimality for
``ln n_b``); D-optimality maximises ``ln det I``; the power screen is the LR noncentrality, the
squared distance of the truth from the nearest power law in the fit's metric,
``lambda = min_{a, b} sum_i w_i (ln S(n_i) - a - b ln n_i)^2`` (``w_i = 1/v_i``, or
``1/mean(v)`` unweighted). For the alpha(n) law ``J`` has a closed form
(:func:`alpha_n_jacobian`); any other law goes through ``jax.jacfwd``
(:func:`law_jacobian`).

**Truths where a parameter has no effect.** At ``beta = 0`` the curve is flat in ``n_b``
(``d ln S / d ln n_b = 0``), at ``n_b = 0`` the ``ln n_b`` derivative vanishes, and past
``n_b ~ 1e16`` it underflows: ``I`` is singular. The screen then reports what it can
(:func:`identified`): a parameter ``u_j`` is identified when ``e_j`` is orthogonal to the null
space of the column-scaled ``W^(1/2) J``; identified parameters get their variance from the
pseudo-inverse (``e_j' I^+ e_j``, the same for every generalised inverse because ``e_j`` lies
in the row space of ``I``), the others a NaN width and a reason (:func:`identification_note`);
``ln det I`` becomes the log pseudo-determinant (D-optimality for the identified parameters).
At ``beta = 0`` the width of ``beta`` is therefore the one at the truth's ``n_b`` (known): for
``beta`` near 0 the ``n_b`` width grows like ``1 / beta`` and, through its correlation with
``beta``, widens ``beta``'s too; at 0 that direction is gone.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.design.core import Design, Noise, Truth, check_setting, log_score_variance
from tokenscale_sim.fit.inference.distributions import normal_quantile

CRITERIA = ("nb_width", "d", "power")
"""Design criteria: c-optimality for ln n_b (smallest expected width), D-optimality, LR power."""


def alpha_n_jacobian(n, c, beta, n_b):
    r"""``d ln S / d (ln c, beta, ln n_b)`` of the alpha(n) law at ``n`` (K,) -> (K, 3).

    ``d/d ln c = 1``, ``d/d beta = (ln n + ln(n + n_b) - ln(1 + n_b)) / 2``,
    ``d/d ln n_b = (beta n_b / 2) (1/(n + n_b) - 1/(1 + n_b))``.

    >>> np.round(np.asarray(alpha_n_jacobian(np.array([1.0]), 2.0, 1.0, 3.0)), 6)
    array([[1., 0., 0.]])
    """
    del c
    n = jnp.asarray(n, dtype=float)
    d_beta = 0.5 * (jnp.log(n) + jnp.log(n + n_b) - jnp.log1p(n_b))
    d_nb = 0.5 * beta * n_b * (1.0 / (n + n_b) - 1.0 / (1.0 + n_b))
    return jnp.stack([jnp.ones_like(n), d_beta, d_nb], axis=-1)


def law_jacobian(truth: Truth, n) -> np.ndarray:
    """``d ln S(n) / du`` for any law by ``jax.jacfwd`` in the fitter's parameters -> (K, p)."""
    m = truth.law
    u = m.unconstrained(jnp.asarray(truth.params, dtype=float))
    n = jnp.asarray(n, dtype=float)
    return np.asarray(jax.jacfwd(lambda uu: m.log_predict(uu, n))(u))


def point_terms(truth: Truth, n, questions, noise: Noise):
    """Per-point pieces of the screen: ``(ln S (K,), J (K, p), variance (K,))`` (NumPy)."""
    n = np.asarray(n, float)
    log_s = truth.log_score(n)
    if truth.law.name == "alpha_n":
        jac = np.asarray(alpha_n_jacobian(n, *truth.params))
    else:
        jac = law_jacobian(truth, n)
    var = np.asarray(log_score_variance(log_s, np.asarray(questions, float), noise))
    return log_s, jac, var


class Screen(NamedTuple):
    """Fisher screen of D designs (arrays (D,)); widths at ``level`` in the fit's units.

    ``nb_width``: expected width of the ln n_b interval (NaN: law without n_b, or n_b not
    identified at the truth); ``beta_width``: of beta; ``log_det``: ln det I (pseudo-determinant
    over the identified directions); ``ncp``: LR noncentrality against the nearest power law;
    ``identified`` (D, p): which of the fitter's parameters the design identifies at the truth.
    """

    nb_width: np.ndarray
    beta_width: np.ndarray
    log_det: np.ndarray
    ncp: np.ndarray
    identified: np.ndarray


IDENTIFICATION_RTOL = 1e-9
"""Relative size below which a singular value of the column-scaled Jacobian counts as zero."""


def _scaled_eig(jac, w):
    """Eigen-decomposition of the column-scaled information ``S^-1 J'WJ S^-1`` (S: column norms).

    Returns ``(eigenvalues (D, p), eigenvectors (D, p, p), column norms (D, p), null (D, p))``,
    ``null`` marking eigenvalues below ``IDENTIFICATION_RTOL^2`` (a zero column is null).
    """
    a = jac * np.sqrt(w)[..., None]
    norms = np.linalg.norm(a, axis=-2)
    live = norms > IDENTIFICATION_RTOL * norms.max(-1, keepdims=True)
    a = np.where(live[..., None, :], a / np.where(live, norms, 1.0)[..., None, :], 0.0)
    eig, vec = np.linalg.eigh(np.einsum("dki,dkj->dij", a, a))
    return eig, vec, np.where(live, norms, 0.0), eig < IDENTIFICATION_RTOL**2


def identified(jac, w) -> np.ndarray:
    """Which parameters the design identifies: ``jac`` (D, K, p), weights ``w`` (D, K) -> (D, p).

    ``u_j`` is identified when ``e_j`` has no component in the null space of ``W^(1/2) J``.

    >>> jac = np.array([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [1.0, 3.0, 0.0]]])
    >>> identified(jac, np.ones((1, 4)))
    array([[ True,  True, False]])
    """
    _, vec, _, null = _scaled_eig(np.asarray(jac, float), np.asarray(w, float))
    weight = np.einsum("dij,dj->di", vec**2, null.astype(float))
    return weight < 1e-6


def _pinv_psd(jac, w):
    """Pseudo-inverse of ``J'WJ`` (D, p, p) and its log pseudo-determinant (D,), scale-free."""
    eig, vec, norms, null = _scaled_eig(jac, w)
    inv_eig = np.where(null, 0.0, 1.0 / np.where(null, 1.0, eig))
    inv_norm = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    scaled = np.einsum("dij,dj,dkj->dik", vec, inv_eig, vec)
    pinv = inv_norm[:, :, None] * scaled * inv_norm[:, None, :]
    log_pdet = np.where(null, 0.0, np.log(np.where(null, 1.0, eig))).sum(-1)
    log_norms = np.where(norms > 0, np.log(np.where(norms > 0, norms, 1.0)), 0.0).sum(-1)
    return pinv, log_pdet + 2 * log_norms  # = ln det I when I is regular


def screen_arrays(log_n, log_s, jac, var, index_nb, index_beta, weighted: bool, level=0.95):
    """The screen of a batch of designs: ``log_n``, ``log_s``, ``var`` (D, K), ``jac`` (D, K, p).

    ``index_nb`` / ``index_beta``: positions of ``ln n_b`` and ``beta`` in the fitter's parameters
    (None: the law has none). Returns a :class:`Screen`; parameters the design does not identify
    at the truth get NaN widths (see the module docstring), never a linear-algebra error.
    """
    log_n, log_s, jac, var = (np.asarray(x, float) for x in (log_n, log_s, jac, var))
    w = 1.0 / var
    ident = identified(jac, w)
    info_inv, log_det = _pinv_psd(jac, w)
    if weighted:
        cov = info_inv
        wf = w
    else:
        a_inv, _ = _pinv_psd(jac, np.ones_like(w))
        cov = a_inv @ np.einsum("dki,dk,dkj->dij", jac, var, jac) @ a_inv
        wf = np.broadcast_to(1.0 / var.mean(-1, keepdims=True), var.shape)
    z = normal_quantile(0.5 + level / 2)

    def width(i):
        if i is None:
            return np.full(log_s.shape[0], np.nan)
        v = cov[:, i, i]
        ok = np.isfinite(v) & (v >= 0)
        wide = np.where(ok, 2 * z * np.sqrt(np.where(ok, v, 0.0)), np.inf)
        return np.where(ident[:, i], wide, np.nan)

    ncp = noncentrality(log_n, log_s, wf)
    return Screen(width(index_nb), width(index_beta), log_det, ncp, ident)


def identification_note(truth: Truth, name: str, is_identified: bool) -> str:
    """Why parameter ``name`` of ``truth`` has no screen width: "" when identified.

    >>> identification_note(Truth("alpha_n", (30.0, 0.0, 16.0)), "n_b", False)
    'not identifiable at beta = 0'
    """
    if is_identified:
        return ""
    values = dict(zip(truth.law.params, truth.params, strict=True))
    if name == "n_b" and values.get("beta") == 0:
        return "not identifiable at beta = 0"
    if name == "n_b" and values.get("n_b") == 0:
        return "not identifiable at n_b = 0 (a pure power law)"
    if name == "n_b":
        return f"not identifiable at n_b = {values['n_b']:g} (a pure power law on the design)"
    return "not identifiable at this truth"


def noncentrality(log_n, log_s, w):
    """``min_{a,b} sum_k w_k (log_s_k - a - b log_n_k)^2`` per row of (D, K) arrays -> (D,).

    >>> log_n = np.log([[1.0, 2.0, 4.0]])
    >>> round(float(noncentrality(log_n, 0.5 * log_n, np.ones((1, 3)))[0]), 12)
    0.0
    """
    log_n, log_s, w = (np.asarray(x, float) for x in (log_n, log_s, w))
    sw = w.sum(-1, keepdims=True)
    mx = (w * log_n).sum(-1, keepdims=True) / sw
    my = (w * log_s).sum(-1, keepdims=True) / sw
    dx, dy = log_n - mx, log_s - my
    sxy, sxx = (w * dx * dy).sum(-1), (w * dx * dx).sum(-1)
    return np.maximum((w * dy * dy).sum(-1) - sxy**2 / sxx, 0.0)


def fisher_screen(
    truth: Truth, designs, noise: Noise, *, weighted: bool = True, level: float = 0.95
) -> Screen:
    """The Fisher screen of each design in ``designs`` (a sequence of :class:`Design`) -> Screen.

    >>> from tokenscale_sim.design.core import paper_design
    >>> s = fisher_screen(Truth("alpha_n", (30.0, 0.2, 16.0)), [paper_design(30_000)], Noise())
    >>> bool(s.nb_width[0] > 0 and s.ncp[0] > 0)
    True
    """
    rows = [screen_design(truth, d, noise, weighted=weighted, level=level) for d in designs]
    return Screen(*(np.concatenate(x) for x in zip(*rows, strict=True)))


def screen_design(truth: Truth, design: Design, noise: Noise, *, weighted=True, level=0.95):
    """:func:`fisher_screen` of one design (arrays of length 1)."""
    check_setting(truth, design, noise)
    log_s, jac, var = point_terms(truth, design.n, design.questions, noise)
    law = truth.law
    beta = law.params.index("beta") if "beta" in law.params else None
    n = np.asarray(design.n, float)
    return screen_arrays(
        np.log(n)[None], log_s[None], jac[None], var[None], law.nb_index, beta, weighted, level
    )
