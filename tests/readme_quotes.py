"""Every number README.md quotes about the paper's curves and the studies, and where it comes from.

A quoted number in README.md carries an invisible marker right after it (an HTML comment, so
the rendered page reads as before)::

    gives p < 0.05 for 6<!--q:paper.transition_rejections--> of 54 curves
    cover c 0.936–0.958<!--q:coverage.profile_c--> ...          (a range: the value is a pair)

and :data:`QUOTES` says how to compute that key from a generated results file: the demo's
``summary.json`` (committed as ``benchmarks/demo_summary.json``) or a benchmark's results file
(``benchmarks/results_*.md``). ``tests/test_readme_numbers.py`` checks every marked number
against its source at the precision printed (``0.93`` must be within 0.005 of the value, ``6``
exact); a slow test regenerates the demo and checks the committed copy still holds. What a
README block shows as its own output (``# ->`` comments, ``output`` blocks) is checked by running
the block (``tests/test_readme_blocks.py``, same precision rule: :func:`agrees`).

**To register a new quoted number:** (1) write it in README.md followed by
``<!--q:SECTION.NAME-->`` (a range ``a–b`` before one marker is a pair ``(a, b)``);
(2) add ``"SECTION.NAME": Quote(SOURCE, function of the loaded source)`` to :data:`QUOTES`
(``DEMO``, ``COVERAGE``, ``FRESH`` or a new source listed in :data:`SOURCES`; a ``.json`` source
is parsed, any other as its first markdown table); mark run times ``machine=True`` (checked
against the committed file, not on regeneration). (3) If the source is new or regenerated,
copy the fresh file into ``benchmarks/`` (``tokenscale demo --out r && cp
r/summary.json benchmarks/demo_summary.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = "benchmarks/demo_summary.json"
"""``summary.json`` of ``tokenscale demo`` (default size, seed 0), copied into the repository."""
COVERAGE = "benchmarks/results_coverage.md"
"""Results of ``python benchmarks/coverage.py`` (its markdown table)."""
FRESH = "benchmarks/results_coverage_fresh.json"
"""Results of ``python benchmarks/coverage_fresh.py`` (fresh truths on the paper's design)."""
FRESH_T = "benchmarks/results_coverage_fresh_t.json"
"""The same truths with studentized bootstraps (``--methods boot_residual_t,boot_parametric_t``)."""
HF = "benchmarks/results_hf.md"
"""Results of ``python benchmarks/bench_hf.py`` (statistics' overhead on a forward pass)."""
FRESH_CAL = "benchmarks/results_coverage_fresh_cal.json"
"""New truths (``--seed 2026``) with bootstrap-calibrated profile intervals (``--methods
profile,boot_residual_cal,boot_parametric_cal,boot_case_cal``)."""
MGH = "benchmarks/results_mgh.md"
"""Results of ``python benchmarks/bench_mgh.py`` (its table of counts)."""

MARKER = re.compile(
    r"(?P<low>[−-]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)"
    r"(?:\s*[–-]\s*(?P<high>[−-]?\d[\d,]*(?:\.\d+)?))?"
    r"(?P<unit>\s?(?:%|x|s))?"
    r"<!--q:(?P<key>[\w.]+)-->"
)
"""A number (or a range ``a–b``), an optional unit, then ``<!--q:key-->``."""


@dataclass(frozen=True)
class Quote:
    """How to compute one quoted number: ``value(loaded source)`` -> float or (low, high).

    ``machine``: a run time or other machine-dependent figure (not compared on regeneration).
    """

    source: str
    value: Callable[[Any], float | tuple[float, float]]
    machine: bool = False


@dataclass(frozen=True)
class Printed:
    """One marked number of README.md: its key, printed values and line number."""

    key: str
    values: tuple[str, ...]
    line: int


def printed_quotes(text: str) -> list[Printed]:
    """Every marked number of ``text``.

    >>> printed_quotes("covers 0.83–0.93<!--q:a.b--> and 6<!--q:c.d--> of 54")
    [Printed(key='a.b', values=('0.83', '0.93'), line=1), Printed(key='c.d', values=('6',), line=1)]
    """
    out = []
    for m in MARKER.finditer(text):
        values = tuple(v for v in (m["low"], m["high"]) if v is not None)
        out.append(Printed(m["key"], values, text.count("\n", 0, m.start()) + 1))
    return out


def number(text: str) -> float:
    """A printed number as a float (unicode minus, thousands commas).

    >>> number("−0.014"), number("10,000")
    (-0.014, 10000.0)
    """
    return float(text.replace("−", "-").replace(",", ""))


def agrees(printed: str, value: float) -> bool:
    """``value`` rounds to ``printed``: within half a unit of its last printed digit.

    >>> agrees("0.93", 0.925), agrees("0.93", 0.9249), agrees("6", 6.0), agrees("6", 7.0)
    (True, False, True, False)
    """
    decimals = len(printed.split(".")[1]) if "." in printed and "e" not in printed else 0
    half = 0.5 * 10.0**-decimals
    return bool(abs(number(printed) - value) <= half * (1 + 1e-9) + 1e-12)


def load(source: str, root: Path = ROOT) -> Any:
    """A source file: JSON parsed, markdown as its table rows (list of dicts of cell strings)."""
    path = root / source
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return markdown_rows(path.read_text())


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in ``text`` as dicts keyed by its header."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True))
        for ln in lines[2:]
    ]


