"""runtime.store_frozen_linears_in_bf16 on encoders and encoder-decoders: bit-identical under bf16 autocast
(causal models: tests/test_text_cache.py)."""

import pytest
import torch
from conftest import make_encoder, make_seq2seq

from xlpeft.runtime import store_frozen_linears_in_bf16

IDS = torch.tensor([[5, 17, 42, 9, 3, 11], [8, 23, 4, 0, 0, 0]])
MASK = (IDS != 0).long()


@pytest.mark.parametrize("make", [make_encoder, make_seq2seq], ids=["xlm-roberta", "mt5"])
def test_bf16_weights_are_bit_identical_under_autocast(special_tokenizer, make):
    model = make(special_tokenizer).model
    model.requires_grad_(False)
    extra = {"decoder_input_ids": IDS[:, :3]} if model.config.is_encoder_decoder else {}

    def logits():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=IDS, attention_mask=MASK, **extra).logits

    before = logits()
    assert store_frozen_linears_in_bf16(model) > 0
    assert torch.equal(before, logits())


def test_bf16_weights_skip_trainable_layers(special_tokenizer):
    model = make_encoder(special_tokenizer).model
    model.requires_grad_(True)
    assert store_frozen_linears_in_bf16(model) == 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
