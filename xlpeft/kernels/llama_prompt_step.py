"""The cached prompt step of Llama-family and Gemma3 models written out, with its backward: the numbers of
transformers, 21 % faster in fp32 (oneDNN products) and 24 % in bf16 (SmolLM2-135M on CPU;
benchmarks/ab_prompt_step.py; Gemma-3-270M in docs/speed.md).

Why not transformers' forward: a cached prompt step runs only B x L positions (80 for a batch of 8 and
L = 10), so work that is negligible for a full sequence is a large share of it. What this step saves:

- grouped-query attention without repeating keys and values per query head: the queries of a KV head's
  G query heads are stacked as G x L rows against that head's keys;
- the additive attention mask built once per step instead of once per layer;
- in the last layer, query, attention output and MLP only at the prediction position (the keys and
  values of all L positions are still needed), a 1/num_layers share of the FLOPs;
- with frozen bf16 weights, q|k|v and gate|up as one product each (:func:`fuse_frozen_projections`; in
  fp32 separate products are faster: MKL ran a fused gate|up product at 125 GFLOPS, two at 155);
- for a frozen model, a backward written out too (:class:`_FrozenLayers`): one autograd node for all
  layers instead of about a hundred per layer, input gradients only, and the attention's gradients only
  for the L prompt keys/values (4 % of an fp32 epoch, 8 % of a bf16 one).

The forward runs transformers' eager operations in their order (RMSNorm, rotary embedding and activation as
the model's modules compute them), so bf16 forward results are bit-identical in practice and fp32 ones agree
to rounding; tests/heads/test_text_cache.py checks values and gradients against the full forward. Llama, Mistral,
Qwen2 and Gemma3 text models take this path (see :func:`supported`); everything else runs through
transformers (text_cache.prompt_hidden decides). The written-out backward is used when no parameter of the
model is trained and the activation is one whose derivative is written out here (SiLU, Gemma's tanh GELU);
otherwise autograd differentiates the same forward.

Gemma3 is Llama's layer plus: RMSNorms that scale by (1 + weight) in fp32 before casting, q/k RMSNorms over
each head, norms after attention and after the MLP (and one before the MLP), a GeGLU MLP, the
query_pre_attn_scalar scaling (attention.scaling), and a RoPE base per layer type (local for sliding-window
layers, global for full ones). Its sliding-window layers are written out only when the window covers the
step's text and prompt (then they attend as full ones do); attention logit softcapping is not written out.
The prompt reaches the step already multiplied by Gemma's sqrt(d) embedding scale (Backbone.embed_scale,
as layout.py splices prompts for every scaled embedding, XGLM's too).
"""

from __future__ import annotations

import functools
import importlib
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import rotate_half

from xlpeft.runtime import linear_input_grad, routed_to_onednn

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
# model_type -> transformers module and class prefix of the families written out here: the same decoder
# layer (RMSNorm, rotary GQA attention, gated MLP); Qwen2 adds q/k/v biases, Mistral a sliding window (only a
# window that covers the step's text and prompt is the same computation), Gemma3 what the module docstring says
_FAMILIES = {"llama": ("llama", "Llama"), "mistral": ("mistral", "Mistral"), "qwen2": ("qwen2", "Qwen2"),
             "gemma3_text": ("gemma3", "Gemma3")}
_GEMMA = "gemma3_text"
_GEMMA_NORMS = ("pre_feedforward_layernorm", "post_feedforward_layernorm")
# activations (config name) whose derivative the written-out backward computes, as the aten backward op
_ACTIVATION_BACKWARDS = {
    "silu": torch.ops.aten.silu_backward,
    "gelu_pytorch_tanh": functools.partial(torch.ops.aten.gelu_backward, approximate="tanh"),
}
_steps: "weakref.WeakKeyDictionary[nn.Module, LlamaPromptStep]" = weakref.WeakKeyDictionary()  # one per model
_Joined = tuple[torch.Tensor, "torch.Tensor | None"]  # weight and bias of Linear layers stacked as one


def supported(model: nn.Module, width: int | None = None) -> bool:
    """A Llama-architecture model (SmolLM2, Llama 2/3, TinyLlama, Mistral, Qwen2/2.5) or a Gemma3 text model
    (Gemma-3-270M, 1B) with the structure this step writes out: transformers' own layer classes (layers that
    were replaced or extended, as adapter libraries do, run through their own forward instead), no attention
    dropout while training, and no sliding window shorter than ``width`` (text + prompt positions of the step;
    default: the model's context); for Gemma3 also causal attention and no attention logit softcapping."""
    config = model.config
    window = _window(config) if config.model_type in _FAMILIES else None
    return _written_out_layers(model) and (window is None or window >= (width or config.max_position_embeddings))


