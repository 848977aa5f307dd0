"""Image branch pairs for a Hugging Face VLM or vision tower (``hf`` extra).

A pair is two different images: every unordered pair of the scikit-image photographs the ViT-S
path uses (:data:`tokenscale_sim.hidden.vit.PHOTOS`, which needs the ``vision`` extra) or of the
images in a folder of the user's (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``, read with
Pillow). Each image is centre-cropped to a square and resized to :data:`SIDE` pixels before the
model's own processor sees it, so that a processor with dynamic resolution gives every image the
same number of tokens.

- ``"vlm"``: both images go through the vision-language model with one prompt (rendered through
  the processor's chat template when it has one, else ``"<image>\\n" + prompt``); the tokens are
  the *language model's* hidden states at the image-token positions, in the processor's order
  (where the theory's vision tokens live);
- ``"tower"``: the vision tower alone (``pixel_values`` in); the tokens are its patch tokens,
  the leading extra ones (CLS, registers) dropped when the config gives the patch grid.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tokenscale_sim.hidden import hf

SIDE = 448
"""Side of the square each image is resized to before the model's processor."""
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
PROMPT = "Describe the image."


def image_names(images: str | os.PathLike[str] | Sequence[str] | None) -> tuple[str, ...]:
    """The images of the pairs: a folder (its image files, sorted), names of scikit-image
    photographs, or None for :data:`~tokenscale_sim.hidden.vit.PHOTOS`."""
    from tokenscale_sim.hidden import vit

    if images is None:
        return vit.PHOTOS
    if isinstance(images, str | os.PathLike):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"image_names: no such folder {str(folder)!r}")
        found = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if len(found) < 2:
            raise ValueError(
                f"image_names: {str(folder)!r} must hold at least 2 images {SUFFIXES}, "
                f"got {len(found)}"
            )
        return tuple(found)
    names = tuple(images)
    if len(set(names)) < 2:
        raise ValueError(f"image_names: need at least 2 distinct images, got {names!r}")
    return names


def load_image(name: str) -> np.ndarray:
    """(SIDE, SIDE, 3) uint8: a file path (Pillow) or a scikit-image photograph, centre-cropped to
    a square and resized."""
    from PIL import Image

    from tokenscale_sim.hidden import vit

    if Path(name).suffix.lower() in SUFFIXES:
        try:
            with Image.open(name) as im:
                image = im.convert("RGB")
        except OSError as err:
            raise ValueError(f"load_image: cannot read {name!r} as an image ({err})") from None
    else:
        image = Image.fromarray(vit.load_photo(name))
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return np.asarray(image.crop(box).resize((SIDE, SIDE), Image.Resampling.BICUBIC))


def _prompt_text(processor: Any, prompt: str) -> str:
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"}, {"type": "text", "text": prompt}]
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
    token = getattr(processor, "image_token", None) or "<image>"
    return f"{token}\n{prompt}"


def _image_token_id(model: Any, processor: Any) -> int:
    for owner in (model.config, processor):
        for key in ("image_token_id", "image_token_index"):
            value = getattr(owner, key, None)
            if isinstance(value, int):
                return value
    token = getattr(processor, "image_token", None)
    if token is None:
        raise ValueError("image_plan: cannot tell the image token of this model and processor")
    return int(processor.tokenizer.convert_tokens_to_ids(token))


