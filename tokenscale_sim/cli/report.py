"""The demo's HTML report: one section per stage of :func:`tokenscale_sim.study.run_study`, each
writing its figures and CSV tables beside ``index.html`` and its numbers into ``summary.json``
(the file the README's quoted findings are checked against). Called by ``tokenscale demo``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.runtime import outputs as files


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "inf" if x is not None and np.isinf(x) and x > 0 else "–"
    return f"{x:.{digits}g}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _interval(low: float, high: float, open_ends) -> str:
    lo = "0" if open_ends[0] and low <= 0 else ("open" if open_ends[0] else _fmt(low))
    hi = "∞ (open)" if open_ends[1] else _fmt(high)
    return f"[{lo}, {hi}]"


def _save(fig, out: Path, name: str) -> str:
    files.save_figure(fig, out / name, dpi=110)
    return name


def monte_carlo_section(study, out: Path, summary: dict) -> str:
    from tokenscale_sim.montecarlo.simulation import result_columns
    from tokenscale_sim.plots.simulation import plot_simulation

    parts, rows = [], []
    for mc in study.monte_carlo:
        r = mc.result
        lam = float(mc.law.estimates[0, 0])
        nb_fit = mc.nb_fit.estimates[0, 1]
        nb_lo, nb_hi = mc.nb_fit.ci_low[0, 1], mc.nb_fit.ci_high[0, 1]
        z = (r.divergence.mean - r.exact.gaussian_mean) / r.divergence.se
        fig = plot_simulation(
            r,
            fit=mc.law_curve,
            fit_label=f"λ√Υ̂, λ = {lam:.4g}",
            n_b=mc.n_b_exact,
            regimes=True,
            title=mc.name,
        )
        name = _save(fig, out, f"mc_{mc.name}.png")
        files.write_csv(out / f"mc_{mc.name}.csv", result_columns(r))
        rows.append(
            [
                mc.name,
                r.m,
                _fmt(lam),
                _fmt(mc.n_b_exact),
                mc.n_b_status,
                _fmt(nb_fit),
                _interval(nb_lo, nb_hi, mc.nb_fit.ci_open[0, 1]),
                _fmt(float(np.max(np.abs(z))), 3),
                _fmt(float(r.divergence.mean[-1] / r.exact.bound[-1]), 5),
            ]
        )
        summary["monte_carlo"][mc.name] = {
            "structure": mc.result.metadata["structure"],
            "lambda": lam,
            "lambda_ci": [mc.law.ci_low[0, 0], mc.law.ci_high[0, 0]],
            "n_b_exact": mc.n_b_exact,
            "n_b_status": mc.n_b_status,
            "n_b_fitted_from_D": nb_fit,
            "n_b_fitted_ci": [nb_lo, nb_hi],
            "n_b_fitted_ci_open": np.asarray(mc.nb_fit.ci_open[0, 1]).tolist(),  # ends at 0 / inf
            "max_abs_z_vs_exact_mean": float(np.max(np.abs(z))),
            "mean_over_bound_at_n_max": float(r.divergence.mean[-1] / r.exact.bound[-1]),
        }
        parts.append(
            f'<figure><img src="{name}" alt="{mc.name}"><figcaption>{mc.name}: mean '
            "D(n) with ±1σ/±2σ bands, exact Gaussian E[D], the bound √(2Υ), the "
            "authors' fit λ√Υ̂ and the regimes (shaded: sublinear, transition, "
            "linear, around n_b); right: sampled ψ(n) against their exact "
            "expectations.</figcaption></figure>"
        )
    table = _table(
        [
            "structure",
            "m",
            "λ (fit)",
            "n_b exact",
            "how",
            "n_b fitted from D(n)",
            "95% interval",
            "max |z| vs exact E[D]",
            "mean D / bound at n_max",
        ],
        rows,
    )
    return table + "".join(parts)


def wide_section(study, out: Path, summary: dict) -> str:
    from tokenscale_sim.plots.simulation import plot_simulation

    w = study.wide
    r = w.result
    z = float(np.nanmax(np.abs((r.divergence.mean - r.exact.gaussian_mean) / r.divergence.se)))
    ratio = float(r.divergence.mean[-1] / r.exact.bound[-1])
    summary["realistic_width"] = {
        "structure": r.metadata["structure"],
        "n_max": int(r.n[-1]),
        "d": r.config.d,
        "m": r.m,
        "method": r.metadata["method"],
        "seconds": w.seconds,
        "max_abs_z_vs_exact_mean": z,
        "mean_over_bound_at_n_max": ratio,
    }
    name = _save(plot_simulation(r, title=f"{w.name}, d = {r.config.d}"), out, "mc_wide.png")
    row = [
        w.name,
        int(r.n[-1]),
        r.config.d,
        r.m,
        r.metadata["method"],
        f"{w.seconds:.1f} s",
        _fmt(z, 3),
        _fmt(ratio, 5),
    ]
    header = ["structure", "n", "d", "m", "method", "run time", "max |z| vs exact E[D]",
              "mean D / bound at n"]  # fmt: skip
    return (
        f"<p>A real model's size: {int(r.n[-1])} vision tokens (a LLaVA-1.5 image) of width "
        f"{r.config.d}, {r.m} replicate pairs. The width-free gram method samples the Gram matrix "
        "of the tokens exactly at a cost independent of d; run time includes compilation.</p>"
        + _table(header, [row])
        + f'<figure><img src="{name}" alt="realistic width"></figure>'
    )


def theory_section(study, out: Path) -> str:
    from tokenscale_sim.plots.theory import alpha_family, regime_map

    t = study.theory
    a = _save(alpha_family(t.alpha_n, t.alpha, t.alpha_n_b), out, "alpha_family.png")
    b = _save(regime_map(t.map_psi_eq, t.map_delta, t.map_n_b), out, "regime_map.png")
    return (
        f'<figure><img src="{a}" alt="alpha(n)"><figcaption>α(n) for β = 1 and n_b in '
        f"{list(t.alpha_n_b)} (the paper's figure): from −β/2 towards −β.</figcaption>"
        f'</figure><figure><img src="{b}" alt="regime map"><figcaption>Transition point '
        "n_b = (1 − ψ_eq)/Δ − 1 over (ψ_eq, Δ).</figcaption></figure>"
    )


def paper_section(study, out: Path, summary: dict) -> str:
    from tokenscale_sim.fit import BOUNDARY, predict
    from tokenscale_sim.plots.fits import fit_grid

    p = study.paper
    rows = []
    for g, key in enumerate(p.curves.keys):
        c, alpha = p.powerlaw.estimates[g]
        _, beta, n_b = p.alpha_n.estimates[g]
        where = BOUNDARY[int(p.alpha_n.boundary[g])]
        entry = {
            "powerlaw": {"c": c, "alpha": alpha, "r2_log": p.powerlaw.r2_log[g]},
            "alpha_n": {
                "beta": beta,
                "n_b": n_b,
                "boundary": where,
                "n_b_ci": [p.alpha_n.ci_low[g, 2], p.alpha_n.ci_high[g, 2]],
                "n_b_ci_open": p.alpha_n.ci_open[g, 2].tolist(),
            },
            "transition_test": {
                "lr": p.transition.lr[g],
                "p_value": p.transition.p_value[g],
                "delta_aic": p.transition.delta_aic[g],
            },
        }
        summary["paper_fits"][" / ".join(key)] = entry
        rows.append(
            [
                *key,
                _fmt(c),
                _fmt(alpha, 4),
                _fmt(p.powerlaw.r2_log[g], 3),
                _fmt(beta, 4),
                _fmt(n_b),
                _interval(p.alpha_n.ci_low[g, 2], p.alpha_n.ci_high[g, 2], p.alpha_n.ci_open[g, 2]),
                where,
                _fmt(p.transition.p_value[g], 3),
            ]
        )
    columns = list(zip(*rows, strict=True)) if rows else []
    header = [
        *p.curves.group,
        "c",
        "α (power law)",
        "R² log",
        "β",
        "n_b",
        "n_b 95% interval",
        "α(n) fit",
        "p (transition)",
    ]
    files.write_csv(
        out / "paper_fits.csv", {h: col for h, col in zip(header, columns, strict=True)}
    )
    figs = []
    n_grid = np.geomspace(1.0, float(np.max(p.curves.arrays.n)), 80)
    fitted = {"power law": predict(p.powerlaw, n_grid), "α(n) law": predict(p.alpha_n, n_grid)}
    for variant in sorted({k[0] for k in p.curves.keys}):
        idx = [g for g, k in enumerate(p.curves.keys) if k[0] == variant]
        panels = []
        for g in idx:
            curve = p.curves.curve(g)
            panels.append((" / ".join(p.curves.keys[g][1:]), curve.n, curve.y))
        fig = fit_grid(panels, n_grid, {k: v[idx] for k, v in fitted.items()}, suptitle=variant)
        name = _save(fig, out, f"paper_{variant}.png")
        figs.append(
            f'<figure><img src="{name}" alt="{variant}"><figcaption>{variant}: '
            "scores against fused vision tokens n (log-log), the constant power law "
            "(the paper's fit) and the α(n) law.</figcaption></figure>"
        )
    return _table(header, rows) + "".join(figs)


def vision_section(study, out: Path, summary: dict) -> str:
    if study.vision is None:
        summary["vision"] = {"note": study.vision_note}
        return (
            f"<p>{html.escape(study.vision_note)}. Install the <code>vision</code> extra "
            "(<code>pip install 'tokenscale_sim[vision]'</code>) to measure a real ViT.</p>"
        )
    from tokenscale_sim.plots.hidden import layer_summary, overview

    summary["vision"] = {"note": study.vision_note}
    parts = [f"<p>{html.escape(study.vision_note)}.</p>"]
    for k, (kind, layers) in enumerate(study.vision.items()):
        from tokenscale_sim.hidden.measure import measurement_summary

        picked = ("delta_min", "n_b", "n_b_status", "lambda", "ratio_at_n_max")
        cols: dict[str, list] = {"layer": [], **{key: [] for key in picked}}
        for layer, m in layers.items():
            row = measurement_summary(m)
            cols["layer"].append(layer)
            for key in picked:
                cols[key].append(row.get(key, float("nan")))
        files.write_csv(out / f"vision_{k}.csv", cols)
        summary["vision"][kind] = cols
        rows = [
            [c[0], _fmt(c[1]), _fmt(c[2]), c[3], _fmt(c[4]), _fmt(c[5])]
            for c in zip(*cols.values(), strict=True)
        ]
        first = min(layers)
        a = _save(
            layer_summary(layers, title=f"ViT-S per layer: {kind}"), out, f"vision_{k}_layers.png"
        )
        b = _save(
            overview(layers[first], title=f"ViT-S layer {first}: {kind}"),
            out,
            f"vision_{k}_layer{first}.png",
        )
        parts.append(
            f"<h3>{html.escape(kind)}</h3>"
            + _table(
                ["layer", "min Δ(n)", "n_b (fixed point)", "status", "λ", "mean D / bound at N"],
                rows,
            )
            + f'<figure><img src="{a}" alt="layers"></figure>'
            + f'<figure><img src="{b}" alt="layer {first}"></figure>'
        )
    return "".join(parts)


def compare_section(study, out: Path, summary: dict) -> str:
    """ "Which law?": the paper's curves through ``tokenscale compare`` (tables, figures and the
    finding written from the numbers by :func:`tokenscale_sim.fit.selection.compare.describe`)."""
    from tokenscale_sim.cli.compare import comparison_columns, curvature_columns
    from tokenscale_sim.fit.selection.compare import describe
    from tokenscale_sim.plots.compare import comparison_figure, curvature_plot

    c = study.compare
    if c is None:
        return "<p>skipped</p>"
    labels = [" / ".join(k) for k in c.keys]
    files.write_csv(out / "compare.csv", comparison_columns(c))
    files.write_csv(out / "curvature.csv", curvature_columns(c))
    a = _save(comparison_figure(c, labels), out, "compare.png")
    b = _save(curvature_plot(c.shape, labels), out, "curvature.png")
    finding = describe(c)
    shape = {k: v for k, v in c.shape._asdict().items() if np.ndim(v) == 0}
    summary["compare"] = {"finding": finding, "laws": c.laws, "pooled": c.pooled, "shape": shape}
    p = c.pooled
    rows = [
        [law, _fmt(p.aicc[j]), _fmt(p.weight[j], 3), *(int(w[j]) for w in p.wins),
         _fmt(p.loo_rmse[j], 3), _fmt(p.extrap_rmse[j], 3), _fmt(p.boot_share[j], 3)]
        for j, law in enumerate(c.laws)
    ]  # fmt: skip
    header = ["law", "Σ AICc", "weight", "wins AICc", "BIC", "LOO", "extrap.", "median LOO RMSE",
              f"median extrap. RMSE ({c.holdout_last} largest n)", "bootstrap share"]  # fmt: skip
    return (
        f"<p>{html.escape(finding)}</p>"
        + _table(header, rows)
        + f'<figure><img src="{a}" alt="which law"><figcaption>Per curve the winning law by '
        "AICc, BIC, leave-one-out and extrapolation error (RMSE of ln S), with the AICc "
        "winner's Akaike weight; right: extrapolation errors per law.</figcaption></figure>"
        + f'<figure><img src="{b}" alt="curvature"><figcaption>Curvature of ln S in ln n per '
        "curve (times the sign the theory expects) with its bootstrap interval.</figcaption>"
        "</figure>"
    )


def design_section(study, out: Path, summary: dict) -> str:
    """Issue 13: could the paper's design see a transition, and what design and budget would?"""
    sec = study.design
    if sec is None:
        return "<p>skipped</p>"
    from tokenscale_sim.plots.design import report_power

    summary["design"] = sec._asdict()
    files.write_csv(
        out / "design_power.csv",
        {k: [r[k] if k != "n" else " ".join(f"{x:g}" for x in r[k]) for r in sec.rows]
         for k in sec.rows[0]},
    )  # fmt: skip
    name = _save(report_power(sec), out, "design_power.png")
    rows = [
        [f"{x['beta']:g}", f"{x['n_b']:g}", x["design"], " ".join(f"{v:g}" for v in x["n"]),
         f"{x['questions_per_point']:,}" if x["questions_per_point"] else "–", x["status"]]
        for x in sec.needed
    ]  # fmt: skip
    return (
        f"<p><b>Finding.</b> {html.escape(sec.finding)}</p>"
        "<p>Truth: the α(n) law with β the median and upper quartile of the paper's fitted β's, "
        "c set so that S(768) = 70 %, binomial accuracy noise; transition test: LR of α(n) "
        f"against the power law, null simulated once per design, level 0.05; {sec.m} synthetic "
        "experiments per point.</p>"
        + _table(["β", "n_b", "design", "token counts", "questions per point for 80 %", ""], rows)
        + f'<figure><img src="{name}" alt="design power"><figcaption>Power of the transition '
        "test against n_b (±2 SE).</figcaption></figure>"
    )


