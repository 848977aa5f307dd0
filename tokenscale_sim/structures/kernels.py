"""Position kernels K (n x n, unit diagonal) of the separable correlation terms C (x) K.

Each kernel gives its dense block for small n and, for every n <= N at once and without an
N x N matrix where its structure allows, the prefix sums ``s(n) = 1' K[:n,:n] 1`` and traces
``t(n) = tr K[:n,:n]`` that make the theory exact (see :mod:`tokenscale_sim.structures.terms`).
Stationary kernels (``K_ij = r(|i - j|)``) expose their lag profile ``r``:

    s(n) - s(n - 1) = r(0) + 2 sum_{k=1}^{n-1} r(k)

Parameters are validated on construction (``ValueError`` naming the kernel, the parameter, the
allowed range and the value given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def param_error(func: str, param: str, expected: str, got: object) -> ValueError:
    """The package's validation error: ``"func: param must be expected, got value"``."""
    return ValueError(f"{func}: {param} must be {expected}, got {got!r}")


def check_real(
    func: str, param: str, value: float, lo: float, hi: float, *, open_lo: bool = False
) -> float:
    """Return ``float(value)`` if finite and in [lo, hi] (or (lo, hi]), else raise."""
    if isinstance(value, str | bytes):  # float("1.5") would pass, and the text be kept
        raise param_error(func, param, "a real number", value)
    try:
        x = float(value)
    except OverflowError:  # an int past float range
        raise param_error(func, param, "finite", "an integer too large for a float") from None
    except (TypeError, ValueError):
        raise param_error(func, param, "a real number", value) from None
    inside = (x > lo if open_lo else x >= lo) and x <= hi
    if not (math.isfinite(x) and inside):
        interval = f"{'(' if open_lo else '['}{lo}, {hi}]"
        raise param_error(func, param, f"finite and in {interval}", value)
    return x


def check_count(func: str, param: str, value: object) -> int:
    """Return ``int(value)`` for an integer >= 1 (not a bool), else raise :func:`param_error`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise param_error(func, param, "an integer >= 1", value)
    return int(value)


def check_n(func: str, n_max: object) -> int:
    """Validate a token count ``n_max``: an integer >= 1."""
    return check_count(func, "n_max", n_max)


# --------------------------------------------------------------------------------- kernels


class Kernel:
    """An n x n position kernel. Subclasses give ``dense`` and ``prefix_sums``."""

    stationary = False
    max_n: int | None = None  # fixed size of dense kernels

    def dense(self, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def prefix_sums(self, n_max: int) -> np.ndarray:
        """``s[n-1] = 1' K[:n,:n] 1`` for n = 1..n_max, shape (n_max,)."""
        r = self.lags(n_max)
        increments = r[0] + 2 * np.concatenate([[0.0], np.cumsum(r[1:])])
        return np.cumsum(increments)

    def trace_cumsum(self, n_max: int) -> np.ndarray:
        """``tr K[:n,:n]`` for n = 1..n_max (unit diagonal: n)."""
        return np.arange(1, n_max + 1, dtype=float)

    def lags(self, n_max: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} is not stationary")


class _Stationary(Kernel):
    """Toeplitz kernel K_ij = r(|i - j|)."""

    stationary = True

    def dense(self, n: int) -> np.ndarray:
        r = self.lags(n)
        idx = np.arange(n)
        return r[np.abs(idx[:, None] - idx[None, :])]


@dataclass(frozen=True)
class Identity(_Stationary):
    """K = I: positions independent."""

    def lags(self, n_max: int) -> np.ndarray:
        return np.eye(1, n_max)[0]


@dataclass(frozen=True)
class Ones(_Stationary):
    """K = 1 1': one component shared by every position."""

    def lags(self, n_max: int) -> np.ndarray:
        return np.ones(n_max)


@dataclass(frozen=True)
class Exponential(_Stationary):
    """K_ij = exp(-|i - j| / length): AR(1) along the sequence, phi = exp(-1/length)."""

    length: float

    def __post_init__(self):
        check_real("Exponential", "length", self.length, 0.0, math.inf, open_lo=True)

    def lags(self, n_max: int) -> np.ndarray:
        return np.exp(-np.arange(n_max) / self.length)


