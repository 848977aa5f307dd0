"""Token correlation structures: ``Sigma = sum_r C_r (x) K_r``, exact and without sampling.

A structure is a sum of separable terms. ``C_r`` (2 x 2) says how branches A and B co-vary,
``K_r`` (n x n) how token positions co-vary. The token order of the dense ``Sigma`` is
``[A_1 .. A_n, B_1 .. B_n]``; Gaussian tokens have iid feature columns ``~ N(0, Sigma / d)``.

Everything the theory needs is a prefix sum. Writing ``s_r(n) = 1' K_r[:n,:n] 1`` and
``t_r(n) = tr K_r[:n,:n]``:

    v_n          = sum_r (C00 + C11 - C01 - C10) s_r(n)            (= E[D(n)^2] = 2 Upsilon(n))
    psi_eq(n)    = sum_r (C01 + C10) t_r(n) / (2 n)
    psi_AA(n)    = sum_r C00 (s_r(n) - t_r(n)) / (n (n - 1))        (psi_BB with C11)
    psi_AB(n)    = sum_r (C01 + C10) (s_r(n) - t_r(n)) / (2 n (n - 1))

Stationary kernels give ``s(n)`` for every n in O(N) from their lag profile ``r(k)``:
``s(n) - s(n-1) = r(0) + 2 sum_{k=1}^{n-1} r(k)``; the 2-D grid kernel has its own O(N)
recursion; dense kernels use a 2-D cumulative sum. No N x N matrix is built for structured
kernels. The pairwise psi's are undefined at n = 1 (no pairs i != j) and are NaN there: missing,
by documented convention.

Parameters are validated in NumPy (``ValueError`` naming the function, the parameter, the allowed
range and the value given).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tokenscale_sim.structures.kernels import (
    DenseKernel,
    Exponential,
    Grid2D,
    Identity,
    Kernel,
    Ones,
    PowerLaw,
    check_count,
    check_n,
    check_real,
    param_error,
)
from tokenscale_sim.theory import closed_forms as theory

__all__ = [
    "STRUCTURES",
    "DenseKernel",
    "Exponential",
    "Grid2D",
    "Identity",
    "Kernel",
    "Ones",
    "PowerLaw",
    "PsiCurves",
    "Structure",
    "Term",
    "check_count",
    "check_n",
    "constant_psi",
    "decaying",
    "dense",
    "exchangeable",
    "from_name",
    "patch_grid",
    "psi_from_sums",
    "shared",
]

_PSD_TOL = 1e-10
_DENSE_CHECK_MAX = 4096  # largest 2n for an eigenvalue PSD check of a non-separable structure


# ------------------------------------------------------------------------------ structures


class PsiCurves(NamedTuple):
    """Population similarities for n = 1..n_max, each shape (n_max,); pairwise ones NaN at n=1."""

    psi_eq: np.ndarray
    psi_aa: np.ndarray
    psi_bb: np.ndarray
    psi_ab: np.ndarray
    psi_aabb: np.ndarray
    delta: np.ndarray


def psi_from_sums(sums: np.ndarray, traces: np.ndarray) -> PsiCurves:
    """Psi curves from block prefix sums.

    Args:
        sums: (2, 2, n_max), ``sums[a, b, n-1] = 1' S_ab[:n,:n] 1``.
        traces: (2, 2, n_max), ``tr S_ab[:n,:n]``.
    """
    n = np.arange(1, sums.shape[-1] + 1, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = np.where(n > 1, n * (n - 1), np.nan)
        off = sums - traces
        psi_aa = off[0, 0] / pairs
        psi_bb = off[1, 1] / pairs
        psi_ab = (off[0, 1] + off[1, 0]) / (2 * pairs)
    psi_eq = (traces[0, 1] + traces[1, 0]) / (2 * n)
    psi_aabb = (psi_aa + psi_bb) / 2
    return PsiCurves(psi_eq, psi_aa, psi_bb, psi_ab, psi_aabb, psi_aabb - psi_ab)


def constant_psi(
    n_max: int, psi_eq: float, psi_aa: float, psi_bb: float | None = None, psi_ab: float = 0.0
) -> PsiCurves:
    """Constant psi curves (pairwise ones NaN at n = 1) from given values, each checked to lie in
    [-1, 1]. Unlike :func:`exchangeable` they need not form a PSD Gaussian structure: measured
    psi's of real models can have Delta < 0, which no exchangeable Gaussian structure has.
    """
    func = "constant_psi"
    n_max = check_n(func, n_max)
    e, a, c = (
        check_real(func, k, v, -1.0, 1.0)
        for k, v in (("psi_eq", psi_eq), ("psi_aa", psi_aa), ("psi_ab", psi_ab))
    )
    b = a if psi_bb is None else check_real(func, "psi_bb", psi_bb, -1.0, 1.0)
    pairwise = np.where(np.arange(n_max) > 0, 1.0, np.nan)
    return PsiCurves(
        np.full(n_max, e),
        a * pairwise,
        b * pairwise,
        c * pairwise,
        (a + b) / 2 * pairwise,
        ((a + b) / 2 - c) * pairwise,
    )


def _block_prefix_sums(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums, traces) of every 2 x 2 block of a dense (2n, 2n) matrix, each (2, 2, n)."""
    n = sigma.shape[0] // 2
    blocks = sigma.reshape(2, n, 2, n).transpose(0, 2, 1, 3)
    sums = np.diagonal(blocks.cumsum(2).cumsum(3), axis1=2, axis2=3)
    traces = np.diagonal(blocks, axis1=2, axis2=3).cumsum(-1)
    return sums, traces


