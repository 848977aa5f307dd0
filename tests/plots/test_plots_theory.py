"""Theory figures: each returns a Figure with the expected artists, into new or given axes."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from tokenscale_sim.plots import theory as pt
from tokenscale_sim.theory import closed_forms as theory


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_divergence_curves_lines_and_regimes():
    c = theory.curves(np.arange(1.0, 101.0), 0.5, 0.3, 0.25)
    fig = pt.divergence_curves(c)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "bound sqrt(2 Upsilon)" in labels and "exact Gaussian E[D]" in labels
    assert any(lbl.startswith("n_b = 9") for lbl in labels)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.patches) == 3  # sublinear, transition, linear spans


def test_alpha_family_into_given_axes():
    fig0, ax = plt.subplots()
    n = np.linspace(1, 50, 50)
    nbs = [2.0, 20.0]
    alphas = np.stack([np.asarray(theory.alpha(n, 1.0, nb)) for nb in nbs])
    fig = pt.alpha_family(n, alphas, nbs, ax=ax)
    assert fig is fig0
    assert [line.get_label() for line in ax.get_lines()][:2] == ["n_b = 2", "n_b = 20"]


def test_regime_map_masks_nonpositive_nb():
    psi_eq = np.linspace(-0.5, 0.95, 7)
    delta = np.geomspace(1e-3, 1.0, 5)
    n_b = np.asarray(theory.transition_point(psi_eq[None, :], delta[:, None]))
    fig = pt.regime_map(psi_eq, delta, n_b)
    mesh = fig.axes[0].collections[0]
    assert np.ma.count_masked(mesh.get_array()) == np.sum(n_b <= 0)
    assert len(fig.axes) == 2  # map and colour bar
