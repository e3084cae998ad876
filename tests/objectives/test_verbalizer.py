import pytest
import torch

from xlpeft.errors import XlpeftError
from xlpeft.objectives.verbalizer import Verbalizer, label_words, parse_label_words
from xlpeft.tasks import get_task

SIB = get_task("sib200")


def default_label_words(family, tokenizer, spec=""):
    return label_words(SIB, family, tokenizer, spec)


def test_defaults_are_single_tokens_with_leading_space_for_byte_level_bpe(tiny_tokenizer):
    words = default_label_words("llama", tiny_tokenizer)
    assert words["geography"] == " earth" and words["sports"] == " sports"
    assert default_label_words("bloom", tiny_tokenizer)["sports"] == " play"
    verbalizer = Verbalizer.build(tiny_tokenizer, default_label_words("llama", tiny_tokenizer))
    assert len(set(verbalizer.token_ids)) == 7


def test_multi_token_word_is_refused_with_the_fix(tiny_tokenizer):
    with pytest.raises(XlpeftError, match=r"not one; pick a single-token word with --label-words 'travel=WORD'"):
        Verbalizer.build(tiny_tokenizer, default_label_words("llama", tiny_tokenizer, "travel= xylophonequartz"))


def test_bad_override_syntax(tiny_tokenizer):
    with pytest.raises(XlpeftError, match="LABEL=WORD"):
        parse_label_words("weather= rain", SIB.labels)


def test_loss_is_full_vocabulary_and_scores_only_label_tokens(tiny_tokenizer):
    verbalizer = Verbalizer.build(tiny_tokenizer, default_label_words("llama", tiny_tokenizer))
    logits = torch.zeros(2, len(tiny_tokenizer))
    logits[:, 0] = 50.0  # a non-label token dominates the full-vocabulary softmax
    labels = torch.tensor([0, 3])
    assert verbalizer.loss(logits, labels) > 40
    logits[1, verbalizer.token_ids[3]] = 1.0
    assert verbalizer.label_scores(logits).argmax(-1).tolist() == [0, 3]


def test_each_task_has_single_token_words_for_byte_level_bpe(tiny_tokenizer):
    for name in ("nusax", "americasnli"):
        task = get_task(name)
        words = label_words(task, "llama", tiny_tokenizer)
        assert list(words) == list(task.labels) and all(w.startswith(" ") for w in words.values())
    with pytest.raises(XlpeftError, match="LABEL one of entailment, neutral, contradiction"):
        label_words(get_task("americasnli"), "llama", tiny_tokenizer, "sports= play")
