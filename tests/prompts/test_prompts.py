import pytest
import torch
from numerics import assert_close_scaled

from xlpeft.prompts import SoftPrompt, initial_prompt


def test_mlp_adds_the_published_parameter_count():
    prompt = SoftPrompt(torch.zeros(10, 1024), reparam="mlp", hidden=200)
    assert prompt.weight.numel() == 10_240
    assert sum(p.numel() for p in prompt.mlp.parameters()) == 410_824


@pytest.mark.parametrize("reparam", ["mlp", "residual"])
def test_folded_prompt_is_a_plain_matrix_with_the_same_output(reparam):
    torch.manual_seed(0)
    prompt = SoftPrompt(torch.rand(5, 16) - 0.5, reparam=reparam, hidden=8)
    folded = prompt.fold()
    assert folded.mlp is None and list(folded.parameters())[0].shape == (5, 16)
    torch.testing.assert_close(folded(), prompt(), rtol=0, atol=0)


def test_initialisations():
    emb = torch.arange(40, dtype=torch.float32).view(10, 4)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    uniform = initial_prompt("uniform", 6, emb, gen())
    assert uniform.shape == (6, 4) and uniform.min() >= -0.5 and uniform.max() <= 0.5
    torch.testing.assert_close(uniform, initial_prompt("uniform", 6, emb, gen()))
    vocab = initial_prompt("vocab", 3, emb, gen())
    assert all(any(torch.equal(row, e) for e in emb) for row in vocab)
    text = initial_prompt("text", 5, emb, gen(), text_ids=[2, 7])
    torch.testing.assert_close(text, emb[[2, 7, 2, 7, 2]])


@pytest.mark.parametrize("reparam", ["mlp", "residual"])
def test_folded_prompt_gives_the_same_logits(tiny_tokenizer, reparam):
    from conftest import make_backbone

    from xlpeft.heads.layout import PromptLayout, prediction_hidden

    backbone = make_backbone("xglm", tiny_tokenizer)
    torch.manual_seed(1)
    prompt = SoftPrompt(torch.rand(4, 32) - 0.5, reparam=reparam, hidden=16)
    layout = PromptLayout(backbone, "suffix", prompt_length=4)
    ids = layout.tokenize(["A short text.", "Another, somewhat longer text about sports and travel."])
    with torch.no_grad():
        trained = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt())))
        folded = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt.fold()())))
    assert_close_scaled(folded, trained)
