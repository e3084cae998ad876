"""Multiple-choice scores (heads/choice.py) against log p(choice | input) computed by hand with transformers' forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_backbone, make_encoder, make_seq2seq

from xlpeft.errors import XlpeftError
from xlpeft.heads.build import build_head
from xlpeft.heads.choice import ChoiceScores, build_choice_scorer
from xlpeft.tasks import get_task

TEXTS = ["The man turned on the faucet. What happened as a result?",
         "Rain.",
         "The girl found a bug in her cereal, and the government spoke about health. What was the cause of this?"]
CHOICES = [("The toilet filled with water.", "Water flowed from the spout."),
           ("sports", "The weather was bad today and everyone stayed at home.", "fun"),  # three choices, unequal lengths
           ("She poured milk in the bowl.", "She lost her appetite.")]


def _prompt(rows: int = 4) -> torch.Tensor:
    torch.manual_seed(5)
    return torch.randn(rows, 32)


@torch.no_grad()
def _causal_by_hand(backbone, placement: str, prompt: torch.Tensor, text: str, choice: str) -> float:
    """log p(choice | input): [text][prompt] (suffix) or [prompt][text] (prefix), then " " + choice, one unpadded row
    through the plain model; the choice's tokens' log-probabilities summed (no EOS)."""
    tok, hf = backbone.tokenizer, backbone.model
    embed = hf.get_input_embeddings()
    text_ids = tok(text, add_special_tokens=False)["input_ids"]
    choice_ids = tok(" " + choice, add_special_tokens=False)["input_ids"]  # byte-level BPE: a word follows a space
    text_part = embed(torch.tensor(text_ids))
    parts = [text_part, prompt] if placement == "suffix" else [prompt, text_part]
    embeds = torch.cat([*parts, embed(torch.tensor(choice_ids))])
    logp = F.log_softmax(hf(inputs_embeds=embeds[None]).logits[0].float(), -1)
    start = embeds.shape[0] - len(choice_ids)  # the position before each choice token predicts it
    return sum(float(logp[start - 1 + k, t]) for k, t in enumerate(choice_ids))


@torch.no_grad()
def _seq2seq_by_hand(backbone, prompt: torch.Tensor, text: str, choice: str) -> float:
    """log p(choice </s> | [prompt][text]</s>): transformers' own seq2seq loss times the label count."""
    tok, hf = backbone.tokenizer, backbone.model
    embed = hf.get_input_embeddings()
    text_ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    labels = tok(choice, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    embeds = torch.cat([prompt, embed(torch.tensor(text_ids))])
    return -float(hf(inputs_embeds=embeds[None], labels=torch.tensor([labels])).loss) * len(labels)


def _check(scores: ChoiceScores, expected: list[list[float]], continuations: list[list[str]]) -> None:
    for got, want in zip(scores.loglik, expected):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    per_char = [[ll / len(c) for ll, c in zip(row, conts)] for row, conts in zip(expected, continuations)]
    for got, want in zip(scores.scores("per_char"), per_char):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert scores.predictions("sum") == [max(range(len(r)), key=r.__getitem__) for r in expected]
    assert scores.predictions("per_char") == [max(range(len(r)), key=r.__getitem__) for r in per_char]


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_causal_scores_are_the_choices_log_likelihoods_after_the_input(tiny_tokenizer, placement):
    backbone = make_backbone("llama", tiny_tokenizer)
    assert backbone.lead_ids == () and backbone.embed_scale == 1  # the hand computation adds neither
    scorer = build_choice_scorer(backbone, placement, prompt_length=4, max_length=64)
    prompt = _prompt()
    scores = scorer.score(scorer.tokenize(TEXTS), prompt, CHOICES, batch_size=2)  # two forwards, 5 and 2 rows
    expected = [[_causal_by_hand(backbone, placement, prompt, t, c) for c in row] for t, row in zip(TEXTS, CHOICES)]
    _check(scores, expected, [[" " + c for c in row] for row in CHOICES])
    assert all(v < 0 for row in scores.loglik for v in row)


def test_per_character_scores_let_a_long_choice_win_and_ties_go_to_the_first():
    scores = ChoiceScores(loglik=[[-10.0, -12.0], [-3.0, -3.0]], chars=[[5, 12], [4, 4]])
    assert scores.scores("per_char") == [[-2.0, -1.0], [-0.75, -0.75]]
    assert scores.predictions("sum") == [0, 0] and scores.predictions("per_char") == [1, 0]
    with pytest.raises(ValueError, match="sum or per_char"):
        scores.scores("per_token")


def test_encoder_decoder_scores_each_choice_closed_by_eos_as_its_decoder_target(special_tokenizer):
    backbone = make_seq2seq(special_tokenizer)
    scorer = build_choice_scorer(backbone, "prefix", prompt_length=4, max_length=64)
    prompt = _prompt()
    scores = scorer.score(scorer.tokenize(TEXTS), prompt, CHOICES, batch_size=3)
    expected = [[_seq2seq_by_hand(backbone, prompt, t, c) for c in row] for t, row in zip(TEXTS, CHOICES)]
    _check(scores, expected, [list(row) for row in CHOICES])


def test_training_loss_is_the_gold_choices_mean_negative_log_likelihood_per_token(tiny_tokenizer):
    backbone = make_backbone("llama", tiny_tokenizer)
    scorer = build_choice_scorer(backbone, "suffix", prompt_length=4, max_length=64)
    prompt, gold = _prompt(), [CHOICES[0][1], CHOICES[1][0]]
    targets = scorer.target_ids(gold)
    assert targets[1] == tiny_tokenizer(" " + gold[1], add_special_tokens=False)["input_ids"]  # no EOS on a causal LM
    loss = scorer.loss(scorer.tokenize(TEXTS[:2]), prompt, targets)
    by_hand = [-_causal_by_hand(backbone, "suffix", prompt, t, c) for t, c in zip(TEXTS, gold)]
    assert loss.item() == pytest.approx(sum(by_hand) / sum(map(len, targets)), rel=1e-5)


def test_encoders_and_linear_heads_cannot_score_choices(special_tokenizer, tiny_tokenizer):
    task = get_task("xcopa")
    with pytest.raises(XlpeftError, match="encoders have none: use a decoder-only or encoder-decoder backbone"):
        build_head(make_encoder(special_tokenizer), "prefix", 4, 64, task=task)
    with pytest.raises(XlpeftError, match="xcopa is a multiple-choice task.*use --head auto"):
        build_head(make_backbone("llama", tiny_tokenizer), "suffix", 4, 64, head="linear", task=task)
    scorer = build_choice_scorer(make_backbone("llama", tiny_tokenizer), "suffix", 4, 64)
    with pytest.raises(XlpeftError, match="is empty; every choice needs some text"):
        scorer.target_ids([""])
