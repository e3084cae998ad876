"""Speed of frozen suffix soft prompt tuning: xlpeft's cached path vs the reference recipe vs PEFT.

Measures, in one run on one machine (each measurement in a fresh subprocess, so that peak memory is
its own and allocator settings apply from process start):

1. training epochs (median of --epochs, default 3) of frozen suffix SPT (k = 32 per class, L = 10, batch 8, English SIB-200):
   - ``xlpeft-cached``: text keys/values computed once (one-off time reported separately), steps run the
     L prompt positions only;
   - ``xlpeft-uncached``: xlpeft with ``--no-text-cache`` (dynamic padding, whole sequence each step);
   - ``reference``: the published recipe, every sequence padded to 128 and the full model (LM head over
     all positions) run at every step;
   - ``peft``: PEFT ``PromptTuningConfig`` (prefix placement), its usual loop: dynamic padding, full
     model forward, loss at the last text position;
   - ``peft-onednn`` (fp32 on CPUs where xlpeft computes fp32 products with oneDNN, runtime.py): the same,
     its frozen products routed as xlpeft routes its own, so that the ratio to it is caching's share alone;
2. evaluation over a set of languages: 1 prompt vs N = 8 and N = 24 prompts over one text cache, and
   1 prompt on the uncached path;
3. peak resident memory of each (above the process's memory once the model is loaded).

Usage::

    python benchmarks/bench_speed.py --model smollm2-135m --data-dir ../shared/data
    python benchmarks/bench_speed.py --model tiny --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date

import psutil
import torch

MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
TRAIN_VARIANTS = ("xlpeft-cached", "xlpeft-uncached", "reference", "peft")


# ---------------------------------------------------------------------------------------------- setup
def load(model: str, precision: str):
    """The backbone (``tiny`` = a 2-layer Llama with SmolLM2's tokenizer) and the autocast context."""
    from xlpeft.backbones import Backbone, load_backbone
    from xlpeft.runtime import autocast

    if model == "tiny":
        from transformers import AutoModelForCausalLM, LlamaConfig

        small = load_backbone("smollm2-135m")
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=len(small.tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             eos_token_id=small.eos_id, pad_token_id=small.pad_id)
        backbone = Backbone("tiny", AutoModelForCausalLM.from_config(config), small.tokenizer)
    else:
        backbone = load_backbone(model)
    backbone.freeze()
    backbone.model.eval()
    return backbone, autocast(precision, "cpu" if not torch.cuda.is_available() else "cuda")


def english_sample(data_dir: str):
    """The k = 32 per class English training sample that ``xlpeft train`` draws with seed 0."""
    from xlpeft.tasks import get_task

    task = get_task("sib200", data_dir)
    return task.sample(task.load("eng_Latn", "train"), task.load("eng_Latn", "dev"), 32, seed=0).train


def rss() -> int:
    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------------ training epochs
def train_epoch(variant: str, backbone, ctx, split, epochs: int, batch_size: int = 8, length: int = 10) -> dict:
    """Time ``epochs`` epochs (after one warm-up step) of the given implementation; report their median.

    Why a median: on this shared 2-core machine single epochs vary by about 10 % from run to run."""
    from xlpeft.heads.layout import PromptLayout
    from xlpeft.objectives import Verbalizer, label_words
    from xlpeft.tasks import get_task

    verbalizer = Verbalizer.build(backbone.tokenizer, label_words(get_task("sib200"), backbone.family, backbone.tokenizer))
    layout = PromptLayout(backbone, "suffix", length)
    labels = torch.tensor(split.labels)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    prompt = torch.nn.Parameter(torch.rand(length, backbone.hidden_size) - 0.5)
    one_off, base = 0.0, rss()
    if variant.startswith("peft"):
        if variant == "peft-onednn":
            from xlpeft.runtime import route_frozen_linears_to_onednn

            route_frozen_linears_to_onednn(backbone.model)
        step, params = _peft_step(backbone, split, verbalizer, labels, length)
    else:
        ids = layout.tokenize(split.texts)
        if variant == "xlpeft-cached":
            from xlpeft.heads.text_cache import TextCache

            start = time.perf_counter()
            with ctx:
                cache = TextCache(backbone, ids)
            one_off = time.perf_counter() - start
        step = _xlpeft_step(variant, backbone, layout, ids, prompt, verbalizer, labels, locals().get("cache"))
        params = [prompt]
    optimizer = torch.optim.AdamW(params, lr=5e-3)

    def run(batch):
        with ctx:
            loss = step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    run(batches[0])  # warm-up
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in batches:
            run(batch)
        times.append(time.perf_counter() - start)
    return {"epoch_s": statistics.median(times), "epochs_s": times, "one_off_s": one_off, "steps": len(batches),
            "peak_mem_mb": (peak_rss() - base) / 2**20}


def _xlpeft_step(variant, backbone, layout, ids, prompt, verbalizer, labels, cache):
    from xlpeft.heads.layout import prediction_hidden
    from xlpeft.heads.text_cache import prompt_hidden

    def step(batch):
        if variant == "xlpeft-cached":
            hidden = prompt_hidden(backbone, cache.batch(batch), prompt)
            return verbalizer.loss(backbone.lm_head(hidden), labels[batch])
        if variant == "xlpeft-uncached":
            hidden = prediction_hidden(backbone, layout.build([ids[i] for i in batch], prompt))
            return verbalizer.loss(backbone.lm_head(hidden), labels[batch])
        # reference recipe: pad to 128, full model forward, logits for every position
        built = layout.build([ids[i] for i in batch], prompt, pad_to=128)
        out = backbone.model(inputs_embeds=built.embeds, attention_mask=built.attention_mask)
        logits = out.logits[torch.arange(len(batch)), built.predict_at]
        return verbalizer.loss(logits, labels[batch])

    return step


def _peft_step(backbone, split, verbalizer, labels, length):
    from peft import PromptTuningConfig, get_peft_model

    model = get_peft_model(backbone.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=length))
    tok = backbone.tokenizer
    encoded = tok(split.texts, add_special_tokens=False, truncation=True, max_length=128 - length - 1)["input_ids"]

    def step(batch):
        rows = [encoded[i] + [backbone.eos_id] for i in batch]
        padded = tok.pad({"input_ids": rows}, return_tensors="pt", padding=True)
        out = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
        last_text = length + torch.tensor([len(r) - 2 for r in rows])  # PEFT prepends the prompt
        logits = out.logits[torch.arange(len(batch)), last_text]
        return verbalizer.loss(logits, labels[batch])

    return step, [p for p in model.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------------------ evaluation
def evaluation(n_prompts: int, backbone, ctx, data_dir: str, languages: list[str], cached: bool) -> dict:
    """Evaluate n random suffix prompts (L = 10) on the test sets of ``languages``."""
    from pathlib import Path

    from xlpeft.data.sib200 import Sib200
    from xlpeft.evaluation.predict import (
        kv_bytes_per_token,
        plan_memory,
        predict_cached,
        predict_uncached,
    )
    from xlpeft.heads.layout import PromptLayout
    from xlpeft.objectives import Verbalizer, label_words
    from xlpeft.runs import Run
    from xlpeft.tasks import get_task

    verbalizer = Verbalizer.build(backbone.tokenizer, label_words(get_task("sib200"), backbone.family, backbone.tokenizer))
    config = {"train": {"regime": "prompt", "placement": "suffix", "prompt_length": 10, "max_length": 128,
                        "head": "lm", "label_words": ""}, "head_used": "lm",
              "label_words": list(verbalizer.words), "label_token_ids": list(verbalizer.token_ids)}
    generator = torch.Generator().manual_seed(0)
    runs = [Run(Path(f"p{i}"), config, (torch.rand(10, backbone.hidden_size, generator=generator) - 0.5)
                * backbone.embed_scale, None) for i in range(n_prompts)]
    data = Sib200.resolve(data_dir)
    splits = [data.load(lang, "test") for lang in languages]
    layout = PromptLayout(backbone, "suffix", 10)
    with torch.inference_mode(), ctx:  # as evaluate.py: the probe runs in the precision the frozen weights are kept in
        per_token = kv_bytes_per_token(backbone)
    base, tokens = rss(), 0
    start = time.perf_counter()
    with torch.inference_mode(), ctx:
        for split in splits:
            ids = layout.tokenize(split.texts)
            tokens += sum(map(len, ids))
            if cached:
                plan = plan_memory(per_token, n_prompts, max(map(len, ids)), 4 * 2**30)
                predict_cached(backbone, runs, ids, plan)
            else:
                for run in runs:
                    predict_uncached(backbone, run, split.texts, batch_size=16)
    seconds = time.perf_counter() - start
    return {"eval_s": seconds, "text_tokens": tokens, "peak_mem_mb": (peak_rss() - base) / 2**20}


def as_xlpeft_does(backbone, precision: str, cached_training: bool) -> None:
    """What xlpeft's trainer and evaluator do to a frozen model (xlpeft/kernels/frozen.py). bf16: frozen Linear
    weights stored in bf16 (for Llama, q|k|v and gate|up fused), and eager attention for the cached training step
    on CPU. fp32 on CPU: frozen Linear products on oneDNN where it is the faster library."""
    from xlpeft.kernels.frozen import prepare_frozen_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    prepare_frozen_model(backbone.model, device, precision, cached_backward=cached_training)


# --------------------------------------------------------------------------------------- orchestration
def child(args) -> None:
    backbone, ctx = load(args.model, args.precision)
    kind, _, variant = args.child.partition(":")
    if kind == "eval" or variant.startswith("xlpeft"):
        as_xlpeft_does(backbone, args.precision, cached_training=variant == "xlpeft-cached")
    if kind == "train":
        result = train_epoch(variant, backbone, ctx, english_sample(args.data_dir), args.epochs)
    else:
        n, _, mode = variant.partition("-")
        result = evaluation(int(n), backbone, ctx, args.data_dir, args.languages.split(","), cached=mode == "cached")
    print("RESULT " + json.dumps(result))


def measure(args, spec: str, malloc: bool = True, precision: str | None = None) -> dict:
    env = {**os.environ, **(MALLOC if malloc else {})}
    if not malloc:
        for key in MALLOC:
            env.pop(key, None)
    cmd = [sys.executable, __file__, "--child", spec, "--model", args.model, "--data-dir", args.data_dir,
           "--languages", args.languages, "--precision", precision or args.precision, "--epochs", str(args.epochs)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:  # the child's traceback, which check=True would swallow
        sys.exit(f"measurement {spec} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    out = done.stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m, tiny, a hub id or a directory")
    parser.add_argument("--data-dir", default=os.environ.get("XLPEFT_DATA_DIR", "../shared/data"))
    parser.add_argument("--languages", default="eng_Latn,fra_Latn,rus_Cyrl,zho_Hans,hin_Deva,swh_Latn",
                        help="evaluation languages")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed per variant (median reported)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: train, eval, extras")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    skip = set(args.skip.split(","))
    print(f"# bench_speed  {date.today()}  model={args.model}  precision={args.precision}  "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"command: python benchmarks/bench_speed.py {' '.join(sys.argv[1:])}")
    from xlpeft.runtime import cpu_matmul_backend

    print(f"xlpeft's fp32 products on CPU: {cpu_matmul_backend()} (PEFT and the reference recipe: PyTorch's default, MKL)\n")
    if "train" not in skip:
        report_training(args, skip)
    if "eval" not in skip:
        report_evaluation(args)


def report_training(args, skip) -> None:
    variants = TRAIN_VARIANTS + (("peft-onednn",) if _onednn_row(args) else ())
    rows = {v: measure(args, f"train:{v}") for v in variants}
    cached = rows["xlpeft-cached"]["epoch_s"]
    print(f"| training epoch (k=32, L=10, batch 8) | epoch s (median of {args.epochs}) | one-off s | vs xlpeft-cached "
          "| peak MB | epochs s |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['epoch_s']:.2f} | {r['one_off_s']:.2f} | {r['epoch_s'] / cached:.2f}x | "
              f"{r['peak_mem_mb']:.0f} | {_times(r)} |")
    if "extras" not in skip:
        other = "bf16" if args.precision == "fp32" else "fp32"
        for variant in ("xlpeft-cached", "peft"):
            r = measure(args, f"train:{variant}", precision=other)
            print(f"| {variant}, {other} autocast | {r['epoch_s']:.2f} | {r['one_off_s']:.2f} | "
                  f"{r['epoch_s'] / cached:.2f}x | {r['peak_mem_mb']:.0f} | {_times(r)} |")
        for variant in ("xlpeft-cached", "reference"):
            r = measure(args, f"train:{variant}", malloc=False)
            print(f"| {variant}, default glibc malloc | {r['epoch_s']:.2f} | {r['one_off_s']:.2f} | "
                  f"{r['epoch_s'] / cached:.2f}x | {r['peak_mem_mb']:.0f} | {_times(r)} |")
    print()


def _onednn_row(args) -> bool:
    from xlpeft.runtime import cpu_matmul_backend

    return args.precision == "fp32" and not torch.cuda.is_available() and cpu_matmul_backend() == "onednn"


def _times(row: dict) -> str:
    return ", ".join(f"{t:.2f}" for t in row["epochs_s"])


def report_evaluation(args) -> None:
    one = measure(args, "eval:1-cached")
    print(f"| evaluation on {args.languages} | s | vs 1 prompt | target 1+0.2N | peak MB |")
    print("|---|---|---|---|---|")
    print(f"| 1 prompt, cached | {one['eval_s']:.1f} | 1.00 | 1.2 | {one['peak_mem_mb']:.0f} |")
    for n in (8, 24):
        r = measure(args, f"eval:{n}-cached")
        print(f"| {n} prompts, cached | {r['eval_s']:.1f} | {r['eval_s'] / one['eval_s']:.2f} | {1 + 0.2 * n:.1f} | "
              f"{r['peak_mem_mb']:.0f} |")
    r = measure(args, "eval:1-uncached")
    print(f"| 1 prompt, uncached | {r['eval_s']:.1f} | {r['eval_s'] / one['eval_s']:.2f} | | {r['peak_mem_mb']:.0f} |")
    print(f"\ntext tokens evaluated: {one['text_tokens']}, {one['text_tokens'] / one['eval_s']:.0f} tokens/s with 1 prompt")


if __name__ == "__main__":
    main()
