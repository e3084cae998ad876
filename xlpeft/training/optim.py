"""The optimizer and the gradient clipping of every training loop (method A's trainer, language modules), so
both read ``--optimizer`` and ``--max-grad-norm`` the same way.

AdamW is torch's. Adafactor is transformers' with a fixed learning rate (``relative_step=False``), no
parameter-scale factor (``scale_parameter=False``) and no warm-up of its own (``warmup_init=False``): the
run's lr, weight decay and linear warm-up schedule drive it as they drive AdamW, which is how the method B
paper trained its prompts (lr 0.5, weight decay 1e-5).
"""

from __future__ import annotations

from typing import get_args

import torch
from transformers.optimization import Adafactor

from xlpeft.config import OptimizerName


def make_optimizer(name: OptimizerName, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``params``: tensors or parameter groups (a group's own ``lr`` wins over ``lr``)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adafactor":
        return Adafactor(params, lr=lr, weight_decay=weight_decay, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(get_args(OptimizerName))}")


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float | None) -> None:
    """Scale the gradients of everything ``optimizer`` trains to a global L2 norm of at most ``max_norm``
    (None: leave them as they are)."""
    if max_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, max_norm)