def _written_out_layers(model: nn.Module) -> bool:
    """:func:`supported` but for the sliding window: the structure, whatever the width of a step."""
    config = model.config
    if config.model_type not in _FAMILIES or (model.training and config.attention_dropout > 0):
        return False
    if config.model_type == _GEMMA and (config.use_bidirectional_attention or config.attn_logit_softcapping):
        return False
    layer_class, attention, mlp, norm = _layer_classes(config.model_type)
    return all(type(layer) is layer_class and type(layer.self_attn) is attention and type(layer.mlp) is mlp
               and all(type(module) is norm for module in _norms(layer, config.model_type))
               for layer in model.base_model.layers)


def _window(config) -> int | None:
    """The sliding window of a model with sliding-window layers (Gemma3 names one even when it has none)."""
    window = getattr(config, "sliding_window", None)
    if config.model_type == _GEMMA and "sliding_attention" not in config.layer_types:
        return None
    return window


def _norms(layer: nn.Module, model_type: str) -> list[nn.Module]:
    """A layer's RMSNorm modules that the step computes with its own operations."""
    norms = [layer.input_layernorm, layer.post_attention_layernorm]
    if model_type == _GEMMA:
        norms += [getattr(layer, name) for name in _GEMMA_NORMS] + [layer.self_attn.q_norm, layer.self_attn.k_norm]
    return norms


@functools.cache
def _layer_classes(model_type: str) -> tuple[type, ...]:
    """transformers' decoder layer, attention, MLP and RMSNorm classes of a family in _FAMILIES (looked up
    once: supported() runs at every step)."""
    module, prefix = _FAMILIES[model_type]
    classes = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
    return tuple(getattr(classes, prefix + name) for name in ("DecoderLayer", "Attention", "MLP", "RMSNorm"))


def fuse_frozen_projections(model: nn.Module) -> bool:
    """Store each layer's q|k|v and gate|up weights as one tensor and make the modules' weights views of it.

    For a frozen model whose Linear weights xlpeft already stored in bf16 (runtime.store_frozen_linears_in_bf16,
    after which the model is not saved): no memory is added and transformers' own forward (which builds the
    text cache) reads the same values. Returns whether the weights were fused.
    """
    if not _written_out_layers(model) or any(p.requires_grad for p in model.parameters()):
        return False
    layers = model.base_model.layers
    if any(getattr(layer.self_attn, name).weight.dtype != torch.bfloat16 for layer in layers for name in _PROJECTIONS):
        return False
    _steps[model] = LlamaPromptStep(model, fused=[_fuse(layer) for layer in layers])
    return True


def _fuse(layer: nn.Module) -> tuple[_Joined, _Joined]:
    """(q|k|v, gate|up) of one layer; the modules' weights (and biases) become row slices (views) of them."""
    return (_join([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj]),
            _join([layer.mlp.gate_proj, layer.mlp.up_proj]))


def _join(linears: list[nn.Linear]) -> _Joined:
    joined = []
    for name in ("weight", "bias"):
        if getattr(linears[0], name) is None:
            joined.append(None)
            continue
        tensor = torch.cat([getattr(linear, name).detach() for linear in linears])
        start = 0
        for linear in linears:
            rows = getattr(linear, name).shape[0]
            setattr(linear, name, nn.Parameter(tensor[start : start + rows], requires_grad=False))
            start += rows
        joined.append(tensor)
    return joined[0], joined[1]


def llama_prompt_step(model: nn.Module, width: int | None = None) -> "LlamaPromptStep | None":
    """The step for ``model`` (fused if :func:`fuse_frozen_projections` ran and its weights are unchanged),
    or None when the model is not one this step writes out (:func:`supported`)."""
    if not supported(model, width):
        return None
    step = _steps.get(model)
    if step is None or not step.current():
        step = _steps[model] = LlamaPromptStep(model)
    return step


@dataclass
class _Saved:
    """What one layer's backward reads: normalised inputs and their inverse RMS, the rotated query rows,
    keys/values (text and prompt), attention probabilities and the MLP's gate/up outputs; for Gemma3 also
    its q/k norms' and its attention and MLP output norms' (None for the others)."""

    norm1: tuple[torch.Tensor, torch.Tensor, torch.dtype]
    rows: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    probs32: torch.Tensor
    probs: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor, torch.dtype]
    gate: torch.Tensor
    up: torch.Tensor
    act: torch.Tensor
    q_norm: tuple | None = None
    k_norm: tuple | None = None
    attn_out_norm: tuple | None = None
    mlp_out_norm: tuple | None = None


