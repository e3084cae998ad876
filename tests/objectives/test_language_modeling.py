"""The language-modelling objectives: T5 span corruption, causal LM, BERT masked LM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq
from transformers import PreTrainedTokenizerFast

from xlpeft.data.text import tokenize
from xlpeft.errors import XlpeftError
from xlpeft.objectives.language_modeling import (
    IGNORE_INDEX,
    CausalLM,
    MaskedLM,
    SpanCorruption,
    compute_input_and_target_lengths,
    objective_for,
    random_spans_noise_mask,
    replace_spans,
    sentinel_ids,
)

LENGTHS = (1, 2, 7, 20, 37, 100, 284, 568)


@pytest.fixture(scope="module")
def t5_tokenizer(tiny_tokenizer) -> PreTrainedTokenizerFast:
    """The tiny BPE plus 100 sentinels added as T5 has them: <extra_id_0> is the last id, then counting down."""
    backend = tiny_tokenizer.backend_tokenizer  # deep-copied by the constructor: the shared fixture is untouched
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>")
    tok.add_tokens([f"<extra_id_{i}>" for i in reversed(range(100))], special_tokens=True)
    return tok


def spans_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def interleave(inputs: list[int], targets: list[int], sentinels: set[int], eos: int) -> list[int]:
    """Put each target span back where its sentinel stands in the inputs (the inverse of span corruption)."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    assert inputs[-1] == eos and targets[-1] == eos
    return [t for token in inputs[:-1] for t in (spans[token] if token in sentinels else [token])]


@pytest.mark.parametrize("length", LENGTHS)
def test_noise_mask_follows_t5_counts(length):
    mask = random_spans_noise_mask(length, 0.15, 3.0, np.random.default_rng(length))
    n = max(length, 2)  # T5 computes degenerate lengths as 2
    num_noise = min(max(round(n * 0.15), 1), n - 1)
    num_spans = max(round(num_noise / 3.0), 1)
    if length >= 2:
        assert mask.sum() == num_noise and len(spans_of(mask)) == num_spans
    assert len(mask) == length and not mask[0]  # non-noise comes first


@pytest.mark.parametrize("length", LENGTHS)
def test_span_corruption_round_trip(length, t5_tokenizer):
    tokens = np.arange(10, 10 + length)
    mask = random_spans_noise_mask(length, 0.15, 3.0, np.random.default_rng(0))
    sentinels = sentinel_ids(t5_tokenizer, 100)
    eos = t5_tokenizer.eos_token_id
    inputs, targets = replace_spans(tokens, mask, sentinels, eos), replace_spans(tokens, ~mask, sentinels, eos)
    in_sentinels = [t for t in inputs if t in set(sentinels)]
    assert in_sentinels == sorted(in_sentinels, reverse=True) == list(sentinels[: len(spans_of(mask))])
    # each sentinel stands where its noise span started
    starts = [start for start, _ in spans_of(mask)]
    kept_before = [int((~mask[:s]).sum()) + i for i, s in enumerate(starts)]
    assert [int(inputs[p]) for p in kept_before] == in_sentinels
    assert interleave(inputs.tolist(), targets.tolist(), set(sentinels.tolist()), eos) == tokens.tolist()


def test_sentinels_count_down_from_the_end(t5_tokenizer):
    ids = sentinel_ids(t5_tokenizer, 3)
    assert ids.tolist() == [len(t5_tokenizer) - 1, len(t5_tokenizer) - 2, len(t5_tokenizer) - 3]


def test_t5_lengths_match_the_reference():
    # the values of T5's random_spans_helper for its 512-token inputs, and the paper's 256
    assert compute_input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    assert compute_input_and_target_lengths(256, 0.15, 3.0) == (284, 58)


