"""Where and how numbers are computed: device, precision, seeding, threads.

bf16 autocast is the default on GPUs and an opt-in on CPUs (see docs/benchmarks.md for measurements).
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return precision


def autocast(precision: str, device: str):
    """bf16 autocast where asked for; fp32 otherwise (the paper's setting)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def store_frozen_linears_in_bf16(model: torch.nn.Module) -> int:
    """Keep the weights of ``model``'s frozen Linear layers in bf16; for a model run under bf16 autocast only.

    Why: autocast keeps its bf16 copy of a weight only for trainable leaves, so a frozen fp32 weight is
    converted again at every call; when a call has few rows (a cached prompt step runs L x batch positions)
    the conversion costs as much as the product, and for the output embedding (SmolLM2: 49152 x 576) it
    cost 8-84 ms of a 330 ms step (profile). Autocast would round these weights to bf16 anyway, so the
    results are bit-identical. Each layer gets new bf16 parameters rather than being converted in place: an
    output embedding tied to the input embeddings is untied (one bf16 copy of the vocabulary matrix more),
    and the input embeddings, which autocast does not round, stay fp32. Afterwards the model must not run
    outside bf16 autocast (a dtype error says so) and must not be saved. Returns the number of layers
    converted.
    """
    converted = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32:
            if not any(p.requires_grad for p in module.parameters()):
                for name, param in list(module.named_parameters(recurse=False)):
                    setattr(module, name, torch.nn.Parameter(param.detach().to(torch.bfloat16), requires_grad=False))
                converted += 1
    return converted


def eager_attention(model) -> None:
    """Switch a transformers ``model`` to its reference (eager) attention.

    Why: on CPU under bf16, SDPA's flash-attention backward for a few query positions against a short
    cache took 30 % of a cached prompt step (profile); eager attention made the step 1.2-1.6x faster and
    was as fast as SDPA in fp32 (docs/benchmarks.md).
    """
    model.set_attn_implementation("eager")
