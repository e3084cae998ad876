"""The bottleneck adapter module and AdapterHub's ``seq_bn`` forward rule, for one adapted sub-layer.

Parameter names follow AdapterHub's ``adapters.methods.modeling.Adapter`` so that its saved weights
load by name: ``adapter_down`` is ``Sequential(Linear(d, b), activation)`` (keys ``adapter_down.0.*``)
and ``adapter_up`` is ``Linear(b, d)``.

``seq_bn`` (``SeqBnConfig``: original_ln_before = original_ln_after = residual_before_ln = True) wraps
the feed-forward sub-layer of a block whose output is ``LN(h + x)`` (post-LN) or ``x + h`` (pre-LN),
where ``h`` is the feed-forward output and ``x`` the sub-layer's residual input. For a stack of
adapters ``f_1 .. f_n`` AdapterHub computes (``Adapter.pre_forward``/``forward``/``post_forward``,
``compose_stack``)::

    s_0 = h
    s_k = s_{k-1} + f_k(LN(s_{k-1} + x))        # residual s_{k-1} is taken *before* the add and the LN
    out = LN(s_n + x)                            # the block's own LN, re-applied after the adapters

with ``LN`` the block's layer norm after the feed-forward sub-layer. Pre-LN blocks (T5, XGLM, BLOOM,
Llama) have no layer norm there, AdapterHub passes ``layer_norm=None`` and ``LN`` is the identity;
writing ``y_k = s_k + x`` the rule becomes ``y_0 = x + h``, ``y_k = y_{k-1} + f_k(y_{k-1})``, output
``y_n``: each adapter reads the sub-layer output (residual included) and adds its own residual. That
is why pre-LN blocks need only the sub-layer's output, and post-LN blocks need ``h`` and ``x`` apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers.activations import get_activation

from xlpeft.adapters.config import AdapterConfig


class Activation(nn.Module):
    """AdapterHub's ``Activation_Function_Class``: a transformers activation by name (plus "leakyrelu")."""

    def __init__(self, name: str):
        super().__init__()
        name = name.lower()
        self.f = nn.LeakyReLU() if name == "leakyrelu" else get_activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class BottleneckAdapter(nn.Module):
    """Down-projection, non-linearity, up-projection; ``forward(x, residual)`` adds the residual."""

    def __init__(self, hidden_size: int, config: AdapterConfig):
        super().__init__()
        bottleneck = config.bottleneck_size(hidden_size)
        self.adapter_down = nn.Sequential(nn.Linear(hidden_size, bottleneck), Activation(config.non_linearity))
        self.adapter_up = nn.Linear(bottleneck, hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        init_weights(self, config.init_weights)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return residual + self.dropout(self.adapter_up(self.adapter_down(x)))


@torch.no_grad()
def init_weights(adapter: BottleneckAdapter, scheme: str) -> None:
    """AdapterHub's three ``init_weights`` schemes, applied to both projections."""
    down, up = adapter.adapter_down[0], adapter.adapter_up
    if scheme == "bert":
        for linear in (down, up):
            linear.weight.normal_(mean=0.0, std=0.02)
            linear.bias.zero_()
    elif scheme == "mam_adapter":
        nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
        down.bias.zero_()
        up.weight.zero_()
        up.bias.zero_()
    elif scheme == "houlsby":
        for linear in (down, up):
            nn.init.trunc_normal_(linear.weight, mean=0.0, std=1e-2, a=-2e-2, b=2e-2)
            linear.bias.zero_()
    else:
        raise ValueError(scheme)


def seq_bn_post_ln(ffn_out: torch.Tensor, residual: torch.Tensor, adapters: Sequence[BottleneckAdapter],
                   layer_norm: nn.Module) -> torch.Tensor:
    """``seq_bn`` around a post-LN sub-layer ``LN(ffn_out + residual)`` (BERT, XLM-R); see the module doc."""
    hidden = ffn_out
    for adapter in adapters:
        hidden = adapter(layer_norm(hidden + residual), hidden)
    return layer_norm(hidden + residual)


def seq_bn_pre_ln(sublayer_out: torch.Tensor, adapters: Sequence[BottleneckAdapter]) -> torch.Tensor:
    """``seq_bn`` after a pre-LN sub-layer whose output ``x + h`` is given; see the module doc."""
    hidden = sublayer_out
    for adapter in adapters:
        hidden = adapter(hidden, hidden)
    return hidden
