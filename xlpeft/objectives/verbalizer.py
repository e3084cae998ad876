"""LM-head verbalizer classification: each label is one vocabulary token.

Training loss is cross-entropy over the *full* vocabulary against the label word's token; predictions
are the argmax over the label tokens only (methods.md A). Each word must be exactly one token: the
reference code silently took the last sub-token in training and the first at test, which we refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from xlpeft.errors import XlpeftError

if TYPE_CHECKING:
    from xlpeft.tasks.base import ClassificationTask


def label_words(task: ClassificationTask, family: str, tokenizer, spec: str = "",
                answers: tuple[str, ...] = ()) -> dict[str, str]:
    """label -> word, in the task's label order: the task's words for the model family (methods.md A's
    published SIB-200 words), or the ``answers`` an input template asks for (the paper's Yes/Maybe/No), as
    they follow other text, overridden by ``--label-words`` ``spec`` (as typed).
    """
    words = dict(zip(task.labels, answers)) if answers else task.label_words(family)
    defaults = {label: following_text(tokenizer, word) for label, word in words.items()}
    return {**defaults, **parse_label_words(spec, task.labels)}


def following_text(tokenizer, word: str) -> str:
    """``word`` written so that it tokenizes as it does after other text, where the label word is predicted.

    After text, a word follows a space, and its token is the word-start one ("▁earth", "Ġearth").
    Tokenizers that mark a word start themselves (SentencePiece with a dummy prefix, as XGLM's) get the
    bare word; all others get a leading space: byte-level BPE (BLOOM, GPT-2, Llama 3, SmolLM2) and
    SentencePiece without a dummy prefix (Gemma), where the bare word is the mid-word form and may be
    several tokens (Gemma: "geography" is "ge" "ography", " geography" is the one token "▁geography").
    """
    probe = tokenizer.convert_ids_to_tokens(tokenizer("earth", add_special_tokens=False)["input_ids"])
    marks_word_start = bool(probe) and probe[0].startswith("\u2581")
    return word if marks_word_start else " " + word


def parse_label_words(spec: str, labels: tuple[str, ...]) -> dict[str, str]:
    """``'sports= play,travel= trip'`` -> overrides; words keep their spaces (a leading space matters)."""
    overrides = {}
    for item in filter(None, spec.split(",")):
        label, sep, word = item.partition("=")
        if not sep or label.strip() not in labels or not word:
            raise XlpeftError(
                f"bad --label-words item {item!r}: write LABEL=WORD with LABEL one of {', '.join(labels)}"
            )
        overrides[label.strip()] = word
    return overrides


@dataclass(frozen=True)
class Verbalizer:
    """Label index -> vocabulary token id."""

    words: tuple[str, ...]
    token_ids: tuple[int, ...]

    @classmethod
    def build(cls, tokenizer, words: dict[str, str]) -> Verbalizer:
        """``words``: label -> word in label order (see :func:`label_words`); each must be one token."""
        ids = tuple(_single_token(tokenizer, label, word) for label, word in words.items())
        if len(set(ids)) != len(ids):
            raise XlpeftError(f"label words {list(words.values())} share a token; choose distinct words with --label-words")
        return cls(tuple(words.values()), ids)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary cross-entropy against each label's token."""
        targets = torch.tensor(self.token_ids, device=logits.device)[labels]
        return F.cross_entropy(logits.float(), targets)

    def label_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """[B, V] -> [B, n_labels]: the logits of the label tokens only."""
        return logits[..., list(self.token_ids)]


def _single_token(tokenizer, label: str, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise XlpeftError(
            f"label word {word!r} for {label!r} is {len(ids)} tokens {pieces} in this tokenizer, not one; "
            f"pick a single-token word with --label-words '{label}=WORD'"
        )
    return ids[0]
