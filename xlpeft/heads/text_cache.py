"""Cached text states for suffix prompts on a frozen model: N prompts for about the price of one.

With the model frozen and the prompt placed *after* the text, causal attention makes the text's keys and
values independent of the prompt. So the text goes through the model once; every training step (and
every prompt at evaluation) then runs only the L prompt positions against the stored keys/values. EOS
follows the prediction position and cannot influence it, so it is not computed.

Storage is exact (no padding): per layer, one [sum of lengths + 1, heads, head_dim] tensor for keys and
one for values, row 0 being zeros used as padding when a batch is assembled by a single index_select.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from xlpeft import faults
from xlpeft.backbones import Backbone
from xlpeft.config import TrainConfig
from xlpeft.heads.classifier import Classifier, VerbalizerClassifier
from xlpeft.heads.layout import run_base
from xlpeft.kernels.llama_prompt_step import llama_prompt_step


def text_cache_exact(config: TrainConfig, head: Classifier, dropout: bool = False) -> bool:
    """Whether cached text states give ``head``'s numbers exactly, in training and in evaluation alike: a frozen
    model (regime prompt, no method B module in it), a causal LM whose LM head reads the label at the last
    prompt position, the prompt after the text. A ``text_prefix`` is part of the text (it precedes the prompt
    too), so it is cached with it: the cache holds the ids the head's own layout tokenized, prefix included.
    ``dropout``: the frozen model's dropout is on (training with ``frozen_dropout``), which a cache cannot resample."""
    return (isinstance(head, VerbalizerClassifier) and head.backbone.kind == "causal" and config.regime == "prompt"
            and config.placement_used == "suffix" and not config.configuration and not dropout)


@dataclass
class CachedBatch:
    """Keys/values of a batch of texts, right-padded, plus their mask and lengths."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer ([B, H, T, D], [B, H, T, D])
    attention_mask: torch.Tensor  # [B, T]
    lengths: torch.Tensor  # [B]

    def repeat(self, n: int) -> "CachedBatch":
        """Each row repeated n times in place (row b -> rows b*n .. b*n+n-1), for n prompts per text."""
        if n == 1:
            return self
        rep = lambda t: t.repeat_interleave(n, dim=0)  # noqa: E731
        return CachedBatch([(rep(k), rep(v)) for k, v in self.layers], rep(self.attention_mask), rep(self.lengths))


@torch.no_grad()
def cached_rows(backbone: Backbone, token_ids: list[list[int]]) -> list[list[int]]:
    """What the cache holds of each text: the backbone's lead tokens (a BOS where the model reads one first)
    and the text, as the suffix layout puts them before the prompt."""
    lead = list(backbone.lead_ids)
    return [lead + ids for ids in token_ids]


def encode_texts(backbone: Backbone, token_ids: list[list[int]]) -> CachedBatch:
    """Run the frozen model over right-padded texts (after their lead tokens) once and keep every layer's keys
    and values."""
    return _encode_rows(backbone, cached_rows(backbone, token_ids))


def _encode_rows(backbone: Backbone, token_ids: list[list[int]]) -> CachedBatch:
    device = backbone.model.get_input_embeddings().weight.device
    lengths = torch.tensor([len(ids) for ids in token_ids], device=device)
    width = int(lengths.max())
    ids = torch.full((len(token_ids), width), backbone.pad_id, device=device)
    for i, row in enumerate(token_ids):
        ids[i, : len(row)] = torch.tensor(row, device=device)
    mask = (torch.arange(width, device=device)[None] < lengths[:, None]).long()
    positions = torch.arange(width, device=device).expand(len(token_ids), -1)
    embeds = backbone.model.get_input_embeddings()(ids)
    out = run_base(backbone, embeds, mask, positions, cache=DynamicCache(), use_cache=True)
    layers = [(layer.keys, layer.values) for layer in out.cache.layers]
    return CachedBatch(layers, mask, lengths)


def prompt_hidden(backbone: Backbone, cached: CachedBatch, prompts: torch.Tensor) -> torch.Tensor:
    """Final hidden state at the last prompt position, running only the L prompt positions.

    ``prompts``: unscaled [L, d] (same prompt for every row) or [B, L, d] (one per row). Llama, Mistral,
    Qwen2 and Gemma3 models run llama_prompt_step's written-out step and backward (same numbers, faster),
    others transformers' forward.
    """
    batch = cached.attention_mask.shape[0]
    scaled = prompts * backbone.embed_scale
    embeds = scaled.expand(batch, -1, -1) if scaled.dim() == 2 else scaled
    length = embeds.shape[1]
    steps = torch.arange(length, device=embeds.device)
    mask = torch.cat([cached.attention_mask, cached.attention_mask.new_ones(batch, length)], dim=1)
    positions = cached.lengths[:, None] + steps[None]
    embeds = embeds.to(cached.layers[0][0].dtype)
    step = llama_prompt_step(backbone.model, width=mask.shape[1])
    if step is not None:
        return step(cached.layers, mask, positions, embeds)
    past = DynamicCache(ddp_cache_data=cached.layers)
    out = run_base(backbone, embeds, mask, positions, cache=past, use_cache=True)
    return out.last_hidden_state[:, -1]


class TextCache:
    """Per-sentence keys/values for a fixed set of texts (a training or validation set).

    Built once in length-sorted chunks; :meth:`batch` assembles any subset as a right-padded
    :class:`CachedBatch` with one index_select per layer.
    """

    def __init__(self, backbone: Backbone, token_ids: list[list[int]], chunk_size: int = 32):
        token_ids = cached_rows(backbone, token_ids)
        self.lengths = torch.tensor([len(ids) for ids in token_ids])
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths + 1  # +1: row 0 is the zero pad row
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        flat: list[list[torch.Tensor]] | None = None
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            encoded = _encode_rows(backbone, [token_ids[i] for i in chunk])
            flat = flat or [[] for _ in range(2 * len(encoded.layers))]
            for slot, tensor in enumerate(t for kv in encoded.layers for t in kv):
                for row, idx in enumerate(chunk):
                    flat[slot].append((idx, tensor[row, :, : int(self.lengths[idx])].transpose(0, 1)))
            faults.crash_point(faults.TEXT_CACHE_CHUNK)
        self.store = [self._pack(entries) for entries in flat]

    @staticmethod
    def _pack(entries: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """[1 + sum T, H, D], texts in their original order after a zero row."""
        entries.sort(key=lambda e: e[0])
        first = entries[0][1]
        zero = first.new_zeros(1, *first.shape[1:])
        return torch.cat([zero] + [t for _, t in entries])

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: list[int] | torch.Tensor) -> CachedBatch:
        """The texts at ``indices`` as one right-padded batch of keys/values."""
        idx = torch.as_tensor(indices)
        lengths = self.lengths[idx]
        width = int(lengths.max())
        steps = torch.arange(width)
        mask = (steps[None] < lengths[:, None]).long()
        rows = torch.where(mask.bool(), self.offsets[idx][:, None] + steps[None], 0).reshape(-1)
        tensors = [
            store.index_select(0, rows.to(store.device)).view(len(idx), width, *store.shape[1:]).transpose(1, 2)
            for store in self.store
        ]
        device = self.store[0].device
        layers = list(zip(tensors[0::2], tensors[1::2]))
        return CachedBatch(layers, mask.to(device), lengths.to(device))
