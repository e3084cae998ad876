"""Splice a soft prompt into a backbone's input and read the hidden state where the label is predicted.

Layouts (methods.md A): the text cut to ``max_length`` *text* tokens, no template, no BOS; the prompt
(method B: language prompt + task prompt) and the special tokens come on top, so runs with different
prompt lengths, placements, families or configurations read the same text. ``max_length`` 0 means no
limit but the model's context (PEFT directories: PEFT truncates nothing). Runs written before this rule
(config.json without ``max_length_counts``) counted prompt and special tokens in ``max_length``; they
are read with that meaning (``text_budget`` is the one place both rules live).
An input template (``--template``, tasks/templates.py) is applied here too, where the text is tokenized, at
training and at evaluation alike: the budget then counts the template's fields, its own words come on top.
``lead`` and ``tail`` are the backbone kind's special tokens: nothing / [EOS] for causal LMs, [CLS] /
[SEP] for encoders ([MASK][SEP] when the masked-LM head classifies), nothing / [EOS] for mT5's encoder.

- ``suffix``: ``[lead] [text] [P1..PL] [tail]``; causal prediction at the last prompt position.
- ``prefix``: ``[lead] [P1..PL] [text] [tail]``; for encoders the prompt follows [CLS].
- ``start``: ``[P1..PL] [lead] [text] [tail]``: PEFT's prompt tuning layout (differs from ``prefix`` only
  for encoders, where PEFT puts the prompt before [CLS]).
- ``none`` (full fine-tuning or a head alone): ``[lead] [text] [tail]``.

``with_tail=False`` drops the tail: a causal LM that *generates* a text answer (generation.py) reads its
input up to the last prompt or text position and continues from there, so no EOS closes the input.

Causal LMs predict at the position just before EOS; under causal attention EOS cannot influence it,
which the cached path (text_cache.py) exploits by not computing it at all. Masked-LM encoders predict at
[MASK]; encoders with a linear head pool the non-prompt positions; mT5 scores labels with its decoder.

This is the ordinary ("uncached") path: the whole padded sequence goes through the model each time.
Padding is dynamic (to the longest sequence of the batch) unless ``pad_to`` asks for the reference
recipe's fixed length; causal models may pad on either side (positions derived from the attention
mask); encoders and mT5 pad on the right, where their absolute/relative positions stay correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from xlpeft.backbones import Backbone
from xlpeft.config import Placement as PromptPlacement
from xlpeft.errors import XlpeftError
from xlpeft.tasks.templates import TEXT_FIELD, Template

Placement = Literal[PromptPlacement, "none"]  # "none": no prompt (regime full, or a prompt of length 0)
Counts = Literal["text", "all"]
TEXT_ONLY: Counts = "text"  # config.json's ``max_length_counts`` since max_length counts text tokens only
NO_LIMIT = 0


def text_budget(max_length: int, counts: Counts, around: int, context: int | None = None) -> int:
    """Text tokens a sequence may hold: ``max_length`` itself ("text"), or for runs written before that rule
    ("all") what is left of it once ``around`` prompt rows and special tokens are placed. ``NO_LIMIT`` gives
    what the model's ``context`` leaves (unbounded when unknown)."""
    if max_length == NO_LIMIT:
        return (context - around) if context else 10**9
    return max_length if counts == TEXT_ONLY else max_length - around


def max_length_counts(run_config: dict) -> Counts:
    """What a run directory's ``max_length`` counts: text tokens, or (runs before the rule) everything."""
    return run_config.get("max_length_counts", "all")


@dataclass
class Batch:
    """A padded batch of input embeddings with where to read the prediction."""

    embeds: torch.Tensor  # [B, T, d]
    attention_mask: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    predict_at: torch.Tensor  # [B]
    pool_mask: torch.Tensor  # [B, T]: attended positions that are not prompt rows (for pooling)


