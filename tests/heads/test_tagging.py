"""Token tagging on encoders: word-start sub-tokens, truncation at word boundaries, where the head reads
(per placement, with padding), the loss, training to memorisation, and refusing decoders."""

import pytest
import torch
import torch.nn.functional as F
from conftest import make_backbone, make_encoder
from numerics import assert_close_scaled

from xlpeft.errors import XlpeftError
from xlpeft.heads.layout import PromptLayout
from xlpeft.heads.tagging import Tagged, TokenTagger, build_tagger

SENTENCES = [
    "Ouagadougou hosted the Xylophonist Kwabena Nkrumah-Oyelaran yesterday .".split(),
    "Rain .".split(),
    "Angela Merkel visited Wrocław and Bydgoszcz".split(),
    "Zanzibar".split(),
]
# O=0 B-PER=1 I-PER=2 B-LOC=3 I-LOC=4
TAGS = [[3, 0, 0, 0, 1, 2, 0, 0], [0, 0], [1, 2, 0, 3, 0, 3], [3]]


def _tagger(tokenizer, family="xlm-roberta", placement="prefix", prompt_length=4, max_length=64, seed=0):
    backbone = make_encoder(tokenizer, family=family, mlm=False)
    backbone.freeze()
    return build_tagger(backbone, placement, prompt_length, max_length, n_tags=5, seed=seed)


@pytest.mark.parametrize("family", ["xlm-roberta", "bert"])
def test_word_starts_point_at_each_words_first_piece(special_tokenizer, family):
    tagger = _tagger(special_tokenizer, family)
    tagged = tagger.tokenize_words(SENTENCES)
    tok = special_tokenizer
    multi_piece = 0
    for words, t in zip(SENTENCES, tagged):
        assert len(t.word_starts) == len(words) and t.word_starts[0] == 0
        bounds = [*t.word_starts, len(t.token_ids)]
        for w, (a, b) in enumerate(zip(bounds, bounds[1:])):
            assert b > a  # never zero tokens for a word
            assert tok.decode(t.token_ids[a:b]).strip() == words[w]
            multi_piece += b - a > 1
        # byte-level BPE: words after the first carry their leading space, as in running text
        assert tok.decode(t.token_ids) == " ".join(words)
    assert multi_piece >= 3  # the sentences do exercise multi-piece words
    assert tagger.describe() == {"head_used": "linear", "output": "tags"}


def test_empty_word_still_gets_a_token(special_tokenizer):
    tagger = _tagger(special_tokenizer)
    (t,) = tagger.tokenize_words([["Rain", "", "today"]])
    assert len(t.word_starts) == 3 and len(set(t.word_starts)) == 3


def test_truncation_keeps_whole_words_within_budget(special_tokenizer):
    tagger = _tagger(special_tokenizer, max_length=10, prompt_length=4)  # 10 text tokens; prompt, [CLS], [SEP] on top
    budget = tagger.layout.text_budget
    assert budget == 10
    long = ("Ouagadougou " * 3 + "Rain falls on the Xylophonist today and tomorrow again").split()
    # pieces per word: the first alone, the others as they follow another word (with their space)
    first = len(tagger.tokenize_words([long[:1]])[0].token_ids)
    sizes = [first] + [len(tagger.tokenize_words([["a", w]])[0].token_ids) - 1 for w in long[1:]]
    (t,) = tagger.tokenize_words([long])
    assert len(t.token_ids) <= budget
    kept = len(t.word_starts)
    assert 0 < kept < len(long)
    assert len(t.token_ids) == sum(sizes[:kept])  # whole words only ...
    assert sum(sizes[: kept + 1]) > budget  # ... and as many as fit: a prefix of the words
    reference = tagger.tokenize_words([long[:kept]])[0]
    assert t == reference
    # short sentences are untouched; budgets are per sentence
    both = tagger.tokenize_words([long, ["Rain", "."]])
    assert both[0] == t and len(both[1].word_starts) == 2
    # a first word longer than the whole budget is cut to it, the only word kept
    (huge,) = tagger.tokenize_words([["Nkrumah-Oyelaran-Ouagadougou-Bydgoszcz-Wrocław", "Rain"]])
    assert huge.word_starts == [0] and len(huge.token_ids) == budget


