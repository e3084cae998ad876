"""Splice a soft prompt into a causal LM's input and read the hidden state where the label is predicted.

Layouts (methods.md A), at most ``max_length`` tokens, only the text truncated, no template, no BOS:

- ``suffix``: ``[text] [P1..PL] [EOS]``; prediction at the last prompt position.
- ``prefix``: ``[P1..PL] [text] [EOS]``; prediction at the last text position (Lester et al. / PEFT).
- ``none`` (full fine-tuning): ``[text] [EOS]``; prediction at the last text position.

In every layout the prediction position is the one just before EOS; under causal attention EOS cannot
influence it, which the cached path (text_cache.py) exploits by not computing it at all.

This is the ordinary ("uncached") path: the whole padded sequence goes through the model each time.
Padding is dynamic (to the longest sequence of the batch) unless ``pad_to`` asks for the reference
recipe's fixed length; ``padding_side`` may be either, with positions derived from the attention mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from xlpeft.backbones import Backbone

Placement = Literal["suffix", "prefix", "none"]


@dataclass
class Batch:
    """A padded batch of input embeddings with where to read the prediction."""

    embeds: torch.Tensor  # [B, T, d]
    attention_mask: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    predict_at: torch.Tensor  # [B]


class PromptLayout:
    """Tokenizes texts and builds prompt-spliced inputs for one backbone and placement."""

    def __init__(self, backbone: Backbone, placement: Placement, prompt_length: int, max_length: int = 128):
        if placement == "none" and prompt_length:
            raise ValueError("placement 'none' has no prompt")
        self.backbone = backbone
        self.placement = placement
        self.prompt_length = prompt_length if placement != "none" else 0
        self.max_length = max_length
        if self.text_budget < 1:
            raise ValueError(f"prompt length {prompt_length} leaves no room for text within {max_length} tokens")

    @property
    def text_budget(self) -> int:
        """Tokens left for the text once the prompt and EOS are placed."""
        return self.max_length - self.prompt_length - 1

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, without special tokens, truncated to the text budget."""
        encoded = self.backbone.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [ids[: self.text_budget] or [self.backbone.eos_id] for ids in encoded]

    def build(
        self,
        token_ids: list[list[int]],
        prompt: torch.Tensor | None,
        padding_side: Literal["right", "left"] = "right",
        pad_to: int | None = None,
    ) -> Batch:
        """Embed each ``[text][prompt][EOS]`` (per placement) and pad them into one batch.

        ``prompt`` is an unscaled L x d matrix (or B x L x d, one per row); it is multiplied by the
        backbone's embedding scale here, like token embeddings are inside the embedding module.
        """
        embed = self.backbone.model.get_input_embeddings()
        device = embed.weight.device
        eos = embed(torch.tensor([self.backbone.eos_id], device=device))
        pad = embed(torch.tensor([self.backbone.pad_id], device=device))
        scaled = None if prompt is None else prompt.to(eos.dtype) * self.backbone.embed_scale
        rows, predict_at = [], []
        for i, ids in enumerate(token_ids):
            text = embed(torch.tensor(ids, device=device))
            row_prompt = None if scaled is None else (scaled[i] if scaled.dim() == 3 else scaled)
            parts = self._order(text, row_prompt)
            rows.append(torch.cat([*parts, eos]))
            predict_at.append(rows[-1].shape[0] - 2)
        return _pad(rows, predict_at, pad, padding_side, pad_to)

    def _order(self, text: torch.Tensor, prompt: torch.Tensor | None) -> list[torch.Tensor]:
        if self.placement == "none" or prompt is None:
            return [text]
        return [text, prompt] if self.placement == "suffix" else [prompt, text]


def _pad(
    rows: list[torch.Tensor], predict_at: list[int], pad: torch.Tensor, side: str, pad_to: int | None
) -> Batch:
    width = max(pad_to or 0, max(r.shape[0] for r in rows))
    embeds, masks, shifts = [], [], []
    for row in rows:
        n_pad = width - row.shape[0]
        filler = pad.expand(n_pad, -1)
        embeds.append(torch.cat([row, filler] if side == "right" else [filler, row]))
        ones, zeros = torch.ones(row.shape[0], dtype=torch.long), torch.zeros(n_pad, dtype=torch.long)
        masks.append(torch.cat([ones, zeros] if side == "right" else [zeros, ones]))
        shifts.append(0 if side == "right" else n_pad)
    mask = torch.stack(masks).to(pad.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    predict = torch.tensor(predict_at) + torch.tensor(shifts)
    return Batch(torch.stack(embeds), mask, positions, predict.to(pad.device))


def run_base(
    backbone: Backbone,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    past_key_values=None,
    use_cache: bool = False,
):
    """One pass through the base model (no LM head): the head is applied only where it is needed."""
    kwargs = {"inputs_embeds": embeds, "attention_mask": attention_mask, "use_cache": use_cache}
    if backbone.accepts_position_ids:
        kwargs["position_ids"] = position_ids
    if past_key_values is not None:
        kwargs["past_key_values"] = past_key_values
    return backbone.model.base_model(**kwargs)


def prediction_hidden(backbone: Backbone, batch: Batch) -> torch.Tensor:
    """The final hidden state at each row's prediction position, [B, d]."""
    out = run_base(backbone, batch.embeds, batch.attention_mask, batch.position_ids)
    rows = torch.arange(batch.embeds.shape[0], device=batch.embeds.device)
    return out.last_hidden_state[rows, batch.predict_at]
