r"""Scaling-law models for the fitter: linear in log space plus a few nonlinear knobs.

Every model predicts ``ln y`` (score or divergence) as

    ln y_hat(n) = offset(n; v) + X(n; v) @ w,        u = (w, v)  (unconstrained parameters)

with ``w`` (``q`` entries) entering linearly and ``v`` (``k`` entries) the nonlinear ones (logs of
break points and transition points). This one shape serves three purposes: the optimizer works
on ``u`` without constraints; a data-driven start solves the linear least-squares problem in ``w``
on a grid of ``v`` (variable projection); and limits such as ``n_b -> 0`` or ``n_b -> inf`` are
just ``v = -inf`` / ``+inf``, evaluated exactly. Laws with ``space="linear"``
(:mod:`tokenscale_sim.fit.laws.define`: saturating, logistic, BNSL, user laws) predict ``y`` itself
the same way, ``y_hat = offset(n; v) + X(n; v) @ w``.

Models (natural parameters in brackets):

- ``POWERLAW`` [c, alpha]: ``ln S = ln c - alpha ln n``.
- ``ALPHA_N`` [c, beta, n_b]: ``ln S = ln c + (beta/2)(ln n + ln(n + n_b) - ln(1 + n_b))``
  (THEORY.md; :func:`tokenscale_sim.theory.closed_forms.log_score`). ``beta`` is left free in sign
  (not softplus as DESIGN.md suggests) so that the power law, both of whose signs occur in the
  paper's data, is nested at both limits ``n_b -> 0`` (slope beta) and ``n_b -> inf`` (slope
  beta/2).
- ``DIVERGENCE_CONST`` [scale, n_b]: ``E[D] = scale * sqrt(n (n + n_b))`` (constant psi's,
  ``scale = lambda sqrt(Delta)``); internally ``ln D = ln D_1 + (1/2)(ln n + ln((n+n_b)/(1+n_b)))``
  so both limits stay finite.
- ``DIVERGENCE_MEASURED`` [lambda]: ``E[D] = lambda sqrt(Upsilon(n))`` with Upsilon given per
  point (``aux``), the authors' procedure.
- ``BROKEN`` [c, alpha1, alpha2, n_break, smooth]: smoothly broken power law
  ``S = c (n/n_break)^(-alpha1) (1 + (n/n_break)^(1/smooth))^(-(alpha2 - alpha1) smooth)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from tokenscale_sim.theory import closed_forms as theory

Basis = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], tuple[jnp.ndarray, jnp.ndarray]]


@dataclass(frozen=True)
class Model:
    """A scaling law ``ln y = offset(n; v) + X(n; v) @ w`` with natural parameters ``natural(u)``.

    Attributes:
        name: registry name (``"powerlaw"``, ``"alpha_n"``, ...).
        params: names of the natural parameters, in the order of :attr:`natural`'s output.
        q: number of linear entries ``w`` (first ``q`` of ``u``).
        k: number of nonlinear entries ``v`` (last ``k`` of ``u``).
        basis: ``(v (k,), n (m,), aux (m,)) -> (offset (m,), X (m, q))``.
        natural: ``u (q+k,) -> theta (p,)`` natural parameters.
        unconstrained: inverse of :attr:`natural`.
        grid: ``(n_min, n_max) -> (K, k)`` NumPy starting values of ``v`` (may hold +-inf limits).
        nb_index: position of ``ln n_b`` in ``u`` for models with a transition point, else None.
        positive: per natural parameter, True when it is positive (its interval is built on the
            log scale).
        space: ``"log"`` when ``offset + X @ w`` is ``ln y_hat`` (the built-in power laws);
            ``"linear"`` when it is ``y_hat`` itself (saturating and user laws): the prediction may
            then be any real and variable projection fits ``y``, not ``ln y``.
        predictor: name of the predictor (``"n"`` for token counts, which must be >= 1; any
            other name, e.g. ``"x"``, allows any finite reals).
        polish: finish every fit with the Levenberg-Marquardt polish of
            :mod:`tokenscale_sim.fit.engine.polish`, which also decides ``converged`` (laws without
            n_b).
        evaluate: optional ``(u (p,), n (m,), aux (m,)) -> (m,)``, the same value as
            ``offset + X @ w`` computed directly (laws: one call of the law's function instead of
            building the basis; the basis is still what variable projection uses).
    """

    name: str
    params: tuple[str, ...]
    q: int
    k: int
    basis: Basis
    natural: Callable[[jnp.ndarray], jnp.ndarray]
    unconstrained: Callable[[jnp.ndarray], jnp.ndarray]
    grid: Callable[[float, float], np.ndarray]
    nb_index: int | None = None
    positive: tuple[bool, ...] = ()
    space: str = "log"
    predictor: str = "n"
    polish: bool = False
    evaluate: Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray] | None = None

    @property
    def n_params(self) -> int:
        """Number of free parameters ``p = q + k``."""
        return self.q + self.k

    def log_predict(self, u, n, aux=None):
        """``ln y_hat(n)`` for unconstrained ``u`` (p,), ``n`` (m,) -> (m,)."""
        raw = self.linear_predictor(u, n, aux)
        return raw if self.space == "log" else jnp.log(raw)

    def predict(self, u, n, aux=None):
        """``y_hat(n)`` for unconstrained ``u`` (p,), ``n`` (m,) -> (m,) (any sign if linear)."""
        raw = self.linear_predictor(u, n, aux)
        return jnp.exp(raw) if self.space == "log" else raw

    def linear_predictor(self, u, n, aux=None):
        """``offset(n; v) + X(n; v) @ w``: ``ln y_hat`` or ``y_hat`` by :attr:`space` -> (m,)."""
        n = jnp.asarray(n)
        aux = jnp.ones_like(n) if aux is None else aux
        if self.evaluate is not None:
            return self.evaluate(u, n, aux)
        offset, x = self.basis(u[self.q :], n, aux)
        return offset + x @ u[: self.q]


def _nb_grid(n_min: float, n_max: float, size: int = 13) -> np.ndarray:
    """ln n_b from well below ``n_min`` to well above ``n_max``, plus the two limits."""
    inner = np.linspace(np.log(n_min) - 3.0, np.log(n_max) + 3.0, size)
    return np.concatenate([[-np.inf], inner, [np.inf]])[:, None]


def _ones(n):
    return jnp.ones((*n.shape, 1), dtype=n.dtype)


def _powerlaw_basis(v, n, aux):
    del v, aux
    return jnp.zeros_like(n), jnp.stack([jnp.ones_like(n), -jnp.log(n)], axis=-1)


def _alpha_n_basis(v, n, aux):
    del aux
    x = theory.log_score(n, 0.0, 1.0, jnp.exp(v[0]))
    return jnp.zeros_like(n), jnp.stack([jnp.ones_like(n), x], axis=-1)


def _alpha_n_natural(u):
    return jnp.stack([jnp.exp(u[0]), u[1], jnp.exp(u[2])])


def _alpha_n_unconstrained(theta):
    return jnp.stack([jnp.log(theta[0]), theta[1], jnp.log(theta[2])])


def _div_const_basis(v, n, aux):
    del aux
    return theory.log_score(n, 0.0, 1.0, jnp.exp(v[0])), _ones(n)


def _div_const_natural(u):
    n_b = jnp.exp(u[1])
    return jnp.stack([jnp.exp(u[0] - 0.5 * jnp.log1p(n_b)), n_b])


def _div_const_unconstrained(theta):
    return jnp.stack([jnp.log(theta[0]) + 0.5 * jnp.log1p(theta[1]), jnp.log(theta[1])])


def _div_measured_basis(v, n, aux):
    del v
    return 0.5 * jnp.log(aux), _ones(n)


def _broken_basis(v, n, aux):
    del aux
    log_ratio = jnp.log(n) - v[0]
    smooth = jnp.exp(v[1])
    soft = smooth * jnp.logaddexp(0.0, log_ratio / smooth)
    return jnp.zeros_like(n), jnp.stack([jnp.ones_like(n), -(log_ratio - soft), -soft], axis=-1)


def _broken_natural(u):
    # u = (ln c, a1, a2, ln n_break, ln smooth); c normalises the standard form above
    return jnp.stack([jnp.exp(u[0]), u[1], u[2], jnp.exp(u[3]), jnp.exp(u[4])])


def _broken_unconstrained(theta):
    return jnp.stack([jnp.log(theta[0]), theta[1], theta[2], jnp.log(theta[3]), jnp.log(theta[4])])


def _broken_grid(n_min: float, n_max: float) -> np.ndarray:
    breaks = np.linspace(np.log(n_min), np.log(n_max), 9)[1:-1]
    smooth = np.log([0.1, 0.3, 1.0])
    return np.array([[b, s] for b in breaks for s in smooth])


def _exp_log(i: int, p: int):
    """natural/unconstrained pair: exp on entry ``i``, identity elsewhere (for simple models)."""

    def natural(u):
        return u.at[i].set(jnp.exp(u[i])) if p > 1 else jnp.exp(u)

    def unconstrained(theta):
        return theta.at[i].set(jnp.log(theta[i])) if p > 1 else jnp.log(theta)

    return natural, unconstrained


def _no_grid(n_min: float, n_max: float) -> np.ndarray:
    del n_min, n_max
    return np.zeros((1, 0))


POWERLAW = Model(
    "powerlaw",
    ("c", "alpha"),
    2,
    0,
    _powerlaw_basis,
    *_exp_log(0, 2),
    _no_grid,
    positive=(True, False),
)
ALPHA_N = Model(
    "alpha_n",
    ("c", "beta", "n_b"),
    2,
    1,
    _alpha_n_basis,
    _alpha_n_natural,
    _alpha_n_unconstrained,
    _nb_grid,
    nb_index=2,
    positive=(True, False, True),
)
DIVERGENCE_CONST = Model(
    "divergence_const",
    ("scale", "n_b"),
    1,
    1,
    _div_const_basis,
    _div_const_natural,
    _div_const_unconstrained,
    _nb_grid,
    nb_index=1,
    positive=(True, True),
)
DIVERGENCE_MEASURED = Model(
    "divergence_measured",
    ("lambda",),
    1,
    0,
    _div_measured_basis,
    *_exp_log(0, 1),
    _no_grid,
    positive=(True,),
)
BROKEN = Model(
    "broken",
    ("c", "alpha1", "alpha2", "n_break", "smooth"),
    3,
    2,
    _broken_basis,
    _broken_natural,
    _broken_unconstrained,
    _broken_grid,
    positive=(True, False, False, True, True),
)

MODELS: dict[str, Model] = {
    m.name: m for m in (POWERLAW, ALPHA_N, DIVERGENCE_CONST, DIVERGENCE_MEASURED, BROKEN)
}
"""Registry of the built-in models by name."""

_STABLE_NAMES: dict[Model, str] = {}


def name_stably(model: Model, text: str) -> Model:
    """Record ``text`` as the name of ``model`` across processes and return the model.

    Only for models whose functions are fully determined by ``text`` and this package's source
    (the built-in models and laws; laws parsed from an expression, named by their arguments):
    compiled programs of the model are then kept whole on disk
    (:mod:`tokenscale_sim.runtime.stored_programs`). The record is keyed on the model itself (its
    fields, functions by identity), so a copy with any field replaced has no stable name.
    """
    _STABLE_NAMES[model] = text
    return model


def stable_name(model: Model) -> str | None:
    """The name :func:`name_stably` recorded for ``model``; None for a law of Python functions
    (they may read anything: only their trace names them, so their programs are not stored).

    >>> stable_name(get_model("alpha_n"))
    'builtin:alpha_n'
    """
    return _STABLE_NAMES.get(model)


def program_token(model: Model, *statics: object) -> str | None:
    """A text naming ``(model, *statics)`` (static arguments of a compiled program: options
    dataclasses, strings, numbers) across processes, or None when ``model`` has no stable name."""
    name = stable_name(model)
    return None if name is None else "|".join([name, *map(repr, statics)])


for _name, _model in MODELS.items():
    name_stably(_model, f"builtin:{_name}")


def get_model(model: str | Model) -> Model:
    """Return ``model`` itself or the registered model of that name.

    >>> get_model("alpha_n").params
    ('c', 'beta', 'n_b')
    """
    if isinstance(model, Model):
        return model
    if model not in MODELS:
        raise ValueError(f"get_model: model must be one of {sorted(MODELS)}, got {model!r}")
    return MODELS[model]


def alpha_curve(model: str | Model, theta, n):
    """The local exponent alpha(n) of ``S = c n^(-alpha(n))`` for natural parameters ``theta``.

    ``powerlaw``: constant alpha; ``alpha_n``: :func:`tokenscale_sim.theory.closed_forms.alpha`
    (both limits of ``n_b`` included); ``broken``: ``-ln(S(n)/S(1)) / ln n`` with its n = 1 limit,
    the derivative. ``theta`` (..., p) broadcasts against ``n`` (m,) -> (..., m).

    >>> import numpy as np
    >>> np.round(np.asarray(alpha_curve("alpha_n", np.array([1.0, 1.0, 2.0]), np.array([2.46]))), 3)
    array([-0.72])
    """
    m = get_model(model)
    theta = jnp.asarray(theta)
    n = jnp.asarray(n, dtype=theta.dtype)
    if m.name == "powerlaw":
        return jnp.broadcast_to(theta[..., 1:2], theta.shape[:-1] + n.shape)
    if m.name == "alpha_n":
        return theory.alpha(n, theta[..., 1:2], theta[..., 2:3])
    if m.name == "broken":
        if theta.ndim != 1:
            raise ValueError(
                f"alpha_curve: broken takes one theta of shape (5,), got {theta.shape}"
            )
        u = m.unconstrained(theta)
        near_one = jnp.abs(n - 1) < 1e-6
        n_safe = jnp.where(near_one, 2.0, n)
        one = jnp.ones((1,), dtype=n.dtype)
        ratio = -(m.log_predict(u, n_safe) - m.log_predict(u, one)) / jnp.log(n_safe)
        return jnp.where(near_one, _broken_slope(theta, one), ratio)
    raise ValueError(f"alpha_curve: no alpha(n) for model {m.name!r}")


def _broken_slope(theta, n):
    """-d ln S / d ln n of the broken power law (the local exponent)."""
    weight = 1 / (1 + jnp.exp(-(jnp.log(n) - jnp.log(theta[3])) / theta[4]))
    return theta[1] + (theta[2] - theta[1]) * weight