def calibration_section(study, out: Path, summary: dict) -> str:
    """Issue 23: a structure calibrated on the ViT-S psi(n) for small n predicts D(n)."""
    c = study.calibration
    if c is None:
        return "<p>skipped (needs the ViT-S measurement of section 5)</p>"
    from tokenscale_sim.plots.structures import calibration_study_figure
    from tokenscale_sim.structures import calibrate as cb
    from tokenscale_sim.structures.files import to_toml

    cal, pred, last = c.calibration, c.prediction, int(c.prediction.n[-1])
    summary["calibration"] = {**cb.summary(cal), "measurement": c.label, "d": c.d, "m": c.m,
                              "prediction_errors": pred.errors}  # fmt: skip
    (out / "calibrated_structure.toml").write_text(to_toml(cal.structure), encoding="utf-8")
    name = _save(calibration_study_figure(c), out, "calibration.png")
    rows = [[k, _fmt(e), f"[{_fmt(lo)}, {_fmt(hi)}]", "boundary" if k in cal.boundary else ""]
            for k, e, lo, hi in zip(*cal[:1], *cal[2:5], strict=True)]  # fmt: skip
    errs = [[k, *(_fmt(v[x], 3) for x in ("max_rel", "rms_rel", "at_n_max_rel"))]
            for k, v in pred.errors.items()]  # fmt: skip
    return (
        f"<p>The family shared + image + decaying + local fitted to the ViT-S ψ's "
        f"({html.escape(c.label)}) for n ≤ {cal.n_fit}; mean D(n) predicted to n = {last}. "
        f"{html.escape(cb.fit_line(cal))}. Intervals: {cal.interval} (Wald: too narrow).</p>"
        + _table(["parameter", "estimate", f"{cal.level:.0%} interval", ""], rows)
        + f"<p>Relative error of the predicted mean D(n), {cal.n_fit} &lt; n ≤ {last} (Monte "
        f"Carlo: {c.m} unit-normalised pairs at the model's width d = {c.d}):</p>"
        + _table(["prediction", "max |rel. error|", "rms", f"at n = {last}"], errs)
        + f'<figure><img src="{name}" alt="calibration"><figcaption>Measured ψ(n) (points), '
        "the calibrated structure's (lines); mean D(n) and its predictions. Structure file: "
        "calibrated_structure.toml.</figcaption></figure>" + which_section(c, out, summary)
    )