def _mapped_cosines(values: np.ndarray, d: int) -> np.ndarray:
    """``theory.expected_cosine`` of every entry of ``values``, computed once per distinct value."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.asarray(theory.expected_cosine(distinct, float(d)))[inverse].reshape(values.shape)


def _dense_expected_cosine_psi(sigma: np.ndarray, d: int) -> PsiCurves:
    """Expected sampled-cosine psi's from the dense (2n, 2n) Sigma: O(n^2) time and memory."""
    return psi_from_sums(*_block_prefix_sums(_mapped_cosines(sigma, d)))


def _stationary_expected_cosine_psi(terms: tuple[Term, ...], n_max: int, d: int) -> PsiCurves:
    """The same for terms with stationary kernels, in O(n_max): block (a, b) of Sigma is the
    symmetric Toeplitz matrix of ``rho_ab(k) = sum_r C_r[a, b] r_r(k)``, so its mapped entries are
    ``m_ab(k) = E cos`` at ``rho_ab(k)``, with ``1' M[:n,:n] 1 - 1' M[:n-1,:n-1] 1 =
    m(0) + 2 sum_{k=1}^{n-1} m(k)`` and ``tr M[:n,:n] = n m(0)``."""
    rho = sum(
        (t.c[:, :, None] * np.asarray(t.kernel.lags(n_max), dtype=float) for t in terms),
        np.zeros((2, 2, n_max)),
    )  # summed in the order of Structure.sigma: the same entries, bit for bit
    m = _mapped_cosines(rho, d)
    tail = np.cumsum(m[..., 1:], axis=-1)
    increments = m[..., :1] + 2 * np.concatenate([np.zeros((2, 2, 1)), tail], axis=-1)
    traces = m[..., :1] * np.arange(1, n_max + 1, dtype=float)
    return psi_from_sums(np.cumsum(increments, axis=-1), traces)


@dataclass(frozen=True)
class Term:
    """One separable term ``C (x) K``; ``branch`` is C as ((C_AA, C_AB), (C_BA, C_BB))."""

    branch: tuple[tuple[float, float], tuple[float, float]]
    kernel: Kernel

    @property
    def c(self) -> np.ndarray:
        return np.asarray(self.branch, dtype=float)

    def scaled(self, weight: float) -> Term:
        """The term ``weight * C (x) K``."""
        (aa, ab), (ba, bb) = self.branch
        return Term(((weight * aa, weight * ab), (weight * ba, weight * bb)), self.kernel)


