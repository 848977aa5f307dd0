"""Fit figures draw what they are given: panels, the paper-style grid and alpha(n) bands."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from tokenscale_sim.fit.inference.uncertainty import AlphaBand
from tokenscale_sim.plots.fits import alpha_band_grid, alpha_band_plot, fit_grid, fit_panel


def test_fit_panel_on_given_axes_and_grid_of_18():
    n = np.array([1.0, 8, 64, 768])
    grid = np.geomspace(1, 768, 20)
    fig, ax = plt.subplots()
    out = fit_panel(n, 2 * n**0.2, grid, {"power law": 2 * grid**0.2}, title="x", ax=ax)
    assert out is fig and ax.get_xscale() == "log" and len(ax.lines) == 2
    panels = [(f"b{i}", n, 2 * n**0.2) for i in range(18)]
    fits = {"power law": np.tile(2 * grid**0.2, (18, 1)), "alpha_n": np.tile(grid**0.3, (18, 1))}
    fig = fit_grid(panels, grid, fits, suptitle="variant")
    assert isinstance(fig, Figure) and sum(a.axison for a in fig.axes) == 18
    plt.close("all")


def test_alpha_band_plot():
    n = np.geomspace(1, 768, 10)
    est = np.stack([-0.5 - 0.1 * np.log1p(n) / 10, -0.3 + 0 * n])
    band = AlphaBand(n, est, est - 0.05, est + 0.05, 0.95)
    fig = alpha_band_plot(band, ["a", "b"])
    assert "95%" in fig.axes[0].get_ylabel()
    fig = alpha_band_grid(band, ["a", "b"], ncols=2)
    assert [a.get_title() for a in fig.axes] == ["a", "b"]
    plt.close("all")
