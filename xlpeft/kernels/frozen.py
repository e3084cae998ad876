"""Prepare a frozen model: the one place that decides which speed-ups a frozen model gets (training,
language-module training and evaluation all call ``prepare_frozen_model``). Each keeps the numbers: only
the library or the storage of the frozen products changes, never what they compute."""

from __future__ import annotations

from torch import nn

from xlpeft.kernels.llama_prompt_step import fuse_frozen_projections
from xlpeft.runtime import eager_attention, fp32_cpu_matmul, route_frozen_linears_to_onednn, store_frozen_linears_in_bf16


def prepare_frozen_model(model: nn.Module, device: str, precision: str, *, bf16_weights: bool = True,
                         cached_backward: bool = False) -> None:
    """Faster products for the frozen layers of ``model``, a model the caller loaded itself (never one shared
    with other code: afterwards it must run under this precision). Layers already marked trainable are left
    as they are.

    - fp32 on CPU: frozen Linear products on oneDNN where MKL is the slower library (runtime.py says why).
    - bf16 (``bf16_weights``): frozen Linear weights stored in bf16, bit-identical under autocast, and for
      Llama, Mistral and Qwen2 q|k|v and gate|up fused per layer (llama_prompt_step.py).
    - ``cached_backward`` (training through the cached prompt step) in bf16 on CPU: eager attention
      (``runtime.eager_attention`` says why).
    """
    if fp32_cpu_matmul(device, precision):
        route_frozen_linears_to_onednn(model)
    if precision != "bf16" or not bf16_weights:
        return
    store_frozen_linears_in_bf16(model)
    fuse_frozen_projections(model)
    if cached_backward and device == "cpu":
        eager_attention(model)
