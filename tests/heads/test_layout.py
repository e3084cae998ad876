"""Where the prompt goes, where the label is read, and that the splice matches the published recipe."""

import math

import pytest
import torch
from conftest import make_backbone, make_encoder
from numerics import assert_close_scaled

from xlpeft.heads.layout import NO_LIMIT, PromptLayout, max_length_counts, prediction_hidden

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain."]


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_prompt_rows_and_prediction_position(tiny_tokenizer, placement, side):
    backbone = make_backbone("llama", tiny_tokenizer)
    layout = PromptLayout(backbone, placement, prompt_length=4)
    ids = layout.tokenize(TEXTS)
    prompt = torch.randn(4, 32)
    batch = layout.build(ids, prompt, padding_side=side)
    eos = backbone.model.get_input_embeddings().weight[backbone.eos_id]
    width = batch.embeds.shape[1]
    for row, text_ids in enumerate(ids):
        n = len(text_ids) + 4 + 1
        start = 0 if side == "right" else width - n
        prompt_start = start + (len(text_ids) if placement == "suffix" else 0)
        torch.testing.assert_close(batch.embeds[row, prompt_start : prompt_start + 4], prompt)
        torch.testing.assert_close(batch.embeds[row, start + n - 1], eos)  # EOS closes the sequence
        assert batch.predict_at[row] == start + n - 2  # just before EOS
        expected = start + n - 2 if placement == "suffix" else start + n - 2  # last prompt / last text position
        assert batch.attention_mask[row].sum() == n and batch.predict_at[row] == expected
        assert batch.position_ids[row, start] == 0 and batch.position_ids[row, start + n - 1] == n - 1


def test_prefix_prediction_reads_last_text_token(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    layout = PromptLayout(backbone, "prefix", prompt_length=3)
    ids = layout.tokenize(TEXTS[:1])
    batch = layout.build(ids, torch.randn(3, 32))
    last_text = backbone.model.get_input_embeddings()(torch.tensor(ids[0][-1]))
    torch.testing.assert_close(batch.embeds[0, batch.predict_at[0]], last_text)


def test_only_text_is_truncated_and_max_length_counts_text_tokens(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    layout = PromptLayout(backbone, "suffix", prompt_length=5, max_length=16)
    ids = layout.tokenize(["word " * 100])
    assert len(ids[0]) == 16  # the prompt (5) and EOS (1) come on top
    assert layout.build(ids, torch.zeros(5, 32)).embeds.shape[1] == 16 + 5 + 1


@pytest.mark.parametrize("placement", ["suffix", "prefix", "start"])
@pytest.mark.parametrize("prompt_length", [0, 4, 16])
def test_compared_configurations_read_the_same_text(tiny_tokenizer, special_tokenizer, placement, prompt_length):
    """Issue 18: at max_length 64 an L=4 prompt left 59 text tokens and L=16 left 47; encoders lost two more."""
    long = ["word " * 200]
    for backbone in (make_backbone("llama", tiny_tokenizer), make_encoder(special_tokenizer)):
        for mask_slot in (False, backbone.kind == "encoder"):
            layout = PromptLayout(backbone, placement if prompt_length else "none", prompt_length, max_length=64,
                                  mask_slot=mask_slot)
            assert layout.text_budget == 64 and len(layout.tokenize(long)[0]) == 64


def test_runs_written_before_the_text_rule_keep_their_meaning(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    layout = PromptLayout(backbone, "suffix", prompt_length=5, max_length=16, counts="all")
    assert layout.text_budget == 10 and max_length_counts({"train": {}}) == "all"
    assert max_length_counts({"train": {}, "max_length_counts": "text"}) == "text"


def test_truncated_and_empty_inputs_are_counted(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    layout = PromptLayout(backbone, "suffix", prompt_length=4, max_length=8)
    assert layout.truncation(["word " * 20, "word", "", "word " * 8]) == (2, 1)


def test_no_limit_reads_up_to_the_models_context(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)  # 256 positions
    layout = PromptLayout(backbone, "start", prompt_length=6, max_length=NO_LIMIT)
    assert layout.text_budget == 256 - 6 - 1
    assert layout.truncation(["word " * 40, "word " * 400]) == (1, 0)  # cut only past the context


@pytest.mark.parametrize("family", ["xglm", "bloom", "llama"])
@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_splice_equals_prompt_as_extra_vocabulary_rows(tiny_tokenizer, family, placement):
    """The published recipe kept the prompt inside the embedding module (so XGLM's sqrt(d) scale and
    BLOOM's embedding LayerNorm applied to it). Emulate that with L new token rows and compare."""
    backbone = make_backbone(family, tiny_tokenizer)
    model = backbone.model
    prompt = torch.rand(4, 32) - 0.5
    layout = PromptLayout(backbone, placement, prompt_length=4)
    ids = layout.tokenize(TEXTS[:1])[0]
    spliced = prediction_hidden(backbone, layout.build([ids], prompt))

    vocab = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(vocab + 4)
    with torch.no_grad():
        model.get_input_embeddings().weight[vocab:] = prompt
    new_ids = list(range(vocab, vocab + 4))
    sequence = (ids + new_ids if placement == "suffix" else new_ids + ids) + [backbone.eos_id]
    out = model.base_model(input_ids=torch.tensor([sequence]))
    assert_close_scaled(spliced[0], out.last_hidden_state[0, -2])


def test_xglm_scale_and_bloom_layernorm_apply_to_the_prompt(tiny_tokenizer):
    xglm = make_backbone("xglm", tiny_tokenizer)
    assert xglm.embed_scale == pytest.approx(math.sqrt(32))
    layout = PromptLayout(xglm, "suffix", prompt_length=2)
    prompt = torch.ones(2, 32)
    batch = layout.build(layout.tokenize(["Hello"]), prompt)
    n = len(layout.tokenize(["Hello"])[0])
    torch.testing.assert_close(batch.embeds[0, n : n + 2], prompt * math.sqrt(32))

    bloom = make_backbone("bloom", tiny_tokenizer)
    seen = {}
    norm = bloom.model.base_model.word_embeddings_layernorm
    norm.register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0], out=out))
    layout = PromptLayout(bloom, "suffix", prompt_length=2)
    ids = layout.tokenize(["Hello"])
    prediction_hidden(bloom, layout.build(ids, prompt))
    k = len(ids[0])
    torch.testing.assert_close(seen["inp"][0, k : k + 2], prompt)  # the prompt goes through the LayerNorm
    torch.testing.assert_close(seen["out"][0, k : k + 2], norm(prompt))