@pytest.mark.parametrize("family", ["xlm-roberta", "bert"])
@pytest.mark.parametrize("placement", ["prefix", "start", "suffix"])
def test_head_reads_the_first_piece_at_its_absolute_position(special_tokenizer, family, placement):
    tagger = _tagger(special_tokenizer, family, placement, prompt_length=3)
    backbone = tagger.backbone
    tagged = tagger.tokenize_words(SENTENCES)  # mixed lengths: padding in the batch
    assert len({len(t.token_ids) for t in tagged}) > 2
    prompt = torch.randn(3, 32)
    got = tagger.word_hidden(tagged, prompt)

    embed = backbone.model.get_input_embeddings()
    emb = lambda ids: embed(torch.tensor(ids, dtype=torch.long))  # noqa: E731
    cls, sep, pad = emb([special_tokenizer.cls_token_id]), emb([special_tokenizer.sep_token_id]), emb([backbone.pad_id])
    rows, positions = [], []
    for t in tagged:
        text = emb(t.token_ids)
        parts = {"prefix": [cls, prompt, text, sep], "start": [prompt, cls, text, sep],
                 "suffix": [cls, text, prompt, sep]}[placement]
        rows.append(torch.cat(parts))
        offset = {"prefix": 1 + 3, "start": 3 + 1, "suffix": 1}[placement]
        positions.append([offset + s for s in t.word_starts])
    width = max(r.shape[0] for r in rows)
    embeds = torch.stack([torch.cat([r, pad.expand(width - r.shape[0], -1)]) for r in rows])
    mask = torch.stack([torch.arange(width) < r.shape[0] for r in rows]).long()
    with torch.no_grad():
        hidden = backbone.encoder_hidden(embeds, mask)
    expected = torch.cat([hidden[i, p] for i, p in enumerate(positions)])
    assert_close_scaled(got, expected)
    # and the reading matters: the text token just before differs (not the same vector by accident)
    assert not torch.allclose(got[1], hidden[0, positions[0][1] - 1], atol=1e-3)


def _first_piece_labels(tokenizer, words: list[str], tags: list[int], kept: int) -> tuple[list[int], list[int]]:
    """The joined sentence's first ``kept`` token ids, and a label per token: a word's tag on the token where
    the word begins (from the tokenizer's character offsets), -100 on every other token."""
    encoded = tokenizer(" ".join(words), add_special_tokens=False, return_offsets_mapping=True)
    ends = [len(" ".join(words[: w + 1])) for w in range(len(words))]  # each word's end character
    labels, seen = [], set()
    for _, end in encoded["offset_mapping"][:kept]:
        word = next(w for w, e in enumerate(ends) if end <= e)  # the word holding the token's last character
        labels.append(-100 if word in seen else tags[word])
        seen.add(word)
    return encoded["input_ids"][:kept], labels


