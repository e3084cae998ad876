"""Token tagging (NER) on encoder backbones with a soft prompt: a linear head on each word's first sub-token.

Decoders do NER as text-to-text generation (generation.py); encoders (XLM-R, mBERT, e5) tag words. A
sentence arrives as its words; each word is tokenized on its own and the pieces are concatenated, so
every word starts on a sub-token of its own:

- SentencePiece (XLM-R) and WordPiece (mBERT) mark a word start themselves ("▁word" / no "##");
- byte-level BPE folds the space into the next word's first piece, so every word but the first is
  tokenized with a leading space, as it appears in running text;
- a word that tokenizes to nothing (a lone control or zero-width character) gets one placeholder
  token (the unknown token, else the first piece of " "), so that it still has a position to tag.

The text is cut to the layout's text budget at word boundaries: words that do not fit are dropped from
the end and not tagged (the evaluator decides how to score them). Only a first word longer than the
whole budget is cut inside the word, so a non-empty sentence always keeps at least one word.

The input is the classification layout (layout.py) without a [MASK] slot: ``[CLS] [text] [SEP]`` with the
prompt after [CLS] (``prefix``), before it (``start``) or after the text (``suffix``), padded on the right.
Text token ``j`` therefore sits at ``len(lead) + j``, shifted by the prompt length for ``prefix`` and
``start`` (:func:`text_offset`). The head, ``Linear(d, n_tags)`` drawn from the run's seed like the
classifier's linear head, reads the final hidden state there; the loss is the float32 cross-entropy
averaged over every kept word of the batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError
from xlpeft.heads.classifier import seeded_linear
from xlpeft.heads.layout import PromptLayout, sequence_hidden

ENCODER_NEEDED = "token tagging is for encoders; decoder backbones do NER as text-to-text generation"


@dataclass(frozen=True)
class Tagged:
    """One sentence ready for tagging."""

    token_ids: list[int]  # the sentence's sub-tokens (no special tokens), within the layout's text budget
    word_starts: list[int]  # index into token_ids of each kept word's first sub-token


def text_offset(layout: PromptLayout, n_prompt: int) -> int:
    """Where the text begins within an (unpadded, or right-padded) row built by ``layout`` with an
    ``n_prompt``-row prompt: after the lead, and after the prompt when it comes before the text."""
    before = n_prompt if n_prompt and layout.placement in ("prefix", "start") else 0
    return len(layout.lead) + before


def _byte_level(tokenizer) -> bool:
    """Whether the tokenizer folds a word's leading space into its first piece (GPT-2-style byte-level BPE)."""
    if hasattr(tokenizer, "byte_encoder"):  # slow GPT-2 / RoBERTa tokenizers
        return True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("pre_tokenizer"))


