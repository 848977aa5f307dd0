"""``tokenscale design``: power and n_b precision of experiment designs for a hypothesised truth.

A truth (a law and its parameters; ``--n-b`` sweeps the transition point), a noise model
(binomial accuracy over N questions per point, the default; log-normal with ``--sigma``; or
log-normal with the residual SD of one of the paper's curves, ``--noise residuals --curve``)
and designs: the paper's ten token counts, log-spaced designs of ``--k`` counts and the ``--top``
designs of a Fisher-information search over ``--candidates``. Every design is simulated
(``--m`` synthetic experiments, each fitted by the power law and the alpha(n) law) for every
truth and question budget: power of the transition test at ``--level``, the n_b estimates
(median, share at a boundary), the median width and the coverage of the n_b and beta intervals.
``--k-sweep`` adds the n_b interval width of the best design against K.

Output: a table on stdout and, with ``--out DIR``, ``design.csv``, ``design.json`` (with run
metadata; non-finite numbers are null beside a status field) and with ``--plot`` the figures
``power_vs_nb.png`` and ``width_vs_k.png``.

Examples::

    tokenscale design --params 30,0.1,16 --n-b 4,16,64,256 --questions 3000,30000 --out d/ --plot
    tokenscale design --noise lognormal --sigma 0.02 --search power --k 6 --m 2000
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tokenscale_sim.cli import SUBCOMMANDS, UsageError
from tokenscale_sim.cli._common import add_command, positive_int, seed
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory, key_from_seed

KIND = "design"


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _ints(text: str) -> tuple[int, ...]:
    values = _floats(text)
    if not values or any(not math.isfinite(v) or v != int(v) or v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return tuple(int(v) for v in values)


QUESTIONS_MAX = 10**7
"""Most ``--questions`` per point taken: beyond, the n_b interval gets narrower than the
profile grid resolves (``--m 40``, paper design: n_b coverage 0.9 at 1e7 questions, 0.2 at 1e9,
0 at 1e12); no benchmark comes near."""


def _questions(text: str) -> tuple[int, ...]:
    values = _ints(text)
    if max(values) > QUESTIONS_MAX:
        raise argparse.ArgumentTypeError(
            f"expected at most {QUESTIONS_MAX:.0e} questions per point (beyond, intervals are "
            f"narrower than the fit resolves), got {max(values):.3g}"
        )
    return values


SIGMA_MAX = 10.0
"""Largest ``--sigma`` (SD of ln S) taken."""


def _at_least(low: int, what: str):
    """argparse type: an integer >= ``low`` of ``what``."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected >= {low} {what}, got {value}")
        return value

    return parse


_at_least_4 = _at_least(4, "token counts (alpha(n) has 3 parameters)")


def _check_unused_and_designs(args: argparse.Namespace) -> None:
    """Options that the chosen noise or search would silently ignore, and candidates that no
    design can be drawn from, are refused before any work."""
    if args.sigma is not None and args.noise != "lognormal":
        raise UsageError(f"design: --sigma applies to --noise lognormal, not {args.noise}")
    if args.curve is not None and args.noise != "residuals":
        raise UsageError(f"design: --curve applies to --noise residuals, not {args.noise}")
    if args.sigma is not None and not 0 < args.sigma < math.inf:
        raise UsageError(f"design: --sigma must be a finite number > 0, got {args.sigma}")
    if not 0 < args.level < 1:
        raise UsageError(f"design: --level must be in (0, 1), got {args.level}")
    from tokenscale_sim.design import DEFAULT_CANDIDATES

    if any(k < 4 for k in args.k_sweep or ()):
        raise UsageError(
            f"design: --k-sweep takes designs of >= 4 token counts, got {args.k_sweep}"
        )
    cand = args.candidates or DEFAULT_CANDIDATES
    if not all(1 <= c < math.inf for c in cand) or len(set(cand)) != len(cand):
        raise UsageError(f"design: --candidates must be distinct token counts >= 1, got {cand}")
    largest = max((args.k if args.top else 0, *(args.k_sweep or ())))
    if largest > len(cand):
        raise UsageError(
            f"design: designs of {largest} token counts (--k / --k-sweep) need at least as many "
            f"--candidates, got {len(cand)}"
        )


