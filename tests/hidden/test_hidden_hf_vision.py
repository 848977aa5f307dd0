"""Hugging Face vision tokens: a LLaVA-style VLM's language-model states at the image tokens, a
CLIP tower's patch tokens (alone and inside the VLM), a bf16 model, and memory flat in the number
of pairs. Tiny random models from ``hf_models``, loaded back by path; nothing is downloaded."""

import tracemalloc

import hf_models
import numpy as np
import pytest

from tokenscale_sim.hidden import hf, hf_images, hf_text
from tokenscale_sim.hidden.measure import MeasureOptions, pair_statistics


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder of 3 images of different sizes (3 pairs)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(40, 60, 3), (50, 50, 3), (70, 30, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"im{i}.png")
    return str(folder)


def _per_image(plan, layers):
    """{layer: (2 * pairs, n, d)} from the plan, rows in pair order (A, B, A, B...)."""
    out = {k: [] for k in layers}
    for batch in plan.batches(2):
        for k, h in hf.run_batch(plan, batch, layers).items():
            out[k].append(h.reshape(-1, *h.shape[2:]))
    return {k: np.concatenate(v) for k, v in out.items()}


def test_clip_tower_patch_tokens_at_every_layer(tmp_path, images):
    import torch

    loaded = hf.load(hf_models.save_clip(tmp_path / "clip"), device="cpu")
    assert loaded.kind == "tower"  # a vision-only config is measured as a tower
    plan = hf_images.image_plan(loaded.model, loaded.processor, images, kind="tower")
    assert (plan.n, plan.d, plan.stack.count, plan.pairs) == (16, 32, 2, 3)
    assert plan.meta["dropped_leading"] == 1  # the CLS token
    got = _per_image(plan, [0, 1, 2])
    for row, name in enumerate(name for pair in plan.meta["pairs"] for name in pair):
        pixels = loaded.processor(images=[hf_images.load_image(name)], return_tensors="pt")
        with torch.no_grad():
            ref = loaded.model(**pixels, output_hidden_states=True).hidden_states
        for k in (0, 1, 2):
            np.testing.assert_allclose(got[k][row], ref[k][0, 1:].numpy(), atol=2e-5)


@pytest.mark.slow
def test_vlm_language_model_states_at_image_tokens(tmp_path, images):
    import torch

    path = hf_models.save_llava(tmp_path / "llava")
    loaded = hf.load(path, device="cpu")
    assert loaded.kind == "vlm"
    plan = hf_images.image_plan(loaded.model, loaded.processor, images, prompt="the cat")
    text = plan.meta["prompt"]
    assert (plan.n, plan.stack.count) == (16, 2) and "<image>" in text
    got = _per_image(plan, [0, 1, 2])
    for row, name in enumerate(name for pair in plan.meta["pairs"] for name in pair):
        inputs = loaded.processor(
            images=[hf_images.load_image(name)], text=[text], return_tensors="pt"
        )
        where = (inputs["input_ids"][0] == 4).nonzero()[:, 0].numpy()  # image_token_index 4
        assert where[0] == plan.meta["first_position"] and len(where) == 16
        with torch.no_grad():
            ref = loaded.model(**inputs, output_hidden_states=True).hidden_states
        for k in (0, 1, 2):
            np.testing.assert_allclose(got[k][row], ref[k][0, where].numpy(), atol=2e-5)
    # --tower on the same folder: the VLM's CLIP tower alone
    tower = hf.load(path, tower=True, device="cpu")
    tplan = hf_images.image_plan(tower.model, tower.processor, images, kind="tower")
    got = _per_image(tplan, [1])[1]
    name = tplan.meta["pairs"][0][0]
    pixels = tower.processor.image_processor(
        images=[hf_images.load_image(name)], return_tensors="pt"
    )
    with torch.no_grad():
        ref = hf.vision_module(tower.model)(**pixels, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(got[0], ref[1][0, 1:].numpy(), atol=2e-5)


@pytest.mark.slow
def test_bf16_model_statistics_in_float64(tmp_path):
    import torch

    path = hf_models.save_llama(tmp_path / "bf16", dtype=torch.bfloat16)
    pairs = hf_models.write_pairs(tmp_path / "pairs.jsonl")
    loaded = hf.load(path, device="cpu")
    assert loaded.meta["dtype"] == "bfloat16"
    plan = hf_text.text_plan(loaded.model, loaded.processor, pairs)
    chunks = list(hf.hidden_chunks(plan, [2], batch=4))
    chunk = chunks[0][2]
    assert chunk.hidden.dtype == np.float64
    values, valid = pair_statistics(chunk)
    ok = valid[0]
    np.testing.assert_allclose(values[0][ok] ** 2, 2 * values[-1][ok], rtol=1e-10, atol=1e-12)
    # the same checkpoint read in float32: the bf16 states agree to bf16 rounding
    full = hf.load(path, device="cpu", dtype="float32")
    assert full.meta["dtype"] == "float32"
    plan32 = hf_text.text_plan(full.model, full.processor, pairs)
    m16 = hf.measure_model(plan, [2], MeasureOptions(bootstrap=0, fit=False))[2]
    m32 = hf.measure_model(plan32, [2], MeasureOptions(bootstrap=0, fit=False))[2]
    for name in ("psi_eq", "psi_ab"):
        diff = np.nan_to_num(m16.curves[name].mean - m32.curves[name].mean)
        assert np.max(np.abs(diff)) < 0.05, name


@pytest.mark.slow
def test_memory_is_flat_in_the_number_of_pairs(tmp_path):
    loaded = hf.load(hf_models.save_llama(tmp_path / "llama"), device="cpu")
    options = MeasureOptions(bootstrap=50)

    def peak(repeat: int) -> int:
        path = hf_models.write_pairs(tmp_path / f"p{repeat}.jsonl", hf_models.PAIRS * repeat)
        plan = hf_text.text_plan(loaded.model, loaded.processor, path)
        tracemalloc.start()
        try:
            results = hf.measure_model(plan, "all", options, batch=2)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert results[2].pairs == 4 * repeat

    peak(1)  # compile the statistics' programs once
    small, large = peak(2), peak(16)  # 8 and 64 pairs
    assert large < 1.5 * small, (small, large)
