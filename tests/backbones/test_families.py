"""Every backbone kind behind one interface: kind detection, placement, masks, heads, label scoring.

The splice is checked against the recipe it must equal: a prompt written as extra vocabulary rows and
fed as ordinary token ids, so positions, masks and special tokens are all exercised by the model itself.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq
from numerics import assert_close_scaled
from transformers import CLIPConfig, LlamaConfig, MT5Config, XLMRobertaConfig

from xlpeft.backbones.loading import kind_of
from xlpeft.errors import XlpeftError
from xlpeft.heads.build import build_head
from xlpeft.heads.classifier import (
    LabelStringClassifier,
    LinearHeadClassifier,
    VerbalizerClassifier,
)
from xlpeft.heads.generation import TextToText
from xlpeft.heads.layout import PromptLayout

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain."]


def test_kind_comes_from_the_config():
    assert kind_of(LlamaConfig()) == "causal"
    assert kind_of(XLMRobertaConfig()) == "encoder"
    assert kind_of(MT5Config()) == "seq2seq"
    with pytest.raises(XlpeftError, match="model type 'clip' is not supported"):
        kind_of(CLIPConfig())


def _with_prompt_tokens(backbone, prompt: torch.Tensor) -> list[int]:
    """Append the (scaled) prompt rows to the embedding table; return their new token ids."""
    model = backbone.model
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(old + prompt.shape[0], mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[old:] = prompt * backbone.embed_scale
    return list(range(old, old + prompt.shape[0]))


@pytest.mark.parametrize("placement", ["prefix", "start"])
def test_encoder_prompt_follows_cls_or_starts_the_row_and_mask_reads_the_label(special_tokenizer, placement):
    backbone = make_encoder(special_tokenizer)
    tok = special_tokenizer
    prompt = torch.randn(3, 32)
    clf = build_head(backbone, placement, 3, 64)
    assert isinstance(clf, VerbalizerClassifier)
    ids = clf.tokenize(TEXTS)
    batch = clf.layout.build(ids, prompt)
    got = clf.outputs(ids, prompt)

    p_ids = _with_prompt_tokens(backbone, prompt)
    for row, text in enumerate(ids):
        lead = [tok.cls_token_id]
        seq = (lead + p_ids + text if placement == "prefix" else p_ids + lead + text) + [tok.mask_token_id, tok.sep_token_id]
        mask_at = len(seq) - 2
        assert batch.predict_at[row] == mask_at and int(batch.attention_mask[row].sum()) == len(seq)
        # pooling skips exactly the prompt rows
        assert int(batch.pool_mask[row].sum()) == len(seq) - 3
        expected = backbone.model(input_ids=torch.tensor([seq])).logits[0, mask_at, : got.shape[-1]]
        assert_close_scaled(got[row], expected)


def test_encoder_without_mlm_head_gets_a_linear_head_on_pooled_states(special_tokenizer):
    backbone = make_encoder(special_tokenizer, family="bert", mlm=False)
    assert not backbone.has_lm_head and backbone.mlm_head is None
    clf = build_head(backbone, "prefix", 4, 64, head="auto")
    assert isinstance(clf, LinearHeadClassifier)
    assert sum(p.numel() for p in clf.parameters()) == 32 * 7 + 7
    with pytest.raises(XlpeftError, match="no masked-LM head"):
        build_head(backbone, "prefix", 4, 64, head="lm")
    ids = clf.tokenize(TEXTS)
    prompt = torch.randn(4, 32)
    batch = clf.layout.build(ids, prompt)
    hidden = backbone.model(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask).last_hidden_state
    for row, text in enumerate(ids):
        n = len(text) + 2  # [CLS] text [SEP], prompt rows 1..4 excluded from the mean
        keep = [0, *range(5, 5 + n - 1)]
        expected = clf.head(hidden[row, keep].mean(0))
        assert_close_scaled(clf.outputs([text], prompt)[0], expected)


def test_seq2seq_prompt_precedes_the_encoder_input_and_the_decoder_scores_label_strings(special_tokenizer):
    backbone = make_seq2seq(special_tokenizer)
    tok = special_tokenizer
    clf = build_head(backbone, "prefix", 5, 64)
    assert isinstance(clf, LabelStringClassifier)
    prompt = torch.randn(5, 32)
    ids = clf.tokenize(TEXTS)
    scores = clf.outputs(ids, prompt)  # [B, 7]
    p_ids = _with_prompt_tokens(backbone, prompt)
    model = backbone.model
    for row, text in enumerate(ids):
        enc = torch.tensor([p_ids + text + [tok.eos_token_id]])
        for k, word in enumerate(clf.strings.words):
            target = tok(word, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            logits = model(input_ids=enc, labels=torch.tensor([target])).logits[0, :, : p_ids[0]]  # original vocab
            expected = logits.log_softmax(-1)[torch.arange(len(target)), target].sum()
            assert_close_scaled(scores[row, k], expected)
    # the training loss is the gold string's NLL per token
    labels = torch.tensor([0, 3, 6])
    lengths = clf.strings.lengths[labels]
    torch.testing.assert_close(clf.loss(scores, labels), -(scores[torch.arange(3), labels] / lengths).mean())


def generate(layout, prompt, texts, max_new_tokens):
    model = TextToText(layout.backbone, layout)
    return [g.text for g in model.generate(layout.tokenize(texts), prompt, max_new_tokens)]


def test_seq2seq_generation_is_greedy_decoding_with_the_prompt(special_tokenizer):
    backbone = make_seq2seq(special_tokenizer)
    layout = PromptLayout(backbone, "prefix", 4, 64)
    prompt = torch.randn(4, 32)
    outputs = generate(layout, prompt, TEXTS[:2], max_new_tokens=6)
    model, tok = backbone.model, special_tokenizer
    for text, got in zip(layout.tokenize(TEXTS[:2]), outputs):
        batch = layout.build([text], prompt)
        encoded = model.get_encoder()(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask)
        decoded = [model.config.decoder_start_token_id]
        for _ in range(6):
            logits = model(encoder_outputs=encoded, attention_mask=batch.attention_mask,
                           decoder_input_ids=torch.tensor([decoded])).logits[0, -1]
            decoded.append(int(logits.argmax()))
            if decoded[-1] == tok.eos_token_id:
                break
        assert got == tok.decode(decoded[1:], skip_special_tokens=True)
    without = generate(layout, None, TEXTS[:2], max_new_tokens=6)
    assert len(outputs) == 2 and isinstance(without[0], str)


def test_left_padding_is_refused_where_positions_are_absolute(special_tokenizer):
    layout = PromptLayout(make_encoder(special_tokenizer), "prefix", 2, 32)
    with pytest.raises(ValueError, match="padded on the right"):
        layout.build(layout.tokenize(TEXTS), torch.randn(2, 32), padding_side="left")


def test_causal_linear_head_reads_the_prediction_position(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    clf = build_head(backbone, "suffix", 3, 64, head="linear")
    ids = clf.tokenize(TEXTS)
    prompt = torch.randn(3, 32)
    batch = clf.layout.build(ids, prompt)
    hidden = backbone.model.base_model(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask).last_hidden_state
    expected = clf.head(hidden[torch.arange(3), batch.predict_at])
    assert_close_scaled(clf.outputs(ids, prompt), expected)
    with pytest.raises(XlpeftError, match="label strings"):
        build_head(make_seq2seq(tiny_tokenizer), "prefix", 3, 64, head="linear")
