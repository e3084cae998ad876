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
