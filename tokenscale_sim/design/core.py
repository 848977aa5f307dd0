r"""Truths, designs and noise models of a design study, and the synthetic experiments they give.

A *truth* is a law and its natural parameters (``Truth("alpha_n", (c, beta, n_b))``, any
:class:`~tokenscale_sim.fit.laws.models.Model`); a *design* is the token counts measured and the
number of benchmark questions at each; a *noise model* says how a measured score scatters around the
truth ``S(n)``:

- ``binomial`` (the realistic default for accuracy benchmarks): the accuracy over ``N`` questions,
  ``k ~ Binomial(N, p)``, ``p = S(n) / scale``. Scores are in **percent** by default
  (``scale = 100``; ``scale = 1`` for fractions). A count of 0 or ``N`` is moved half a question
  inwards (``k in [1/2, N - 1/2]``, the usual continuity correction) so that ``ln S`` and its
  variance stay finite. By the delta method ``Var(ln S_hat) = (1 - p) / (N p)``.
- ``lognormal``: ``ln S_hat = ln S + sigma z``, ``z ~ N(0, 1)``;
  :func:`noise_from_residuals` sets ``sigma`` from a fitted curve's own residuals.

Everything random takes the key first and is vmapped over experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from tokenscale_sim.fit import Model, get_model
from tokenscale_sim.runtime.validation import as_key, check_count, check_real

NOISE_KINDS = ("binomial", "lognormal")
"""Noise models of :class:`Noise`."""

PAPER_N = (1, 8, 16, 32, 64, 128, 256, 384, 512, 768)
"""The paper's ten token counts (fused vision tokens)."""


@dataclass(frozen=True)
class Truth:
    """A hypothesised law ``model`` with natural parameters ``params`` (e.g. (c, beta, n_b)).

    >>> Truth("alpha_n", (40.0, 0.2, 16.0)).log_score(np.array([1.0]))
    array([3.68887945])
    """

    model: str | Model
    params: tuple[float, ...]

    def __post_init__(self):
        m = get_model(self.model)
        if isinstance(self.params, str | bytes) or not hasattr(self.params, "__len__"):
            raise TypeError(f"Truth: params must be a tuple of numbers, got {self.params!r}")
        if len(self.params) != m.n_params:
            raise ValueError(
                f"Truth: {m.name} takes {m.n_params} parameters {m.params}, got {self.params}"
            )
        values = tuple(check_real("Truth", f"{m.name} parameter {name}", v)
                       for name, v in zip(m.params, self.params, strict=True))  # fmt: skip
        object.__setattr__(self, "params", values)
        for name, value, positive in zip(m.params, self.params, m.positive, strict=False):
            if positive and (value < 0 or (value == 0 and name != "n_b")):
                bound = ">= 0" if name == "n_b" else "> 0"
                raise ValueError(f"Truth: {m.name} needs {name} {bound}, got {value:g}")

    @property
    def law(self) -> Model:
        """The :class:`~tokenscale_sim.fit.laws.models.Model` of the truth."""
        return get_model(self.model)

    def value(self, name: str) -> float:
        """The true value of parameter ``name``, NaN when the law has no such parameter."""
        params = self.law.params
        return float(self.params[params.index(name)]) if name in params else float("nan")

    def log_score(self, n) -> np.ndarray:
        """``ln S(n)`` at token counts ``n`` (K,) -> (K,) (NumPy, float64)."""
        m = self.law
        u = m.unconstrained(jnp.asarray(self.params, dtype=float))
        return np.asarray(m.log_predict(u, jnp.asarray(n, dtype=float)))


@dataclass(frozen=True)
class Design:
    """Token counts ``n`` (K,) and benchmark questions per point ``questions`` (K,).

    ``questions`` matters for binomial noise only. ``label`` names the design in tables.

    >>> Design.equal((1, 8, 64, 512), 4000).questions
    (1000, 1000, 1000, 1000)
    """

    n: tuple[float, ...]
    questions: tuple[int, ...]
    label: str = ""

    def __post_init__(self):
        for name in ("n", "questions"):
            if isinstance(getattr(self, name), str | bytes) or not hasattr(
                getattr(self, name), "__len__"
            ):
                raise TypeError(f"Design: {name} must be a tuple, got {getattr(self, name)!r}")
        n = np.asarray([check_real("Design", "n", x) for x in self.n], float)
        questions = [check_count("Design", "questions", q) for q in self.questions]
        if n.ndim != 1 or n.size < 4:
            raise ValueError(f"Design: needs at least 4 token counts, got {self.n}")
        if not np.all(n >= 1) or np.unique(n).size < 3:
            raise ValueError(f"Design: token counts must be >= 1 with >= 3 distinct, got {self.n}")
        if len(questions) != n.size:
            raise ValueError(
                f"Design: questions must be {n.size} integers >= 1, got {self.questions}"
            )

    @classmethod
    def equal(cls, n, total_questions: int, label: str = "") -> Design:
        """``n`` with ``total_questions`` split equally (rounded down) over its points."""
        n = tuple(float(x) for x in n)
        each = int(total_questions) // len(n)
        return cls(n, (each,) * len(n), label)

    @property
    def total_questions(self) -> int:
        """Questions summed over the design points."""
        return int(sum(self.questions))


