"""Text branch pairs (the paper's procedure) for a Hugging Face language model (``hf`` extra).

A pair is a shared prompt and two continuations, one JSON object per line of a ``.jsonl`` file::

    {"prompt": "...", "a": "...", "b": "..."}        ("chosen"/"rejected" are accepted as a/b)

Each branch is rendered as prompt + continuation with the model's own tokenizer: through its chat
template when it has one (a user turn with the prompt, an assistant turn with the continuation;
``chat_template=False`` switches it off), else as the plain concatenation ``prompt +
continuation`` with the tokenizer's special tokens. The branch's tokens are the hidden states of
the tokens that cover the continuation's characters (found with the fast tokenizer's offsets; the
template's closing tokens are not part of it), the first n of them after the shared prefix. A pair
measures ``min(len A, len B)`` tokens (capped at ``n_max``): unequal lengths are masked, never
padded into the statistics. Sequences are right-padded in a batch (causal attention: the measured
tokens never see the padding) and cut after the last measured token.

:func:`shipped_pairs` is a small set of pairs written for this package (English prompts with two
different answers of a few sentences each), so ``tokenscale measure --hf PATH`` runs without a
file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.hidden import hf

SHIPPED = "text_pairs.jsonl"
"""File name of the shipped pairs in ``tokenscale_sim/data``."""


class TextPair(NamedTuple):
    """A shared prompt and two continuations (branch A and branch B)."""

    prompt: str
    a: str
    b: str


def shipped_pairs() -> Path:
    """Path of the pairs shipped with the package (``tokenscale_sim/data/text_pairs.jsonl``)."""
    return Path(str(resources.files("tokenscale_sim") / "data" / SHIPPED))


def read_pairs(path: str | os.PathLike[str] | None = None) -> tuple[tuple[TextPair, ...], dict]:
    """Read branch pairs from a ``.jsonl`` file (default: :func:`shipped_pairs`).

    Returns:
        (pairs, {"file": path, "sha256": 16 hex digits of the file, "shipped": bool}).

    Raises:
        FileNotFoundError: no such file. ValueError: a line that is not a JSON object with a
            string ``prompt`` and ``a``/``b`` (or ``chosen``/``rejected``), named by its number.
    """
    file = shipped_pairs() if path is None else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"read_pairs: no such file {str(file)!r}")
    raw = file.read_bytes()
    pairs = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"read_pairs: {file.name} line {number}"
        try:
            row = json.loads(line)
        except ValueError:
            raise ValueError(f"{where} is not JSON") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a JSON object, got {type(row).__name__}")
        a, b = row.get("a", row.get("chosen")), row.get("b", row.get("rejected"))
        prompt = row.get("prompt")
        for key, value in (("prompt", prompt), ("a (or chosen)", a), ("b (or rejected)", b)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}: {key} must be a non-empty string, got {value!r}")
        pairs.append(TextPair(prompt, a, b))  # type: ignore[arg-type]
    if not pairs:
        raise ValueError(f"read_pairs: {file.name} holds no pairs")
    meta = {
        "file": str(file.resolve()),
        "sha256": hashlib.sha256(raw).hexdigest()[:16],
        "shipped": path is None,
    }
    return tuple(pairs), meta


class Branch(NamedTuple):
    """One branch tokenized: ``ids`` up to the end of the continuation, which covers tokens
    ``start .. start + length - 1``."""

    ids: list[int]
    start: int
    length: int


def _render(tokenizer: Any, prompt: str, continuation: str, chat: bool) -> tuple[str, int, int]:
    """(text, first and past-last character of the continuation in it)."""
    if not chat:
        return prompt + continuation, len(prompt), len(prompt) + len(continuation)
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    text = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": continuation}], tokenize=False
    )
    pairs = enumerate(zip(head, text, strict=False))
    common = next((i for i, (x, y) in pairs if x != y), min(len(head), len(text)))
    body = continuation.strip()
    begin = text.find(body, common)
    if begin < 0:
        raise ValueError(
            "text_plan: the chat template does not reproduce the continuation "
            f"{body[:40]!r} verbatim; pass chat_template=False (--no-chat-template)"
        )
    return text, begin, begin + len(body)


def tokenize_branch(tokenizer: Any, prompt: str, continuation: str, *, chat: bool) -> Branch:
    """Tokenize prompt + continuation and find the continuation's tokens (see module docstring).

    Raises:
        ValueError: a tokenizer without offsets (not a fast tokenizer), or a continuation that
            no token covers, or one that starts the sequence (no shared prefix).
    """
    text, begin, end = _render(tokenizer, prompt, continuation, chat)
    try:
        enc = tokenizer(text, add_special_tokens=not chat, return_offsets_mapping=True)
    except NotImplementedError:
        raise ValueError(
            "text_plan: the tokenizer gives no character offsets (a slow tokenizer); load the "
            "fast one (use_fast=True)"
        ) from None
    covering = [
        i for i, (lo, hi) in enumerate(enc["offset_mapping"]) if hi > lo and hi > begin and lo < end
    ]
    if not covering:
        raise ValueError(f"text_plan: no token covers the continuation {continuation[:40]!r}")
    first, last = covering[0], covering[-1]
    if first == 0:
        raise ValueError(
            f"text_plan: the continuation {continuation[:40]!r} starts the sequence: no shared "
            "prompt before it"
        )
    return Branch(list(enc["input_ids"][: last + 1]), first, last - first + 1)


def text_plan(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[TextPair] | str | os.PathLike[str] | None = None,
    *,
    chat_template: bool = True,
    n_max: int | None = None,
) -> hf.Plan:
    """Branch pairs of text for a loaded language model (or a VLM's language model).

    Args:
        model: a transformers causal LM (``AutoModelForCausalLM``), already loaded.
        tokenizer: its (fast) tokenizer.
        pairs: :class:`TextPair` s, a ``.jsonl`` path, or None for :func:`shipped_pairs`.
        chat_template: render through the tokenizer's chat template when it has one.
        n_max: measure at most this many continuation tokens per pair (None: all).

    Returns:
        :class:`~tokenscale_sim.hidden.hf.Plan` for :func:`~tokenscale_sim.hidden.hf.measure_model`
        or :func:`~tokenscale_sim.hidden.hf.source`; its meta records the pairs' source, whether
        the chat template was used, and per pair (start A, start B, measured length).
    """
    if n_max is not None and n_max < 1:
        raise ValueError(f"text_plan: n_max must be >= 1, got {n_max!r}")
    if pairs is None or isinstance(pairs, str | os.PathLike):
        pairs, source_meta = read_pairs(pairs)
    else:
        pairs, source_meta = tuple(pairs), {"file": None, "given": "in memory"}
    if not pairs:
        raise ValueError("text_plan: pairs must hold at least one pair, got none")
    chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
    branches = []
    for pair in pairs:
        a = tokenize_branch(tokenizer, pair.prompt, pair.a, chat=chat)
        b = tokenize_branch(tokenizer, pair.prompt, pair.b, chat=chat)
        length = min(a.length, b.length, n_max or a.length)
        branches.append((a, b, length))
    lengths = np.array([length for _, _, length in branches], dtype=np.int64)
    n = int(lengths.max())
    pad = tokenizer.pad_token_id
    pad = tokenizer.eos_token_id if pad is None else pad
    pad = 0 if pad is None else pad

    def batches(size: int) -> Iterator[hf.Batch]:
        torch = hf.torch_module("text_plan")
        for first in range(0, len(branches), size):
            part = branches[first : first + size]
            rows = [(br.ids[: br.start + length], br.start, length) for a, b, length in part
                    for br in (a, b)]  # fmt: skip
            width = max(len(ids) for ids, _, _ in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            positions = np.zeros((len(rows), n), dtype=np.int64)
            for r, (row, start, length) in enumerate(rows):
                ids[r, : len(row)] = torch.as_tensor(row, dtype=torch.long)
                mask[r, : len(row)] = 1
                positions[r] = np.minimum(start + np.arange(n), start + length - 1)
            inputs = hf.to_device({"input_ids": ids, "attention_mask": mask}, model)
            yield hf.Batch(inputs, positions, lengths[first : first + size])

    text_config = model.config.get_text_config()
    stack = hf.layer_stack(
        hf.language_model(model), getattr(text_config, "num_hidden_layers", None), "text_plan"
    )
    meta = {
        "tokens": "continuation tokens after the shared prompt, the first n of each branch",
        "pairs_source": source_meta,
        "chat_template": chat,
        "n_max": n_max,
        "positions": [[a.start, b.start, length] for a, b, length in branches],
        "positions_columns": ["start_a", "start_b", "length"],
    }
    return hf.Plan(model, stack, batches, len(pairs), n, text_config.hidden_size, lengths, meta)