def register(sub) -> None:
    from tokenscale_sim.design import CRITERIA, WEIGHTINGS
    from tokenscale_sim.fit import MODELS

    p = add_command(sub, KIND, SUBCOMMANDS[KIND], __doc__)
    g = p.add_argument_group("truth")
    g.add_argument("--law", choices=sorted(MODELS), default="alpha_n", help="(default: alpha_n)")
    g.add_argument(
        "--params",
        type=_floats,
        default=(30.0, 0.1, 16.0),
        help="the law's natural parameters, comma-separated (alpha_n: c in percent, beta, n_b; "
        "default: 30,0.1,16)",
    )
    g.add_argument("--n-b", type=_floats, default=None, help="sweep n_b over these values")
    g = p.add_argument_group("noise")
    g.add_argument(
        "--noise",
        choices=("binomial", "lognormal", "residuals"),
        default="binomial",
        help="binomial accuracy (scores in percent), log-normal with --sigma, or log-normal "
        "with the residual SD of the paper's --curve (default: binomial)",
    )
    g.add_argument(
        "--questions",
        type=_questions,
        default=(3000,),
        help="benchmark questions per design point; several values: budgets (default: 3000)",
    )
    g.add_argument("--sigma", type=float, default=None, help="log-normal: SD of ln score")
    g.add_argument("--curve", default=None, help="residuals: a paper curve, e.g. 'MME'")
    g = p.add_argument_group("designs")
    g.add_argument("--k", type=_at_least_4, default=10, help="token counts per design (10)")
    g.add_argument("--candidates", type=_floats, default=None, help="token counts to choose from")
    g.add_argument("--search", choices=CRITERIA, default="nb_width", help="screen criterion")
    g.add_argument("--top", type=int, default=2, help="searched designs simulated (default: 2)")
    g.add_argument("--k-sweep", type=_ints, default=None, help="also: best design per K")
    g = p.add_argument_group("simulation")
    g.add_argument("--m", type=_at_least(10, "experiments per design (a power needs them)"),
                   default=2000, help="experiments per design, >= 10 (2000)")  # fmt: skip
    g.add_argument("--level", type=float, default=0.05, help="test level (default: 0.05)")
    g.add_argument("--weighting", choices=WEIGHTINGS, default="inverse_variance")
    g.add_argument("--no-intervals", action="store_true", help="power only (faster)")
    g.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default=None, help="output folder (CSV, JSON, figures)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier design run")
    p.add_argument("--plot", action="store_true", help="write figures into --out")
    p.add_argument("--quiet", action="store_true", help="no work line, no progress bar (stderr)")
    p.set_defaults(func=run, memory_hint="lower --m, --k or --candidates")


def _noise(args):
    from tokenscale_sim import design as dz
    from tokenscale_sim import fit

    if args.noise == "binomial":
        return dz.Noise("binomial")
    if args.noise == "lognormal":
        if args.sigma is None:
            raise UsageError("design: --noise lognormal needs --sigma")
        if args.sigma > SIGMA_MAX:  # squares of larger ones overflow; none is a benchmark's
            raise UsageError(
                f"design: --sigma is the SD of ln S, at most {SIGMA_MAX:g} (scores a factor "
                f"e^{SIGMA_MAX:g} apart at one SD), got {args.sigma:g}"
            )
        return dz.Noise("lognormal", sigma=args.sigma)
    if not args.curve:
        raise UsageError("design: --noise residuals needs --curve (a paper curve label)")
    curves = fit.load_paper_scores()
    labels = [curves.label(g) for g in range(len(curves.keys))]
    hits = [g for g, lab in enumerate(labels) if args.curve.lower() in lab.lower()]
    if not hits:
        raise UsageError(f"design: no paper curve matches --curve {args.curve!r}")
    res = fit.fit_curves(curves, "powerlaw")
    return dz.noise_from_residuals(res, hits[0])


def _truths(args):
    from tokenscale_sim import design as dz

    base = dz.Truth(args.law, args.params)
    if not args.n_b:
        return [base]
    j = base.law.nb_index
    if j is None:
        raise UsageError(f"design: --n-b needs a law with n_b, got {args.law}")
    if not all(0 < nb < math.inf for nb in args.n_b):  # n_b = 0 is the power law: no n_b
        raise UsageError(f"design: --n-b values must be finite and > 0, got {args.n_b}")
    return [dz.Truth(args.law, (*args.params[:j], nb, *args.params[j + 1 :])) for nb in args.n_b]


def _criterion(truth, noise, criterion: str, candidates, budget: int) -> str:
    """``criterion``, or ``d`` (with a note on stderr) where it cannot rank designs at ``truth``."""
    from tokenscale_sim.design import criterion_problem

    problem = criterion_problem(truth, noise, criterion, candidates, budget)
    if not problem:
        return criterion
    print(f"design: {problem}: searching by D-optimality ('d') instead of {criterion!r}",
          file=sys.stderr)  # fmt: skip
    return "d"


