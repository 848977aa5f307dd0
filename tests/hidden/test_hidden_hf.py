"""Hugging Face text branch pairs: positions and layers against ``output_hidden_states``, D^2 = 2
Upsilon per pair, masks of unequal lengths, the one-pass multi-layer measurement, errors.

The models are tiny random ones written with ``save_pretrained`` and loaded back by path
(``hf_models``); nothing is downloaded (HF_HUB_OFFLINE=1, ``local_files_only``).
"""

import hf_models
import numpy as np
import pytest

from tokenscale_sim.hidden import hf, hf_text
from tokenscale_sim.hidden.arrays import from_arrays
from tokenscale_sim.hidden.measure import MeasureOptions, measure, pair_statistics

OPTIONS = MeasureOptions(bootstrap=0)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    path = hf_models.save_llama(root / "llama")
    pairs = hf_models.write_pairs(root / "pairs.jsonl")
    return hf.load(path, device="cpu"), pairs


def _reference(loaded, pairs, chat):
    """Unbatched forward passes of the whole rendered branches with output_hidden_states=True;
    the continuation's tokens found independently of hf_text (the word-level tokenizer maps
    each word to one token): (layers, pairs, 2, N, d) states, lengths, starts."""
    import torch

    tok, model = loaded.processor, loaded.model
    rows, lengths, starts = [], [], []
    for pair in pairs:
        branch = []
        for cont in (pair.a, pair.b):
            cont_ids = tok(cont.strip(), add_special_tokens=False)["input_ids"]
            if chat:
                user = [{"role": "user", "content": pair.prompt}]
                head = tok.apply_chat_template(user, add_generation_prompt=True)
                head = head["input_ids"] if hasattr(head, "keys") else head
                ids = tok.apply_chat_template(
                    [*user, {"role": "assistant", "content": cont}], tokenize=False
                )
                ids = tok(ids, add_special_tokens=False)["input_ids"]
                start = len(head)
            else:
                start = len(tok(pair.prompt)["input_ids"])  # with <s>
                ids = tok(pair.prompt + cont)["input_ids"]
            assert ids[start : start + len(cont_ids)] == cont_ids
            with torch.no_grad():
                out = model(torch.tensor([ids]), output_hidden_states=True)
            states = torch.stack(out.hidden_states)[:, 0, start : start + len(cont_ids)]
            branch.append((states.float().numpy(), start))
        n = min(s.shape[1] for s, _ in branch)
        lengths.append(n)
        starts.append([branch[0][1], branch[1][1]])
        rows.append([s[:, :n] for s, _ in branch])
    n_max = max(lengths)
    d = rows[0][0].shape[-1]
    hidden = np.zeros((rows[0][0].shape[0], len(pairs), 2, n_max, d))
    for p, (a, b) in enumerate(rows):
        hidden[:, p, 0, : lengths[p]], hidden[:, p, 1, : lengths[p]] = a, b
    return hidden, np.array(lengths), starts


@pytest.mark.parametrize("chat", [True, False])
def test_tokens_are_the_continuations_at_every_layer(llama, chat):
    loaded, path = llama
    pairs, _ = hf_text.read_pairs(path)
    plan = hf_text.text_plan(loaded.model, loaded.processor, path, chat_template=chat)
    reference, lengths, starts = _reference(loaded, pairs, chat)
    assert plan.meta["chat_template"] is chat
    np.testing.assert_array_equal(plan.lengths, lengths)
    assert [row[:2] for row in plan.meta["positions"]] == starts
    assert plan.stack.count == 2 and plan.n == lengths.max()
    got = []
    for batch in plan.batches(3):  # batches of unequal sequences, right-padded
        got.append(hf.run_batch(plan, batch, [0, 1, 2]))
    for k in (0, 1, 2):
        states = np.concatenate([g[k] for g in got])  # (pairs, 2, N, d)
        for p, n in enumerate(lengths):
            np.testing.assert_allclose(states[p, :, :n], reference[k, p, :, :n], atol=2e-5)


