"""One classifier interface over every backbone kind, so training and evaluation never branch on it.

``outputs(token_ids, prompt)`` runs the backbone with the prompt spliced in; ``loss`` and ``scores``
turn those outputs into a training loss and per-label scores. The kinds:

- ``lm`` on a causal LM: the LM head at the prediction position, full-vocabulary cross-entropy against
  the label word's token (methods.md A);
- ``lm`` on an encoder with a masked-LM head (XLM-R, mBERT): the same, at a [MASK] before [SEP];
- ``lm`` on an encoder-decoder (mT5, mT0): the decoder scores each label string (label_strings.py);
- ``linear``: a small trainable head (Linear d -> labels) on the mean of an encoder's non-prompt
  states, or on a causal LM's prediction position; the only choice for a bare encoder (e5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xlpeft.backbones import Backbone
from xlpeft.config import Head, TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.heads.layout import PromptLayout, pooled_hidden, prediction_hidden
from xlpeft.objectives.label_strings import LabelStrings
from xlpeft.objectives.verbalizer import Verbalizer


class Classifier(nn.Module):
    """Base: a layout plus an objective; subclasses say how outputs are computed and scored."""

    head_kind: str = ""

    def __init__(self, backbone: Backbone, layout: PromptLayout):
        super().__init__()
        self.backbone = backbone
        self.layout = layout

    def tokenize(self, texts: list[str], fields: dict[str, list[str]] | None = None) -> list[list[int]]:
        """Token ids per text (``fields``: the parts an input template names, heads/layout.py)."""
        return self.layout.tokenize(texts, fields)

    def outputs(self, token_ids: list[list[int]], prompt: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """[B, n_labels]: argmax is the prediction."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What a run records so that evaluation rebuilds the same classifier."""
        return {"head_used": self.head_kind, **self.layout.describe()}


class VerbalizerClassifier(Classifier):
    """LM-head (causal) or masked-LM-head (encoder) logits at the prediction position."""

    head_kind = "lm"

    def __init__(self, backbone: Backbone, layout: PromptLayout, verbalizer: Verbalizer):
        super().__init__(backbone, layout)
        self.verbalizer = verbalizer

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.backbone.mlm_head if self.backbone.kind == "encoder" else self.backbone.lm_head
        return head(hidden)

    def outputs(self, token_ids, prompt):
        return self.vocab_logits(prediction_hidden(self.backbone, self.layout.build(token_ids, prompt)))

    def loss(self, outputs, labels):
        return self.verbalizer.loss(outputs, labels)

    def scores(self, outputs):
        return self.verbalizer.label_scores(outputs).float()

    def describe(self):
        return {**super().describe(), "label_words": list(self.verbalizer.words),
                "label_token_ids": list(self.verbalizer.token_ids)}


def seeded_linear(backbone: Backbone, n_out: int, seed: int) -> nn.Linear:
    """Linear(d, n_out) with nn.Linear's default init drawn from ``seed`` (not the global generator), on the
    backbone's device: a head's initial weights are part of a run's reproducible state."""
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(backbone.hidden_size, n_out)
    with torch.no_grad():
        bound = 1 / backbone.hidden_size**0.5
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        head.bias.copy_(torch.rand(head.bias.shape, generator=generator) * 2 * bound - bound)
    return head.to(backbone.model.device)


class LinearHeadClassifier(Classifier):
    """A trainable Linear(d, n_labels) on pooled encoder states or a causal LM's prediction position."""

    head_kind = "linear"

    def __init__(self, backbone: Backbone, layout: PromptLayout, n_labels: int, seed: int = 0):
        super().__init__(backbone, layout)
        self.head = seeded_linear(backbone, n_labels, seed)

    def features(self, token_ids: list[list[int]], prompt: torch.Tensor | None) -> torch.Tensor:
        """What the head reads: pooled encoder states, or a causal LM's prediction-position state, [B, d]."""
        pool = prediction_hidden if self.backbone.kind == "causal" else pooled_hidden
        return pool(self.backbone, self.layout.build(token_ids, prompt))

    def outputs(self, token_ids, prompt):
        return self.head(self.features(token_ids, prompt).to(self.head.weight.dtype))

    @torch.no_grad()
    def all_features(self, token_ids: list[list[int]], batch_size: int = 32) -> torch.Tensor:
        """Features of many texts without a prompt, length-sorted in batches: with a frozen backbone and no
        prompt they never change, so a head trained alone (or many heads) reads them from memory."""
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        out = torch.empty(len(token_ids), self.backbone.hidden_size, device=self.head.weight.device)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self.features([token_ids[i] for i in chunk], None).float()
        return out

    def loss(self, outputs, labels):
        return F.cross_entropy(outputs.float(), labels)

    def scores(self, outputs):
        return outputs.float()


def head_alone(config: TrainConfig, head: Classifier, dropout: bool = False) -> bool:
    """Whether ``head`` is a linear head on a frozen model without a prompt (no method B module either): then its
    inputs, the backbone's features, never change and are computed once, in training and in evaluation alike.
    ``dropout``: the frozen model's dropout is on (training with ``frozen_dropout``), which changes them."""
    return (isinstance(head, LinearHeadClassifier) and config.placement_used == "none" and config.regime == "prompt"
            and not config.configuration and not dropout)


class LabelStringClassifier(Classifier):
    """Encoder-decoder rank classification: the decoder scores every label string."""

    head_kind = "lm"

    def __init__(self, backbone: Backbone, layout: PromptLayout, strings: LabelStrings):
        super().__init__(backbone, layout)
        self.strings = strings

    def outputs(self, token_ids, prompt):
        batch = self.layout.build(token_ids, prompt)
        hidden = self.backbone.encoder_hidden(batch.embeds, batch.attention_mask)
        return self.strings.score(self.backbone.model, hidden, batch.attention_mask)

    def loss(self, outputs, labels):
        return self.strings.loss(outputs, labels)

    def scores(self, outputs):
        return outputs

    def describe(self):
        return {**super().describe(), "label_words": list(self.strings.words)}


def resolve_head(backbone: Backbone, head: Head) -> str:
    """``auto`` picks the LM head where the backbone has one, else a linear head; refuse impossible pairs."""
    if head == "auto":
        return "lm" if backbone.has_lm_head else "linear"
    if head == "lm" and not backbone.has_lm_head:
        raise XlpeftError(f"{backbone.name} has no masked-LM head to verbalize labels with; use --head linear")
    if head == "linear" and backbone.kind == "seq2seq":
        raise XlpeftError("encoder-decoders classify by scoring label strings with the decoder; use --head lm")
    return head
