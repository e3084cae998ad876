"""A/B of the cached prompt step's implementations on one Llama-architecture or Gemma3 model, interleaved step
by step.

Why interleaved: on a shared 2-core machine the speed drifts by several percent between runs (and
between minutes of one run), more than the differences measured here. Every training step of the
epoch runs each variant once, on the same batch, each with its own prompt and optimizer (same
initialisation), so drift falls on all variants alike. Variants:

- ``transformers``: transformers' own forward over the cached keys/values (DynamicCache), autograd;
- ``written-out, autograd``: llama_prompt_step's forward, differentiated by autograd;
- ``written-out``: llama_prompt_step's forward and its written-out backward (xlpeft's default).

The setting is bench_speed.py's (frozen suffix SPT, English SIB-200, k = 32, L = 10, batch 8, AdamW), in
fp32 or bf16, the model prepared as xlpeft prepares it (bench_speed.as_xlpeft_does). Usage::

    python benchmarks/ab_prompt_step.py --data-dir ../shared/data --precision fp32
    python benchmarks/ab_prompt_step.py --model path/to/gemma-3-270m --steps 6 --epochs 2  # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date

import torch
from bench_speed import as_xlpeft_does, english_sample, load

from xlpeft.heads import text_cache
from xlpeft.heads.layout import PromptLayout
from xlpeft.heads.text_cache import TextCache, prompt_hidden
from xlpeft.kernels import llama_prompt_step as written_out
from xlpeft.objectives import Verbalizer, label_words
from xlpeft.tasks import get_task

VARIANTS = ("transformers", "written-out, autograd", "written-out")


def step_for(variant: str, model, width: int):
    """What text_cache.prompt_hidden should dispatch to for ``variant`` (steps up to ``width`` positions)."""
    if variant == "transformers":
        return lambda m, width=None: None
    step = written_out.llama_prompt_step(model, width)
    if variant == "written-out, autograd":
        autograd_step = written_out.LlamaPromptStep(model, fused=step.fused)
        autograd_step._backward_written_out = lambda embeds: False
        return lambda m, width=None: autograd_step
    return lambda m, width=None: step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m",
                        help="smollm2-135m, tiny, a hub id or a directory (Llama, Mistral, Qwen2 or Gemma3)")
    parser.add_argument("--data-dir", default=os.environ.get("XLPEFT_DATA_DIR", "../shared/data"))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed (median reported)")
    parser.add_argument("--steps", type=int, default=None,
                        help="batches of 8 per epoch (default: the whole sample; fewer texts are then encoded)")
    args = parser.parse_args()

    backbone, ctx = load(args.model, args.precision)
    as_xlpeft_does(backbone, args.precision, cached_training=True)
    split = english_sample(args.data_dir)
    verbalizer = Verbalizer.build(backbone.tokenizer, label_words(get_task("sib200"), backbone.family, backbone.tokenizer))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).tolist()
    order = order[: 8 * args.steps] if args.steps else order
    ids = PromptLayout(backbone, "suffix", 10).tokenize([split.texts[i] for i in order])
    width = max(map(len, ids)) + 10
    if written_out.llama_prompt_step(backbone.model, width) is None:
        raise SystemExit(f"{args.model} is not a Llama-architecture or Gemma3 model whose step of {width} positions "
                         "is written out: only transformers' step applies to it")
    with ctx:
        cache = TextCache(backbone, ids)  # row r: the text order[r]
    labels = torch.tensor([split.labels[i] for i in order])
    batches = [list(range(i, min(i + 8, len(order)))) for i in range(0, len(order), 8)]
    init = torch.rand(10, backbone.hidden_size, generator=torch.Generator().manual_seed(0)) - 0.5
    steps = {v: step_for(v, backbone.model, width) for v in VARIANTS}
    prompts = {v: torch.nn.Parameter(init.clone()) for v in VARIANTS}
    optimizers = {v: torch.optim.AdamW([prompts[v]], lr=5e-3) for v in VARIANTS}
    dispatch = text_cache.llama_prompt_step

    def run(variant: str, batch: list[int]) -> float:
        text_cache.llama_prompt_step = steps[variant]
        start = time.perf_counter()
        with ctx:
            hidden = prompt_hidden(backbone, cache.batch(batch), prompts[variant])
            loss = verbalizer.loss(backbone.lm_head(hidden), labels[batch])
        optimizers[variant].zero_grad()
        loss.backward()
        optimizers[variant].step()
        return time.perf_counter() - start

    try:
        for variant in VARIANTS:
            run(variant, batches[0])  # warm-up
        epochs = {v: [] for v in VARIANTS}
        for _ in range(args.epochs):
            spent = dict.fromkeys(VARIANTS, 0.0)
            for batch in batches:
                for variant in VARIANTS:
                    spent[variant] += run(variant, batch)
            for variant in VARIANTS:
                epochs[variant].append(spent[variant])
    finally:
        text_cache.llama_prompt_step = dispatch

    print(f"# ab_prompt_step  {date.today()}  model={args.model}  precision={args.precision}  "
          f"{os.cpu_count()} cores, torch {torch.__version__}\n")
    base = statistics.median(epochs["transformers"])
    print(f"| cached step ({len(batches)} steps an epoch) | epoch s (median of {args.epochs}) "
          "| speed-up vs transformers | epochs s |")
    print("|---|---|---|---|")
    for variant in VARIANTS:
        median = statistics.median(epochs[variant])
        times = ", ".join(f"{t:.2f}" for t in epochs[variant])
        print(f"| {variant} | {median:.2f} | {base / median:.3f}x | {times} |")
    drift = max((prompts[v] - prompts["transformers"]).abs().max().item() for v in VARIANTS)
    print(f"\nlargest prompt difference from transformers' after training: {drift:.2e}")


if __name__ == "__main__":
    main()
