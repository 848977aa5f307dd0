"""Write the example notebooks (stored without outputs). Run: python notebooks/make_notebooks.py

Each notebook reads ``TOKENSCALE_NOTEBOOK_SMALL`` (set by the test suite) to run at a tiny size.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
SETUP = """import os
import jax
import numpy as np
import matplotlib.pyplot as plt
jax.config.update("jax_enable_x64", True)  # float64 at the edge, never at import
SMALL = bool(os.environ.get("TOKENSCALE_NOTEBOOK_SMALL"))"""

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        new_markdown_cell(
            "# Quickstart: the theory in five cells\n\n"
            "Two inputs share a prefix, then carry n different vision tokens. The branch divergence "
            "D(n) is bounded by sqrt(2 Upsilon(n)) with "
            "Upsilon(n) = n (1 - psi_eq) + n (n - 1) Delta, and its growth turns from sqrt(n) "
            "to linear at the transition point n_b = (1 - psi_eq)/Delta - 1."
        ),
        new_code_cell(SETUP + "\nfrom tokenscale_sim import theory"),
        new_code_cell(
            "n = np.arange(1.0, 201.0)\n"
            "c = theory.curves(n, psi_eq=0.5, psi_aabb=0.3, psi_ab=0.25, beta=1.0, d=256)\n"
            "print('n_b =', float(c.n_b))\n"
            "print('regimes at n = 1, 9, 200:', [theory.REGIMES[int(c.regime[i])] for i in (0, 8, 199)])"
        ),
        new_code_cell(
            "from tokenscale_sim.plots.theory import divergence_curves, alpha_family\n"
            "divergence_curves(c);"
        ),
        new_code_cell(
            "n_bs = [2, 5.6, 9.2, 12.8, 16.4, 20]\n"
            "grid = np.linspace(1, 50, 200)\n"
            "alphas = np.stack([np.asarray(theory.alpha(grid, 1.0, nb)) for nb in n_bs])\n"
            "alpha_family(grid, alphas, n_bs);"
        ),
        new_code_cell(
            "# the exact Gaussian E[D] sits just under the bound: ratio ~ 1 - 1/(4d)\n"
            "print(float(c.gaussian_mean[-1] / c.bound[-1]), 1 - 1 / (4 * 256))"
        ),
    ],
    "02_correlation_structures.ipynb": [
        new_markdown_cell(
            "# Correlation structures: vary them, run Monte Carlo, compare with theory\n\n"
            "Every structure is a sum of separable terms C (x) K. The exact v_n = E[D(n)^2], "
            "psi(n) and E[D(n)] come from prefix sums; the Monte Carlo samples Gaussian tokens "
            "with JIT-compiled structure-aware samplers."
        ),
        new_code_cell(
            SETUP + "\nfrom tokenscale_sim import structures as st\n"
            "from tokenscale_sim.montecarlo.simulation import SimulationConfig, simulate\n"
            "from tokenscale_sim.plots.simulation import plot_simulation"
        ),
        new_code_cell(
            "n_max, d, m = (32, 32, 64) if SMALL else (256, 128, 2000)\n"
            "studies = {\n"
            "    'exchangeable': st.exchangeable(psi_eq=0.5, psi_aa=0.3, psi_ab=0.25),\n"
            "    'decaying': st.decaying(length=8.0, coupling=0.3),\n"
            "    'patch grid': st.patch_grid(length=3.0, coupling=0.3),\n"
            "    'decaying + shared': 0.8 * st.decaying(8.0, 0.3) + st.shared(0.2),\n"
            "}\n"
            "for name, s in studies.items():\n"
            "    s.validate(n_max)\n"
            "    psi = s.psi(n_max)\n"
            "    print(f'{name:18s} psi_eq={psi.psi_eq[-1]:.3f} Delta(n_max)={psi.delta[-1]:.4f}')"
        ),
        new_code_cell(
            "key = jax.random.key(0)\n"
            "config = SimulationConfig(n_max=n_max, d=d, m=m)\n"
            "results = {name: simulate(jax.random.fold_in(key, i), s, config)\n"
            "           for i, (name, s) in enumerate(studies.items())}"
        ),
        new_code_cell(
            "for name, r in results.items():\n"
            "    z = (r.divergence.mean - r.exact.gaussian_mean) / r.divergence.se\n"
            "    print(f'{name:18s} max |z| vs exact E[D] = {np.abs(z).max():.2f}')\n"
            "    fig = plot_simulation(r)\n"
            "    fig.suptitle(name)"
        ),
        new_markdown_cell(
            "## Your own structure, a sweep and a calibration\n\n"
            "A structure file (TOML) lists terms `weight * C (x) K`; every run writes its "
            "structure in the same form. `sweep` computes the exact theory of the family "
            "shared + image + decaying + local over a grid in one vmapped program; `calibrate` "
            "fits that family to psi(n) curves (here: exact curves of a known point, recovered)."
        ),
        new_code_cell(
            "import tomllib\n"
            "from tokenscale_sim import calibrate, families, sweep\n"
            "from tokenscale_sim.structure_files import structure_from_data, to_toml\n"
            'text = """\n'
            "[[terms]]\n"
            "weight = 0.2\n"
            "branch = [[1.0, 1.0], [1.0, 1.0]]\n"
            "kernel = { kind = 'ones' }\n"
            "[[terms]]\n"
            "weight = 0.8\n"
            "coupling = 0.3\n"
            "kernel = { kind = 'exponential', length = 8.0 }\n"
            '"""\n'
            "s = structure_from_data(tomllib.loads(text))\n"
            "print(np.allclose(s.v(n_max), studies['decaying + shared'].v(n_max)))\n"
            "print(to_toml(s))"
        ),
        new_code_cell(
            "axes = {'length': np.geomspace(1, 100, 20 if SMALL else 100),\n"
            "        'image': np.linspace(0, 0.3, 20 if SMALL else 100)}\n"
            "result = sweep.sweep(sweep.make_grid(axes, {'shared': 0.1, 'weight': 0.5}), at=64)\n"
            "print(f\"{len(result.columns['n_b'])} points in {result.seconds:.2f} s\")\n"
            "from tokenscale_sim.plots.structures import phase_diagram\n"
            "phase_diagram(result.columns, axes, '64')"
        ),
        new_code_cell(
            "truth = np.array([0.2, 0.1, 0.4, 6.0, 0.3, 0.5])  # families.PARAMS\n"
            "c = families.exact_psi(truth, 48)\n"
            "data = calibrate.PsiData(np.arange(1, 49), np.stack([c.psi_eq, c.psi_aa, c.psi_ab]))\n"
            "cal = calibrate.calibrate(data, n_fit=32)\n"
            "print(dict(zip(cal.params, cal.estimates.round(3))))\n"
            "print(calibrate.fit_line(cal))"
        ),
    ],
    "03_theory_vs_benchmarks.ipynb": [
        new_markdown_cell(
            "# Theory vs benchmarks: the paper's scores\n\n"
            "The paper fits each benchmark with a constant power law S = c n^(-alpha) by least "
            "squares of ln S on ln n. The alpha(n) model adds the transition point n_b; curves "
            "that saturate put it on a boundary, and the fitter says so."
        ),
        new_code_cell(SETUP + "\nfrom tokenscale_sim import fit"),
        new_code_cell(
            "curves = fit.load_paper_scores(exact_only=True)\n"
            "power = fit.fit_curves(curves, 'powerlaw')\n"
            "for g in range(len(curves.keys))[: 6 if SMALL else None]:\n"
            "    c, a = power.estimates[g]\n"
            "    print(f'{curves.label(g):55s} c={c:9.3f} alpha={a:+.4f}')"
        ),
        new_code_cell(
            "varying = fit.fit_curves(curves, 'alpha_n')\n"
            "for g in range(len(curves.keys))[: 6 if SMALL else None]:\n"
            "    c, beta, n_b = varying.estimates[g]\n"
            "    lo, hi = varying.ci_low[g, 2], varying.ci_high[g, 2]\n"
            "    where = varying.status(g).label\n"
            "    print(f'{curves.label(g):55s} beta={beta:+.3f} n_b={n_b:9.3g} [{lo:.3g}, {hi:.3g}] {where}')"
        ),
        new_code_cell(
            "n = np.geomspace(1, 768, 100)\n"
            "g = 0\n"
            "alpha_n = np.asarray(fit.alpha_curve('alpha_n', varying.estimates[g], n))\n"
            "plt.semilogx(n, alpha_n, label='alpha(n) model')\n"
            "plt.axhline(power.estimates[g, 1], color='k', ls='--', label='constant power law')\n"
            "plt.xlabel('n'); plt.ylabel('alpha'); plt.title(curves.label(g)); plt.legend();"
        ),
        new_markdown_cell(
            "## Which law?\n\n"
            "`compare_laws` fits every law to every curve (and to each curve without its two "
            "largest n, and without each point in turn, and to bootstrap resamples) in one "
            "vmapped program per law, then scores them by AICc, BIC, leave-one-out error and "
            "extrapolation error; the shape test asks whether ln S is convex in ln n, as the "
            "theory says."
        ),
        new_code_cell(
            "from tokenscale_sim.fit.compare import compare_laws, describe\n"
            "keys = [curves.label(g) for g in range(4)]\n"
            "a = curves.arrays\n"
            "subset = fit.curves_from_arrays(a.n[:4], a.y[:4], keys=keys) if SMALL else curves\n"
            "comp = compare_laws(jax.random.key(0), subset, ['powerlaw', 'alpha_n', 'broken'],\n"
            "                    bootstrap=0 if SMALL else 200)\n"
            "print(describe(comp))\n"
            "p = comp.pooled\n"
            "for law, w, e in zip(comp.laws, p.wins.aicc, p.extrap_rmse):\n"
            "    print(f'{law:10s} AICc wins {int(w):3d}, median extrapolation RMSE {e:.3f}')"
        ),
        new_code_cell(
            "from tokenscale_sim.plots.compare import comparison_figure\n"
            "labels = [' / '.join(k) for k in comp.keys]\n"
            "comparison_figure(comp, labels)"
        ),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