@dataclass(frozen=True)
class Noise:
    """How a measured score scatters around ``S(n)`` (see the module docstring).

    Attributes:
        kind: one of :data:`NOISE_KINDS`.
        sigma: ``lognormal``: standard deviation of ``ln S``.
        scale: ``binomial``: the score of a perfect result (100: percent, 1: fraction).
    """

    kind: str = "binomial"
    sigma: float = 0.0
    scale: float = 100.0

    def __post_init__(self):
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"Noise: kind must be one of {NOISE_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "sigma", check_real("Noise", "sigma", self.sigma, 0))
        object.__setattr__(self, "scale", check_real("Noise", "scale", self.scale, 0,
                                                     open_lo=True))  # fmt: skip
        if self.kind == "lognormal" and not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"Noise: lognormal needs sigma > 0, got {self.sigma}")
        if not self.scale > 0:
            raise ValueError(f"Noise: scale must be > 0, got {self.scale}")


def check_setting(truth: Truth, design: Design, noise: Noise) -> np.ndarray:
    """The truth's ``ln S`` at the design points; binomial scores must lie in (0, scale)."""
    log_s = truth.log_score(design.n)
    if not np.all(np.isfinite(log_s)):
        bad = ", ".join(f"{x:g}" for x in np.asarray(design.n)[~np.isfinite(log_s)])
        raise ValueError(f"design: the truth's ln S(n) is not finite at n = {bad}")
    if noise.kind == "binomial":
        p = np.exp(log_s) / noise.scale
        if not np.all(p < 1):
            raise ValueError(
                f"design: binomial noise needs S(n) < {noise.scale:g} (scale), got max "
                f"{np.max(p) * noise.scale:.4g} at the design's token counts; lower c or beta"
            )
        # fewer than one expected right (or wrong) answer: every draw is the clipped 0 (or N)
        counts = np.asarray(design.questions) * np.minimum(p, 1 - p)
        if not np.all(counts >= 1):
            j = int(np.argmin(counts))
            raise ValueError(
                f"design: binomial noise needs at least one expected right and one wrong answer "
                f"per point, got {counts[j]:.3g} at n = {design.n[j]:g} (S = "
                f"{p[j] * noise.scale:.6g}, {design.questions[j]} questions)"
                "; move c or add questions"
            )
    return log_s


def log_score_variance(log_s, questions, noise: Noise):
    """``Var(ln S_hat)`` per point: ``(1 - p) / (N p)`` (binomial, delta method) or ``sigma^2``.

    >>> float(log_score_variance(np.log(50.0), 1000, Noise()))
    0.001
    """
    log_s = jnp.asarray(log_s)
    if noise.kind == "lognormal":
        return jnp.full_like(log_s, noise.sigma**2)
    p = jnp.exp(log_s) / noise.scale
    return (1 - p) / (jnp.asarray(questions, log_s.dtype) * p)


def simulate_scores(key, log_s, questions, noise: Noise, m: int):
    """``m`` synthetic experiments: scores (m, K) drawn around ``exp(log_s)`` (K,).

    Binomial draws are continuity-corrected (``k in [1/2, N - 1/2]``, see the module docstring).
    """
    key = as_key("simulate_scores", key)
    log_s = jnp.asarray(log_s)
    if noise.kind == "lognormal":
        z = jax.random.normal(key, (m, log_s.shape[0]), dtype=log_s.dtype)
        return jnp.exp(log_s + noise.sigma * z)
    big_n = jnp.asarray(questions, log_s.dtype)
    p = jnp.exp(log_s) / noise.scale
    k = jax.random.binomial(key, big_n, p, shape=(m, log_s.shape[0]), dtype=log_s.dtype)
    return noise.scale * jnp.clip(k, 0.5, big_n - 0.5) / big_n


def noise_from_residuals(result, index: int = 0) -> Noise:
    """Log-normal noise with ``sigma`` the residual SD of fitted curve ``index`` of ``result``.

    ``sigma^2 = 2 loss m / (m - p)`` (the log loss is half the mean squared residual), i.e. RSS
    over its degrees of freedom. ``result`` is a log-loss :class:`~tokenscale_sim.fit.FitResult`.
    """
    if result.loss_name != "log":
        raise ValueError(f"noise_from_residuals: needs a log-loss fit, got {result.loss_name!r}")
    m = float(result.n_points[index])
    p = len(result.params)
    if m <= p:
        raise ValueError(f"noise_from_residuals: needs more than {p} points, got {m:g}")
    sigma = float(np.sqrt(2.0 * float(result.loss[index]) * m / (m - p)))
    return Noise("lognormal", sigma=sigma)


def paper_design(total_questions: int = 30_000) -> Design:
    """The paper's ten token counts (:data:`PAPER_N`) with the questions split equally."""
    return Design.equal(PAPER_N, total_questions, "paper")


def log_spaced(k: int, n_min: float, n_max: float, total_questions: int) -> Design:
    """``k`` token counts log-spaced from ``n_min`` to ``n_max`` (rounded to integers; equal split).

    >>> log_spaced(5, 1, 256, 5000).n
    (1.0, 4.0, 16.0, 64.0, 256.0)
    """
    k = check_count("log_spaced", "k", k)
    n_min = check_real("log_spaced", "n_min", n_min, 1)
    n_max = check_real("log_spaced", "n_max", n_max, n_min)
    total_questions = check_count("log_spaced", "total_questions", total_questions)
    n = np.unique(np.round(np.geomspace(n_min, n_max, k)))
    return Design.equal(n, total_questions, f"log-spaced {k} in [{n_min:g}, {n_max:g}]")
