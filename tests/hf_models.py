"""Tiny random Hugging Face models built offline for the ``hf`` tests (no download anywhere).

Each builder writes a model with ``save_pretrained`` into a folder, so that the tests load it
back by path, the user's code path: a 2-layer Llama-style causal LM with a word-level tokenizer
trained on the fly (with a chat template), a LLaVA-style VLM (tiny CLIP tower + that language
model) with its processor, and a tiny CLIP vision model with its image processor.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it

WORDS = (
    "the cat sat on a mat while dog ran far away and bird sang in tree under sun moon "
    "river stone light rain wind quiet loud red blue green small big old new house road"
)
CHAT = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)
VLM_CHAT = (
    "{% for m in messages %}<s> {{ m['role'] }} : {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %} </s> "
    "{% endfor %}{% if add_generation_prompt %}<s> assistant : {% endif %}"
)
PAIRS = [
    {"prompt": "the cat sat", "a": " on a mat while the dog ran far", "b": " in a tree"},
    {"prompt": "bird sang", "a": " under the sun and moon", "b": " in the loud wind and rain"},
    {"prompt": "a small house", "a": " by the river stone road", "b": " on a big old green road"},
    {"prompt": "the red dog", "chosen": " ran away", "rejected": " sat quiet in light rain"},
]


def tokenizer(chat: bool = True):
    """A word-level fast tokenizer (special tokens <pad> <unk> <s> </s> <image>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "user", "assistant", ":"]
    tok.train_from_iterator([WORDS], trainers.WordLevelTrainer(special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
    )  # fmt: skip
    if chat:
        fast.chat_template = CHAT
    return fast


def llama_config(vocab: int, hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )  # fmt: skip


def save_llama(folder, *, chat: bool = True, dtype=None, seed: int = 0, layers: int = 2) -> str:
    """A Llama-style causal LM (``layers`` blocks of width 32) and its tokenizer in ``folder``."""
    import torch
    from transformers import LlamaForCausalLM

    tok = tokenizer(chat)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(len(tok), layers=layers))
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def clip_config(size: int = 32, patch: int = 8):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=size, patch_size=patch,
    )  # fmt: skip


def image_processor(size: int = 32):
    from transformers import CLIPImageProcessor

    crop = {"height": size, "width": size}
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size=crop)


def save_clip(folder, seed: int = 0) -> str:
    """A tiny CLIP vision model (2 layers, 4 x 4 patches + CLS) and its image processor."""
    import torch
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    CLIPVisionModel(clip_config()).save_pretrained(folder)
    image_processor().save_pretrained(folder)
    return str(folder)


def save_llava(folder, seed: int = 0, layers: int = 2) -> str:
    """A LLaVA-style VLM (tiny CLIP tower, a Llama of ``layers`` blocks) and its processor (16
    image tokens)."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = tokenizer(chat=False)
    config = LlavaConfig(
        vision_config=clip_config().to_dict(),
        text_config=llama_config(len(tok), layers=layers).to_dict(),
        image_token_index=4, vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    LlavaProcessor(
        image_processor=image_processor(), tokenizer=tok, patch_size=8,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        image_token="<image>", chat_template=VLM_CHAT,
    ).save_pretrained(folder)  # fmt: skip
    return str(folder)


def long_pairs(count: int, length: int, seed: int = 0) -> list[dict]:
    """``count`` text pairs whose continuations are ``length`` to ``length + 19`` words of
    :data:`WORDS` (one token each): curves long enough for ``calibrate --n-fit 64``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = WORDS.split()

    def text(k):
        return " " + " ".join(rng.choice(words, k))

    return [
        {"prompt": text(4).strip(), "a": text(length + rng.integers(20)),
         "b": text(length + rng.integers(20))}
        for _ in range(count)
    ]  # fmt: skip


def write_pairs(path, pairs=PAIRS) -> str:
    import json

    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return str(path)


def cache_as(hub_cache, model_id: str, save, **kwargs) -> str:
    """Save a model with ``save(folder, **kwargs)`` where the Hugging Face cache ``hub_cache``
    (``HF_HUB_CACHE``) keeps ``model_id``: ``models--ORG--NAME/snapshots/COMMIT`` and
    ``refs/main``, as ``hf download`` leaves it. Returns the snapshot folder."""
    from pathlib import Path

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(hub_cache) / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return save(repo / "snapshots" / commit, **kwargs)
