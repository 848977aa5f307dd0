"""Overhead of ``tokenscale measure --hf``'s statistics against the model's forward pass alone.

Random Llama-style causal LMs built from configs (nothing downloaded), a word-level tokenizer
trained on the shipped text pairs, the 24 shipped pairs through the chat template. Per model
size and layer selection, interleaved repeats (median reported) of:

- ``forward``: the plain ``model(input_ids, attention_mask)`` over the same batches (logits
  included): what running the model costs anyway;
- ``read``: :func:`hidden.hf.run_batch` over the batches: hooks on the selected layers, the
  continuation tokens gathered, the forward stopped after the deepest selected layer;
- ``stats``: the float64 statistics (psi's, D, Upsilon per pair) streamed into one accumulator
  per layer (:func:`hidden.measure.measure_streamed`, no fit, no bootstrap) over the chunks that
  ``read`` returned: the work ``measure --hf`` adds to reading the states.

``stats overhead`` = stats / forward: what the statistics add to a forward pass. It is timed on
its own rather than as the difference of two forward-bound timings, which a busy machine makes
noisier than the number itself. The programs of the statistics are compiled in a warm-up run
first (a one-off cost of about a second per array shape, not counted).

    python benchmarks/bench_hf.py [--repeats 5] [--sizes tiny,mid] [--out results_hf.md]
"""

import argparse
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

HERE = Path(__file__).parent
SIZES = {  # hidden, layers, heads, intermediate
    "tiny": (64, 2, 4, 128),
    "mid": (512, 8, 8, 1408),
    "large": (1024, 16, 16, 2816),
}


def tokenizer(pairs):
    """A word-level fast tokenizer over the pairs' words, with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    text = [t for p in pairs for t in (p.prompt, p.a, p.b)]
    specials = ["<pad>", "<unk>", "<s>", "</s>", "user", "assistant", ":"]
    tok.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")  # fmt: skip
    fast.chat_template = (
        "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}<s> assistant : {% endif %}"
    )
    return fast


def model(size: str, vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, inter = SIZES[size]
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=heads, max_position_embeddings=1024,
                         pad_token_id=0)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(size: str, layers: str, repeats: int, batch: int, count: int) -> dict:
    import torch

    from tokenscale_sim.hidden import hf, hf_text
    from tokenscale_sim.hidden.measure import MeasureOptions, measure_streamed

    pairs, _ = hf_text.read_pairs()
    tok = tokenizer(pairs)
    pairs = pairs[:count]
    lm = model(size, len(tok) + 16)  # room for ids the tokenizer adds beyond len()
    plan = hf_text.text_plan(lm, tok, pairs)
    chosen = hf.parse_layers(layers, plan.stack.count, "bench")
    options = MeasureOptions(fit=False, bootstrap=0)
    batches = list(plan.batches(batch))

    def forward():
        with torch.inference_mode():
            for b in batches:
                lm(**b.inputs)

    chunks = []

    def read():
        chunks.clear()
        chunks.extend(hf.hidden_chunks(plan, chosen, batch))

    def stats():
        measure_streamed(chunks, options)

    read()
    stats()  # compile the statistics' programs
    times = {"forward": [], "read": [], "stats": []}
    for _ in range(repeats):
        for name, fn in (("forward", forward), ("read", read), ("stats", stats)):
            times[name].append(timed(fn))
    med = {k: float(np.median(v)) for k, v in times.items()}
    params = sum(p.numel() for p in lm.parameters())
    row = {
        "size": size,
        "pairs": len(pairs),
        "params_m": params / 1e6,
        "layers": f"{layers} ({len(chosen)})",
        "tokens": int(sum(b.inputs["attention_mask"].sum() for b in batches)),
        "n": plan.n,
        **med,
        "overhead": med["stats"] / med["forward"],
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="pairs per forward pass")
    parser.add_argument("--sizes", default="tiny,mid", help=f"from {tuple(SIZES)}")
    parser.add_argument("--pairs", type=int, default=24, help="the first PAIRS shipped pairs")
    parser.add_argument("--out", default=str(HERE / "results_hf.md"))
    args = parser.parse_args()
    import torch
    import transformers

    rows = [bench(size, layers, args.repeats, args.batch, args.pairs)
            for size in args.sizes.split(",") for layers in ("last", "all")]  # fmt: skip
    header = ("| model | params (M) | layers read | pairs | tokens | n max | forward s | read s "
              "| stats s | stats overhead |\n" + "|---" * 10 + "|")  # fmt: skip
    lines = [
        f"| {r['size']} | {r['params_m']:.1f} | {r['layers']} | {r['pairs']} | {r['tokens']} | "
        f"{r['n']} | "
        f"{r['forward']:.3f} | {r['read']:.3f} | {r['stats']:.3f} | {100 * r['overhead']:.1f} % |"
        for r in rows
    ]
    load = os.getloadavg()[0]
    device = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} CPU "
              f"({os.cpu_count()} cores, load average {load:.1f} at the end), "
              f"{torch.get_num_threads()} torch threads, torch "
              f"{torch.__version__}, transformers {transformers.__version__}, jax "
              f"{jax.__version__} (float64 statistics), batch {args.batch} pairs, median of "
              f"{args.repeats} interleaved repeats")  # fmt: skip
    text = "\n".join([header, *lines, "", device, ""])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