def cell(text: str) -> float:
    """A coverage cell ``"0.958 ± 0.006 *"`` -> 0.958."""
    return number(text.split()[0])


def span(values) -> tuple[float, float]:
    """``(min, max)`` of finite values."""
    v = np.asarray(list(values), float)
    return float(np.nanmin(v)), float(np.nanmax(v))


# ----------------------------------------------------------------------------- demo helpers


def _fits(s) -> list[dict]:
    return list(s["paper_fits"].values())


def _boundary_count(s, where: str) -> float:
    """Fits with n_b at the limit ``where`` ("0" or "inf"; the summary says "n_b=0 (...)")."""
    return float(sum(f["alpha_n"]["boundary"].startswith(f"n_b={where} ") for f in _fits(s)))


def _interior_unbounded(s) -> float:
    """Curves with an interior n_b whose interval is open at both ends."""
    return float(sum(f["alpha_n"]["boundary"] == "interior" and all(f["alpha_n"]["n_b_ci_open"])
                     for f in _fits(s)))  # fmt: skip


def _rejections(s) -> float:
    return float(sum(f["transition_test"]["p_value"] < 0.05 for f in _fits(s)))


def _variant_alpha(s, i: int) -> float:
    variants: dict[str, list[float]] = {}
    for label, f in s["paper_fits"].items():
        variants.setdefault(label.split(" / ")[0], []).append(f["powerlaw"]["alpha"])
    return float(np.mean(list(variants.values())[i]))


def _mc(s, key: str) -> tuple[float, float]:
    return span(v[key] for v in s["monte_carlo"].values())


def _power(s, design: str, n_b: float, budget, beta_index: int = 0) -> float:
    beta = s["design"]["betas"][beta_index]
    rows = [r for r in s["design"]["rows"] if r["design"] == design and r["n_b"] == n_b
            and r["questions_per_point"] == budget and r["beta"] == beta]  # fmt: skip
    assert len(rows) == 1, (design, n_b, budget, beta)
    return float(rows[0]["power"])


def _powers(s, design: str, n_bs, budget, beta_index: int = 0) -> tuple[float, float]:
    return span(_power(s, design, nb, budget, beta_index) for nb in n_bs)


def _paper_power_se_max(s) -> float:
    beta = s["design"]["betas"][0]
    return max(r["power_se"] for r in s["design"]["rows"] if r["design"] == "paper"
               and r["questions_per_point"] == 3000 and r["beta"] == beta)  # fmt: skip


def _needed(s, design: str, n_b: float) -> float:
    beta = s["design"]["betas"][0]
    (row,) = [x for x in s["design"]["needed"]
              if x["design"] == design and x["n_b"] == n_b and x["beta"] == beta]  # fmt: skip
    return float(row["questions_per_point"])


def _vision(s, kind: str, column: str, layers=None) -> list[float]:
    cols = s["vision"][kind]
    return [v for layer, v in zip(cols["layer"], cols[column], strict=True)
            if layers is None or layer in layers]  # fmt: skip