@dataclass(frozen=True)
class PowerLaw(_Stationary):
    """K_ij = (1 + |i - j|)^(-gamma); positive definite for gamma > 0 (Polya: convex, decays)."""

    gamma: float

    def __post_init__(self):
        check_real("PowerLaw", "gamma", self.gamma, 0.0, math.inf, open_lo=True)

    def lags(self, n_max: int) -> np.ndarray:
        return (1.0 + np.arange(n_max)) ** (-self.gamma)


@dataclass(frozen=True)
class Grid2D(Kernel):
    """Patches on a grid ``width`` columns wide, in raster order:
    K = exp(-|dr|/length) exp(-|dc|/length) (the Kronecker product of two AR(1) kernels).

    ``width=None`` sizes the grid by the largest n asked for: ``ceil(sqrt(n_max))`` columns
    (a sqrt(n) x sqrt(n) image).
    """

    length: float
    width: int | None = None

    def __post_init__(self):
        check_real("Grid2D", "length", self.length, 0.0, math.inf, open_lo=True)
        if self.width is not None and (
            isinstance(self.width, bool)
            or not isinstance(self.width, int)
            or not 1 <= self.width <= 2**31  # positions are int64: rows and columns fit
        ):
            raise param_error(
                "Grid2D", "width", "None or an integer >= 1 (at most 2**31)", self.width
            )

    def grid_width(self, n_max: int) -> int:
        return self.width if self.width is not None else math.isqrt(n_max - 1) + 1

    def dense(self, n: int) -> np.ndarray:
        w = self.grid_width(n)
        p = np.arange(n)
        dr = np.abs(p[:, None] // w - p[None, :] // w)
        dc = np.abs(p[:, None] % w - p[None, :] % w)
        return np.exp(-(dr + dc) / self.length)

    def prefix_sums(self, n_max: int) -> np.ndarray:
        w = self.grid_width(n_max)
        a = math.exp(-1.0 / self.length)
        p = np.arange(n_max)
        row, col = p // w, p % w
        c = np.arange(min(w, n_max))  # the columns in use; a width past n_max is one row
        # sum_{c' < w} a^|c - c'| in closed form (no w x w matrix: w may be huge)
        col_sums = ((1 - a ** (c + 1)) + a * (1 - a ** (w - 1 - c))) / (1 - a)
        earlier_rows = a * (1 - a**row) / (1 - a) * col_sums[col]  # full rows above
        same_row = a * (1 - a**col) / (1 - a)  # positions to the left
        return np.cumsum(1.0 + 2 * (earlier_rows + same_row))


@dataclass(frozen=True, eq=False)
class DenseKernel(Kernel):
    """A user-given n_max x n_max block (need not be symmetric: cross-branch blocks).

    ``source`` is the .npy file it was read from (absolute), if any: a structure written as plain
    data (``Structure.describe``) names the file instead of listing the entries.
    """

    matrix: np.ndarray = field(repr=False)
    source: str | None = None

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=float)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise param_error("DenseKernel", "matrix", "a square 2-D array", f"shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise param_error("DenseKernel", "matrix", "finite", "non-finite entries")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "max_n", m.shape[0])

    def _check(self, n: int) -> None:
        if n > self.matrix.shape[0]:
            raise param_error("DenseKernel", "n", f"<= {self.matrix.shape[0]} (the matrix size)", n)

    def dense(self, n: int) -> np.ndarray:
        self._check(n)
        return self.matrix[:n, :n]

    def prefix_sums(self, n_max: int) -> np.ndarray:
        self._check(n_max)
        return np.diagonal(self.matrix[:n_max, :n_max].cumsum(0).cumsum(1)).copy()

    def trace_cumsum(self, n_max: int) -> np.ndarray:
        self._check(n_max)
        return np.cumsum(np.diagonal(self.matrix)[:n_max])
