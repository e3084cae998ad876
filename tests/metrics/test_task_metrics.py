"""Task metrics on hand-made cases whose answers are known (seqeval's README, SQuAD by hand)."""

from itertools import product

import numpy as np
import pytest

from xlpeft.metrics.classification import classification_metrics, expected_macro_f1_of_guessing, present_label_metrics
from xlpeft.metrics.entities import bio_spans, entity_scores, text_entity_scores
from xlpeft.metrics.squad import normalize_answer, squad_exact_match, squad_f1, squad_scores

# seqeval's README example: MISC boundaries are wrong, PER is right.
SEQEVAL_GOLD = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
SEQEVAL_PRED = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]


def test_classification_by_hand():
    gold, pred = [0, 0, 1, 2], [0, 1, 1, 1]
    scores = classification_metrics(gold, pred, n_labels=3)
    assert scores["accuracy"] == 0.5 and scores["n"] == 4
    # F1 per class: 0 -> P 1, R 1/2 = 2/3; 1 -> P 1/3, R 1 = 1/2; 2 -> never predicted = 0.
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    with pytest.raises(ValueError, match="predictions"):
        classification_metrics([0, 1], [0], n_labels=2)


@pytest.mark.parametrize("gold, labels", [([0, 0, 1, 2], 3), ([0, 0, 0, 1, 1], 2), ([1, 1, 1], 3), ([0, 1, 2, 3, 3, 0], 4)])
def test_expected_macro_f1_of_guessing_is_the_mean_over_every_guess(gold, labels):
    """Every one of the labels ** n equally likely guesses, scored by classification_metrics (a class absent from the
    gold labels included, as in [1, 1, 1]): their mean is the expectation, exactly."""
    scores = [classification_metrics(gold, list(guess), labels)["macro_f1"] for guess in product(range(labels), repeat=len(gold))]
    counts = np.bincount(gold, minlength=labels).tolist()
    assert expected_macro_f1_of_guessing(counts) == pytest.approx(np.mean(scores), abs=1e-12)
    # tasks defined in YAML average macro-F1 over the labels present in the gold: so does their chance level
    present = [present_label_metrics(gold, list(guess), labels)["macro_f1"]
               for guess in product(range(labels), repeat=len(gold))]
    assert expected_macro_f1_of_guessing(counts, present_only=True) == pytest.approx(np.mean(present), abs=1e-12)


def test_seqeval_readme_example():
    scores = entity_scores(SEQEVAL_GOLD, SEQEVAL_PRED)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.5, 0.5, 0.5)
    assert scores["per_type"]["MISC"]["f1"] == 0.0 and scores["per_type"]["PER"]["f1"] == 1.0
    assert scores["per_type"]["MISC"]["support"] == 1


def test_stray_inside_tag_default_and_strict():
    # seqeval's README: I-NP I-NP is one NP by default, none under mode="strict", scheme=IOB2.
    assert entity_scores([["B-NP", "I-NP", "O"]], [["I-NP", "I-NP", "O"]])["f1"] == 1.0
    assert entity_scores([["B-NP", "I-NP", "O"]], [["I-NP", "I-NP", "O"]], mode="strict")["f1"] == 0.0
    assert bio_spans(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 3)]
    assert bio_spans(["O", "I-PER", "I-PER", "O"], mode="strict") == []
    # a type change inside an entity ends it; by default the I- tag opens the next one
    assert bio_spans(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    assert bio_spans(["B-PER", "I-LOC", "I-LOC"], mode="strict") == [("PER", 0, 1)]
    assert bio_spans(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]


def test_entity_scores_edge_cases():
    none = entity_scores([["O", "O"], []], [["O", "O"], []])
    assert (none["precision"], none["recall"], none["f1"], none["per_type"]) == (0.0, 0.0, 0.0, {})
    spurious = entity_scores([["O", "O"]], [["B-LOC", "O"]])
    assert spurious["precision"] == 0.0 and spurious["per_type"]["LOC"]["support"] == 0
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="invalid BIO tag"):
        entity_scores([["E-PER"]], [["O"]])


def test_text_entity_scores_are_multisets():
    gold = [[("PER", "Ann"), ("PER", "Ann"), ("LOC", "New  York")], []]
    pred = [[("PER", "Ann"), ("LOC", "New York"), ("ORG", "Ann")], [("PER", "Bob")]]
    scores = text_entity_scores(gold, pred)
    # correct: one PER Ann (the second gold Ann is missed) and LOC (whitespace collapsed); 4 predicted, 3 gold
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["per_type"]["PER"]["recall"] == 0.5 and scores["per_type"]["ORG"]["precision"] == 0.0


def test_text_and_tag_scores_agree_when_pairs_are_unique():
    tokens = ["Ann", "met", "Bob", "in", "New", "York"]
    gold_tags = ["B-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"]
    pred_tags = ["B-PER", "O", "B-ORG", "O", "B-LOC", "O"]

    def texts(tags):
        return [(t, " ".join(tokens[s:e])) for t, s, e in bio_spans(tags)]

    by_tags = entity_scores([gold_tags], [pred_tags])
    by_text = text_entity_scores([texts(gold_tags)], [texts(pred_tags)])
    assert by_tags["f1"] == by_text["f1"] == pytest.approx(1 / 3)


def test_squad_normalization_and_pairs():
    assert normalize_answer("The  Cat, an animal!") == "cat animal"
    assert squad_exact_match("the Eiffel tower.", "Eiffel Tower") == 1.0
    # pred tokens big/red/dog, gold red/dog: P 2/3, R 1, F1 0.8
    assert squad_f1("the big red dog", "red dog") == pytest.approx(0.8)
    assert squad_f1("", "red dog") == 0.0 and squad_exact_match("", "red dog") == 0.0
    # SQuAD v1.1's own quirk: answers that normalise to nothing match exactly yet score F1 0
    assert squad_exact_match("The", "a") == 1.0 and squad_f1("The", "a") == 0.0


def test_squad_scores_max_over_golds_and_unanswered():
    answers = {"q1": ["Denver Broncos", "the Broncos"], "q2": ["1990"], "q3": ["Paris"]}
    predictions = {"q1": "Broncos", "q2": "in 1990", "ignored": "x"}
    scores = squad_scores(answers, predictions)
    # q1: EM 1 (vs "the Broncos"), F1 1; q2: EM 0, F1 2/3 (P 1/2, R 1); q3 unanswered: 0
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 3)
    assert (scores["n"], scores["unanswered"]) == (3, 1)


def test_mlqa_normalization_option():
    # SQuAD's normaliser is English-centric: non-ASCII punctuation and German articles survive it
    assert normalize_answer("«der Rhein»") == "«der rhein»"
    assert normalize_answer("«der Rhein»", "mlqa", "de") == "rhein"
    assert normalize_answer("la ciudad", "mlqa", "es") == "ciudad"
    assert normalize_answer("the city", "mlqa", "ro") == "the city"  # no article list for Romanian
    # Chinese: one token per character, so F1 gives partial credit where SQuAD's scores 0
    assert normalize_answer("北京大学。", "mlqa", "zh") == "北 京 大 学"
    assert squad_f1("北京", "北京大学", "mlqa", "zh") == pytest.approx(2 / 3)
    assert squad_f1("北京", "北京大学") == 0.0
    with pytest.raises(ValueError, match="normalizer"):
        normalize_answer("x", "xtreme")
