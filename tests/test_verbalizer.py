import pytest
import torch

from xlpeft.objectives.verbalizer import Verbalizer, default_label_words, parse_label_words
from xlpeft.errors import XlpeftError


def test_defaults_are_single_tokens_with_leading_space_for_byte_level_bpe(tiny_tokenizer):
    words = default_label_words("llama", tiny_tokenizer)
    assert words["geography"] == " earth" and words["sports"] == " sports"
    assert default_label_words("bloom", tiny_tokenizer)["sports"] == " play"
    verbalizer = Verbalizer.build(tiny_tokenizer, "llama")
    assert len(set(verbalizer.token_ids)) == 7


def test_multi_token_word_is_refused_with_the_fix(tiny_tokenizer):
    with pytest.raises(XlpeftError, match=r"not one; pick a single-token word with --label-words 'travel=WORD'"):
        Verbalizer.build(tiny_tokenizer, "llama", parse_label_words("travel= xylophonequartz"))


def test_bad_override_syntax(tiny_tokenizer):
    with pytest.raises(XlpeftError, match="LABEL=WORD"):
        parse_label_words("weather= rain")


def test_loss_is_full_vocabulary_and_scores_only_label_tokens(tiny_tokenizer):
    verbalizer = Verbalizer.build(tiny_tokenizer, "llama")
    logits = torch.zeros(2, len(tiny_tokenizer))
    logits[:, 0] = 50.0  # a non-label token dominates the full-vocabulary softmax
    labels = torch.tensor([0, 3])
    assert verbalizer.loss(logits, labels) > 40
    logits[1, verbalizer.token_ids[3]] = 1.0
    assert verbalizer.label_scores(logits).argmax(-1).tolist() == [0, 3]