def _token_classification_loss(tagger, sentences, tags, prompt, kept_tokens) -> torch.Tensor:
    """transformers' token-classification loss, by hand: [CLS] prompt text [SEP] through the encoder, the
    head on every position, cross-entropy against labels that are -100 except at each word's first piece."""
    backbone, tok = tagger.backbone, tagger.backbone.tokenizer
    embed = backbone.model.get_input_embeddings()
    rows, label_rows = [], []
    for words, word_tags, kept in zip(sentences, tags, kept_tokens):
        ids, labels = _first_piece_labels(tok, words, word_tags, kept)
        rows.append(torch.cat([embed(torch.tensor([tok.cls_token_id])), prompt, embed(torch.tensor(ids)),
                               embed(torch.tensor([tok.sep_token_id]))]))
        label_rows.append([-100] * (1 + len(prompt)) + labels + [-100])
    width = max(len(r) for r in rows)
    pad = embed(torch.tensor([backbone.pad_id]))
    embeds = torch.stack([torch.cat([r, pad.expand(width - len(r), -1)]) for r in rows])
    mask = torch.stack([torch.arange(width) < len(r) for r in rows]).long()
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows])
    hidden = backbone.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    logits = tagger.head(hidden)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def test_loss_is_cross_entropy_over_kept_words_and_reaches_prompt_and_head(special_tokenizer):
    tagger = _tagger(special_tokenizer, max_length=12, prompt_length=2)  # budget 8: the first sentence is cut
    tagged = tagger.tokenize_words(SENTENCES)
    assert len(tagged[0].word_starts) < len(SENTENCES[0])
    prompt = torch.nn.Parameter(torch.randn(2, 32) * 0.5)
    loss = tagger.loss(tagged, prompt, TAGS)
    kept = [len(t.token_ids) for t in tagged]
    assert [t.token_ids for t in tagged] == [_first_piece_labels(special_tokenizer, w, g, k)[0]
                                             for w, g, k in zip(SENTENCES, TAGS, kept)]
    with torch.no_grad():
        expected = _token_classification_loss(tagger, SENTENCES, TAGS, prompt, kept)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert tagger.head.weight.grad.abs().sum() > 0 and tagger.head.bias.grad.abs().sum() > 0
    assert all(p.grad is None for p in tagger.backbone.model.parameters())
    with pytest.raises(ValueError):
        tagger.loss(tagged, prompt, [tags[:1] for tags in TAGS])


@pytest.mark.parametrize("family", ["xlm-roberta", "bert"])
def test_training_memorises_the_tags(special_tokenizer, family):
    torch.manual_seed(0)
    tagger = _tagger(special_tokenizer, family, "prefix", prompt_length=4)
    tagged = tagger.tokenize_words(SENTENCES)
    prompt = torch.nn.Parameter(torch.randn(4, 32) * 0.5)
    opt = torch.optim.Adam([prompt, *tagger.head.parameters()], lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = tagger.loss(tagged, prompt, TAGS)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.3 * first
    assert tagger.predict(tagged, prompt.detach(), batch_size=3) == TAGS


def test_predict_shapes_and_order(special_tokenizer):
    tagger = _tagger(special_tokenizer, "bert", "suffix", max_length=12, prompt_length=2)
    tagged = tagger.tokenize_words(SENTENCES + [[]])
    assert tagged[-1] == Tagged([], [])
    prompt = torch.randn(2, 32)
    preds = tagger.predict(tagged, prompt, batch_size=2)  # length-sorted batches inside
    assert [len(p) for p in preds] == [len(t.word_starts) for t in tagged]
    alone = [tagger.predict([t], prompt)[0] for t in tagged]
    assert preds == alone
    assert all(0 <= x < 5 for p in preds for x in p)
    assert tagger.predict(tagged, None) is not None  # no prompt (a head alone) also works


def test_refuses_decoders_and_impossible_budgets(special_tokenizer, tiny_tokenizer):
    with pytest.raises(XlpeftError, match="token tagging is for encoders"):
        build_tagger(make_backbone("llama", tiny_tokenizer), "prefix", 4, 64, n_tags=5)
    encoder = make_encoder(special_tokenizer, mlm=True)
    build_tagger(encoder, "prefix", 10, 12, n_tags=5)  # max_length counts text tokens only: room for 12
    with pytest.raises(XlpeftError, match="give --max-length 1 or more"):
        build_tagger(encoder, "prefix", 10, -1, n_tags=5)
    with pytest.raises(XlpeftError):
        TokenTagger(make_backbone("llama", tiny_tokenizer), PromptLayout(encoder, "prefix", 2, 16), 5)
    # the same seed draws the same head
    a, b = build_tagger(encoder, "prefix", 2, 16, 5, seed=3), build_tagger(encoder, "prefix", 2, 16, 5, seed=3)
    torch.testing.assert_close(a.head.weight, b.head.weight)
