"""Hidden states of any Hugging Face ``transformers`` model, read by forward hooks (``hf`` extra).

Three kinds of branch pairs, built by :mod:`tokenscale_sim.hidden.hf_text` and
:mod:`tokenscale_sim.hidden.hf_images`, all run here:

- ``"text"``: a shared prompt and two continuations; the tokens are the continuation's;
- ``"vlm"``: one prompt and two images through a vision-language model; the tokens are the
  *language model's* hidden states at the image-token positions;
- ``"tower"``: two images through a vision tower alone (CLIP, SigLIP, ViT); the patch tokens.

Layers follow transformers' ``hidden_states`` convention for the stack measured (the language
model's decoder layers, or the tower's encoder layers): layer 0 is the input of the first block
(the embeddings), layer ``k`` in ``1..L-1`` the output of block ``k``, layer ``L`` the output of
the module that holds the blocks (for a language model its final norm is applied, as transformers
reports it). Only the selected layers are read, by hooks that gather the wanted token positions
at once; the forward pass stops after the deepest selected layer (no logits are computed).

Nothing is downloaded: a model is a local folder or already in the Hugging Face cache
(``local_files_only``); the statistics are computed in float64 (float32 with ``jax_enable_x64``
off) whatever the model's dtype (bf16, fp16 models are read as float32 first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.hidden._optional import require
from tokenscale_sim.hidden.arrays import ArrayRef, HiddenSource, PairChunk, pair_chunk
from tokenscale_sim.hidden.measure import Measurement, MeasureOptions, measure_streamed

KINDS = ("text", "vlm", "tower")
DTYPES = ("auto", "float32", "bfloat16", "float16")
VISION_NAMES = ("vision_tower", "vision_model", "visual", "vision_encoder", "image_encoder")
"""Attribute names under which models keep their vision tower (searched in this order)."""


def torch_module(caller: str) -> Any:
    """``torch``, imported on first use (``hf`` extra)."""
    return require("torch", caller, "hf")


def transformers_module(caller: str) -> Any:
    """``transformers``, imported on first use (``hf`` extra)."""
    return require("transformers", caller, "hf")


def pick_device(device: str | None, caller: str) -> str:
    """``"auto"``/None: ``"cuda"`` when available, else ``"mps"``, else ``"cpu"``; else as given
    (checked by torch)."""
    torch = torch_module(caller)
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{caller}: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        ) from None
    return str(device)


def config_hash(config: Any) -> str:
    """SHA-256 (16 hex digits) of a transformers config as sorted JSON, without the fields that
    name the transformers version or the loading path (the same model gives the same hash)."""
    data = config.to_dict()
    for key in ("transformers_version", "_name_or_path", "_commit_hash", "torch_dtype", "dtype"):
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _not_found(path: str, caller: str) -> ValueError:
    hub = require("huggingface_hub.constants", caller, "hf")
    return ValueError(
        f"{caller}: {path!r} is neither a local model folder nor a model in the Hugging Face "
        f"cache ({hub.HF_HUB_CACHE}); nothing is downloaded: fetch it first with "
        f"`hf download {path}` (or give the folder that holds its config.json)"
    )


def model_kind(config: Any, tower: bool) -> str:
    """``"tower"`` when asked or for a vision-only config, ``"vlm"`` for a config with a vision
    and a text part, else ``"text"``."""
    if tower:
        return "tower"
    if getattr(config, "vision_config", None) is not None:
        return "vlm"
    if hasattr(config, "image_size") and not hasattr(config, "vocab_size"):
        return "tower"
    return "text"


class Loaded(NamedTuple):
    """A model loaded for measurement.

    Attributes:
        model: the ``torch.nn.Module`` (eval mode, on its device).
        processor: the tokenizer (``"text"``) or processor / image processor.
        kind: one of :data:`KINDS`.
        meta: what was loaded (path, resolved folder, commit, class, config hash, dtype, device).
    """

    model: Any
    processor: Any
    kind: str
    meta: dict


def load(
    path: str | os.PathLike[str],
    *,
    tower: bool = False,
    device: str | None = "auto",
    dtype: str = "auto",
) -> Loaded:
    """Load a model and its tokenizer or processor from a folder or the cache, never downloading.

    Args:
        path: a local folder written by ``save_pretrained`` or a model id already in the cache.
        tower: measure the vision tower (of a VLM, CLIP, SigLIP, ViT...) alone.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
        dtype: weights' dtype, one of :data:`DTYPES` (``"auto"``: as stored).

    Raises:
        ValueError: not found locally (one line saying how to fetch it), bad device or dtype.
        ModuleNotFoundError: the ``hf`` extra is missing (says how to install it).
    """
    caller = "load"
    if dtype not in DTYPES:
        raise ValueError(f"{caller}: dtype must be one of {DTYPES}, got {dtype!r}")
    tf = transformers_module(caller)
    torch = torch_module(caller)
    device = pick_device(device, caller)
    name = os.fspath(path)
    local = Path(name).expanduser()
    source = str(local) if local.is_dir() else name
    try:
        config = tf.AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        raise _not_found(name, caller) from None
    kind = model_kind(config, tower)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    kwargs = {"local_files_only": True, "dtype": torch_dtype}
    if kind == "text":
        classes = (tf.AutoModelForCausalLM, tf.AutoModel)
        auto = tf.AutoTokenizer
    else:
        # a VLM's own class also for its tower: its checkpoint's keys then all load
        vlm = getattr(config, "vision_config", None) is not None
        classes = (tf.AutoModelForImageTextToText, tf.AutoModel) if vlm else (tf.AutoModel,)
        auto = tf.AutoProcessor
    try:
        processor = auto.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        what = "tokenizer" if kind == "text" else "processor"
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{caller}: {name!r} has no {what} that loads ({why})") from None
    model = None
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # no "Loading weights" bar between our lines
    try:
        for cls in classes:
            with contextlib.suppress(ValueError):
                model = cls.from_pretrained(source, **kwargs)
                break
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    if model is None:
        raise ValueError(f"{caller}: {name!r}: no transformers class loads a {kind} model from it")
    model = model.to(device).eval()
    meta = {
        "model": name,
        "resolved": str(local.resolve()) if local.is_dir() else None,
        "name_or_path": getattr(config, "_name_or_path", None),
        "commit": getattr(config, "_commit_hash", None),
        "class": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "config_sha256": config_hash(config),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": device,
        "kind": kind,
    }
    return Loaded(model, processor, kind, meta)


def vision_module(model: Any) -> Any:
    """The vision tower inside ``model`` (first submodule named as in :data:`VISION_NAMES`), or
    ``model`` itself when it has none (a vision model)."""
    for want in VISION_NAMES:
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] == want:
                return module
    return model


def language_model(model: Any) -> Any:
    """The decoder that holds a model's language layers: ``get_decoder()`` (a causal LM's base
    model, a VLM's language model), else a submodule named ``language_model``/``text_model``,
    else ``model`` itself."""
    get = getattr(model, "get_decoder", None)
    with contextlib.suppress(AttributeError, NotImplementedError):
        found = get() if get is not None else None
        if found is not None:
            return found
    for want in ("language_model", "text_model"):
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] == want:
                return module
    return model


class LayerStack(NamedTuple):
    """The blocks of the measured stack: ``blocks[k]`` is block ``k + 1``; ``owner`` holds them
    (its output is layer ``len(blocks)``)."""

    blocks: Sequence[Any]
    owner: Any

    @property
    def count(self) -> int:
        """L, the number of blocks (layers run 0..L)."""
        return len(self.blocks)


def layer_stack(root: Any, blocks: int | None, caller: str) -> LayerStack:
    """The ``ModuleList`` of ``blocks`` blocks inside ``root`` (the longest one when ``blocks`` is
    None or matches none) and the module that owns it."""
    torch = torch_module(caller)
    lists = [
        (name, m) for name, m in root.named_modules() if isinstance(m, torch.nn.ModuleList) and m
    ]
    if not lists:
        raise ValueError(f"{caller}: found no stack of blocks (a ModuleList) in {type(root)}")
    exact = [(name, m) for name, m in lists if len(m) == blocks]
    name, found = exact[0] if exact else max(lists, key=lambda item: len(item[1]))
    owner = root.get_submodule(name.rsplit(".", 1)[0]) if "." in name else root
    return LayerStack(found, owner)


def parse_layers(layers: int | Sequence[int] | str, count: int, caller: str) -> tuple[int, ...]:
    """``"all"``, ``"last"``, an int, a comma list (``"0,6,-1"``) or ints -> layers in 0..count
    (negative ones count from the end: -1 is ``count``)."""
    if isinstance(layers, str):
        text = layers.strip()
        if text == "all":
            return tuple(range(count + 1))
        if text == "last":
            return (count,)
        try:
            layers = [int(part) for part in text.split(",")]
        except ValueError:
            raise ValueError(
                f"{caller}: layers must be 'all', 'last' or integers like '0,6,-1', got {text!r}"
            ) from None
    chosen = [layers] if isinstance(layers, int) else list(layers)
    resolved = [k + count + 1 if k < 0 else k for k in chosen]
    if not chosen or any(not 0 <= k <= count for k in resolved):
        raise ValueError(
            f"{caller}: layers must lie in 0..{count} (or -{count + 1}..-1), got {chosen!r}"
        )
    return tuple(dict.fromkeys(resolved))


class Batch(NamedTuple):
    """One forward pass over c branch pairs.

    Attributes:
        inputs: keyword arguments of the forward call (tensors on the model's device), 2c rows:
            row 2p is pair p's branch A, row 2p + 1 its branch B.
        positions: (2c, N) token index of each measured token in its row, N = the plan's n for
            every batch (past the pair's length: any valid index, those tokens are zeroed).
        lengths: (c,) measured tokens per pair.
    """

    inputs: dict[str, Any]
    positions: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class Plan:
    """Branch pairs ready to run through a model, built by ``hf_text``/``hf_images``.

    Attributes:
        module: what is called with ``**batch.inputs``.
        stack: the :class:`LayerStack` whose layers are read.
        batches: ``batches(size)`` yields :class:`Batch` of ``size`` pairs, in order.
        pairs, n, d: number of pairs, longest measured length, width.
        lengths: (pairs,) measured tokens per pair.
        meta: what the pairs and tokens are (for measure.json).
    """

    module: Any
    stack: LayerStack
    batches: Callable[[int], Iterator[Batch]]
    pairs: int
    n: int
    d: int
    lengths: np.ndarray
    meta: dict = field(default_factory=dict)


class _Stop(Exception):
    """Raised by the hook of the deepest selected layer: the rest of the forward is not needed."""


def _first_tensor(value: Any) -> Any:
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    return value[0] if isinstance(value, tuple | list) else value


@contextlib.contextmanager
def tap(stack: LayerStack, layers: Sequence[int], positions: Any) -> Iterator[dict[int, Any]]:
    """Hooks that put layer k's states at ``positions`` ((rows, n) long tensor) into the yielded
    dict as (rows, n, d) float32 tensors, then stop the forward after the deepest layer."""
    captured: dict[int, Any] = {}
    deepest = max(layers)
    index = positions[:, :, None]

    def keep(layer: int, hidden: Any) -> None:
        gathered = hidden.gather(1, index.expand(-1, -1, hidden.shape[-1]))
        captured[layer] = gathered.detach().float()
        if layer == deepest:
            raise _Stop

    handles = []
    for k in layers:
        if k == 0:
            handles.append(
                stack.blocks[0].register_forward_pre_hook(
                    lambda _m, args, kwargs: keep(0, args[0] if args else kwargs["hidden_states"]),
                    with_kwargs=True,
                )
            )
        else:
            module = stack.blocks[k - 1] if k < stack.count else stack.owner
            handles.append(
                module.register_forward_hook(lambda _m, _i, out, k=k: keep(k, _first_tensor(out)))
            )
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_batch(plan: Plan, batch: Batch, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """{layer: (c, 2, n, d) float32} for one batch (one forward pass, stopped early)."""
    torch = torch_module("run_batch")
    device = next(plan.module.parameters()).device
    positions = torch.tensor(np.array(batch.positions), dtype=torch.long, device=device)
    with (
        torch.inference_mode(),
        tap(plan.stack, layers, positions) as captured,
        contextlib.suppress(_Stop),
    ):
        plan.module(**batch.inputs)
    missing = [k for k in layers if k not in captured]
    if missing:
        raise ValueError(f"run_batch: the forward pass never reached layers {missing}")
    c = len(batch.lengths)
    return {k: captured[k].cpu().numpy().reshape(c, 2, *captured[k].shape[1:]) for k in layers}


def hidden_chunks(
    plan: Plan, layers: Sequence[int], batch: int = 4, *, progress: bool = False
) -> Iterator[dict[int, PairChunk]]:
    """Run the pairs ``batch`` at a time; per batch {layer: checked float64 :class:`PairChunk`}.

    Args:
        plan: from ``hf_text.text_plan`` or ``hf_images.image_plan``.
        layers: layer indices in 0..L (:func:`parse_layers`).
        batch: pairs per forward pass (memory ~ 2 * batch sequences).
        progress: a tqdm bar (pairs, with the rate) on stderr.
    """
    from tqdm import tqdm

    if batch < 1:
        raise ValueError(f"hidden_chunks: batch must be >= 1, got {batch!r}")
    start = 0
    with tqdm(total=plan.pairs, unit="pair", desc="measure", disable=not progress) as bar:
        for item in plan.batches(batch):
            states = run_batch(plan, item, layers)
            name = plan.meta.get("model", "model")
            yield {
                k: pair_chunk(h, item.lengths, start, f"{name} layer {k}")
                for k, h in states.items()
            }
            start += len(item.lengths)
            bar.update(len(item.lengths))


def source(plan: Plan, layer: int, batch: int = 4) -> HiddenSource:
    """One layer of ``plan`` as a :class:`HiddenSource` for :func:`measure.measure`: the model
    runs while the source is read (``measure(source(plan, k), MeasureOptions(chunk=batch))``)."""
    (layer,) = parse_layers(layer, plan.stack.count, "source")

    def read(chunk: int) -> Iterator[np.ndarray]:
        for item in plan.batches(chunk):
            yield run_batch(plan, item, [layer])[layer]

    shape = (plan.pairs, 2, plan.n, plan.d)
    name = f"{plan.meta.get('model', 'model')} layer {layer}"
    return HiddenSource(
        name, plan.pairs, plan.n, plan.d, (ArrayRef(shape, np.dtype(np.float32), read),),
        plan.lengths,
    )  # fmt: skip


def measure_model(
    plan: Plan,
    layers: int | Sequence[int] | str = "last",
    options: MeasureOptions | None = None,
    *,
    batch: int = 4,
    progress: bool = False,
) -> dict[int, Measurement]:
    """psi(n), D(n) and the lambda*sqrt(Upsilon) fit at every selected layer, in one pass.

    Args:
        plan: the pairs and the model (``hf_text.text_plan``, ``hf_images.image_plan``).
        layers: ``"last"`` (default), ``"all"``, an index or a sequence (negative from the end).
        options: :class:`MeasureOptions` (its ``chunk`` is not used: ``batch`` pairs at a time).
        batch: pairs per forward pass.
        progress: a tqdm bar on stderr.

    Returns:
        {layer: :class:`Measurement`}, the same as :func:`measure.measure` on each layer's
        hidden states.
    """
    chosen = parse_layers(layers, plan.stack.count, "measure_model")
    return measure_streamed(hidden_chunks(plan, chosen, batch, progress=progress), options)


def to_device(inputs: Mapping[str, Any], module: Any) -> dict[str, Any]:
    """Tensors of ``inputs`` moved to ``module``'s device (floats to its dtype)."""
    param = next(module.parameters())
    out = {}
    for key, value in inputs.items():
        if hasattr(value, "to"):
            value = value.to(param.device)
            if value.is_floating_point():
                value = value.to(param.dtype)
        out[key] = value
    return out