@dataclass(frozen=True)
class Structure:
    """A token correlation ``Sigma = sum_r C_r (x) K_r`` (see the module docstring).

    >>> s = exchangeable(psi_eq=0.5, psi_aa=0.3, psi_ab=0.2)
    >>> [round(float(x), 10) for x in s.v(3)]  # 2 Upsilon(n)
    [1.0, 2.4, 4.2]
    >>> s.sigma(2).shape
    (4, 4)
    """

    terms: tuple[Term, ...]
    name: str = "custom"
    params: tuple[tuple[str, float | int | None], ...] = ()

    def __add__(self, other: Structure) -> Structure:
        if not isinstance(other, Structure):
            return NotImplemented
        return Structure(self.terms + other.terms, f"{self.name}+{other.name}")

    def __rmul__(self, weight: float) -> Structure:
        w = check_real("Structure.__rmul__", "weight", weight, 0.0, math.inf)
        return Structure(tuple(t.scaled(w) for t in self.terms), f"{w:g}*{self.name}")

    def describe(self) -> dict[str, object]:
        """The structure as plain data (for JSON): name, constructor parameters and terms.

        The result is itself a structure file (:func:`tokenscale_sim.structures.files.
        structure_from_data` reads it back): each term's ``branch`` and ``kernel`` (``kind`` and
        parameters; a dense kernel by the ``path`` of its .npy file or, built in Python, its
        ``matrix``).

        >>> exchangeable(0.5, 0.3, psi_ab=0.2).describe()["terms"][0]["kernel"]
        {'kind': 'Ones'}
        """
        terms = []
        for t in self.terms:
            kernel: dict[str, object] = {"kind": type(t.kernel).__name__}
            if isinstance(t.kernel, DenseKernel):
                kernel["size"] = int(np.asarray(t.kernel.matrix).shape[0])
                if t.kernel.source is not None:
                    kernel["path"] = t.kernel.source
                else:  # no file to name: the entries themselves (a readable structure file)
                    kernel["matrix"] = np.asarray(t.kernel.matrix).tolist()
            else:
                kernel.update(
                    (k, v) for k, v in vars(t.kernel).items() if isinstance(v, int | float | None)
                )
            terms.append({"branch": [list(map(float, row)) for row in t.branch], "kernel": kernel})
        return {"name": self.name, "params": dict(self.params), "terms": terms}

    @property
    def max_n(self) -> int | None:
        sizes = [t.kernel.max_n for t in self.terms if t.kernel.max_n is not None]
        return min(sizes) if sizes else None

    @property
    def separable_psd(self) -> bool:
        """True when every C_r is symmetric PSD (kernels are PSD): sample term by term."""
        return all(
            np.allclose(t.c, t.c.T)
            and np.linalg.eigvalsh(t.c).min() >= -_PSD_TOL
            and not isinstance(t.kernel, DenseKernel)
            for t in self.terms
        )

    def _check_n(self, func: str, n_max: int) -> int:
        n_max = check_n(f"Structure.{func}", n_max)
        if self.max_n is not None and n_max > self.max_n:
            raise param_error(
                f"Structure.{func}", "n_max", f"<= {self.max_n} for {self.name}", n_max
            )
        return n_max

    def sigma(self, n: int) -> np.ndarray:
        """The dense (2n, 2n) correlation, order [A_1..A_n, B_1..B_n]. For small n only."""
        n = self._check_n("sigma", n)
        return sum((np.kron(t.c, t.kernel.dense(n)) for t in self.terms), np.zeros((2 * n,) * 2))

    def _sums(self, n_max: int) -> tuple[np.ndarray, np.ndarray]:
        sums = sum(t.c[:, :, None] * t.kernel.prefix_sums(n_max) for t in self.terms)
        traces = sum(t.c[:, :, None] * t.kernel.trace_cumsum(n_max) for t in self.terms)
        return np.asarray(sums), np.asarray(traces)

    def v(self, n_max: int) -> np.ndarray:
        """Exact v_n = E[D(n)^2] = 1'(S_AA + S_BB - S_AB - S_BA)[:n,:n]1, n = 1..n_max."""
        sums, _ = self._sums(self._check_n("v", n_max))
        return sums[0, 0] + sums[1, 1] - sums[0, 1] - sums[1, 0]

    def upsilon(self, n_max: int) -> np.ndarray:
        """Exact Upsilon(n) = v_n / 2 with the population psi's, n = 1..n_max."""
        return self.v(n_max) / 2

    def psi(self, n_max: int) -> PsiCurves:
        """Exact population psi curves (the entries of Sigma averaged), n = 1..n_max."""
        return psi_from_sums(*self._sums(self._check_n("psi", n_max)))

    def gaussian_mean_divergence(self, n_max: int, d: int) -> np.ndarray:
        """Exact E[D(n)] for Gaussian tokens of width d, n = 1..n_max."""
        return np.asarray(theory.gaussian_mean_divergence(self.v(n_max), check_n("Structure", d)))

    @property
    def stationary(self) -> bool:
        """True when every term's kernel is stationary (Toeplitz, ``kernel.lags``): then every
        block of Sigma depends on the lag |i - j| only (and :meth:`expected_cosine_psi` is O(n))."""
        return bool(self.terms) and all(getattr(t.kernel, "stationary", False) for t in self.terms)

    def expected_cosine_psi(self, n_max: int, d: int) -> PsiCurves:
        """Exact expectations of the *sampled* cosine psi's for Gaussian tokens of width d.

        Cosines of Gaussian vectors are biased towards 0 by about rho (1 - rho^2)/(2d); this
        maps every entry of Sigma through :func:`tokenscale_sim.theory.closed_forms.expected_cosine`
        (over the distinct entries only). Stationary structures (:attr:`stationary`: every block
        ``S_ab[i, j] = rho_ab(|i - j|) = sum_r C_r[a, b] r_r(|i - j|)``) map the ``4 n_max`` lag
        correlations and sum them with the lag identity ``s(n) - s(n-1) = m(0) + 2 sum_{k<n} m(k)``
        (O(n_max) time and memory); others build the dense Sigma (O(n_max^2)).

        >>> s = exchangeable(0.5, 0.3, psi_ab=0.2)
        >>> round(float(s.expected_cosine_psi(100_000, 64).psi_aa[-1]), 3)  # O(n): stationary
        0.298
        """
        n_max = self._check_n("expected_cosine_psi", n_max)
        d = check_n("Structure", d)
        if self.stationary:
            return _stationary_expected_cosine_psi(self.terms, n_max, d)
        return _dense_expected_cosine_psi(self.sigma(n_max), d)

    def validate(self, n_max: int) -> Structure:
        """Raise ``ValueError`` unless Sigma is a correlation matrix (unit diagonal, PSD, finite)
        for every n <= n_max; returns ``self`` for chaining."""
        n_max = self._check_n("validate", n_max)
        if not self.terms:
            raise param_error("Structure.validate", "terms", "at least one term", "none")
        _, traces = self._sums(n_max)
        diag = np.diff(traces, axis=-1, prepend=0.0)
        for a, label in ((0, "A"), (1, "B")):
            bad = np.abs(diag[a, a] - 1) > 1e-9
            if bad.any():
                i = int(np.argmax(bad))
                raise param_error(
                    f"{self.name}.validate",
                    f"diagonal of Sigma ({label} tokens)",
                    "1 (a correlation)",
                    f"{diag[a, a, i]:.6g} at position {i + 1}",
                )
        if self.separable_psd:
            return self
        if 2 * n_max > _DENSE_CHECK_MAX:
            raise param_error(
                f"{self.name}.validate",
                "n_max",
                f"<= {_DENSE_CHECK_MAX // 2} to verify a non-separable structure is PSD",
                n_max,
            )
        low = np.linalg.eigvalsh(self.sigma(n_max)).min()
        if low < -_PSD_TOL * 2 * n_max:
            raise param_error(
                f"{self.name}.validate",
                "Sigma",
                "positive semi-definite",
                f"smallest eigenvalue {low:.3g}",
            )
        return self