class LlamaPromptStep:
    """Final hidden state at the last of L prompt positions, given the text's cached keys/values."""

    def __init__(self, model: nn.Module, fused: list[tuple[_Joined, _Joined]] | None = None):
        self.base = model.base_model
        self.fused = fused
        self.gemma = model.config.model_type == _GEMMA
        activation = model.config.hidden_activation if self.gemma else model.config.hidden_act
        self.activation_backward = _ACTIVATION_BACKWARDS.get(activation)
        self._weights = self._read_weights()
        self.onednn = self._routed()

    def _routed(self) -> bool:
        """Whether the layers' fp32 products run on oneDNN (runtime.route_frozen_linears_to_onednn): the
        backward's input gradients then do too."""
        return routed_to_onednn(self.base.layers[0].mlp.down_proj)

    def _read_weights(self) -> list[torch.Tensor]:
        layers = self.base.layers
        return ([getattr(layer.self_attn, name).weight for layer in layers for name in _PROJECTIONS]
                + [getattr(layer.mlp, name).weight for layer in layers for name in _MLP])

    def current(self) -> bool:
        """Whether the model still holds the weights this step was built on (store_frozen_linears_in_bf16
        replaces them) and routes its products as when this step was built."""
        return all(a is b for a, b in zip(self._read_weights(), self._weights)) and self._routed() == self.onednn

    def __call__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], attention_mask: torch.Tensor,
                 positions: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """``layers``: the text's keys/values per layer, [B, kvH, T, hd]; ``attention_mask`` [B, T + L] and
        ``positions`` [B, L] as transformers would take them; ``embeds`` [B, L, d] in the cache's dtype
        (scaled as the model's embedding module scales tokens)."""
        bias = _attention_bias(attention_mask, embeds.shape[1], layers[0][0].dtype)
        rotary = self._rotary(embeds, positions)
        if self._backward_written_out(embeds):
            hidden = _FrozenLayers.apply(embeds, self, layers, bias, rotary)
        else:
            hidden = self.forward(embeds, layers, bias, rotary)
        return self.base.norm(hidden)[:, -1]

    def _rotary(self, embeds: torch.Tensor, positions: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(cos, sin) per layer: Gemma3 rotates each layer by its type's RoPE (local base for sliding-window
        layers, global for full ones), the others every layer alike. Computed once per type."""
        count = len(self.base.layers)
        if not self.gemma:
            return [self.base.rotary_emb(embeds, positions)] * count
        types = self.base.config.layer_types[:count]
        tables = {kind: self.base.rotary_emb(embeds, positions, kind) for kind in set(types)}
        return [tables[kind] for kind in types]

    def _backward_written_out(self, embeds: torch.Tensor) -> bool:
        return (torch.is_grad_enabled() and embeds.requires_grad and self.activation_backward is not None
                and not any(p.requires_grad for p in self.base.parameters()))

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, embeds, layers, bias, rotary, saved: list[_Saved] | None = None) -> torch.Tensor:
        """Hidden states after the last layer ([B, 1, d]: the prediction position only); appends each
        layer's :class:`_Saved` to ``saved`` when given."""
        groups = self.base.layers[0].self_attn.num_key_value_groups
        biases = (_grouped(bias, groups), _grouped(bias[:, :, -1:], groups))
        hidden = embeds
        last = len(self.base.layers) - 1
        for i, layer in enumerate(self.base.layers):
            hidden = self._layer(i, layer, hidden, layers[i], biases[i == last], *rotary[i], i == last, saved)
        return hidden

    def _layer(self, i, layer, hidden, text_kv, bias, cos, sin, only_last: bool, saved) -> torch.Tensor:
        attn, mlp = layer.self_attn, layer.mlp
        batch, length, _ = hidden.shape
        x, norm1 = self._norm(layer.input_layernorm, hidden)
        q, k, v = self._qkv(i, attn, x)
        shape = (batch, length, -1, attn.head_dim)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        if only_last:  # only the prediction position is read after this layer
            q, hidden, length = q[:, :, -1:], hidden[:, -1:], 1
        q_norm = k_norm = attn_out_norm = mlp_out_norm = None
        if self.gemma:
            (q, q_norm), (k, k_norm) = self._norm(attn.q_norm, q), self._norm(attn.k_norm, k)
        q, k = _rotate(q, cos[:, -q.shape[2]:], sin[:, -q.shape[2]:]), _rotate(k, cos, sin)
        text_k, text_v = text_kv
        keys, values = torch.cat([text_k, k], dim=2), torch.cat([text_v, v], dim=2)
        rows = q.reshape(batch, keys.shape[1], -1, attn.head_dim)  # query heads of KV head j: rows of j
        scores = torch.matmul(rows, keys.transpose(2, 3)) * attn.scaling + bias
        probs32 = F.softmax(scores, dim=-1, dtype=torch.float32)
        probs = probs32.to(q.dtype)
        out = torch.matmul(probs, values).view(batch, -1, length, attn.head_dim).transpose(1, 2)
        attended = attn.o_proj(out.reshape(batch, length, -1))
        if self.gemma:
            attended, attn_out_norm = self._norm(layer.post_attention_layernorm, attended)
        hidden = hidden + attended
        x, norm2 = self._norm(self._mlp_norm(layer), hidden)
        gate, up = self._gate_up(i, mlp, x)
        act = mlp.act_fn(gate)
        mixed = mlp.down_proj(act * up)
        if self.gemma:
            mixed, mlp_out_norm = self._norm(layer.post_feedforward_layernorm, mixed)
        if saved is not None:
            saved.append(_Saved(norm1, rows, keys, values, probs32, probs, norm2, gate, up, act,
                                q_norm, k_norm, attn_out_norm, mlp_out_norm))
        return hidden + mixed

    def _mlp_norm(self, layer: nn.Module) -> nn.Module:
        """The norm before the MLP: Gemma3's pre-feedforward norm (its post-attention norm normalises the
        attention's output), the others' post-attention norm."""
        return layer.pre_feedforward_layernorm if self.gemma else layer.post_attention_layernorm

    def _norm(self, norm: nn.Module, hidden: torch.Tensor):
        return _rms_norm(norm, hidden, self.gemma)

    def _qkv(self, i, attn, x):
        if self.fused is None:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        sizes = [attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0], attn.v_proj.weight.shape[0]]
        return F.linear(x, *self.fused[i][0]).split(sizes, dim=-1)

    def _gate_up(self, i, mlp, x):
        if self.fused is None:
            return mlp.gate_proj(x), mlp.up_proj(x)
        return F.linear(x, *self.fused[i][1]).chunk(2, dim=-1)

    # ----------------------------------------------------------------------------------------- backward
    def backward(self, saved: list[_Saved], grad: torch.Tensor, rotary) -> torch.Tensor:
        """Gradient w.r.t. the step's input embeddings given the gradient w.r.t. :meth:`forward`'s output."""
        for i in reversed(range(len(saved))):
            grad = self._layer_backward(i, self.base.layers[i], saved[i], grad, *rotary[i])
        return grad

    def _layer_backward(self, i, layer, s: _Saved, grad, cos, sin) -> torch.Tensor:
        attn, mlp = layer.self_attn, layer.mlp
        batch, length, _ = grad.shape  # length is 1 in the last layer
        prompt_length = s.norm1[0].shape[1]
        # MLP: hidden + [post-feedforward norm] down(act(gate) * up)
        d_mixed = grad if s.mlp_out_norm is None else self._norm_backward(layer.post_feedforward_layernorm, grad,
                                                                         s.mlp_out_norm)
        d_mid = self._input_grad(d_mixed, mlp.down_proj.weight)
        d_gate = self.activation_backward(d_mid * s.up, s.gate)
        d_up = d_mid * s.act
        if self.fused is None:
            dx = self._input_grad(d_gate, mlp.gate_proj.weight).add_(self._input_grad(d_up, mlp.up_proj.weight))
        else:
            dx = self._input_grad(torch.cat([d_gate, d_up], dim=-1), self.fused[i][1][0])
        grad = grad + self._norm_backward(self._mlp_norm(layer), dx, s.norm2)
        # attention: hidden + [post-attention norm] o_proj(softmax(rows keys^T * scaling + bias) values)
        d_attended = grad if s.attn_out_norm is None else self._norm_backward(layer.post_attention_layernorm, grad,
                                                                              s.attn_out_norm)
        d_out = self._input_grad(d_attended, attn.o_proj.weight).view(batch, length, -1, attn.head_dim)
        d_out = d_out.transpose(1, 2).reshape(s.rows.shape)
        d_probs = torch.matmul(d_out, s.values.transpose(2, 3))
        d_scores = torch._softmax_backward_data(d_probs.float(), s.probs32, -1, torch.float32) * attn.scaling
        d_rows = torch.matmul(d_scores, s.keys)
        prompt = slice(s.keys.shape[2] - prompt_length, None)
        d_k = torch.matmul(d_scores[..., prompt].transpose(2, 3), s.rows)
        d_v = torch.matmul(s.probs[..., prompt].transpose(2, 3), d_out)
        d_q = d_rows.view(batch, -1, length, attn.head_dim)
        d_q = _rotate_backward(d_q, cos[:, -length:], sin[:, -length:])
        d_k = _rotate_backward(d_k, cos, sin)
        if self.gemma:
            d_q = self._norm_backward(attn.q_norm, d_q, s.q_norm)
            d_k = self._norm_backward(attn.k_norm, d_k, s.k_norm)
        d_q, d_k, d_v = (t.transpose(1, 2).reshape(batch, t.shape[2], -1) for t in (d_q, d_k, d_v))
        if length < prompt_length:  # last layer: queries at the prediction position only
            d_q = F.pad(d_q, (0, 0, prompt_length - length, 0))
            grad = F.pad(grad, (0, 0, prompt_length - length, 0))
        if self.fused is None:
            dx = self._input_grad(d_q, attn.q_proj.weight).add_(self._input_grad(d_k, attn.k_proj.weight))
            dx.add_(self._input_grad(d_v, attn.v_proj.weight))
        else:
            dx = self._input_grad(torch.cat([d_q, d_k, d_v], dim=-1), self.fused[i][0][0])
        return grad + self._norm_backward(layer.input_layernorm, dx, s.norm1)

    def _norm_backward(self, norm: nn.Module, grad: torch.Tensor, kept) -> torch.Tensor:
        return _rms_norm_backward(norm, grad, kept, self.gemma)

    def _input_grad(self, grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Gradient w.r.t. a frozen Linear layer's input: grad @ W."""
        return linear_input_grad(grad, weight, self.onednn)


class _FrozenLayers(torch.autograd.Function):
    """All decoder layers as one autograd node whose backward is LlamaPromptStep.backward (frozen weights:
    gradients w.r.t. the prompt embeddings only). The backward runs under the forward's autocast state."""

    @staticmethod
    def forward(ctx, embeds, step: LlamaPromptStep, layers, bias, rotary):
        device = embeds.device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.step, ctx.rotary, ctx.dtype = step, rotary, embeds.dtype
        ctx.layers = []
        return step.forward(embeds, layers, bias, rotary, saved=ctx.layers)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        device, enabled, dtype = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            d_embeds = ctx.step.backward(ctx.layers, grad, ctx.rotary)
        return d_embeds.to(ctx.dtype), None, None, None, None


# ------------------------------------------------------------------------------------------- operations
def _rms_norm(norm: nn.Module, hidden: torch.Tensor, gemma: bool):
    """The RMSNorm module's operations, keeping (normalised fp32 input, inverse RMS, input dtype) for the
    backward: LlamaRMSNorm casts the normalised input back and multiplies by the weight; Gemma3RMSNorm
    multiplies by (1 + weight) in fp32 and casts after."""
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    inverse = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + (norm.eps if gemma else norm.variance_epsilon))
    normed = hidden * inverse
    if gemma:
        return (normed * (1.0 + norm.weight.float())).to(dtype), (normed, inverse, dtype)
    return norm.weight * normed.to(dtype), (normed, inverse, dtype)


