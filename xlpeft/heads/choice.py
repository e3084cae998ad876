"""Multiple choice with a soft prompt: each choice scored by the backbone's log-likelihood after the input.

As lm-evaluation-harness's ``multiple_choice`` tasks: the score of a choice is log p(choice | input), the sum of
its tokens' log-probabilities under teacher forcing, and the prediction is the likeliest choice (``sum``, its
``acc``); ``per_char`` divides each sum by the choice's length in characters first (its ``acc_norm``), which
removes the advantage short choices have. Characters, not tokens: a choice's token count depends on the
backbone's tokenizer, its characters do not, so normalised scores rank the same strings the same way on every
backbone (lm-evaluation-harness chose characters for the same reason; bytes would weigh non-Latin scripts 2-3x).

The layout is the text-to-text one (generation.py), and the scores come from its teacher-forced machinery
(``TextToText.target_logp``, the quantity its training loss averages):

- causal LMs: ``[lead] [text/prompt per placement] [choice]``, no EOS after the input or the choice; the choice
  is written as it follows other text (``following_text``: a leading space on byte-level BPE and Gemma, as
  lm-evaluation-harness's target delimiter), and its EOS is not scored (an unfinished sentence may go on);
- encoder-decoders (mT5, mT0): the encoder reads the layout with its tail, the decoder scores the choice closed
  by EOS, as label strings are scored (objectives/label_strings.py) and as lm-evaluation-harness scores seq2seq
  continuations.

Training is teacher forcing on the gold choice in exactly that form (``target_ids``), so what is trained is what
is scored. All choices of a batch of examples go through the model in one forward (B x K rows). Encoders have
no LM head to score a continuation with: a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError
from xlpeft.heads.generation import TextToText, build_text_to_text
from xlpeft.objectives.verbalizer import following_text
from xlpeft.tasks.templates import Template

ENCODER_CANNOT_SCORE = ("multiple-choice tasks score each choice by the log-likelihood an LM head gives it after the "
                        "input; encoders have none: use a decoder-only or encoder-decoder backbone")


@dataclass(frozen=True)
class ChoiceScores:
    """Each example's choices' log-likelihoods and lengths in characters (as the model read them)."""

    loglik: list[list[float]]
    chars: list[list[int]]

    def scores(self, kind: str) -> list[list[float]]:
        """``sum``: the log-likelihoods; ``per_char``: each divided by its choice's characters."""
        if kind == "sum":
            return self.loglik
        if kind == "per_char":
            return [[ll / max(n, 1) for ll, n in zip(row, lengths)] for row, lengths in zip(self.loglik, self.chars)]
        raise ValueError(f"unknown choice score {kind!r}: sum or per_char")

    def predictions(self, kind: str) -> list[int]:
        """The index of each example's best choice under ``kind``; the first one on a tie."""
        return [max(range(len(row)), key=row.__getitem__) for row in self.scores(kind)]


class ChoiceScorer(TextToText):
    """A text-to-text layout whose targets are choices: scored by log-likelihood, trained on the gold one."""

    def __init__(self, backbone: Backbone, layout):
        super().__init__(backbone, layout)
        # what precedes a choice: on a causal LM the space a word follows text with (if its tokenizer needs one)
        self.delimiter = following_text(backbone.tokenizer, "") if backbone.kind == "causal" else ""

    def continuation(self, choice: str) -> str:
        """``choice`` as the model reads it after the input (see the module docstring)."""
        return self.delimiter + choice.strip()

    def target_ids(self, targets: list[str]) -> list[list[int]]:
        """Each choice's tokens as scored: a causal LM's continuation without EOS, a decoder's closed by EOS."""
        if not targets:
            return []
        texts = [self.continuation(t) for t in targets]
        encoded = self.backbone.tokenizer(texts, add_special_tokens=False)["input_ids"]
        eos = [] if self.backbone.kind == "causal" else [self.backbone.eos_id]
        for text, ids in zip(targets, encoded):
            if not text.strip() or not ids:
                raise XlpeftError(f"the choice {text!r} is empty; every choice needs some text")
        return [ids + eos for ids in encoded]

    def describe(self) -> dict:
        return {**super().describe(), "output": "choice"}

    @torch.inference_mode()
    def score(self, token_ids: list[list[int]], prompt: torch.Tensor | None, choices: list[tuple[str, ...]],
              batch_size: int = 16) -> ChoiceScores:
        """The log-likelihood of every choice after its input, in input order; ``batch_size`` examples (all their
        choices) per forward, formed from length-sorted inputs."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        loglik: list[list[float]] = [[] for _ in token_ids]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = [i for i in chunk for _ in choices[i]]  # example i once per choice
            targets = self.target_ids([c for i in chunk for c in choices[i]])
            row_prompt = prompt
            if prompt is not None and prompt.dim() == 3:  # one prompt per example: one per row
                row_prompt = prompt[rows]
            sums = self.target_logp([token_ids[i] for i in rows], row_prompt, targets).tolist()
            for i, value in zip(rows, sums):
                loglik[i].append(value)
        chars = [[len(self.continuation(c)) for c in row] for row in choices]
        return ChoiceScores(loglik, chars)


def build_choice_scorer(backbone: Backbone, placement: str, prompt_length: int, max_length: int,
                        template: Template | None = None) -> ChoiceScorer:
    """The multiple-choice model a run configuration describes: the text-to-text layout (``build_text_to_text``),
    the same call at training and at evaluation."""
    if backbone.kind == "encoder":
        raise XlpeftError(ENCODER_CANNOT_SCORE)
    model = build_text_to_text(backbone, placement, prompt_length, max_length, template)
    return ChoiceScorer(model.backbone, model.layout)