# ---------------------------------------------------------------------------- constructors


def _psd2(func: str, label: str, m: np.ndarray) -> None:
    low = float(np.linalg.eigvalsh(m).min())
    if low < -_PSD_TOL:
        raise param_error(
            func, label, "positive semi-definite", f"{m.tolist()} (eigenvalue {low:.3g})"
        )


def exchangeable(
    psi_eq: float, psi_aa: float, psi_bb: float | None = None, psi_ab: float = 0.0
) -> Structure:
    """The paper's constant-psi case: every pair has the same similarity, exactly.

        Sigma = [[a, c], [c, b]] (x) J + [[1 - a, e - c], [e - c, 1 - b]] (x) I

    with a = psi_AA, b = psi_BB (default a), c = psi_AB, e = psi_eq. PSD for every n exactly
    when both 2 x 2 blocks are PSD. Then psi(n) is constant and n_b = (1 - e)/(a/2 + b/2 - c) - 1.

    >>> s = exchangeable(0.5, 0.3, psi_ab=0.2)
    >>> round(float(s.psi(4).delta[-1]), 12)
    0.1
    """
    func = "exchangeable"
    e = check_real(func, "psi_eq", psi_eq, -1.0, 1.0)
    a = check_real(func, "psi_aa", psi_aa, -1.0, 1.0)
    b = a if psi_bb is None else check_real(func, "psi_bb", psi_bb, -1.0, 1.0)
    c = check_real(func, "psi_ab", psi_ab, -1.0, 1.0)
    shared, own = np.array([[a, c], [c, b]]), np.array([[1 - a, e - c], [e - c, 1 - b]])
    _psd2(
        func,
        "[[psi_aa, psi_ab], [psi_ab, psi_bb]] (needs psi_aa, psi_bb >= 0, "
        "psi_ab^2 <= psi_aa psi_bb)",
        shared,
    )
    _psd2(
        func,
        "[[1 - psi_aa, psi_eq - psi_ab], [psi_eq - psi_ab, 1 - psi_bb]] (needs "
        "(psi_eq - psi_ab)^2 <= (1 - psi_aa)(1 - psi_bb))",
        own,
    )
    terms = (Term(((a, c), (c, b)), Ones()), Term(((1 - a, e - c), (e - c, 1 - b)), Identity()))
    return Structure(
        terms, "exchangeable", (("psi_eq", e), ("psi_aa", a), ("psi_bb", b), ("psi_ab", c))
    )