def _rms_norm_backward(norm: nn.Module, grad: torch.Tensor, kept, gemma: bool) -> torch.Tensor:
    normed, inverse, dtype = kept
    if gemma:
        d_normed = grad.to(torch.float32) * (1.0 + norm.weight.float())
    else:
        d_normed = (grad * norm.weight).to(torch.float32)
    return (inverse * (d_normed - normed * (d_normed * normed).mean(-1, keepdim=True))).to(dtype)


def _rotate(x, cos, sin):
    """transformers' apply_rotary_pos_emb for one tensor ([B, heads, L, hd]; cos/sin [B, L, hd])."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (x * cos) + (rotate_half(x) * sin)


def _rotate_backward(grad, cos, sin):
    """Transpose of :func:`_rotate`: rotate_half's transpose is minus itself."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return grad * cos - rotate_half(grad * sin)


def _grouped(bias: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, 1, L, S] -> [B, 1, groups * L, S], matching the query rows of a KV head."""
    batch, _, length, width = bias.shape
    return bias.expand(batch, groups, length, width).reshape(batch, 1, groups * length, width)


def _attention_bias(attention_mask: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [B, 1, L, T + L]: text positions where the mask is 1, prompt positions causally."""
    batch, width = attention_mask.shape
    device = attention_mask.device
    text = attention_mask[:, : width - length].bool()[:, None, :].expand(batch, length, -1)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril().expand(batch, -1, -1)
    allowed = torch.cat([text, causal], dim=-1)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