def _fmt(x) -> str:
    x = float(x)
    return f"{x:.3g}" if np.isfinite(x) else ("inf" if x > 0 else "-" if np.isnan(x) else "-inf")


def _row(truth, budget, row) -> dict:
    r, s = row.result, row.screen
    return {
        "design": r.label,
        "n": " ".join(f"{x:g}" for x in r.n),
        "k": len(r.n),
        "questions_per_point": budget,
        "total_questions": row.design.total_questions,
        "noise": r.noise,
        "truth": f"{truth.law.name}{tuple(truth.params)}",
        "n_b_true": r.nb_true,
        "beta_true": r.beta_true,
        "power": r.power,
        "power_se": r.power_se,
        "critical_lr": r.critical_value,
        "n_b_median": r.nb_median,
        "n_b_q10": r.nb_q10,
        "n_b_q90": r.nb_q90,
        "ln_n_b_bias": r.nb_log_bias,
        "n_b_at_0": r.nb_zero_fraction,
        "n_b_at_inf": r.nb_inf_fraction,
        "ln_n_b_width": r.nb_width,
        "ln_n_b_width_screen": float(s.nb_width[0]),
        "n_b_screen_status": _screen_status(truth, s),
        "n_b_open": r.nb_open_fraction,
        "n_b_coverage": r.nb_coverage,
        "n_b_coverage_se": r.nb_coverage_se,
        "beta_median": r.beta_median,
        "beta_width": r.beta_width,
        "beta_width_screen": float(s.beta_width[0]),
        "beta_coverage": r.beta_coverage,
        "beta_coverage_se": r.beta_coverage_se,
        "ncp_screen": float(s.ncp[0]),
        "converged": r.converged_fraction,
        "status": r.status,
    }


def _screen_status(truth, screen) -> str:
    """ "ok", or why the screen gives n_b no width (e.g. "not identifiable at beta = 0")."""
    from tokenscale_sim.design import identification_note

    j = truth.law.nb_index
    if j is None:
        return "no n_b in the law"
    return identification_note(truth, "n_b", bool(screen.identified[0, j])) or "ok"