def _patch_tokens(config: Any) -> int | None:
    size, patch = getattr(config, "image_size", None), getattr(config, "patch_size", None)
    if isinstance(size, int) and isinstance(patch, int) and patch > 0:
        return (size // patch) ** 2
    return None


def image_plan(
    model: Any,
    processor: Any,
    images: str | os.PathLike[str] | Sequence[str] | None = None,
    *,
    kind: str = "vlm",
    prompt: str = PROMPT,
    n_max: int | None = None,
) -> hf.Plan:
    """Pairs of different images through a loaded VLM (``kind="vlm"``) or vision tower
    (``kind="tower"``; for a VLM, its tower is found with :func:`hf.vision_module`).

    Args:
        model: a transformers model, already loaded.
        processor: its processor (VLM) or image processor (tower).
        images: a folder, scikit-image names, or None (:data:`~tokenscale_sim.hidden.vit.PHOTOS`).
        kind: ``"vlm"`` or ``"tower"``.
        prompt: the VLM's text prompt (``"vlm"`` only).
        n_max: measure at most this many tokens (None: all).

    Returns:
        :class:`~tokenscale_sim.hidden.hf.Plan`; its meta records the images, the prompt and
        which token positions were read.
    """
    if kind not in ("vlm", "tower"):
        raise ValueError(f"image_plan: kind must be 'vlm' or 'tower', got {kind!r}")
    if n_max is not None and n_max < 1:
        raise ValueError(f"image_plan: n_max must be >= 1, got {n_max!r}")
    names = image_names(images)
    combos = tuple(itertools.combinations(range(len(names)), 2))
    image_processor = getattr(processor, "image_processor", processor)
    if kind == "tower":
        module = hf.vision_module(model)
        config = getattr(module, "config", model.config)
        config = getattr(config, "vision_config", config)
        text = None
    else:
        module, config = model, model.config.get_text_config()
        text = _prompt_text(processor, prompt)

    def encode(pictures: list[np.ndarray]) -> dict[str, Any]:
        if text is None:
            return dict(image_processor(images=pictures, return_tensors="pt"))
        return dict(processor(images=pictures, text=[text] * len(pictures), return_tensors="pt"))

    probe = encode([load_image(names[0])])
    if text is None:
        tokens = _run_width(module, probe)
        extra, token_id = 0, None
        patches = _patch_tokens(config)
        if patches is not None and tokens - patches in range(0, 9):
            extra = tokens - patches
        where = np.arange(extra, tokens)
        token_meta: dict = {"tokens": "patch tokens of the vision tower", "dropped_leading": extra}
    else:
        token_id = _image_token_id(model, processor)
        where = np.flatnonzero(probe["input_ids"][0].numpy() == token_id)
        if not where.size:
            raise ValueError(f"image_plan: the prompt {text!r} holds no image token ({token_id})")
        token_meta = {
            "tokens": "language-model hidden states at the image-token positions",
            "image_token_id": token_id,
            "prompt": text,
            "first_position": int(where[0]),
        }
    where = where[: n_max or len(where)]
    n = len(where)

    def batches(size: int) -> Iterator[hf.Batch]:
        cache: dict[int, np.ndarray] = {}
        for first in range(0, len(combos), size):
            part = combos[first : first + size]
            order = [i for pair in part for i in pair]
            pictures = [cache[i] if i in cache else load_image(names[i]) for i in order]
            cache = dict(zip(order, pictures, strict=True))  # only this batch's images
            inputs = hf.to_device(encode(pictures), module)
            if token_id is not None:
                ids = inputs["input_ids"].cpu().numpy()
                if any(
                    not np.array_equal(np.flatnonzero(row == token_id)[:n], where) for row in ids
                ):
                    raise ValueError(
                        "image_plan: images gave different image-token positions; give images "
                        "that the processor maps to one number of tokens"
                    )
            positions = np.broadcast_to(where, (len(order), n))
            yield hf.Batch(inputs, positions, np.full(len(part), n, dtype=np.int64))

    stack = hf.layer_stack(module if text is None else hf.language_model(model),
                           getattr(config, "num_hidden_layers", None), "image_plan")  # fmt: skip
    meta = {
        **token_meta,
        "n_max": n_max,
        "images": list(names),
        "pairs": [[names[i], names[j]] for i, j in combos],
        "image_side": SIDE,
    }
    lengths = np.full(len(combos), n, dtype=np.int64)
    return hf.Plan(module, stack, batches, len(combos), n, config.hidden_size, lengths, meta)


def _run_width(module: Any, inputs: dict[str, Any]) -> int:
    """Tokens per image of a vision tower (one forward pass on the probe image)."""
    torch = hf.torch_module("image_plan")
    with torch.inference_mode():
        out = module(**hf.to_device(inputs, module))
    return int(out.last_hidden_state.shape[1])
