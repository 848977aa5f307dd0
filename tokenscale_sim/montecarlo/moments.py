"""Streaming moments: count, mean and sum of squared deviations, merged with Chan et al.'s
parallel update in float64. One primitive for the Monte Carlo (replicates in blocks) and for
measurements of real hidden states (pairs in chunks, with masks for undefined values).

    merged mean = mean_x + delta * n_y / n,    M2 = M2_x + M2_y + delta^2 n_x n_y / n

with ``delta = mean_y - mean_x`` and ``n = n_x + n_y``. Counts may be scalars or arrays
(per field and n); empty parts (count 0) merge as the identity.
"""

from __future__ import annotations

import statistics
from typing import NamedTuple

import numpy as np


class RunningMoments(NamedTuple):
    """count (scalar or array), mean and m2 (arrays of the statistic's shape), float64."""

    count: np.ndarray | int
    mean: np.ndarray
    m2: np.ndarray


def block_moments(
    values: np.ndarray, valid: np.ndarray | None = None, axis: int = 0
) -> RunningMoments:
    """Moments of ``values`` over ``axis`` (only where ``valid``, if given).

    >>> m = block_moments(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> m.count, m.mean.tolist(), m.m2.tolist()
    (2, [2.0, 4.0], [2.0, 8.0])
    """
    values = np.asarray(values, dtype=np.float64)
    if valid is None:
        mean = values.mean(axis=axis)
        m2 = ((values - np.expand_dims(mean, axis)) ** 2).sum(axis=axis)
        return RunningMoments(values.shape[axis], mean, m2)
    count = valid.sum(axis=axis)
    mean = np.where(valid, values, 0.0).sum(axis=axis) / np.maximum(count, 1)
    dev = np.where(valid, values - np.expand_dims(mean, axis), 0.0)
    return RunningMoments(count, mean, (dev**2).sum(axis=axis))


def merge(x: RunningMoments, y: RunningMoments) -> RunningMoments:
    """Chan et al.'s parallel merge of two sets of moments (order matters only in rounding).

    >>> a = block_moments(np.array([1.0, 2.0])); b = block_moments(np.array([3.0, 6.0]))
    >>> whole = merge(a, b)
    >>> whole.count, float(whole.mean), float(whole.m2)
    (4, 3.0, 14.0)
    """
    count = x.count + y.count
    safe = np.maximum(count, 1)
    delta = y.mean - x.mean
    mean = x.mean + delta * y.count / safe
    m2 = x.m2 + y.m2 + delta**2 * x.count * y.count / safe
    return RunningMoments(count, mean, m2)


class Moments(NamedTuple):
    """Summary of streamed moments of one statistic, each of the statistic's shape, float64.

    ``std`` has ddof = 1 (NaN with fewer than two values), ``se = std / sqrt(count)`` and the
    band is ``mean -/+ z se`` with ``z`` the normal quantile of the confidence level. NaN where
    nothing was counted (e.g. pairwise psi's at n = 1).
    """

    mean: np.ndarray
    std: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def summarize(moments: RunningMoments, confidence: float = 0.95) -> Moments:
    """Mean, std, standard error and normal-approximation band of streamed ``moments``.

    The one summary of the Monte Carlo (:mod:`tokenscale_sim.montecarlo.simulation`) and of
    measured hidden states (:mod:`tokenscale_sim.hidden.measure`). ``count`` may be a scalar or
    an array broadcasting against ``mean``.

    >>> s = summarize(block_moments(np.array([1.0, 2.0, 3.0, 6.0])))
    >>> float(s.mean), round(float(s.std), 6), round(float(s.se), 6)
    (3.0, 2.160247, 1.080123)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"summarize: confidence must be in (0, 1), got {confidence}")
    count = np.asarray(moments.count, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, moments.mean, np.nan)
        std = np.sqrt(np.where(count > 1, moments.m2 / np.maximum(count - 1, 1), np.nan))
        se = std / np.sqrt(count)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    return Moments(mean, std, se, mean - z * se, mean + z * se)