DIFFERENT, VIEWS = "different images", "two views of one image"


def _pooled(s, field: str, law: str) -> float:
    return float(s["compare"]["pooled"][field][s["compare"]["laws"].index(law)])


def _aicc_wins(s, law: str) -> float:
    return float(s["compare"]["pooled"]["wins"]["aicc"][s["compare"]["laws"].index(law)])


# ------------------------------------------------------------------------- coverage helpers


def _coverage(rows, method_prefix: str, column: str, design: str = "paper (10)"):
    return span(cell(r[column]) for r in rows
                if r["design"] == design and r["method"].startswith(method_prefix))  # fmt: skip


def _coverage_truths(rows) -> float:
    column = "truth (c, beta, n_b), sd"
    paper = [x for x in rows if x["design"] == "paper (10)" and x["method"].startswith("profile")]
    return float(len({x[column] for x in paper}))


def _count(rows, name: str) -> float:
    """A count of ``benchmarks/results_mgh.md``'s table by name."""
    return float(next(r["value"] for r in rows if r["count"] == name))


def _fresh(cells, method_prefix: str, params=(0, 1, 2)) -> tuple[float, float]:
    return span(c["cover"][j] for c in cells["cells"] if c["method"].startswith(method_prefix)
                for j in params)  # fmt: skip


SIZES = (4.0, 16.0, 64.0, 256.0)


def _hf_overhead(rows, size: str, layers: str) -> float:
    """The "stats overhead" cell (``"1.2 %"``) of one model size and layer selection."""
    (row,) = [r for r in rows if r["model"] == size and r["layers read"].startswith(layers)]
    return cell(row["stats overhead"])


