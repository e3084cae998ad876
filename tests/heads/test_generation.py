"""Text-to-text with a soft prompt: cached, left-padded greedy decoding and batched teacher forcing equal
the plain recipe (one unpadded row at a time, the whole sequence through the model at every step)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_backbone, make_encoder, make_seq2seq
from numerics import FP32

from xlpeft.errors import XlpeftError
from xlpeft.heads.generation import Generated, TextToText, build_text_to_text

TEXTS = [
    "The minister spoke about the election results today.",
    "Rain.",
    "A long sentence about health and the government of the earth, with some fun and sports in it.",
    "Football season starts.",
]
TARGETS = ["PER: Ada$$LOC: Paris", "travel", "", " sports fun and more"]
FAMILIES = ("llama", "xglm", "bloom", "mt5")


def _backbone(family, tiny_tokenizer, special_tokenizer):
    return make_seq2seq(special_tokenizer) if family == "mt5" else make_backbone(family, tiny_tokenizer)


@torch.no_grad()
def _reference(model: TextToText, ids: list[int], prompt, max_new_tokens: int) -> tuple[list[int], list[float]]:
    """Greedy decoding of one row, the whole sequence through the model at every step (no cache, no padding)."""
    backbone = model.backbone
    hf, embed = backbone.model, backbone.model.get_input_embeddings()
    batch = model.layout.build([ids], prompt)
    if backbone.kind == "seq2seq":
        encoded = hf.get_encoder()(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask)
    generated, logps = [], []
    for _ in range(max_new_tokens):
        if backbone.kind == "causal":
            embeds = torch.cat([batch.embeds[0], embed(torch.tensor(generated, dtype=torch.long))])
            logits = hf(inputs_embeds=embeds[None], use_cache=False).logits[0, -1]
        else:
            decoder_in = torch.tensor([[hf.config.decoder_start_token_id, *generated]])
            logits = hf(encoder_outputs=encoded, attention_mask=batch.attention_mask, decoder_input_ids=decoder_in,
                        use_cache=False).logits[0, -1]
        logp = F.log_softmax(logits.float(), -1)
        generated.append(int(logp.argmax()))
        logps.append(float(logp[generated[-1]]))
        if generated[-1] == backbone.eos_id:
            break
    return generated, logps


def _check_against_reference(model, prompt, max_new_tokens, batch_size=3) -> list[Generated]:
    ids = model.tokenize(TEXTS)
    assert len({len(i) for i in ids}) == len(ids)  # different lengths: padding is exercised
    outputs = model.generate(ids, prompt, max_new_tokens=max_new_tokens, batch_size=batch_size)
    assert len(outputs) == len(TEXTS)
    for row, out in zip(ids, outputs):
        tokens, logps = _reference(model, row, prompt, max_new_tokens)
        assert out.text == model.backbone.tokenizer.decode(tokens, skip_special_tokens=True)
        assert out.score == pytest.approx(sum(logps) / len(logps), abs=1e-4)
    return outputs


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_equals_uncached_unpadded_decoding(tiny_tokenizer, special_tokenizer, family, placement):
    backbone = _backbone(family, tiny_tokenizer, special_tokenizer)
    model = build_text_to_text(backbone, placement, prompt_length=4, max_length=64)
    if backbone.kind == "causal":
        assert model.layout.tail == ()  # the answer follows the input: no EOS closes it
    torch.manual_seed(1)
    prompt = torch.randn(4, 32)
    widths = []
    if backbone.kind == "causal":
        backbone.model.base_model.register_forward_pre_hook(
            lambda mod, args, kwargs: widths.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True)
    outputs = _check_against_reference(model, prompt, max_new_tokens=5)
    assert all(isinstance(o, Generated) for o in outputs) and any(o.text for o in outputs)
    if backbone.kind == "causal":  # per batch: one pass over the input, then one token per step on the cache
        assert widths[0] > 1 and widths[1:5] == [1] * 4 and widths[5] > 1 and widths[6:10] == [1] * 4  # then the reference
    # one token at most per row when asked for one
    for row, out in zip(model.tokenize(TEXTS), model.generate(model.tokenize(TEXTS), prompt, max_new_tokens=1)):
        tokens, logps = _reference(model, row, prompt, 1)
        assert out.text == backbone.tokenizer.decode(tokens, skip_special_tokens=True)
        assert out.score == pytest.approx(logps[0], abs=1e-4)
    assert model.generate([], prompt, max_new_tokens=3) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_stop_at_eos_while_others_go_on(tiny_tokenizer, special_tokenizer, family):
    """An EOS bias just above the smallest first-step margin: that row stops at once, the others do not."""
    backbone = _backbone(family, tiny_tokenizer, special_tokenizer)
    model = build_text_to_text(backbone, "suffix", prompt_length=3, max_length=64)
    torch.manual_seed(2)
    prompt = torch.randn(3, 32)
    ids = model.tokenize(TEXTS)
    eos = backbone.eos_id
    margins = []
    for row in ids:
        first = _reference(model, row, prompt, 1)[0][0]
        assert first != eos
        with torch.no_grad():
            logits = _first_logits(model, row, prompt)
        margins.append(float(logits[first] - logits[eos]))
    order = sorted(range(len(ids)), key=lambda i: margins[i])
    bias = torch.zeros(len(backbone.tokenizer))
    bias[eos] = (margins[order[0]] + margins[order[1]]) / 2
    backbone.lm_head.register_forward_hook(lambda mod, inp, out: out + bias.to(out.dtype))
    outputs = _check_against_reference(model, prompt, max_new_tokens=4)
    stopped = outputs[order[0]]
    assert stopped.text == "" and stopped.score == pytest.approx(_reference(model, ids[order[0]], prompt, 1)[1][0],
                                                                 abs=1e-4)
    assert all(_reference(model, ids[i], prompt, 1)[0][0] != eos for i in order[1:])

    bias[eos] = 1e4  # every row: EOS first, nothing more is computed
    calls = []
    decoder = backbone.model.base_model if backbone.kind == "causal" else backbone.model.get_decoder()
    decoder.register_forward_hook(lambda *a: calls.append(1))
    outputs = model.generate(ids, prompt, max_new_tokens=8, batch_size=8)
    assert [o.text for o in outputs] == [""] * len(ids) and all(abs(o.score) < 1e-3 for o in outputs)
    assert len(calls) == 1  # causal: the input pass; mT5: the decoder's first step


def _first_logits(model: TextToText, ids, prompt) -> torch.Tensor:
    hf = model.backbone.model
    batch = model.layout.build([ids], prompt)
    if model.backbone.kind == "causal":
        return hf(inputs_embeds=batch.embeds).logits[0, -1]
    start = torch.tensor([[hf.config.decoder_start_token_id]])
    return hf(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask, decoder_input_ids=start).logits[0, -1]


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_forced_loss_is_the_token_weighted_mean_of_row_losses(tiny_tokenizer, special_tokenizer, family):
    backbone = _backbone(family, tiny_tokenizer, special_tokenizer)
    backbone.freeze()
    model = build_text_to_text(backbone, "suffix", prompt_length=4, max_length=64)
    hf, embed = backbone.model, backbone.model.get_input_embeddings()
    torch.manual_seed(3)
    prompt = torch.randn(4, 32, requires_grad=True)
    ids, targets = model.tokenize(TEXTS), model.target_ids(TARGETS)
    assert targets[2] == [backbone.eos_id]
    assert targets[0] == backbone.tokenizer(TARGETS[0], add_special_tokens=False)["input_ids"] + [backbone.eos_id]
    loss = model.loss(ids, prompt, targets)

    total, count = 0.0, 0
    with torch.no_grad():
        for row, target in zip(ids, targets):
            batch = model.layout.build([row], prompt)
            if backbone.kind == "causal":  # input then target, no padding; the last input position predicts target[0]
                embeds = torch.cat([batch.embeds[0], embed(torch.tensor(target[:-1], dtype=torch.long))])
                logits = hf(inputs_embeds=embeds[None]).logits[0, batch.embeds.shape[1] - 1 :]
                nll = -F.log_softmax(logits.float(), -1)[torch.arange(len(target)), target].sum()
            else:
                nll = hf(inputs_embeds=batch.embeds, labels=torch.tensor([target])).loss * len(target)
            total, count = total + float(nll), count + len(target)
            row_loss = model.loss([row], prompt, [target])
            assert float(row_loss) == pytest.approx(float(nll) / len(target), rel=FP32)
    assert float(loss.detach()) == pytest.approx(total / count, rel=FP32)
    loss.backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0


def test_no_prompt_and_bf16_autocast(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    model = build_text_to_text(backbone, "none", prompt_length=0, max_length=32)
    ids = model.tokenize(TEXTS)
    assert model.describe() == {"head_used": "lm", "output": "text"}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(ids, None, model.target_ids(TARGETS))
        outputs = model.generate(ids, None, max_new_tokens=3)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert len(outputs) == len(TEXTS) and all(o.score <= 0 for o in outputs)


def test_errors(tiny_tokenizer, special_tokenizer):
    with pytest.raises(XlpeftError, match="text-to-text tasks need a decoder"):
        build_text_to_text(make_encoder(special_tokenizer), "prefix", 4, 64)
    model = build_text_to_text(make_backbone("llama", tiny_tokenizer), "suffix", 4, 64)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(model.tokenize(TEXTS[:1]), torch.zeros(4, 32), max_new_tokens=0)
    build_text_to_text(make_backbone("llama", tiny_tokenizer), "suffix", 8, 8)  # max_length counts text only
    with pytest.raises(XlpeftError, match="lower --max-length to at most 248"):  # 256 positions
        build_text_to_text(make_backbone("llama", tiny_tokenizer), "suffix", 8, 250)
