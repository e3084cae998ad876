"""Rank classification for encoder-decoders: score every label string with the decoder, pick the likeliest.

Each label is a short string (the verbalizer word, any number of tokens, closed by EOS). Its score is
the sum of the decoder's log-probabilities of its tokens given the encoder input (teacher forcing); the
training loss is the gold string's negative log-likelihood per token, the usual seq2seq loss. All labels
are scored against one encoder pass, so a step costs one encoder run plus K short decoder runs.
Generated answers (``--nli-output generate``) are read back into labels by ``parse_answers``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xlpeft.errors import XlpeftError


@dataclass(frozen=True)
class LabelStrings:
    """Label index -> the token ids of its string (EOS included), padded into one matrix."""

    words: tuple[str, ...]
    token_ids: torch.Tensor  # [K, S], right-padded with -100
    lengths: torch.Tensor  # [K]

    @classmethod
    def build(cls, tokenizer, words: dict[str, str]) -> LabelStrings:
        """``words``: label -> string, in label order."""
        eos = [tokenizer.eos_token_id]
        ids = [tokenizer(word.strip(), add_special_tokens=False)["input_ids"] + eos for word in words.values()]
        if len({tuple(i) for i in ids}) != len(ids):
            raise XlpeftError(f"label strings {list(words.values())} tokenize identically; choose distinct --label-words")
        width = max(map(len, ids))
        matrix = torch.full((len(ids), width), -100, dtype=torch.long)
        for k, row in enumerate(ids):
            matrix[k, : len(row)] = torch.tensor(row)
        return cls(tuple(word.strip() for word in words.values()), matrix, torch.tensor([len(r) for r in ids]))

    def score(self, model, encoder_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, K] summed log-probabilities of each label string given each encoded input."""
        batch, k = encoder_hidden.shape[0], self.token_ids.shape[0]
        device = encoder_hidden.device
        labels = self.token_ids.to(device).repeat(batch, 1)  # row b*K + j: label j of input b
        decoder_in = model.prepare_decoder_input_ids_from_labels(labels=labels)
        out = model(
            encoder_outputs=(encoder_hidden.repeat_interleave(k, dim=0),),
            attention_mask=attention_mask.repeat_interleave(k, dim=0),
            decoder_input_ids=decoder_in,
        )
        logp = F.log_softmax(out.logits.float(), dim=-1)
        valid = labels != -100
        token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid
        return token_logp.sum(-1).view(batch, k)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the gold string's per-token negative log-likelihood."""
        lengths = self.lengths.to(scores.device)[labels]
        return -(scores.gather(1, labels[:, None]).squeeze(1) / lengths).mean()


@dataclass(frozen=True)
class ParsedAnswers:
    """Labels read from generated answers, and how many answers named no label (given the fallback label)."""

    labels: list[int]
    n_unparsed: int


def parse_answers(answers: list[str], words: tuple[str, ...], fallback: int) -> ParsedAnswers:
    """Each generated answer's label: the label string its first words spell (case and spacing aside; the
    longest such string where several do), else ``fallback`` (the method B paper counted an answer that is
    no label as neutral). ``words``: the label strings in label order (the paper's Yes / Maybe / No)."""
    spelled = [word.lower().split() for word in words]
    labels, unparsed = [], 0
    for answer in answers:
        said = answer.lower().split()
        matches = [k for k, spelling in enumerate(spelled) if spelling and said[: len(spelling)] == spelling]
        if matches:
            labels.append(max(matches, key=lambda k: len(spelled[k])))
        else:
            labels.append(fallback)
            unparsed += 1
    return ParsedAnswers(labels, unparsed)