class TokenTagger(nn.Module):
    """A layout plus a trainable Linear(d, n_tags) on the final hidden state of each word's first sub-token."""

    head_kind = "linear"

    def __init__(self, backbone: Backbone, layout: PromptLayout, n_tags: int, seed: int = 0):
        super().__init__()
        if backbone.kind != "encoder":
            raise XlpeftError(ENCODER_NEEDED)
        self.backbone = backbone
        self.layout = layout
        self.head = seeded_linear(backbone, n_tags, seed)
        self._space_prefix = _byte_level(backbone.tokenizer)

    def _placeholder(self) -> int:
        tokenizer = self.backbone.tokenizer
        if tokenizer.unk_token_id is not None:
            return tokenizer.unk_token_id
        space = tokenizer(" ", add_special_tokens=False)["input_ids"]
        return space[0] if space else self.backbone.tail_ids[0]

    def tokenize_words(self, sentences: list[list[str]]) -> list[Tagged]:
        """Sub-tokens of each sentence, word by word, cut at a word boundary to the text budget."""
        pieces = [w if i == 0 or not self._space_prefix else " " + w for words in sentences for i, w in enumerate(words)]
        encoded = iter(self.backbone.tokenizer(pieces, add_special_tokens=False)["input_ids"] if pieces else [])
        budget = self.layout.text_budget
        placeholder = None
        out = []
        for words in sentences:
            token_ids: list[int] = []
            starts: list[int] = []
            full = True
            for _ in words:
                ids = next(encoded)
                if not ids:
                    placeholder = self._placeholder() if placeholder is None else placeholder
                    ids = [placeholder]
                if not full:
                    continue
                if len(token_ids) + len(ids) > budget:
                    full = False
                    if token_ids:
                        continue
                    ids = ids[:budget]  # a first word longer than the budget: keep its first pieces
                starts.append(len(token_ids))
                token_ids.extend(ids)
            out.append(Tagged(token_ids, starts))
        return out

    def word_hidden(self, tagged: list[Tagged], prompt: torch.Tensor | None) -> torch.Tensor:
        """What the head reads: the final hidden state at every kept word's first sub-token, rows in order, [N, d]."""
        n_prompt = 0 if prompt is None else prompt.shape[-2]
        offset = text_offset(self.layout, n_prompt)
        batch = self.layout.build([t.token_ids or [self.backbone.tail_ids[0]] for t in tagged], prompt)
        hidden = sequence_hidden(self.backbone, batch)
        rows = [i for i, t in enumerate(tagged) for _ in t.word_starts]
        cols = [offset + s for t in tagged for s in t.word_starts]
        device = hidden.device
        return hidden[torch.tensor(rows, dtype=torch.long, device=device), torch.tensor(cols, dtype=torch.long,
                                                                                         device=device)]

    def logits(self, tagged: list[Tagged], prompt: torch.Tensor | None) -> torch.Tensor:
        """[N, n_tags] over every kept word of the batch, rows in order."""
        return self.head(self.word_hidden(tagged, prompt).to(self.head.weight.dtype))

    def loss(self, tagged: list[Tagged], prompt: torch.Tensor | None, tag_ids: list[list[int]]) -> torch.Tensor:
        """Float32 cross-entropy averaged over the kept words; ``tag_ids`` has one id per original word."""
        if len(tag_ids) != len(tagged):
            raise ValueError(f"{len(tagged)} sentences but {len(tag_ids)} tag sequences")
        gold = []
        for i, (t, tags) in enumerate(zip(tagged, tag_ids)):
            if len(tags) < len(t.word_starts):
                raise ValueError(f"sentence {i}: {len(t.word_starts)} kept words but {len(tags)} tags")
            gold += tags[: len(t.word_starts)]
        logits = self.logits(tagged, prompt)
        if not gold:  # no word kept anywhere in the batch: a zero that still reaches the graph
            return logits.float().sum() * 0.0
        return F.cross_entropy(logits.float(), torch.tensor(gold, dtype=torch.long, device=logits.device))

    @torch.inference_mode()
    def predict(self, tagged: list[Tagged], prompt: torch.Tensor | None, batch_size: int = 32) -> list[list[int]]:
        """The argmax tag id of every kept word, per sentence in input order (batches sorted by length)."""
        out: list[list[int]] = [[] for _ in tagged]
        order = sorted(range(len(tagged)), key=lambda i: len(tagged[i].token_ids))
        for start in range(0, len(order), batch_size):
            chunk = [i for i in order[start : start + batch_size] if tagged[i].word_starts]
            if not chunk:
                continue
            best = self.logits([tagged[i] for i in chunk], prompt).argmax(-1).tolist()
            at = 0
            for i in chunk:
                n = len(tagged[i].word_starts)
                out[i] = best[at : at + n]
                at += n
        return out

    def describe(self) -> dict:
        return {"head_used": self.head_kind, "output": "tags"}


def build_tagger(backbone: Backbone, placement: str, prompt_length: int, max_length: int, n_tags: int,
                 seed: int = 0) -> TokenTagger:
    """The tagger a run configuration describes (encoders only): the same call at training and at evaluation."""
    if backbone.kind != "encoder":
        raise XlpeftError(ENCODER_NEEDED)
    try:
        layout = PromptLayout(backbone, placement, prompt_length, max_length)
    except ValueError as exc:
        raise XlpeftError(str(exc)) from exc
    return TokenTagger(backbone, layout, n_tags, seed)