@pytest.mark.parametrize("input_length", [32, 256, 512])
def test_full_blocks_have_t5_lengths(input_length, t5_tokenizer):
    tokens_length, target_length = compute_input_and_target_lengths(input_length, 0.15, 3.0)
    objective = SpanCorruption(t5_tokenizer, input_length=input_length)
    batch = next(objective.batches([list(range(10, 10 + 3 * tokens_length))], batch_size=2, seed=0))
    assert objective.block_length == tokens_length
    assert batch["attention_mask"].sum(1).tolist() == [input_length] * 2
    assert (batch["labels"] != IGNORE_INDEX).sum(1).tolist() == [target_length] * 2


def test_span_corruption_batches(t5_tokenizer):
    objective = SpanCorruption(t5_tokenizer, input_length=64)
    tokens_length, target_length = compute_input_and_target_lengths(64, 0.15, 3.0)
    docs = [list(range(10, 10 + n)) for n in (30, 50, 40, 20)]  # 140 tokens + 4 EOS: two full blocks + a short one
    batches = list(objective.batches(docs, batch_size=2, seed=0))
    assert [b["input_ids"].shape for b in batches] == [(2, 64), (1, 64)]
    full = batches[0]
    assert full["labels"].shape == (2, target_length)
    assert (full["labels"] != IGNORE_INDEX).sum(1).tolist() == [target_length] * 2
    assert full["attention_mask"].sum(1).tolist() == [64, 64]
    # decoder inputs: the labels shifted right behind the start (pad) token
    assert full["decoder_input_ids"][:, 0].tolist() == [t5_tokenizer.pad_token_id] * 2
    assert torch.equal(full["decoder_input_ids"][:, 1:], full["labels"][:, :-1])
    # the blocks put back together are the documents with EOS after each
    sentinels, eos = set(sentinel_ids(t5_tokenizer, 100).tolist()), t5_tokenizer.eos_token_id
    restored = []
    for batch in batches:
        for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
            restored += interleave(ids[mask.bool()].tolist(), labels[labels != IGNORE_INDEX].tolist(), sentinels, eos)
    assert len(restored) == 144 and restored[:tokens_length] == docs[0] + [eos] + docs[1][: tokens_length - 31]
    assert restored == [t for d in docs for t in d + [eos]]


def test_span_corruption_is_seeded(t5_tokenizer):
    objective = SpanCorruption(t5_tokenizer, input_length=64)
    docs = [list(range(10, 300))]
    a, b, c = (list(objective.batches(docs, 4, seed)) for seed in (3, 3, 4))
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert not torch.equal(a[0]["input_ids"], c[0]["input_ids"])


def test_span_corruption_needs_sentinels(special_tokenizer):
    with pytest.raises(XlpeftError, match="extra_id_0.*T5-family"):
        SpanCorruption(special_tokenizer)