class PromptLayout:
    """Tokenizes texts and builds prompt-spliced inputs for one backbone and placement.

    ``mask_slot`` puts the tokenizer's mask token before an encoder's [SEP], where the masked-LM head
    predicts the label word. ``text_prefix`` is prepended to every text (e5 models expect "query: ").
    ``template`` writes each input's fields into one text (tasks/templates.py; None: the text as it is).
    ``with_tail=False`` leaves out the closing special tokens (causal text-to-text: the answer follows).
    ``counts`` says what ``max_length`` counts (see ``text_budget``).
    """

    def __init__(self, backbone: Backbone, placement: Placement, prompt_length: int, max_length: int = 128,
                 mask_slot: bool = False, text_prefix: str = "", with_tail: bool = True, counts: Counts = TEXT_ONLY,
                 template: Template | None = None):
        if placement == "none" and prompt_length:
            raise ValueError("placement 'none' has no prompt")
        self.backbone = backbone
        self.placement = placement
        self.prompt_length = prompt_length if placement != "none" else 0
        self.max_length = max_length
        self.counts = counts
        self.text_prefix = text_prefix
        self.template = template
        self.template_tokens = self._template_tokens()  # on top of the text budget, like the prompt
        self.lead = backbone.lead_ids
        self.tail = ((backbone.mask_id,) if mask_slot else ()) + (backbone.tail_ids if with_tail else ())
        self._check_budget()

    def _check_budget(self) -> None:
        """A budget the model can hold: at least one text token, and text plus prompt and special tokens
        within the model's positions."""
        if self.text_budget < 1:
            raise ValueError(f"max_length {self.max_length} leaves no room for text; give --max-length 1 or more "
                             "(text tokens), or 0 for the model's context")
        around = self.prompt_length + len(self.lead) + len(self.tail) + self.template_tokens
        context = self.backbone.context_length
        if context and self.text_budget + around > context:
            raise ValueError(f"max_length {self.max_length} text tokens plus {around} prompt, template and special "
                             f"tokens exceed {self.backbone.name}'s {context} positions; lower --max-length to at most "
                             f"{context - around} or --prompt-length")

    def describe(self) -> dict:
        """What a run records of its input: the template it wrote its texts into (nothing without one)."""
        if self.template is None:
            return {}
        return {"template_used": {"text": self.template.text, "answers": list(self.template.answers),
                                  "origin": self.template.origin}}

    def _template_tokens(self) -> int:
        """The template's own tokens (and the text prefix's, which precedes it), its fields left empty."""
        if self.template is None:
            return 0
        empty = dict.fromkeys(self.template.fields, "")
        return len(self.backbone.tokenizer(self.text_prefix + self.template.render(empty), add_special_tokens=False)["input_ids"])

    @property
    def text_budget(self) -> int:
        """Text tokens per sequence (the prompt, template and special tokens come on top); see ``text_budget``."""
        around = self.prompt_length + len(self.lead) + len(self.tail) + self.template_tokens
        return text_budget(self.max_length, self.counts, around, self.backbone.context_length)

    def truncation(self, texts: list[str], fields: dict[str, list[str]] | None = None) -> tuple[int, int]:
        """(texts longer than the text budget, texts that tokenize to nothing) among ``texts``: the counts a
        result row records, since ``tokenize`` cuts the first and stands a placeholder in for the second.
        With a template: inputs whose fields were cut, and inputs whose fields are all empty."""
        if self.template is not None:
            encoded = self._templated(texts, fields)
            return sum(e.truncated for e in encoded), sum(e.field_tokens == 0 for e in encoded)
        lengths = [len(ids) for ids in self._encode(texts)]
        return sum(n > self.text_budget for n in lengths), sum(n == 0 for n in lengths)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.backbone.tokenizer([self.text_prefix + t for t in texts], add_special_tokens=False)["input_ids"]

    def _templated(self, texts: list[str], fields: dict[str, list[str]] | None):
        """The template's encoding of each input (tasks/templates.py); ``fields`` beside ``text``, by name."""
        named = {TEXT_FIELD: texts, **(fields or {})}
        missing = [name for name in self.template.fields if name not in named]
        if missing:
            raise XlpeftError(f"the template {self.template.text!r} names {', '.join(missing)}, which these inputs do "
                              f"not carry (they have {', '.join(named)})")
        return self.template.encode(self.backbone.tokenizer, named, self.text_budget, self.text_prefix)

    def tokenize(self, texts: list[str], fields: dict[str, list[str]] | None = None) -> list[list[int]]:
        """Token ids per text (after ``text_prefix``), without special tokens, truncated to the text budget; with
        a template, the rendered template with its ``fields`` cut to the budget (``text``: ``texts``)."""
        if self.template is not None:
            return [e.ids or [self.backbone.tail_ids[0]] for e in self._templated(texts, fields)]
        budget = self.text_budget
        return [ids[:budget] or [self.backbone.tail_ids[0]] for ids in self._encode(texts)]

    def build(
        self,
        token_ids: list[list[int]],
        prompt: torch.Tensor | None,
        padding_side: Literal["right", "left"] = "right",
        pad_to: int | None = None,
    ) -> Batch:
        """Embed each row in the placement's order and pad them into one batch.

        ``prompt`` is an unscaled L x d matrix (or B x L x d, one per row); it is multiplied by the
        backbone's embedding scale here, like token embeddings are inside the embedding module.
        """
        if padding_side == "left" and self.backbone.kind != "causal":
            raise ValueError(f"{self.backbone.kind} backbones are padded on the right (absolute positions)")
        embed = self.backbone.model.get_input_embeddings()
        device = embed.weight.device
        lead, tail = (embed(torch.tensor(ids, dtype=torch.long, device=device)) for ids in (self.lead, self.tail))
        pad = embed(torch.tensor([self.backbone.pad_id], device=device))
        scaled = None if prompt is None else prompt.to(pad.dtype) * self.backbone.embed_scale
        rows, predict_at, prompt_spans = [], [], []
        for i, ids in enumerate(token_ids):
            text = embed(torch.tensor(ids, device=device))
            row_prompt = None if scaled is None else (scaled[i] if scaled.dim() == 3 else scaled)
            parts = self._order(lead, text, row_prompt)
            body = sum(p.shape[0] for p in parts)
            rows.append(torch.cat([*parts, tail]))
            # causal: the position before EOS; masked LM: the [MASK] that opens the tail
            predict_at.append(body - 1 if self.backbone.kind == "causal" else body)
            prompt_spans.append(self._prompt_span(len(ids), 0 if row_prompt is None else row_prompt.shape[0]))
        return _pad(rows, predict_at, prompt_spans, pad, padding_side, pad_to)

    def _order(self, lead: torch.Tensor, text: torch.Tensor, prompt: torch.Tensor | None) -> list[torch.Tensor]:
        if self.placement == "none" or prompt is None:
            return [lead, text]
        return {"suffix": [lead, text, prompt], "prefix": [lead, prompt, text], "start": [prompt, lead, text]}[
            self.placement
        ]

    def _prompt_span(self, n_text: int, n_prompt: int) -> tuple[int, int]:
        """[start, end) of the prompt rows within an unpadded row."""
        if not n_prompt or self.placement == "none":
            return (0, 0)
        start = {"suffix": len(self.lead) + n_text, "prefix": len(self.lead), "start": 0}[self.placement]
        return (start, start + n_prompt)