def test_measurement_equals_arrays_of_reference_states_with_masks(llama):
    loaded, path = llama
    pairs, _ = hf_text.read_pairs(path)
    plan = hf_text.text_plan(loaded.model, loaded.processor, path)
    reference, lengths, _ = _reference(loaded, pairs, chat=True)
    assert len(set(lengths.tolist())) > 1  # unequal continuation lengths: masked
    results = hf.measure_model(plan, "all", OPTIONS, batch=2)
    assert sorted(results) == [0, 1, 2]
    for k, m in results.items():
        want = measure(from_arrays(reference[k], lengths=lengths), OPTIONS)
        np.testing.assert_array_equal(m.count, [(lengths >= n).sum() for n in m.n])
        for name, curve in m.curves.items():
            np.testing.assert_allclose(curve.mean, want.curves[name].mean, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(m.fit.estimates, want.fit.estimates, rtol=1e-4)
    single = measure(hf.source(plan, -1), MeasureOptions(chunk=3, bootstrap=0))  # Python source
    np.testing.assert_allclose(single.curves["divergence"].mean,
                               results[2].curves["divergence"].mean, rtol=1e-10)  # fmt: skip


def test_d_squared_is_twice_upsilon_per_pair_on_unit_states(llama):
    loaded, path = llama
    plan = hf_text.text_plan(loaded.model, loaded.processor, path)
    for chunks in hf.hidden_chunks(plan, [1], batch=4):
        chunk = chunks[1]
        values, valid = pair_statistics(chunk, normalise=True)
        d, upsilon = values[0], values[-1]
        ok = valid[0]
        np.testing.assert_allclose(d[ok] ** 2, 2 * upsilon[ok], rtol=1e-10, atol=1e-12)
        u = chunk.hidden / np.linalg.norm(chunk.hidden, axis=-1, keepdims=True).clip(1e-300)
        direct = np.linalg.norm(np.cumsum(u[:, 0] - u[:, 1], axis=1), axis=-1)  # NumPy D(n)
        np.testing.assert_allclose(d[ok], direct[ok], rtol=1e-10)
        assert not np.any(chunk.hidden[~ok[:, None, :].repeat(2, 1)])  # past a length: zeros


def test_forward_stops_after_the_deepest_selected_layer(llama):
    loaded, path = llama
    plan = hf_text.text_plan(loaded.model, loaded.processor, path)
    calls = []
    handle = loaded.model.model.norm.register_forward_hook(lambda *a: calls.append(1))
    try:
        batch = next(plan.batches(2))
        hf.run_batch(plan, batch, [1])
        assert calls == []  # block 2, the final norm and the logits never ran
        hf.run_batch(plan, batch, [2])
        assert calls == [1]
    finally:
        handle.remove()


def test_layers_parse_and_errors(llama, tmp_path):
    assert hf.parse_layers("all", 2, "f") == (0, 1, 2)
    assert hf.parse_layers("last", 2, "f") == (2,)
    assert hf.parse_layers("0,-1", 2, "f") == (0, 2)
    with pytest.raises(ValueError, match=r"f: layers must lie in 0..2"):
        hf.parse_layers("3", 2, "f")
    with pytest.raises(ValueError, match="'all', 'last' or integers"):
        hf.parse_layers("top", 2, "f")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "a": "b", "b": "c"}\n{"prompt": "x", "a": 3, "b": "y"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 2: a \(or chosen\) must be"):
        hf_text.read_pairs(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        hf_text.read_pairs(bad)


def test_not_local_and_not_cached_says_how_to_fetch():
    with pytest.raises(ValueError, match=r"nothing is downloaded: fetch it first with `hf downl"):
        hf.load("nobody-here/no-such-model", device="cpu")


def test_a_folder_without_tokenizer_is_one_line(tmp_path):
    from transformers import LlamaForCausalLM

    LlamaForCausalLM(hf_models.llama_config(16)).save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match=r"load: .*bare' has no tokenizer that loads \(") as err:
        hf.load(tmp_path / "bare", device="cpu")
    assert "\n" not in str(err.value)


def test_shipped_pairs_are_valid_and_enough_for_the_bootstrap():
    pairs, meta = hf_text.read_pairs()
    assert meta["shipped"] and len(pairs) >= 20
    assert len({p.prompt for p in pairs}) == len(pairs)
    assert all(p.a.strip() != p.b.strip() for p in pairs)