QUOTES: dict[str, Quote] = {
    # 1. Monte Carlo against the exact theory
    "mc.max_z": Quote(DEMO, lambda s: _mc(s, "max_abs_z_vs_exact_mean")),
    "mc.ratio": Quote(DEMO, lambda s: _mc(s, "mean_over_bound_at_n_max")),
    "mc.lambda": Quote(DEMO, lambda s: _mc(s, "lambda")),
    "mc.nb_exchangeable": Quote(
        DEMO, lambda s: s["monte_carlo"]["exchangeable"]["n_b_fitted_from_D"]
    ),
    "mc.nb_grid": Quote(DEMO, lambda s: s["monte_carlo"]["patch-grid"]["n_b_fitted_from_D"]),
    "mc.nb_decaying": Quote(DEMO, lambda s: s["monte_carlo"]["decaying"]["n_b_fitted_from_D"]),
    # 2. at a real model's size
    "wide.max_z": Quote(DEMO, lambda s: s["realistic_width"]["max_abs_z_vs_exact_mean"]),
    "wide.ratio": Quote(DEMO, lambda s: s["realistic_width"]["mean_over_bound_at_n_max"]),
    # 5. a real vision transformer
    "vision.nb_different_early": Quote(
        DEMO, lambda s: span(_vision(s, DIFFERENT, "n_b", (0, 1, 2)))
    ),
    **{
        f"vision.nb_views_{layer}": Quote(
            DEMO, lambda s, layer=layer: _vision(s, VIEWS, "n_b", (layer,))[0]
        )
        for layer in (0, 1, 2, 4)
    },
    "vision.ratio": Quote(
        DEMO,
        lambda s: span(
            _vision(s, DIFFERENT, "ratio_at_n_max") + _vision(s, VIEWS, "ratio_at_n_max")
        ),
    ),
    "vision.lambda": Quote(
        DEMO, lambda s: span(_vision(s, DIFFERENT, "lambda") + _vision(s, VIEWS, "lambda"))
    ),
    # 4. the paper's scores
    "paper.alpha_mean_0": Quote(DEMO, lambda s: _variant_alpha(s, 0)),
    "paper.alpha_mean_1": Quote(DEMO, lambda s: _variant_alpha(s, 1)),
    "paper.alpha_mean_2": Quote(DEMO, lambda s: _variant_alpha(s, 2)),
    "paper.nb_boundary": Quote(DEMO, lambda s: _boundary_count(s, "0") + _boundary_count(s, "inf")),
    "paper.nb_at_zero": Quote(DEMO, lambda s: _boundary_count(s, "0")),
    "paper.nb_at_inf": Quote(DEMO, lambda s: _boundary_count(s, "inf")),
    "paper.nb_interior_open": Quote(DEMO, _interior_unbounded),
    "paper.transition_rejections": Quote(DEMO, _rejections),
    "paper.transition_chance": Quote(DEMO, lambda s: 0.05 * len(_fits(s))),
    # 6. which law?
    "compare.aicc_powerlaw": Quote(DEMO, lambda s: _aicc_wins(s, "powerlaw")),
    "compare.aicc_loglinear": Quote(DEMO, lambda s: _aicc_wins(s, "loglinear")),
    "compare.aicc_saturating": Quote(DEMO, lambda s: _aicc_wins(s, "saturating")),
    "compare.aicc_logistic": Quote(DEMO, lambda s: _aicc_wins(s, "logistic")),
    "compare.aicc_alpha_n": Quote(DEMO, lambda s: _aicc_wins(s, "alpha_n")),
    "compare.extrap_logistic": Quote(DEMO, lambda s: _pooled(s, "extrap_rmse", "logistic")),
    "compare.extrap_powerlaw": Quote(DEMO, lambda s: _pooled(s, "extrap_rmse", "powerlaw")),
    "compare.convex_curves": Quote(DEMO, lambda s: s["compare"]["shape"]["n_holds"]),
    "compare.sign_test_p": Quote(DEMO, lambda s: s["compare"]["shape"]["sign_test_p"]),
    "compare.mean_curvature": Quote(DEMO, lambda s: s["compare"]["shape"]["pooled"]),
    "compare.mean_curvature_low": Quote(DEMO, lambda s: s["compare"]["shape"]["pooled_low"]),
    "compare.mean_curvature_high": Quote(DEMO, lambda s: s["compare"]["shape"]["pooled_high"]),
    # 7. could the paper's design see a transition?
    "design.beta_median": Quote(DEMO, lambda s: s["design"]["betas"][0]),
    "design.beta_q75": Quote(DEMO, lambda s: s["design"]["betas"][1]),
    "design.m": Quote(DEMO, lambda s: s["design"]["m"]),
    **{
        f"design.paper_power_nb{nb:g}": Quote(DEMO, lambda s, nb=nb: _power(s, "paper", nb, 3000))
        for nb in SIZES
    },
    "design.paper_power_se_max": Quote(DEMO, _paper_power_se_max),
    "design.paper_needed_nb4": Quote(DEMO, lambda s: _needed(s, "paper", 4.0)),
    "design.paper_needed_nb256": Quote(DEMO, lambda s: _needed(s, "paper", 256.0)),
    "design.paper_power_10k_nb4": Quote(DEMO, lambda s: _power(s, "paper", 4.0, 10_000)),
    "design.paper_power_10k_nb256": Quote(DEMO, lambda s: _power(s, "paper", 256.0, 10_000)),
    "design.optimal_power_3k": Quote(
        DEMO, lambda s: _powers(s, "power-optimal", (16.0, 64.0, 256.0), 3000)
    ),
    "design.optimal_needed_nb4": Quote(DEMO, lambda s: _needed(s, "power-optimal", 4.0)),
    "design.optimal_power_nb4": Quote(DEMO, lambda s: _power(s, "power-optimal", 4.0, 3000)),
    "design.residual_sigma": Quote(DEMO, lambda s: s["design"]["residual_sigma"]),
    "design.sigma_ratio": Quote(
        DEMO, lambda s: s["design"]["residual_sigma"] / s["design"]["binomial_sigma"]
    ),
    "design.binomial_sigma": Quote(DEMO, lambda s: s["design"]["binomial_sigma"]),
    "design.scatter_power": Quote(
        DEMO, lambda s: _powers(s, "paper, observed scatter", SIZES, None)
    ),
    "design.scatter_power_q75": Quote(
        DEMO, lambda s: _powers(s, "paper, observed scatter", SIZES, None, beta_index=1)
    ),
    # README "Honest intervals at ten points": benchmarks/coverage.py
    "coverage.profile_c": Quote(COVERAGE, lambda r: _coverage(r, "profile", "cover c")),
    "coverage.profile_beta": Quote(COVERAGE, lambda r: _coverage(r, "profile", "cover beta")),
    "coverage.profile_nb": Quote(COVERAGE, lambda r: _coverage(r, "profile", "cover n_b")),
    "coverage.truths": Quote(COVERAGE, _coverage_truths),
    "coverage.wald_beta": Quote(COVERAGE, lambda r: _coverage(r, "wald", "cover beta")),
    "coverage.boot_c": Quote(COVERAGE, lambda r: _coverage(r, "boot", "cover c")),
    # fresh truths: benchmarks/coverage_fresh.py
    "fresh.truths": Quote(FRESH, lambda r: float(len({tuple(c["truth"]) for c in r["cells"]}))),
    "fresh.profile_c": Quote(FRESH, lambda r: _fresh(r, "profile", (0,))),
    "fresh.profile_beta_nb": Quote(FRESH, lambda r: _fresh(r, "profile", (1, 2))),
    "fresh.boot_c": Quote(FRESH, lambda r: _fresh(r, "boot", (0,))),
    "fresh.boot_beta": Quote(FRESH, lambda r: _fresh(r, "boot", (1,))),
    "fresh.boot_t_c": Quote(FRESH_T, lambda r: _fresh(r, "boot", (0,))),
    "fresh.boot_t_beta": Quote(FRESH_T, lambda r: _fresh(r, "boot", (1,))),
    "fresh.boot_t_nb": Quote(FRESH_T, lambda r: _fresh(r, "boot", (2,))),
    **{
        f"fresh.cal_{kind}_{name}": Quote(
            FRESH_CAL, lambda r, kind=kind, j=j: _fresh(r, f"boot_{kind}_cal", (j,))
        )
        for kind in ("residual", "parametric")
        for j, name in enumerate(("c", "beta", "nb"))
    },
    "fresh.cal_case_c": Quote(FRESH_CAL, lambda r: _fresh(r, "boot_case_cal", (0,))),
    "fresh.cal_profile_c": Quote(FRESH_CAL, lambda r: _fresh(r, "profile", (0,))),
    "fresh.cal_profile_beta_nb": Quote(FRESH_CAL, lambda r: _fresh(r, "profile", (1, 2))),
    # the statistics of `measure --hf` against a forward pass (a run time: this machine's)
    **{
        f"hf.overhead_{size}_{layers}": Quote(
            HF, lambda r, size=size, layers=layers: _hf_overhead(r, size, layers), machine=True
        )
        for size, layers in (("mid", "last"), ("mid", "all"), ("tiny", "last"))
    },
    **{
        f"mgh.{name}": Quote(MGH, lambda r, name=name: _count(r, name))
        for name in (
            "fits",
            "engine_successes",
            "engine_unflagged_misses",
            "minpack_successes",
            "minpack_unflagged_misses",
            "minpack_tight_successes",
            "engine_lower_than_minpack",
            "minpack_lower_than_engine",
            "engine_lower_than_minpack_tight",
            "minpack_tight_lower_than_engine",
            "engine_flagged_successes",
        )
    },
}
"""Registry: marker key -> :class:`Quote`."""

WHICH = "benchmarks/results_which_vit.json"
"""Results of ``python benchmarks/which_vit.py`` (which structure has the ViT-S, issue 35)."""


WHICH_FIELDS = (
    ("daicc", "delta_aicc", 1.0),
    ("d_rms_pct", "d_rms_rel_beyond", 100.0),
    ("d_256_pct", "d_rel_at_n_max", 100.0),
)


def _which(r: Any, layer: str, name: str, field: str, scale: float) -> float:
    row = next(x for x in r[layer]["ranking"] if x["name"] == name)
    return scale * float(row[field])


QUOTES.update(
    {
        f"which.L{layer}.{name.replace('-', '_')}.{key}": Quote(
            WHICH, lambda r, layer=layer, name=name, f=field, s=scale: _which(r, layer, name, f, s)
        )
        for layer in ("0", "6", "12")
        for name in ("exchangeable", "sequence-decay", "patch-grid", "grid-decay", "powerlaw")
        for key, field, scale in WHICH_FIELDS
    }
)

SOURCES = (DEMO, COVERAGE, FRESH, FRESH_T, FRESH_CAL, HF, WHICH, MGH)
"""Every source file a quote may read."""