def test_causal_lm_packs_with_eos_and_masks_padding(tiny_tokenizer):
    eos, pad = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    objective = CausalLM(tiny_tokenizer, block_length=4)
    batch = next(objective.batches([[10, 11, 12], [], [13, 14]], batch_size=8, seed=0))
    assert batch["input_ids"].tolist() == [[10, 11, 12, eos], [13, 14, eos, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[10, 11, 12, eos], [13, 14, eos, IGNORE_INDEX]]


def test_causal_lm_blocks_start_with_the_lead_a_bos_first_model_reads(tiny_tokenizer):
    """Gemma reads [BOS] first at evaluation ([BOS][prompt][text]); its language modules train on that layout."""
    eos, pad, bos = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id, 7
    objective = CausalLM(tiny_tokenizer, block_length=4, lead=(bos,))
    batch = next(objective.batches([[10, 11, 12], [], [13, 14]], batch_size=8, seed=0))
    assert batch["input_ids"].tolist() == [[bos, 10, 11, 12], [bos, eos, 13, 14], [bos, eos, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 10, 11, 12], [IGNORE_INDEX, eos, 13, 14],
                                        [IGNORE_INDEX, eos, IGNORE_INDEX, IGNORE_INDEX]]


@pytest.fixture(scope="module")
def mlm_batch(special_tokenizer):
    rng = np.random.default_rng(0)
    docs = [rng.integers(10, 1000, size=int(n)).tolist() for n in rng.integers(5, 60, size=600)]
    objective = MaskedLM(special_tokenizer, block_length=64)
    batches = list(objective.batches(docs, batch_size=1000, seed=0))
    assert len(batches) == 1
    return batches[0], docs


def test_mlm_never_selects_special_tokens(mlm_batch, special_tokenizer):
    batch, docs = mlm_batch
    labels, cls, sep = batch["labels"], special_tokenizer.cls_token_id, special_tokenizer.sep_token_id
    original = torch.where(labels != IGNORE_INDEX, labels, batch["input_ids"])
    special = torch.isin(original, torch.tensor(special_tokenizer.all_special_ids))
    assert special.sum() > 600 and (labels[special] == IGNORE_INDEX).all()
    # blocks are [CLS] packed documents [SEP], each document followed by [SEP], then padding
    rows = [row[mask.bool()].tolist() for row, mask in zip(original, batch["attention_mask"])]
    assert all(row[0] == cls and row[-1] == sep for row in rows)
    assert [t for row in rows for t in row[1:-1]] == [t for d in docs for t in d + [sep]]


def test_mlm_rates_follow_bert(mlm_batch, special_tokenizer):
    batch, docs = mlm_batch
    selected = batch["labels"] != IGNORE_INDEX
    eligible = sum(len(d) for d in docs)  # every document token; specials are never eligible
    assert abs(selected.sum().item() / eligible - 0.15) < 0.01
    inputs, labels = batch["input_ids"][selected], batch["labels"][selected]
    masked = (inputs == special_tokenizer.mask_token_id).float().mean().item()
    kept = (inputs == labels).float().mean().item()
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.02 and abs(1 - masked - kept - 0.1) < 0.02
    # outside the selection the inputs are the original tokens, which the labels do not show
    assert set(batch["labels"][~selected].tolist()) == {IGNORE_INDEX}


def test_objective_for_each_kind(t5_tokenizer, special_tokenizer, tiny_tokenizer):
    assert isinstance(objective_for("seq2seq", t5_tokenizer), SpanCorruption)
    assert isinstance(objective_for("causal", tiny_tokenizer, block_length=32), CausalLM)
    assert isinstance(objective_for("encoder", special_tokenizer), MaskedLM)
    with pytest.raises(XlpeftError, match="seq2seq, causal, encoder"):
        objective_for("vision", tiny_tokenizer)
    with pytest.raises(XlpeftError, match="no CLS token"):
        objective_for("encoder", tiny_tokenizer)


def test_mlm_is_seeded(special_tokenizer):
    objective = MaskedLM(special_tokenizer, block_length=32)
    docs = [list(range(10, 400))]
    a, b, c = (next(objective.batches(docs, 16, seed)) for seed in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["input_ids"], c["input_ids"])


@pytest.mark.parametrize("kind", ["seq2seq", "causal", "encoder"])
def test_batches_feed_the_model(kind, t5_tokenizer, special_tokenizer, tiny_tokenizer):
    """Each kind's batch is a valid keyword set for its tiny model, and gives a finite loss."""
    if kind == "seq2seq":
        tokenizer, model = t5_tokenizer, make_seq2seq(t5_tokenizer).model
    elif kind == "causal":
        tokenizer, model = tiny_tokenizer, make_backbone("llama", tiny_tokenizer).model
    else:
        tokenizer, model = special_tokenizer, make_encoder(special_tokenizer).model
    docs = tokenize(["A first sentence to model.", "And a second one, somewhat longer."] * 8, tokenizer)
    length = {"input_length" if kind == "seq2seq" else "block_length": 32}
    batch = next(objective_for(kind, tokenizer, **length).batches(docs, batch_size=4, seed=0))
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)

