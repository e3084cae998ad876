"""Gemma 3 as a backbone: the facts the prompt splice relies on, checked against transformers' own forward.

Gemma 3's embedding module multiplies token embeddings by sqrt(d) itself, like XGLM's; a prompt spliced
in as ``inputs_embeds`` must get the same factor. The reference is the model fed ordinary token ids:
a prompt made of (unscaled) embedding rows of vocabulary tokens must give exactly those tokens' logits.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma3TextConfig

from xlpeft.backbones import Backbone
from xlpeft.heads.build import build_head
from xlpeft.heads.classifier import VerbalizerClassifier

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain."]


@pytest.fixture
def gemma_backbone(tiny_tokenizer) -> Backbone:
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
        pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
        bos_token_id=tiny_tokenizer.eos_token_id, initializer_range=0.2,
    )
    model = AutoModelForCausalLM.from_config(config).eval()
    return Backbone(name="tiny-gemma3", model=model, tokenizer=tiny_tokenizer)


def test_gemma3_facts(gemma_backbone):
    assert type(gemma_backbone.model).__name__ == "Gemma3ForCausalLM"
    assert gemma_backbone.family == "gemma3_text" and gemma_backbone.kind == "causal"
    assert gemma_backbone.embed_scale == pytest.approx(math.sqrt(32), rel=1e-6)
    assert gemma_backbone.accepts_position_ids


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_spliced_prompt_is_scaled_like_token_embeddings(gemma_backbone, placement):
    """A sliding window (4) shorter than the rows also checks that positions and masks survive the splice."""
    stand_in = [11, 12, 13]  # vocabulary tokens whose raw embedding rows make the prompt
    prompt = gemma_backbone.model.get_input_embeddings().weight[stand_in].detach().clone()
    clf = build_head(gemma_backbone, placement, len(stand_in), 64)
    assert isinstance(clf, VerbalizerClassifier)
    ids = clf.tokenize(TEXTS)
    with torch.no_grad():
        got = clf.outputs(ids, prompt)
    eos = gemma_backbone.eos_id
    for row, text in enumerate(ids):
        seq = (text + stand_in if placement == "suffix" else stand_in + text) + [eos]
        with torch.no_grad():
            expected = gemma_backbone.model(input_ids=torch.tensor([seq])).logits[0, len(seq) - 2]
        torch.testing.assert_close(got[row], expected, atol=1e-4, rtol=1e-4)
