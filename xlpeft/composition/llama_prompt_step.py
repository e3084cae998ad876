"""The cached prompt step of Llama-family models written out: the same numbers as transformers, 10-15 % faster.

Why not transformers' forward: a cached prompt step runs only B x L positions (80 for a batch of 8 and
L = 10), so work that is negligible for a full sequence is a large share of it. On SmolLM2-135M (CPU,
bf16; docs/benchmarks.md) an epoch took 3.8-3.9 s this way against 4.3-4.5 s through transformers, from:

- grouped-query attention without repeating keys and values per query head: the queries of a KV head's
  G query heads are stacked as G x L rows against that head's keys;
- the additive attention mask built once per step instead of once per layer;
- in the last layer, query, attention output and MLP only at the prediction position (the keys and
  values of all L positions are still needed), a 1/num_layers share of the FLOPs;
- with frozen bf16 weights, q|k|v and gate|up as one product each (:func:`fuse_frozen_projections`;
  it gave nothing in fp32, where products of these sizes are as fast separate).

Each layer runs transformers' eager attention operations in their order (RMSNorm, rotary embedding and
activation are the model's own modules), so bf16 results are bit-identical in practice and fp32 ones agree
to rounding; tests/test_text_cache.py checks both against the full forward. Only plain Llama
configurations take this path (no projection biases, no attention dropout while training); everything
else runs through transformers (text_cache.prompt_hidden decides).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaMLP,
    apply_rotary_pos_emb,
)

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
_steps: "weakref.WeakKeyDictionary[nn.Module, LlamaPromptStep]" = weakref.WeakKeyDictionary()  # one per model


def supported(model: nn.Module) -> bool:
    """A plain Llama (SmolLM2, Llama 2/3, TinyLlama): the structure this step writes out. Layers whose classes
    were replaced or extended (adapter libraries do so) run through their own forward instead."""
    config = model.config
    dropout = model.training and config.attention_dropout > 0
    if config.model_type != "llama" or config.attention_bias or getattr(config, "mlp_bias", False) or dropout:
        return False
    return all(type(layer) is LlamaDecoderLayer and type(layer.self_attn) is LlamaAttention
               and type(layer.mlp) is LlamaMLP for layer in model.base_model.layers)


def fuse_frozen_projections(model: nn.Module) -> bool:
    """Store each layer's q|k|v and gate|up weights as one tensor and make the modules' weights views of it.

    For a frozen model whose Linear weights xlpeft already stored in bf16 (runtime.store_frozen_linears_in_bf16,
    after which the model is not saved): no memory is added and transformers' own forward (which builds the
    text cache) reads the same values. Returns whether the weights were fused.
    """
    if not supported(model) or any(p.requires_grad for p in model.parameters()):
        return False
    layers = model.base_model.layers
    if any(getattr(layer.self_attn, name).weight.dtype != torch.bfloat16 for layer in layers for name in _PROJECTIONS):
        return False
    _steps[model] = LlamaPromptStep(model, fused=[_fuse(layer) for layer in layers])
    return True


def _fuse(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(q|k|v, gate|up) of one layer; the modules' weights become row slices (views) of the two tensors."""
    groups = [[layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj],
              [layer.mlp.gate_proj, layer.mlp.up_proj]]
    fused = []
    for linears in groups:
        joined = torch.cat([linear.weight.detach() for linear in linears])
        start = 0
        for linear in linears:
            rows = linear.weight.shape[0]
            linear.weight = nn.Parameter(joined[start : start + rows], requires_grad=False)
            start += rows
        fused.append(joined)
    return tuple(fused)


def llama_prompt_step(model: nn.Module) -> "LlamaPromptStep | None":
    """The step for ``model`` (fused if :func:`fuse_frozen_projections` ran and its weights are unchanged),
    or None when the model is not a plain Llama."""
    if not supported(model):
        return None
    step = _steps.get(model)
    if step is None or not step.current():
        step = _steps[model] = LlamaPromptStep(model)
    return step


