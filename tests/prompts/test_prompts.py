import pytest
import torch
from numerics import assert_close_scaled

from xlpeft.prompts import SoftPrompt, initial_prompt


def test_mlp_adds_the_published_parameter_count():
    prompt = SoftPrompt(torch.zeros(10, 1024), reparam="mlp", hidden=200)
    assert prompt.weight.numel() == 10_240
    assert sum(p.numel() for p in prompt.mlp.parameters()) == 410_824


def _trained_affine(prompt: SoftPrompt) -> SoftPrompt:
    """The LayerNorm's weight and bias moved away from identity, as training moves them."""
    with torch.no_grad():
        prompt.mlp.norm.weight.uniform_(0.5, 1.5)
        prompt.mlp.norm.bias.normal_()
    return prompt


REPARAMS = [("mlp", False), ("residual", False), ("lstm", False), ("mlp", True), ("residual", True)]
REPARAM_IDS = ["mlp", "residual", "lstm", "mlp-affine", "residual-affine"]


@pytest.mark.parametrize("reparam, affine", REPARAMS, ids=REPARAM_IDS)
def test_folded_prompt_is_a_plain_matrix_with_the_same_output(reparam, affine):
    torch.manual_seed(0)
    prompt = SoftPrompt(torch.rand(5, 16) - 0.5, reparam=reparam, hidden=8, affine=affine)
    prompt = _trained_affine(prompt) if affine else prompt
    folded = prompt.fold()
    assert folded.encoder is None and folded.mlp is None and list(folded.parameters())[0].shape == (5, 16)
    # torch's LSTM takes another CPU kernel without autograd (fold runs under no_grad): 3e-8 apart, not 0
    torch.testing.assert_close(folded(), prompt(), rtol=0, atol=1e-6 if reparam == "lstm" else 0)


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


@pytest.mark.parametrize("reparam, affine", REPARAMS, ids=REPARAM_IDS)
def test_folded_prompt_gives_the_same_logits(tiny_tokenizer, reparam, affine):
    from conftest import make_backbone

    from xlpeft.heads.layout import PromptLayout, prediction_hidden

    backbone = make_backbone("xglm", tiny_tokenizer)
    torch.manual_seed(1)
    prompt = SoftPrompt(torch.rand(4, 32) - 0.5, reparam=reparam, hidden=16, affine=affine)
    prompt = _trained_affine(prompt) if affine else prompt
    layout = PromptLayout(backbone, "suffix", prompt_length=4)
    ids = layout.tokenize(["A short text.", "Another, somewhat longer text about sports and travel."])
    with torch.no_grad():
        trained = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt())))
        folded = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt.fold()())))
    assert_close_scaled(folded, trained)
    assert (folded - trained).abs().max() <= 1e-6


# ---------------------------------------------------------------- issue 21: --reparam lstm, --reparam-affine


def test_lstm_encoder_is_peft_p_tuning_lstm_encoder():
    """The same weights in PEFT's PromptEncoder (LSTM) and in ours give the same prompt: PEFT's state dict
    loads strictly (the same modules and shapes), and its forward is the reference."""
    from peft import PromptEncoder, PromptEncoderConfig

    torch.manual_seed(3)
    config = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, token_dim=16, num_transformer_submodules=1,
                                 encoder_reparameterization_type="LSTM", encoder_hidden_size=8)
    peft_encoder = PromptEncoder(config)
    prompt = SoftPrompt(peft_encoder.embedding.weight, reparam="lstm", hidden=8)
    prompt.lstm.load_state_dict({k: v for k, v in peft_encoder.state_dict().items() if k != "embedding.weight"})
    with torch.no_grad():
        expected = peft_encoder(torch.arange(5).unsqueeze(0))[0]  # PEFT's forward on its virtual token ids
        torch.testing.assert_close(prompt(), expected, rtol=0, atol=1e-6)
        batch = peft_encoder(torch.arange(5).expand(3, 5))  # PEFT's batch of identical rows: the same prompt each
        torch.testing.assert_close(batch, expected.expand(3, 5, 16), rtol=0, atol=1e-6)
    assert prompt.lstm.lstm_head.num_layers == config.encoder_num_layers == 2 and prompt.lstm.lstm_head.bidirectional


def test_lstm_parameter_count_by_hand():
    prompt = SoftPrompt(torch.zeros(10, 1024), reparam="lstm", hidden=200)
    d, h = 1024, 200
    layer = lambda inputs: 2 * (4 * h * inputs + 4 * h * h + 2 * 4 * h)  # noqa: E731  both directions, two biases
    head = 2 * h * 2 * h + 2 * h + 2 * h * d + d
    assert sum(p.numel() for p in prompt.encoder.parameters()) == layer(d) + layer(2 * h) + head


def test_affine_layernorm_only_when_asked():
    """Off (the default) is today's module: no LayerNorm parameters, the same tensors in checkpoints and the
    stack computed by hand; on adds the LayerNorm's weight and bias, at identity until trained."""
    weight = torch.rand(3, 16) - 0.5
    torch.manual_seed(0)
    plain = SoftPrompt(weight, reparam="mlp", hidden=8)
    assert set(plain.state_dict()) == {"weight", "mlp.down.weight", "mlp.down.bias", "mlp.up.weight", "mlp.up.bias"}
    mlp = plain.mlp
    by_hand = torch.nn.functional.layer_norm(mlp.up(torch.relu(mlp.down(weight))), (16,))
    torch.testing.assert_close(plain(), by_hand, rtol=0, atol=0)
    torch.manual_seed(0)
    affine = SoftPrompt(weight, reparam="mlp", hidden=8, affine=True)
    assert set(affine.state_dict()) == set(plain.state_dict()) | {"mlp.norm.weight", "mlp.norm.bias"}
    torch.testing.assert_close(affine(), plain(), rtol=0, atol=0)  # identity at the start
    _trained_affine(affine)
    expected = by_hand * affine.mlp.norm.weight + affine.mlp.norm.bias
    torch.testing.assert_close(affine(), expected, rtol=0, atol=1e-6)


def test_unknown_reparameterization_is_refused():
    with pytest.raises(ValueError, match="unknown reparameterization"):
        SoftPrompt(torch.zeros(2, 4), reparam="gru")