def _print(rows: list[dict]) -> None:
    cols = ["design", "k", "questions_per_point", "n_b_true", "power", "n_b_median", "n_b_at_0",
            "n_b_at_inf", "ln_n_b_width", "ln_n_b_width_screen", "n_b_coverage", "beta_width",
            "beta_coverage"]  # fmt: skip
    print(" | ".join(cols))
    for r in rows:
        cells = [r[c] if isinstance(r[c], str) else _fmt(r[c]) for c in cols]
        cells[4] = f"{_fmt(r['power'])} ± {_fmt(r['power_se'])}"
        if r["n_b_screen_status"] != "ok":
            cells[9] = r["n_b_screen_status"]
        print(" | ".join(str(c) for c in cells))


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # --out is swapped in when this closes, on success
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    import jax

    from tokenscale_sim import design as dz
    from tokenscale_sim.design.core import check_setting

    if args.plot and not args.out:
        raise UsageError("design: --plot needs --out DIR")
    if args.top < 0:
        raise UsageError(f"design: --top must be >= 0, got {args.top}")
    _check_unused_and_designs(args)
    noise = _noise(args)
    truths = _truths(args)
    options = dz.StudyOptions(
        m=args.m, level=args.level, intervals=not args.no_intervals, weighting=args.weighting
    )
    candidates = args.candidates or dz.DEFAULT_CANDIDATES
    from tokenscale_sim.fit.inference.estimate import memory_estimate

    points = max((args.k, *(args.k_sweep or ())))
    check_memory(  # the alpha(n) fits (and intervals) of every experiment of a design at once
        KIND,
        f"{args.m} experiments of {points} points",
        memory_estimate("alpha_n", args.m, points),
        "lower --m or --k",
    )
    criterion = "power" if args.search == "nb_width" and truths[0].law.nb_index is None else (
        args.search)  # fmt: skip
    out = (
        stack.enter_context(files.output_folder(args.out, KIND, overwrite=args.overwrite)).staging
        if args.out
        else None
    )
    key = key_from_seed(KIND, args.seed)
    start = time.perf_counter()
    rows, searches, sweep = [], [], []
    n_ref = len(list(dz.reference_designs(args.k, args.questions[0] * args.k)))
    per_budget = len(truths) * (n_ref + args.top * len(truths))
    total = per_budget * len(args.questions) + 2 * len(args.k_sweep or ())
    for budget in args.questions:  # every truth against the noise, before the work is said
        for reference in dz.reference_designs(args.k, budget * args.k):
            for truth in truths:
                check_setting(truth, reference, noise)
    if not args.quiet:  # the size of the work, before it starts (searched designs: at most)
        print(
            f"design: {len(args.questions)} budget(s) x {len(truths)} truth(s): up to {total} "
            f"designs simulated ({n_ref} reference + {args.top} searched per truth"
            f"{', + the K sweep' if args.k_sweep else ''}), {args.m} experiments each, "
            f"2 fits per experiment",
            file=sys.stderr,
        )
    bar = tqdm(total=total, desc="design", unit="design", disable=args.quiet)
    for b, budget in enumerate(args.questions):
        total = budget * args.k
        designs = list(dz.reference_designs(args.k, total))
        for t, truth in enumerate(truths):
            if args.top:
                found = dz.search_designs(
                    truth, noise, k=args.k, total_questions=total, candidates=candidates,
                    criterion=_criterion(truth, noise, criterion, candidates, budget), top=args.top,
                    weighted=options.weighting == "inverse_variance",
                )  # fmt: skip
                searches.append(
                    {
                        "truth": t,
                        "questions_per_point": budget,
                        "designs": [asdict(d) for d in found.designs],
                        "screen": found.screen,
                        "criterion": found.criterion,
                        "subsets_screened": found.subsets_screened,
                        "method": found.method,
                    }
                )
                for d in found.designs:
                    label = (
                        f"{d.label} (n_b = {truth.value('n_b'):g})" if len(truths) > 1 else d.label
                    )
                    designs.append(dz.Design(d.n, d.questions, label))
        for t, truth in enumerate(truths):
            keyt = jax.random.fold_in(jax.random.fold_in(key, b), t)
            at = f"n_b = {truth.value('n_b'):g}, " if truth.law.nb_index is not None else ""
            bar.set_description(f"design: {at}{budget} questions")
            for row in dz.design_study(keyt, truth, noise, designs, options, bar.update):
                rows.append(_row(truth, budget, row))
    if args.k_sweep:
        truth, budget = truths[0], args.questions[0]
        swept = _criterion(truth, noise, criterion, candidates, budget)
        for i, k in enumerate(args.k_sweep):
            found = dz.search_designs(
                truth, noise, k=k, total_questions=budget * args.k, candidates=candidates,
                criterion=swept, top=1,
            )  # fmt: skip
            pair = [found.designs[0], dz.log_spaced(k, 1, 768, budget * args.k)]
            bar.set_description(f"design: K = {k}")
            study = dz.design_study(
                jax.random.fold_in(key, 10_000 + i), truth, noise, pair, options, bar.update
            )
            for kind, row in zip(("screen-optimal", "log-spaced"), study, strict=True):
                sweep.append({"kind": kind, **_row(truth, budget, row)})
    bar.total = bar.n  # searches may find fewer designs than the most announced
    bar.close()
    seconds = time.perf_counter() - start
    _print(rows)
    print(f"({len(rows)} simulated designs x {args.m} experiments in {seconds:.0f} s)",
          file=sys.stderr)  # fmt: skip
    if out is None:
        return 0
    written = [files.write_csv(out / "design.csv", {k: [r[k] for r in rows] for k in rows[0]})]
    payload = {
        "rows": rows,
        "k_sweep": sweep,
        "searches": searches,
        "seconds": seconds,
        "metadata": files.run_metadata(
            seed=args.seed,
            law=args.law,
            params=args.params,
            n_b=args.n_b,
            noise=str(noise),
            options=str(options),
            status_note="null numbers are non-finite; see each row's status"
            " and n_b_open (an open interval has infinite width)",
        ),
    }
    written.append(files.write_json(out / "design.json", payload))
    if args.plot:
        from tokenscale_sim.plots.design import power_vs_nb, width_vs_k

        written.append(files.save_figure(power_vs_nb(rows), out / "power_vs_nb.png", dpi=110))
        if sweep:
            written.append(files.save_figure(width_vs_k(sweep), out / "width_vs_k.png", dpi=110))
    for path in written:
        print(f"wrote {Path(args.out) / Path(path).name}", file=sys.stderr)
    return 0
