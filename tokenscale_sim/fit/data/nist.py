r"""The NIST StRD nonlinear-regression problems shipped with the package (certification data).

Each problem of :data:`NIST_PROBLEMS` is read from NIST's own ``.dat`` file
(``tokenscale_sim/data/nist/``, public domain): the model ``y = f(x; b1..bk) + e`` (turned into a
law by :func:`~tokenscale_sim.fit.laws.expression.parse_law` after NIST's ``exp[...]`` brackets
become parentheses), the two starting points, the certified estimates, their standard deviations and
the certified residual sum of squares. Certified values are for ordinary least squares on y, i.e.
the ``"linear"`` loss with all parameters nonlinear (``linear=()``: every start is used as given).

The log relative error ``LRE = -log10(|got - certified| / |certified|)`` counts the correct
significant digits (:func:`lre`).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import NamedTuple

import numpy as np

from tokenscale_sim.fit.laws.expression import parse_law
from tokenscale_sim.fit.laws.models import Model

NIST_PROBLEMS = (
    "Misra1a",
    "Chwirut2",
    "Lanczos3",
    "Gauss1",
    "DanWood",
    "Misra1b",
    "Kirby2",
    "Hahn1",
    "Lanczos1",
    "Gauss3",
    "Misra1c",
    "ENSO",
    "MGH09",
    "Thurber",
    "BoxBOD",
    "Rat42",
)
"""The shipped problems, by NIST's difficulty (lower, average, higher)."""


class NistProblem(NamedTuple):
    """One NIST StRD problem.

    Attributes:
        name: NIST's name; ``expression``: the model in Python syntax (predictor ``x``);
        params: ``("b1", ..., "bp")``; ``x``, ``y``: data (m,); ``starts``: (2, p) NIST's
        Start 1 (far) and Start 2 (near); ``certified``, ``certified_se``: (p,);
        ``certified_rss``: residual sum of squares.
    """

    name: str
    expression: str
    params: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    starts: np.ndarray
    certified: np.ndarray
    certified_se: np.ndarray
    certified_rss: float

    def model(self, start: int | None = None) -> Model:
        """The law started from NIST's start ``start`` (1 or 2; None: both, grid rows 0 and 1),
        all parameters nonlinear."""
        if start not in (1, 2, None):
            raise ValueError(f"NistProblem.model: start must be 1 or 2, got {start!r}")
        rows = self.starts if start is None else self.starts[start - 1 : start]
        return parse_law(
            self.expression,
            predictor="x",
            params=self.params,
            linear=(),
            starts=rows,
            name=self.name if start is None else f"{self.name}/start{start}",
        )


def parse_nist(text: str, name: str = "nist") -> NistProblem:
    """Parse the text of a NIST StRD nonlinear-regression ``.dat`` file -> :class:`NistProblem`."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if re.match(r"^\s*y\s*=", ln)), None)
    if first is None:
        raise ValueError(f"parse_nist: no model line 'y = ...' in {name}")
    parts = []
    for ln in lines[first:]:
        parts.append(ln.strip())
        if re.search(r"\+\s*e\s*$", ln):
            break
    model = " ".join(parts)
    model = re.sub(r"\+\s*e\s*$", "", re.sub(r"^y\s*=", "", model)).strip()
    model = model.replace("[", "(").replace("]", ")")
    rows = [
        m.groups()
        for ln in lines
        if (m := re.match(r"^\s*(b\d+)\s*=\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", ln))
    ]
    if not rows:
        raise ValueError(f"parse_nist: no parameter lines 'b1 = ...' in {name}")
    params = tuple(r[0] for r in rows)
    table = np.array([[float(v) for v in r[1:]] for r in rows])
    rss_line = next(ln for ln in lines if ln.startswith("Residual Sum of Squares:"))
    data_at = max(i for i, ln in enumerate(lines) if re.match(r"^Data:\s+y\s+x\s*$", ln))
    data = np.array([[float(v) for v in ln.split()] for ln in lines[data_at + 1 :] if ln.strip()])
    return NistProblem(
        name=name,
        expression=model,
        params=params,
        x=data[:, 1],
        y=data[:, 0],
        starts=table[:, :2].T.copy(),
        certified=table[:, 2].copy(),
        certified_se=table[:, 3].copy(),
        certified_rss=float(rss_line.split(":")[1]),
    )


def load_nist(name: str) -> NistProblem:
    """The shipped NIST problem ``name`` (one of :data:`NIST_PROBLEMS`).

    >>> p = load_nist("Misra1a")
    >>> p.expression, p.params, p.x.shape, p.starts[0].tolist()
    ('b1*(1-exp(-b2*x))', ('b1', 'b2'), (14,), [500.0, 0.0001])
    """
    if name not in NIST_PROBLEMS:
        raise ValueError(f"load_nist: name must be one of {NIST_PROBLEMS}, got {name!r}")
    text = resources.files("tokenscale_sim").joinpath(f"data/nist/{name}.dat").read_text()
    return parse_nist(text, name)


def lre(got, certified):
    """Log relative error: correct significant digits of ``got`` (capped at 15; nan -> 0).

    >>> float(lre(1.0000001, 1.0)) > 6.9
    True
    """
    got = np.asarray(got, float)
    certified = np.asarray(certified, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(got - certified) / np.abs(certified)
        out = -np.log10(rel)
    return np.where(np.isnan(out), 0.0, np.minimum(out, 15.0))