class LlamaPromptStep:
    """Final hidden state at the last of L prompt positions, given the text's cached keys/values."""

    def __init__(self, model: nn.Module, fused: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.base = model.base_model
        self.fused = fused
        self._weights = self._read_weights()

    def _read_weights(self) -> list[torch.Tensor]:
        layers = self.base.layers
        return ([getattr(layer.self_attn, name).weight for layer in layers for name in _PROJECTIONS]
                + [getattr(layer.mlp, name).weight for layer in layers for name in _MLP])

    def current(self) -> bool:
        """Whether the model still holds the weights this step was built on (store_frozen_linears_in_bf16
        replaces them)."""
        return all(a is b for a, b in zip(self._read_weights(), self._weights))

    def __call__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], attention_mask: torch.Tensor,
                 positions: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """``layers``: the text's keys/values per layer, [B, kvH, T, hd]; ``attention_mask`` [B, T + L] and
        ``positions`` [B, L] as transformers would take them; ``embeds`` [B, L, d] in the cache's dtype."""
        bias = _attention_bias(attention_mask, embeds.shape[1], layers[0][0].dtype)
        cos, sin = self.base.rotary_emb(embeds, positions)
        hidden = embeds
        last = len(self.base.layers) - 1
        for i, layer in enumerate(self.base.layers):
            hidden = self._layer(i, layer, hidden, layers[i], bias, cos, sin, only_last=i == last)
        return self.base.norm(hidden)[:, -1]

    def _layer(self, i, layer, hidden, text_kv, bias, cos, sin, only_last: bool) -> torch.Tensor:
        attn = layer.self_attn
        batch, length, _ = hidden.shape
        x = layer.input_layernorm(hidden)
        q, k, v = self._qkv(i, attn, x)
        shape = (batch, length, -1, attn.head_dim)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        text_k, text_v = text_kv
        keys, values = torch.cat([text_k, k], dim=2), torch.cat([text_v, v], dim=2)
        if only_last:  # only the prediction position is read after this layer
            q, bias, hidden, length = q[:, :, -1:], bias[:, :, -1:], hidden[:, -1:], 1
        out = _grouped_attention(q, keys, values, bias, attn.scaling, attn.num_key_value_groups)
        hidden = hidden + attn.o_proj(out.reshape(batch, length, -1))
        x = layer.post_attention_layernorm(hidden)
        return hidden + self._mlp(i, layer.mlp, x)

    def _qkv(self, i, attn, x):
        if self.fused is None:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        sizes = [attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0], attn.v_proj.weight.shape[0]]
        return F.linear(x, self.fused[i][0]).split(sizes, dim=-1)

    def _mlp(self, i, mlp, x):
        if self.fused is None:
            return mlp(x)
        gate, up = F.linear(x, self.fused[i][1]).chunk(2, dim=-1)
        return mlp.down_proj(mlp.act_fn(gate) * up)


def _attention_bias(attention_mask: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [B, 1, L, T + L]: text positions where the mask is 1, prompt positions causally."""
    batch, width = attention_mask.shape
    device = attention_mask.device
    text = attention_mask[:, : width - length].bool()[:, None, :].expand(batch, length, -1)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril().expand(batch, -1, -1)
    allowed = torch.cat([text, causal], dim=-1)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def _grouped_attention(q, keys, values, bias, scaling: float, groups: int) -> torch.Tensor:
    """Eager attention, [B, H, L, hd] queries against [B, kvH, S, hd] keys/values -> [B, L, H, hd].

    Query heads h = j * groups + g share KV head j (transformers' repeat_kv), so each KV head's queries
    are stacked as groups x L rows instead of repeating its keys and values.
    """
    batch, heads, length, dim = q.shape
    kv_heads = keys.shape[1]
    rows = q.reshape(batch, kv_heads, groups * length, dim)
    grouped_bias = bias.expand(batch, groups, length, -1).reshape(batch, 1, groups * length, -1)
    scores = torch.matmul(rows, keys.transpose(2, 3)) * scaling + grouped_bias
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(weights, values).view(batch, heads, length, dim)
    return out.transpose(1, 2)