def _coupled(func: str, kernel: Kernel, coupling: float) -> tuple[Term, ...]:
    e = check_real(func, "coupling", coupling, -1.0, 1.0)
    return (Term(((1.0, e), (e, 1.0)), kernel),)


def decaying(length: float, coupling: float = 0.0, kernel: str = "exponential") -> Structure:
    """Correlation decaying along the sequence, coupled across branches:

        Sigma = [[1, e], [e, 1]] (x) K,   K_ij = exp(-|i-j|/length)  or  (1 + |i-j|)^(-length)

    (``kernel="powerlaw"`` reads ``length`` as the decay exponent gamma). psi_eq = e,
    psi_AB = e psi_AA, so Delta(n) = (1 - e) psi_AA(n) > 0 decays with n.
    """
    kernels: dict[str, Callable[[float], Kernel]] = {
        "exponential": Exponential,
        "powerlaw": PowerLaw,
    }
    if not isinstance(kernel, str) or kernel not in kernels:
        raise param_error("decaying", "kernel", f"one of {sorted(kernels)}", kernel)
    k = kernels[kernel](length)
    return Structure(
        _coupled("decaying", k, coupling),
        f"decaying-{kernel}",
        (("length", float(length)), ("coupling", float(coupling))),
    )


def patch_grid(length: float, coupling: float = 0.0, width: int | None = None) -> Structure:
    """Vision patches on a 2-D grid (raster order), ``[[1, e], [e, 1]] (x) Grid2D(length)``."""
    return Structure(
        _coupled("patch_grid", Grid2D(length, width), coupling),
        "patch-grid",
        (("length", float(length)), ("coupling", float(coupling)), ("width", width)),
    )


def shared(weight: float) -> Structure:
    """An image-independent component common to every token of both branches:
    ``weight * [[1, 1], [1, 1]] (x) J``. A partial term: add it to a structure of weight
    ``1 - weight``, e.g. ``0.8 * decaying(4.0) + shared(0.2)``. It raises every psi by
    ``weight`` and leaves v_n (hence D(n)) unchanged.
    """
    w = check_real("shared", "weight", weight, 0.0, 1.0)
    return Structure((Term(((w, w), (w, w)), Ones()),), f"shared({w:g})", (("weight", w),))


def dense(sigma: np.ndarray) -> Structure:
    """A user-given (2n, 2n) correlation matrix (order [A_1..A_n, B_1..B_n]); checked at once."""
    m = np.asarray(sigma, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] % 2:
        raise param_error("dense", "sigma", "a square (2n, 2n) matrix", f"shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise param_error("dense", "sigma", "finite", "non-finite entries")
    if not np.allclose(m, m.T, atol=1e-12):
        raise param_error("dense", "sigma", "symmetric", "an asymmetric matrix")
    n = m.shape[0] // 2

    def unit(a: int, b: int) -> tuple[tuple[float, float], tuple[float, float]]:
        return (
            (float(a == 0 and b == 0), float(a == 0 and b == 1)),
            (float(a == 1 and b == 0), float(a == 1 and b == 1)),
        )

    terms = tuple(
        Term(
            unit(a, b),
            DenseKernel(m[a * n : (a + 1) * n, b * n : (b + 1) * n]),
        )
        for a in range(2)
        for b in range(2)
    )
    return Structure(terms, "dense", (("n", n),)).validate(n)


STRUCTURES: dict[str, Callable[..., Structure]] = {
    "exchangeable": exchangeable,
    "decaying": decaying,
    "patch-grid": patch_grid,
}
"""Named constructors for the CLI (``--structure NAME``)."""


def from_name(name: str, **params) -> Structure:
    """Build a structure from its registry name and keyword parameters (the CLI's path)."""
    if name not in STRUCTURES:
        raise param_error("from_name", "name", f"one of {sorted(STRUCTURES)}", name)
    try:
        return STRUCTURES[name](**params)
    except TypeError as err:
        raise ValueError(f"from_name: bad parameters for {name!r}: {err}") from None