def _pad(
    rows: list[torch.Tensor], predict_at: list[int], prompt_spans: list[tuple[int, int]], pad: torch.Tensor,
    side: str, pad_to: int | None,
) -> Batch:
    width = max(pad_to or 0, max(r.shape[0] for r in rows))
    embeds, masks, pools, shifts = [], [], [], []
    for row, (p_start, p_end) in zip(rows, prompt_spans):
        n_pad = width - row.shape[0]
        filler = pad.expand(n_pad, -1)
        embeds.append(torch.cat([row, filler] if side == "right" else [filler, row]))
        ones, zeros = torch.ones(row.shape[0], dtype=torch.long), torch.zeros(n_pad, dtype=torch.long)
        masks.append(torch.cat([ones, zeros] if side == "right" else [zeros, ones]))
        shift = 0 if side == "right" else n_pad
        pool = masks[-1].clone()
        pool[shift + p_start : shift + p_end] = 0
        pools.append(pool)
        shifts.append(shift)
    mask = torch.stack(masks).to(pad.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    predict = torch.tensor(predict_at) + torch.tensor(shifts)
    return Batch(torch.stack(embeds), mask, positions, predict.to(pad.device), torch.stack(pools).to(pad.device))


def run_base(
    backbone: Backbone,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache=None,
    use_cache: bool = False,
):
    """One pass through the base model (no LM head): the head is applied only where it is needed. ``cache``
    goes by transformers' Cache-API name (``past_key_values`` is deprecated since 5.x, removed in 5.40)."""
    kwargs = {"inputs_embeds": embeds, "attention_mask": attention_mask, "use_cache": use_cache}
    if backbone.accepts_position_ids:
        kwargs["position_ids"] = position_ids
    if cache is not None:
        kwargs["cache"] = cache
    return backbone.model.base_model(**kwargs)


def sequence_hidden(backbone: Backbone, batch: Batch) -> torch.Tensor:
    """Final hidden states of every position, [B, T, d] (for mT5: its encoder's)."""
    if backbone.kind == "causal":
        return run_base(backbone, batch.embeds, batch.attention_mask, batch.position_ids).last_hidden_state
    return backbone.encoder_hidden(batch.embeds, batch.attention_mask)


def prediction_hidden(backbone: Backbone, batch: Batch) -> torch.Tensor:
    """The final hidden state at each row's prediction position, [B, d]."""
    rows = torch.arange(batch.embeds.shape[0], device=batch.embeds.device)
    return sequence_hidden(backbone, batch)[rows, batch.predict_at]


def pooled_hidden(backbone: Backbone, batch: Batch) -> torch.Tensor:
    """Mean of the final hidden states over the text and special tokens (prompt rows excluded), [B, d]."""
    hidden = sequence_hidden(backbone, batch)
    weights = batch.pool_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1)
