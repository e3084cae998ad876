"""Language-modelling objectives for training language modules: batch builders, no training loop.

One default objective per backbone kind (:func:`objective_for`):

- ``seq2seq`` (mT5, mT0): T5 span corruption (Raffel et al. 2020), the objective methods.md B trains
  language adapters and soft language prompts with: noise density 0.15, mean noise span length 3,
  encoder inputs of 256 tokens. The noise mask, the span counts and the raw block length follow T5's
  ``random_spans_noise_mask`` and ``random_spans_helper`` (the latter as
  :func:`compute_input_and_target_lengths`), reimplemented with a seeded ``numpy.random.Generator``.
- ``causal`` (XGLM, BLOOM, Llama ...): next-token prediction on packed blocks.
- ``encoder`` (XLM-R, mBERT ...): BERT's masked LM (15 % of tokens; 80 % masked, 10 % random, 10 % kept).

Every objective takes token streams: one list of token ids per document, without special tokens
(:func:`xlpeft.data.text.tokenize` makes them). Documents are packed back to back with EOS (SEP for
encoders) after each, so no compute goes to padding; only the last block of a pass is shorter, and it
is padded with labels -100. The streams are used in their order (``load_text`` has already shuffled
the lines); the seed drives only the random choices (noise spans, masked tokens), so one seed gives
identical batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import numpy as np
import torch

from xlpeft.errors import XlpeftError

IGNORE_INDEX = -100  # the label value transformers' losses skip
DEFAULT_LENGTH = 256  # methods.md B: span-corruption inputs of 256 tokens


class LMObjective(ABC):
    """Packs token streams into blocks of ``block_length`` tokens and turns each into one example."""

    block_length: int
    separator: int  # appended after every document

    def batches(
        self, token_streams: Iterable[Sequence[int]], batch_size: int, seed: int
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One pass over ``token_streams`` as batches of ``batch_size`` examples (the last may be smaller)."""
        if batch_size < 1:
            raise XlpeftError(f"batch size must be at least 1, not {batch_size}")
        rng = np.random.default_rng(seed)
        blocks = pack(token_streams, self.block_length, self.separator)
        examples = (self.example(np.asarray(block, dtype=np.int64), rng) for block in blocks)
        while chunk := list(islice(examples, batch_size)):
            yield {key: torch.from_numpy(np.stack([e[key] for e in chunk])) for key in chunk[0]}

    @abstractmethod
    def example(self, block: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The model inputs and labels of one block, each padded to a fixed length."""


class SpanCorruption(LMObjective):
    """T5 span corruption: noise spans become sentinels in the input; the targets spell them out.

    Inputs ``a b <extra_id_0> e <extra_id_1> h </s>`` pair with targets ``<extra_id_0> c d <extra_id_1>
    f g </s>``. ``decoder_input_ids`` are the labels shifted right behind ``decoder_start_token_id``
    (T5's pad id unless given), as T5 models build them.
    """

    def __init__(
        self,
        tokenizer,
        input_length: int = DEFAULT_LENGTH,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        decoder_start_token_id: int | None = None,
    ):
        if not 0 < noise_density < 1 or mean_noise_span_length < 1:
            raise XlpeftError(
                f"span corruption needs 0 < noise_density < 1 and mean_noise_span_length >= 1, "
                f"not {noise_density} and {mean_noise_span_length}"
            )
        self.input_length = input_length
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length
        self.block_length, self.target_length = compute_input_and_target_lengths(
            input_length, noise_density, mean_noise_span_length
        )
        self.separator = _token_id(tokenizer, "eos", "span corruption")
        self.pad_id = _token_id(tokenizer, "pad", "span corruption")
        self.decoder_start_id = self.pad_id if decoder_start_token_id is None else decoder_start_token_id
        _, max_spans = noise_span_counts(self.block_length, noise_density, mean_noise_span_length)
        self.sentinels = sentinel_ids(tokenizer, max_spans)

    def example(self, block: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        noise = random_spans_noise_mask(len(block), self.noise_density, self.mean_noise_span_length, rng)
        inputs = replace_spans(block, noise, self.sentinels, self.separator)
        labels = _pad(replace_spans(block, ~noise, self.sentinels, self.separator), self.target_length, IGNORE_INDEX)
        decoder_inputs = np.concatenate([[self.decoder_start_id], labels[:-1]])
        return {
            "input_ids": _pad(inputs, self.input_length, self.pad_id),
            "attention_mask": _pad(np.ones_like(inputs), self.input_length, 0),
            "labels": labels,
            "decoder_input_ids": np.where(decoder_inputs == IGNORE_INDEX, self.pad_id, decoder_inputs),
        }


class CausalLM(LMObjective):
    """Next-token prediction: labels are the inputs (the model shifts them), padding labelled -100.

    ``lead`` starts every block: the BOS of a model that reads one first (``Backbone.lead_ids``: Gemma,
    Llama 3), so that a language module learns the layout it is used in at evaluation,
    ``[BOS] [prompt] [text]`` (heads/layout.py). It is attended, never a label, and counts in ``length``.
    """

    def __init__(self, tokenizer, block_length: int = DEFAULT_LENGTH, lead: tuple[int, ...] = ()):
        self.length = block_length
        self.lead = np.asarray(lead, dtype=np.int64)
        self.block_length = block_length - len(lead)  # text tokens per block
        self.separator = _token_id(tokenizer, "eos", "causal LM")
        # many causal tokenizers have no pad token; padded positions are masked, so any id will do
        self.pad_id = self.separator if tokenizer.pad_token_id is None else tokenizer.pad_token_id

    def example(self, block: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ids = np.concatenate([self.lead, block])
        labels = np.concatenate([np.full(len(self.lead), IGNORE_INDEX, dtype=np.int64), block])
        return {
            "input_ids": _pad(ids, self.length, self.pad_id),
            "attention_mask": _pad(np.ones_like(ids), self.length, 0),
            "labels": _pad(labels, self.length, IGNORE_INDEX),
        }


class MaskedLM(LMObjective):
    """BERT's masked LM on ``[CLS] tokens [SEP]`` blocks of ``block_length`` tokens.

    Each token that is not special is selected with probability ``mlm_probability``; a selected
    token becomes the mask token (80 %), a token drawn uniformly from the vocabulary (10 %), or stays
    (10 %); labels are the original ids there and -100 elsewhere. Written out rather than taken from
    transformers' ``DataCollatorForLanguageModeling`` so that it draws from the same seeded numpy
    generator as the other objectives; the rule is the same.
    """

    def __init__(
        self,
        tokenizer,
        block_length: int = DEFAULT_LENGTH,
        mlm_probability: float = 0.15,
        mask_fraction: float = 0.8,
        random_fraction: float = 0.1,
    ):
        self.length = block_length
        self.block_length = block_length - 2  # room for [CLS] and [SEP]
        self.cls_id = _token_id(tokenizer, "cls", "masked LM")
        self.separator = _token_id(tokenizer, "sep", "masked LM")
        self.mask_id = _token_id(tokenizer, "mask", "masked LM")
        self.pad_id = _token_id(tokenizer, "pad", "masked LM")
        self.special_ids = np.array(sorted(tokenizer.all_special_ids), dtype=np.int64)
        self.vocab_size = len(tokenizer)
        self.mlm_probability = mlm_probability
        self.mask_fraction = mask_fraction
        self.random_fraction = random_fraction

    def example(self, block: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ids = np.concatenate([[self.cls_id], block, [self.separator]])
        selected = ~np.isin(ids, self.special_ids) & (rng.random(len(ids)) < self.mlm_probability)
        action = rng.random(len(ids))
        masked = selected & (action < self.mask_fraction)
        randomized = selected & ~masked & (action < self.mask_fraction + self.random_fraction)
        inputs = np.where(masked, self.mask_id, ids)
        inputs[randomized] = rng.integers(self.vocab_size, size=int(randomized.sum()))
        return {
            "input_ids": _pad(inputs, self.length, self.pad_id),
            "attention_mask": _pad(np.ones_like(ids), self.length, 0),
            "labels": _pad(np.where(selected, ids, IGNORE_INDEX), self.length, IGNORE_INDEX),
        }


OBJECTIVES: dict[str, type[LMObjective]] = {"seq2seq": SpanCorruption, "causal": CausalLM, "encoder": MaskedLM}


def objective_for(kind: str, tokenizer, **options) -> LMObjective:
    """The default objective of a backbone kind (``Backbone.kind``); ``options`` go to its constructor."""
    if kind not in OBJECTIVES:
        raise XlpeftError(
            f"no language-modelling objective for backbone kind {kind!r}: use one of {', '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[kind](tokenizer, **options)


def pack(token_streams: Iterable[Sequence[int]], block_length: int, separator: int) -> Iterator[list[int]]:
    """Documents back to back, ``separator`` after each, cut into blocks of ``block_length`` (last may be short)."""
    buffer: list[int] = []
    for document in token_streams:
        if len(document) == 0:
            continue
        buffer.extend(document)
        buffer.append(separator)
        while len(buffer) >= block_length:
            yield buffer[:block_length]
            del buffer[:block_length]
    if buffer:
        yield buffer


def compute_input_and_target_lengths(
    inputs_length: int, noise_density: float, mean_noise_span_length: float
) -> tuple[int, int]:
    """T5's ``random_spans_helper``: raw tokens per block so inputs fit ``inputs_length``, and the targets' length.

    The largest raw length whose corrupted input (non-noise tokens, one sentinel per span, EOS) still
    fits; both lengths count the EOS. (T5's extra rule for noise density 0.5 is kept.)
    """

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise_tokens = int(round(tokens_length * noise_density))
        num_noise_spans = int(round(num_noise_tokens / mean_noise_span_length))
        return tokens_length - num_noise_tokens + num_noise_spans + 1, num_noise_tokens + num_noise_spans + 1

    tokens_length = inputs_length
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def noise_span_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """T5's numbers of noise tokens and noise spans in ``length`` tokens (at least one of each, and one non-noise)."""
    num_noise_tokens = min(max(int(round(length * noise_density)), 1), length - 1)
    num_noise_spans = max(int(round(num_noise_tokens / mean_noise_span_length)), 1)
    return num_noise_tokens, num_noise_spans


def random_spans_noise_mask(
    length: int, noise_density: float, mean_noise_span_length: float, rng: np.random.Generator
) -> np.ndarray:
    """T5's noise mask: non-noise and noise spans alternate, non-noise first; all such masks equally likely."""
    orig_length = length
    length = max(length, 2)  # T5: avoid degenerate lengths
    num_noise_tokens, num_noise_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_segmentation(num_noise_tokens, num_noise_spans, rng)
    nonnoise_lengths = _random_segmentation(length - num_noise_tokens, num_noise_spans, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    span_start = np.zeros(length, dtype=bool)
    span_start[np.cumsum(interleaved)[:-1]] = True
    return (np.cumsum(span_start) % 2 == 1)[:orig_length]


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths of a uniformly random split of ``num_items`` into ``num_segments`` non-empty segments."""
    first_in_segment = np.concatenate([[False], rng.permutation(np.arange(num_items - 1) < num_segments - 1)])
    return np.bincount(np.cumsum(first_in_segment), minlength=num_segments)


def replace_spans(tokens: np.ndarray, spans: np.ndarray, sentinels: np.ndarray, eos: int) -> np.ndarray:
    """``tokens`` with each run of ``spans`` replaced by the next sentinel, EOS appended.

    T5's ``create_sentinel_ids`` + ``filter_input_ids``: called with the noise mask it makes the
    inputs, with its complement the targets.
    """
    starts = spans & ~np.concatenate([[False], spans[:-1]])
    span_index = np.maximum(np.cumsum(starts) - 1, 0)
    replaced = np.where(starts, sentinels[span_index], tokens)
    return np.append(replaced[~spans | starts], eos)


def sentinel_ids(tokenizer, count: int) -> np.ndarray:
    """Ids of ``<extra_id_0>`` .. ``<extra_id_{count-1}>``: in T5 tokenizers the last ids, counting down."""
    vocab = tokenizer.get_vocab()
    names = [f"<extra_id_{i}>" for i in range(count)]
    missing = [name for name in names if name not in vocab]
    if missing:
        raise XlpeftError(
            f"span corruption needs {count} sentinel tokens <extra_id_0> .. <extra_id_{count - 1}>, and the "
            f"tokenizer lacks {len(missing)} of them (first {missing[0]}): use a T5-family tokenizer (mT5, mT0), "
            "a shorter input_length, or the causal / masked objective for other backbones"
        )
    return np.array([vocab[name] for name in names], dtype=np.int64)


def _token_id(tokenizer, name: str, objective: str) -> int:
    token_id = getattr(tokenizer, f"{name}_token_id")
    if token_id is None:
        raise XlpeftError(f"the tokenizer has no {name.upper()} token, which the {objective} objective needs")
    return token_id


def _pad(values: np.ndarray, length: int, fill: int) -> np.ndarray:
    return np.pad(values, (0, length - len(values)), constant_values=fill)