WHICH_HEADER = ["rank", "structure", "k", "ΔAICc", "weight", "ψ RMSE beyond", "D rms rel. beyond",
                "n_b [interval]"]  # fmt: skip


def which_section(c, out: Path, summary: dict) -> str:
    """Issue 35: which structure? The shipped candidates fitted to the same ψ's, ranked."""
    if c.which is None:
        return ""
    from tokenscale_sim.plots.structures import which_figure
    from tokenscale_sim.structures import calibrate as cb

    rows, cals = c.which
    summary["calibration"]["which"] = rows
    n = np.arange(1, c.curves.shape[1] + 1)
    fig = which_figure(n, dict(zip(cb.CURVES, c.curves, strict=True)),
                       {r["name"]: dict(zip(cb.CURVES, cals[r["name"]].fitted, strict=True))
                        for r in rows}, cals[rows[0]["name"]].n_fit)  # fmt: skip
    name = _save(fig, out, "which.png")
    table = [[r["rank"], r["name"], r["free"], _fmt(r["delta_aicc"], 3), _fmt(r["weight"], 3),
              _fmt(r["psi_rmse_beyond"], 3), _fmt(r["d_rms_rel_beyond"], 3),
              f"{_fmt(r['n_b'])} [{_fmt(r['n_b_low'])}, {_fmt(r['n_b_high'])}] "
              f"({r['n_b_status']})"] for r in rows]  # fmt: skip
    return (
        "<p><b>Which structure?</b> The shipped candidate structure files fitted to the same "
        "ψ's and ranked by AICc; leave-out: RMSE of the ψ's and rms relative error of the "
        "predicted mean D(n) beyond the fit range.</p>"
        + _table(WHICH_HEADER, table)
        + f'<figure><img src="{name}" alt="which structure"><figcaption>Measured ψ(n) '
        "(points) and each candidate's calibrated curves.</figcaption></figure>"
    )


STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:.85em;margin:1em 0}td,th{border:1px solid #ccc;
padding:.2em .5em;text-align:right}th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}
figcaption{font-size:.9em;color:#555}code{background:#f3f3f3;padding:0 .2em}"""


def write_report(study, out: Path, seconds: float) -> Path:
    """Draw every figure, write CSV tables, ``summary.json`` and ``index.html`` into ``out``."""
    summary: dict[str, Any] = {
        "metadata": study.metadata,
        "seconds": seconds,
        "monte_carlo": {},
        "paper_fits": {},
    }
    sections = [
        ("1. Monte Carlo against the exact theory", monte_carlo_section(study, out, summary)),
        ("2. Monte Carlo at a realistic width", wide_section(study, out, summary)),
        ("3. The scaling law α(n) and the regime map", theory_section(study, out)),
        ("4. The paper's benchmark scores", paper_section(study, out, summary)),
        ("5. A real vision transformer", vision_section(study, out, summary)),
        ("6. Which law? The paper's curves through compare", compare_section(study, out, summary)),
        ("7. Could the paper's design see a transition?", design_section(study, out, summary)),
        ("8. A structure calibrated to the ViT-S", calibration_section(study, out, summary)),
    ]
    cfg = study.config
    intro = (
        "<p>Branch divergence D(n) = ‖Σ<sub>i≤n</sub>(h<sub>i</sub><sup>A</sup> − "
        "h<sub>i</sub><sup>B</sup>)‖, bounded by √(2Υ(n)) with Υ(n) = n(1 − ψ_eq) + n(n − 1)Δ; "
        "growth turns from √n to linear at n_b = (1 − ψ_eq)/Δ − 1, and scores follow "
        "S(n) = c n<sup>−α(n)</sup>.</p>"
        f"<p>Monte Carlo: n ≤ {cfg.n_max} tokens, width d = {cfg.d}, m = {cfg.m} replicate pairs "
        f"per structure, seed {cfg.seed}; ran in {seconds:.0f} s on "
        f"{html.escape(', '.join(study.metadata['devices']))}.</p>"
    )
    body = "".join(f"<h2>{html.escape(t)}</h2>{s}" for t, s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>tokenscale_sim report"
        f"</title><style>{STYLE}</style></head><body><h1>tokenscale_sim report</h1>{intro}"
        f"{body}</body></html>"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    files.write_json(out / "summary.json", summary)
    return out / "index.html"
