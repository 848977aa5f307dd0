r"""Fit results as a notebook user reads them: :class:`FitResult`, its parameter mapping, report,
tidy table, short repr, and the input checks of everything that evaluates a fitted law.

A result holds G curves. Its raw arrays keep the leading curve axis G always
(``res.estimates`` is (G, p) also for one curve), so code written against them never changes.
The reading layer follows one rule, lmfit's and ``curve_fit``'s for one curve:

- **one curve** (G = 1): ``res.params["beta"].value`` is a float, ``.interval`` a pair of
  floats, :func:`~tokenscale_sim.fit.inference.estimate.predict` of a scalar is a scalar and of an
  array ``n`` an array of ``n``'s shape;
- **several curves** (G > 1): the same attributes are arrays over the curves, (G,) for a
  parameter's value, (G, *n.shape) for a prediction; ``res.curve(g)`` is curve ``g`` alone, a
  one-curve result (so ``res.curve(g).params["beta"].value`` is a float). ``res[i]`` stays
  what it is for every NamedTuple (the i-th field), so curves are taken by ``res.curve(g)``.

``res.params`` is a read-only mapping from name to :class:`Parameter` (``.value``, ``.stderr``,
``.interval`` (low, high), ``.name``, ``.method``, ``.interval_open``, ``.level``). It iterates
its names in the law's order, like the tuple of names it replaces, so ``zip(res.params, ...)``,
``len(res.params)`` and ``name in res.params`` read as before; the names as a tuple are
``res.param_names`` (a mapping never equals a tuple: compare ``res.param_names``).

Criteria: ``aic`` and ``bic`` are computed with the fit
(:func:`~tokenscale_sim.fit.inference.likelihood.information_criteria`), ``aicc`` from them by
:func:`~tokenscale_sim.fit.inference.likelihood.corrected_aic`,

    AICc = AIC + 2 k (k + 1) / (N - k - 1),

``k`` the free parameters (``n_free``: one fewer when ``n_b`` sits at a limit) plus the noise
variance (none under the ``weighted`` loss), ``N`` the data points; inf (undefined, said so in the
report) when ``N - k - 1 <= 0``.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.fit.data.columns import numeric
from tokenscale_sim.fit.data.curves import CurveSet, key_label
from tokenscale_sim.fit.engine.options import Boundary, IntervalMethod, finite_fit
from tokenscale_sim.fit.inference.likelihood import corrected_aic, variance_params
from tokenscale_sim.fit.laws.models import Model

LOSS_LABELS = {
    "log": "RSS of ln y",
    "linear": "RSS of y / mean|y|",
    "weighted": "chi-square",
    "huber": "sum of Huber rho of ln y",
}
"""What ``2 N loss`` is under each loss (the engine minimises ``(1/2) sum w rho(r) / N``)."""


class Parameter(NamedTuple):
    """One fitted parameter: floats for a one-curve result, arrays (G,) for G curves.

    Attributes:
        name: the parameter's name. value: the estimate. stderr: its delta-method standard
            error (inf: not identified). interval: ``(low, high)`` at ``level``.
        interval_open: ``(low_open, high_open)``: an end the data do not bound (it then sits at
            the parameter's limit: 0 or inf for ``n_b``, +-inf otherwise).
        method: the :class:`IntervalMethod` of the interval. level: its confidence level.
    """

    name: str
    value: Any
    stderr: Any
    interval: tuple[Any, Any]
    interval_open: tuple[Any, Any]
    method: IntervalMethod | None
    level: float

    def __repr__(self) -> str:
        low, high = self.interval
        return (
            f"<Parameter {self.name!r}: value={self.value}, stderr={self.stderr}, "
            f"interval=({low}, {high}) ({_method(self.method)}, {100 * self.level:g} %)>"
        )


class Parameters(Mapping[str, Parameter]):
    """The parameters of a :class:`FitResult` by name (read-only; iterates the names in order)."""

    def __init__(self, result: FitResult):
        self._result = result

    def __getitem__(self, name: str) -> Parameter:
        r = self._result
        if not isinstance(name, str):
            raise TypeError(
                f"FitResult.params: keys are parameter names {r.param_names}, got {name!r} "
                "(the i-th name is res.param_names[i])"
            )
        if name not in r.param_names:
            raise KeyError(f"FitResult.params: no parameter {name!r}; the law has {r.param_names}")
        i = r.param_names.index(name)
        one = r.n_curves == 1

        def pick(x):
            x = np.asarray(x)[..., i]
            return x[0].item() if one else x

        return Parameter(
            name,
            pick(r.estimates),
            pick(r.se),
            (pick(r.ci_low), pick(r.ci_high)),
            (pick(r.ci_open[..., 0]), pick(r.ci_open[..., 1])),
            r.interval[i] if r.interval else None,
            r.level,
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._result.param_names)

    def __len__(self) -> int:
        return len(self._result.param_names)

    def valuesdict(self) -> dict[str, Any]:
        """``{name: value}`` (lmfit's ``Parameters.valuesdict``)."""
        return {name: p.value for name, p in self.items()}

    def __repr__(self) -> str:
        return f"Parameters({', '.join(repr(x) for x in self.values())})"


class FitResult(NamedTuple):
    """Fits of G curves (NumPy arrays with leading axis G; ``p`` natural parameters).

    Reading a result (module docstring): ``res.params["beta"]`` (a :class:`Parameter`),
    ``res.report()``, ``res.to_frame()``, ``res.curve(g)``, ``res.aicc``.

    Attributes:
        model: the :class:`~tokenscale_sim.fit.laws.models.Model` fitted (``model.name`` its name;
            ``param_names`` its parameter names); ``loss_name``: the loss; ``level``: interval
            level.
        estimates, se: (G, p) natural-unit estimates and standard errors (inf: not identified).
        ci_low, ci_high: (G, p) confidence bounds at ``level``; ``ci_open`` (G, p, 2) marks
            ends the data cannot pin (the end is then the parameter's limit: 0 or inf for
            ``n_b``, +-inf otherwise).
        u: (G, p) unconstrained estimates. loss: (G,) final objective
            ``(1/2) sum w rho(r) / N``.
        r2_log, r2_linear: (G,) coefficients of determination of ln y and of y.
        aic, bic: (G,) from the Gaussian likelihood of the loss's residuals (log-space fits are
            comparable only with log-space fits); ``aicc`` (a property) corrects AIC for small N.
        converged: (G,) bool; iterations: (G,) L-BFGS iterations of the chosen start.
        grad_norm: (G,); n_points: (G,) data points; boundary: (G,) :class:`Boundary` codes.
        interval: (p,) :class:`IntervalMethod` of each parameter's interval.
        keys: (G,) keys of the fitted curves (:class:`~tokenscale_sim.fit.data.curves.CurveSet`
        keys;
            empty for fits of bare arrays). curve_ids: (G,) fingerprints of the fitted data
            (:func:`curve_fingerprint`; empty for fits of bare arrays).
    """

    model: Model
    loss_name: str
    level: float
    estimates: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    ci_open: np.ndarray
    u: np.ndarray
    loss: np.ndarray
    r2_log: np.ndarray
    r2_linear: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    grad_norm: np.ndarray
    n_points: np.ndarray
    boundary: np.ndarray
    interval: tuple[IntervalMethod, ...] = ()
    keys: tuple[tuple[str, ...], ...] = ()
    curve_ids: tuple[str, ...] = ()

    def status(self, g: int) -> Boundary:
        """The :class:`Boundary` of curve ``g``."""
        return Boundary(int(self.boundary[g]))

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters, in the law's order (the columns of ``estimates``)."""
        return self.model.params

    @property
    def params(self) -> Parameters:
        """The parameters by name: ``res.params["beta"].value`` (module docstring for shapes)."""
        return Parameters(self)

    @property
    def n_curves(self) -> int:
        """G, the number of curves fitted."""
        return int(np.shape(self.u)[0])

    @property
    def n_free(self) -> np.ndarray:
        """(G,) free law parameters of each fit: ``p``, less one where ``n_b`` sits at a limit
        (it is then fixed, not estimated)."""
        fixed = np.asarray(self.boundary) > Boundary.INTERIOR
        at_limit = fixed if self.model.nb_index is not None else np.zeros_like(fixed)
        return self.model.n_params - at_limit.astype(int)

    @property
    def aicc(self) -> np.ndarray:
        """(G,) small-sample AIC (module docstring); inf where ``N - k - 1 <= 0``."""
        k = self.n_free + variance_params(self.loss_name)
        return corrected_aic(self.aic, k, self.n_points)

    def curve(self, g: int) -> FitResult:
        """Curve ``g`` alone (negative ``g`` counts from the end), a one-curve result."""
        size = self.n_curves
        if not isinstance(g, int | np.integer) or not -size <= g < size:
            raise IndexError(
                f"FitResult.curve: g must be an integer in [-{size}, {size}), got {g!r}"
            )
        g = int(g) % size
        cut: dict[str, Any] = {
            k: v[g : g + 1]
            for k, v in self._asdict().items()
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == size
        }
        for name in ("keys", "curve_ids"):
            if len(getattr(self, name)) == size:
                cut[name] = getattr(self, name)[g : g + 1]
        return self._replace(**cut)

    def label(self, g: int) -> str:
        """``"value1 / value2"``: the key of curve ``g``, or ``"curve g"`` without one."""
        known = len(self.keys) == self.n_curves
        return key_label(self.keys[g]) if known and self.keys[g] else f"curve {g}"

    def report(self) -> str:
        """A text report (lmfit's ``fit_report``): :func:`fit_report`."""
        return fit_report(self)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per curve x parameter: the rows of :meth:`to_frame`."""
        return fit_records(self)

    def to_frame(self) -> Any:
        """The tidy table: a pandas ``DataFrame`` of :meth:`to_records` when pandas is
        importable, else the list of dicts itself (pandas is an optional dependency)."""
        rows = self.to_records()
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        g = self.n_curves
        head = f"FitResult(law={self.model.name!r}, loss={self.loss_name!r}, "
        if g == 1:
            state = "converged" if self.converged[0] else "NOT converged"
            values = ", ".join(f"{k}={_num(v)}" for k, v in self.params.valuesdict().items())
            return f"{head}1 curve, {state}: {values})"
        return f"{head}{g} curves, {int(np.sum(self.converged))} converged)"

    def _repr_html_(self) -> str:
        rows = self.to_records()
        cols = list(rows[0]) if rows else []
        cell = "<td>{}</td>".format
        body = "".join(
            "<tr>" + "".join(cell(html.escape(_num(r[c]))) for c in cols) + "</tr>" for r in rows
        )
        return (
            f"<p><code>{html.escape(repr(self))}</code></p><table><thead><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
            + f"</tr></thead><tbody>{body}</tbody></table>"
        )


def _num(x) -> str:
    """A number for reports: 6 significant digits; booleans and strings as they are."""
    if isinstance(x, bool | np.bool_ | str):
        return str(x)
    return f"{float(x):.6g}"


def _method(method) -> str:
    return "-" if method is None else str(method)


def fit_records(result: FitResult) -> list[dict[str, Any]]:
    """The tidy rows of ``result``: one dict per curve x parameter.

    Keys: ``curve`` (index), ``key`` (the curve's label), ``law``, ``parameter``, ``value``,
    ``stderr``, ``low``, ``high``, ``low_open``, ``high_open``, ``interval`` (method), ``level``,
    ``converged``, ``status`` (:class:`~tokenscale_sim.fit.engine.options.NbStatus` value),
    ``aicc``.
    """
    rows = []
    aicc = result.aicc  # (G,): derived, so computed once here, not per row
    for g in range(result.n_curves):
        for i, name in enumerate(result.param_names):
            rows.append({
                "curve": g,
                "key": result.label(g),
                "law": result.model.name,
                "parameter": name,
                "value": float(result.estimates[g, i]),
                "stderr": float(result.se[g, i]),
                "low": float(result.ci_low[g, i]),
                "high": float(result.ci_high[g, i]),
                "low_open": bool(result.ci_open[g, i, 0]),
                "high_open": bool(result.ci_open[g, i, 1]),
                "interval": _method(result.interval[i] if result.interval else None),
                "level": float(result.level),
                "converged": bool(result.converged[g]),
                "status": result.status(g).status.value,
                "aicc": float(aicc[g]),
            })  # fmt: skip
    return rows


def _curve_lines(result: FitResult, g: int, n_free: np.ndarray, aicc: np.ndarray) -> list[str]:
    """The statistics and parameter lines of curve ``g`` (:func:`fit_report`); ``n_free`` and
    ``aicc`` (G,) are the result's (derived properties, computed once per report)."""
    m = int(result.n_points[g])
    free = int(n_free[g])
    k = free + variance_params(result.loss_name)
    aicc_g = float(aicc[g])
    aicc_text = _num(aicc_g) if np.isfinite(aicc_g) or np.isnan(aicc_g) else (
        f"inf (undefined: N - k - 1 = {m - k - 1} <= 0)")  # fmt: skip
    loss_label = LOSS_LABELS.get(result.loss_name, f"2 N loss ({result.loss_name})")
    stats = [
        ("data points N", str(m)),
        ("parameters k", f"{k} ({free} free + {k - free} noise variance)"),
        ("converged", "yes" if result.converged[g] else "NO"),
        ("n_b status", result.status(g).label),
        ("iterations", str(int(result.iterations[g]))),
        (loss_label, _num(2 * m * float(result.loss[g]))),
        ("R^2 of ln y", _num(result.r2_log[g])),
        ("R^2 of y", _num(result.r2_linear[g])),
        ("AIC", _num(result.aic[g])),
        ("AICc", aicc_text),
        ("BIC", _num(result.bic[g])),
    ]  # fmt: skip
    width = max(len(a) for a, _ in stats)
    lines = [f"    {a:<{width}} = {b}" for a, b in stats]
    lines.append(f"  [[Parameters]] ({100 * result.level:g} % intervals)")
    name_width = max(len(x) for x in result.param_names)
    for i, name in enumerate(result.param_names):
        lo, hi = result.ci_low[g, i], result.ci_high[g, i]
        lo_open, hi_open = result.ci_open[g, i]
        ends = f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
        method = _method(result.interval[i] if result.interval else None)
        opened = [s for s, o in (("low", lo_open), ("high", hi_open)) if o]
        note = f"; open {' and '.join(opened)} end (not bounded by the data)" if opened else ""
        lines.append(
            f"    {name:<{name_width}} = {_num(result.estimates[g, i])} +/- "
            f"{_num(result.se[g, i])}  {ends}  {method}{note}"
        )
    return lines


def fit_report(result: FitResult) -> str:
    """A text report of ``result`` in the manner of lmfit's ``fit_report``.

    The law and loss, then per curve: data points N, parameters k (free + noise variance),
    converged, ``n_b`` status, iterations, the RSS (or chi-square) ``2 N loss``, R^2, AIC, AICc
    (inf and why when undefined), BIC, and each parameter's value, standard error, interval
    (``[`` / ``]`` closed ends, ``(`` / ``)`` open ones) and interval method.

    >>> from tokenscale_sim.fit import curves_from_arrays, fit_curves
    >>> res = fit_curves(curves_from_arrays([1, 2, 4, 8], [3.0, 6.1, 11.9, 24.0]), "powerlaw")
    >>> print(fit_report(res).splitlines()[0])
    [[Fit]] law powerlaw (c, alpha), loss log, 1 curve, 1 converged
    """
    g_all = result.n_curves
    head = (
        f"[[Fit]] law {result.model.name} ({', '.join(result.param_names)}), loss "
        f"{result.loss_name}, {g_all} curve{'s' if g_all != 1 else ''}, "
        f"{int(np.sum(result.converged))} converged"
    )
    lines = [head]
    n_free, aicc = result.n_free, result.aicc
    for g in range(g_all):
        lines.append(f"  [[Curve {g}: {result.label(g)}]]" if g_all > 1 else "  [[Statistics]]")
        lines += _curve_lines(result, g, n_free, aicc)
    return "\n".join(lines)


def curve_fingerprint(curves: CurveSet, g: int) -> str:
    """A fingerprint (SHA-1, hex) of curve ``g``'s data without padding (n, y, se, weight, aux)."""
    digest = hashlib.sha1()
    for x in curves.curve(g):
        digest.update(np.ascontiguousarray(np.asarray(x, np.float64)).tobytes())
    return digest.hexdigest()


def with_curves(result: FitResult, curves: CurveSet) -> FitResult:
    """``result`` with the keys and fingerprints of the curves it was fitted on (so that
    :func:`check_fitted_on` can refuse other curves)."""
    ids = tuple(curve_fingerprint(curves, g) for g in range(len(curves.keys)))
    return result._replace(keys=tuple(tuple(k) for k in curves.keys), curve_ids=ids)


def check_fitted_on(curves: CurveSet, result: FitResult, where: str) -> None:
    """Refuse (``ValueError`` naming ``where``) curves that are not the ones ``result`` was
    fitted on: another number of curves, other keys, or other data (by fingerprint, when the
    result carries them: fits by :func:`~tokenscale_sim.fit.inference.estimate.fit_curves`); for
    fits of bare arrays, another number of points per curve."""
    g = result.n_curves
    got = len(curves.keys)
    if got != g:
        raise ValueError(
            f"{where}: curves must be the {g} curve(s) the result was fitted on, got {got}"
        )
    if len(result.keys) == g and tuple(map(tuple, curves.keys)) != result.keys:
        bad = next(i for i in range(g) if tuple(curves.keys[i]) != result.keys[i])
        raise ValueError(
            f"{where}: curves are not the ones the result was fitted on: curve {bad} is "
            f"{curves.label(bad)!r}, the fit's is {result.label(bad)!r}"
        )
    if len(result.curve_ids) == g:
        bad = [i for i in range(g) if curve_fingerprint(curves, i) != result.curve_ids[i]]
        what = "data"
    else:
        points = np.sum(np.asarray(curves.arrays.weight), axis=-1).astype(int)
        bad = np.flatnonzero(points != np.asarray(result.n_points)).tolist()
        what = "number of points"
    if bad:
        raise ValueError(
            f"{where}: curves are not the ones the result was fitted on: the {what} of curve "
            f"{bad[0]} ({result.label(bad[0])!r}) differ(s) from the fitted curve's"
        )


def check_domain(model: Model, n, where: str) -> np.ndarray:
    """``n`` as a float64 array after checking it lies in the law's domain.

    Laws of token counts (``model.predictor == "n"``) are defined for ``n >= 1`` (the domain the
    data checks admit); laws of another predictor for any finite real. Raises a one-line
    ``ValueError`` naming ``where`` otherwise (never a NaN or a silent extrapolation to n = 0).

    >>> from tokenscale_sim.fit.laws.models import get_model
    >>> check_domain(get_model("powerlaw"), 0.0, "predict")
    Traceback (most recent call last):
    ...
    ValueError: predict: token counts n must be >= 1 (the domain of law 'powerlaw'), got min 0
    """
    x = numeric(n, model.predictor, where)  # never dates as nanoseconds, nor strings
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{where}: {model.predictor} must be finite, got {x[~np.isfinite(x)].flat[0]}"
        )
    if model.predictor == "n" and x.size and np.min(x) < 1:
        raise ValueError(
            f"{where}: token counts n must be >= 1 (the domain of law {model.name!r}), "
            f"got min {np.min(x):g}"
        )
    return x


def check_defined(result: FitResult, x, values, where: str) -> None:
    """Raise ``ValueError`` where the law of ``result`` gives NaN at finite predictor values
    ``x`` for a curve whose fit is finite: ``x`` lies outside the law's own domain (``log(x)``
    at ``x <= 0``, ``(n - 5)**0.5`` below 5), which :func:`check_domain` cannot know. ``values``:
    (G, *x.shape). A curve whose fit failed (``converged`` False with non-finite estimates) keeps
    its NaN: its status says why. Overflow to +-inf is a value, not refused.

    >>> from tokenscale_sim.fit import curves_from_arrays, fit_curves, parse_law
    >>> law = parse_law("a * log(x) + b", predictor="x")
    >>> x = np.array([1.0, 2, 3, 4, 5])
    >>> res = fit_curves(curves_from_arrays(x, [1.01, 2.37, 3.2, 3.78, 4.2]), law)
    >>> check_defined(res, np.array([-1.0]), np.array([[np.nan]]), "predict")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: predict: law 'a * log(x) + b' is not defined at x = -1 (NaN for curve ...
    """
    ok = finite_fit(result.model, result.estimates, result.boundary, result.loss)
    values = np.asarray(values).reshape(len(ok), -1)
    bad = np.isnan(values) & ok[:, None]
    if bad.any():
        g, i = (int(v[0]) for v in np.nonzero(bad))
        label = key_label(result.keys[g]) if result.keys else str(g)
        raise ValueError(
            f"{where}: law {result.model.name!r} is not defined at {result.model.predictor} = "
            f"{np.asarray(x).reshape(-1)[i]:g} (NaN for curve {label!r}); predict inside its "
            "domain"
        )
