"""Metrics for the cross-lingual tasks, each reproducing a community standard (named in its docstring).

All scores are fractions in [0, 1] (the official SQuAD script prints them times 100). Every function
checks that gold and predictions line up, because a silent off-by-one would still produce a number.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from sklearn.metrics import f1_score

# ---------------------------------------------------------------------------------------------------
# Classification (NusaX sentiment, NLI, XCOPA)


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    """Fraction of exact matches: the metric of XNLI, AmericasNLI and XCOPA."""
    _check_lengths(gold, pred)
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def macro_f1(gold: Sequence[int], pred: Sequence[int], n_labels: int) -> float:
    """Unweighted mean of per-class F1 over all ``n_labels`` classes, as NusaX reports it.

    This is scikit-learn's ``f1_score(average="macro")``, the usual way NusaX's macro-F1 is computed;
    passing every label explicitly gives the same number whenever each class occurs in the gold labels
    (as in every NusaX split), and otherwise still scores a class absent from both gold and predictions
    as F1 = 0 instead of leaving it out.
    """
    _check_lengths(gold, pred)
    return float(f1_score(gold, pred, labels=list(range(n_labels)), average="macro", zero_division=0))


# ---------------------------------------------------------------------------------------------------
# Named entities: BIO tags (seqeval) and text-to-text "PER: X$$LOC: Y" outputs

Span = tuple[str, int, int]  # (type, start token, end token exclusive)
MODES = ("default", "strict")


def bio_spans(tags: Sequence[str], mode: str = "default") -> list[Span]:
    """Entities in a BIO tag sequence, as seqeval finds them.

    ``mode="default"`` is seqeval's default (conlleval's rules): an ``I-X`` that does not continue an
    ``X`` entity (after ``O`` or after another type) starts a new entity, so ``O I-PER I-PER`` holds one
    PER. ``mode="strict"`` is seqeval's ``mode="strict", scheme=IOB2``: only ``B-X`` starts an entity and
    a stray ``I-X`` belongs to none. Only ``O``, ``B-X`` and ``I-X`` are accepted (no IOBES).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    spans: list[Span] = []
    current: str | None = None  # the type of the open entity
    start = 0
    for i, tag in enumerate([*tags, "O"]):  # the trailing O closes an entity that ends the sentence
        prefix, type_ = _split_tag(tag)
        continues = prefix == "I" and type_ == current
        if current is not None and not continues:
            spans.append((current, start, i))
            current = None
        if prefix == "B" or (prefix == "I" and not continues and mode == "default"):
            current, start = type_, i
    return spans


def entity_scores(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]],
                  mode: str = "default") -> dict:
    """Entity-level precision, recall and F1, micro over entities, plus per type: seqeval's numbers.

    An entity counts as correct only with the exact type and boundaries (CoNLL-2003 / conlleval, and
    seqeval's ``precision_score``, ``recall_score``, ``f1_score`` and ``classification_report``, which
    MasakhaNER and WikiANN results are reported with). ``mode`` is as in :func:`bio_spans`.
    """
    _check_lengths(gold_tags, pred_tags)
    gold: list[Counter] = []
    pred: list[Counter] = []
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
        gold.append(Counter(bio_spans(g, mode)))
        pred.append(Counter(bio_spans(p, mode)))
    return _span_scores(gold, pred)


def text_entity_scores(gold: Sequence[Sequence[tuple[str, str]]], pred: Sequence[Sequence[tuple[str, str]]]) -> dict:
    """Entity F1 for text-to-text NER: per sentence, (type, text) multisets compared with the gold multiset.

    CoNLL's exact-match entity F1 carried over to generated outputs such as "PER: X$$LOC: Y" (the
    text-to-text NER format of methods.md B; parse them with ``xlpeft.data.tasks.masakhaner.parse_target``),
    which have texts but no token positions: an entity is correct when its type and its exact text
    (whitespace collapsed) occur among the gold entities of the same sentence, each gold entity matching
    at most once. Texts carry no positions, so two mentions of the same name in one
    sentence are told apart only by their count. The numbers match :func:`entity_scores` whenever each
    (type, text) pair occurs once per sentence.
    """
    _check_lengths(gold, pred)

    def bag(spans: Sequence[tuple[str, str]]) -> Counter:
        return Counter((type_, " ".join(text.split())) for type_, text in spans)

    return _span_scores([bag(g) for g in gold], [bag(p) for p in pred])


def _span_scores(gold: list[Counter], pred: list[Counter]) -> dict:
    """Micro P/R/F1 over all sentences' entities, and per type (types in gold or predictions)."""
    correct: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g, p in zip(gold, pred):
        for entity, count in (g & p).items():
            correct[entity[0]] += count
        for entity, count in g.items():
            n_gold[entity[0]] += count
        for entity, count in p.items():
            n_pred[entity[0]] += count
    scores = _prf(sum(correct.values()), sum(n_gold.values()), sum(n_pred.values()))
    scores["per_type"] = {t: _prf(correct[t], n_gold[t], n_pred[t]) for t in sorted(n_gold | n_pred)}
    return scores


def _prf(correct: int, n_gold: int, n_pred: int) -> dict:
    """Precision, recall, F1 with seqeval's convention: 0 (not undefined) when a denominator is 0."""
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold, "predicted": n_pred}


def _split_tag(tag: str) -> tuple[str, str | None]:
    if tag == "O":
        return "O", None
    if tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    raise ValueError(f"invalid BIO tag {tag!r}: use O, B-<type> or I-<type>")


# ---------------------------------------------------------------------------------------------------
# Extractive QA (XQuAD): SQuAD v1.1 exact match and F1

NORMALIZERS = ("squad", "mlqa")
_ASCII_PUNCT = frozenset(string.punctuation)
# MLQA's article patterns per language; languages not listed there have none removed.
_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",  # MLQA's pattern as published: it removes every "ال", even inside words
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _is_unicode_punct(ch: str) -> bool:
    """MLQA's punctuation: any Unicode character of category P*, plus ASCII punctuation (which has symbols)."""
    return unicodedata.category(ch).startswith("P") or ch in _ASCII_PUNCT


def normalize_answer(text: str, normalizer: str = "squad", language: str | None = None) -> str:
    """Normalise an answer before comparing it, as the official evaluation scripts do.

    ``"squad"`` is SQuAD v1.1's ``evaluate-v1.1.py``, which XQuAD's authors (and XTREME) use for every
    language: lowercase, drop ASCII punctuation, drop English articles a/an/the, collapse whitespace. It
    is English-centric: other languages keep their articles and non-ASCII punctuation (such as 「」 or
    ،). ``"mlqa"`` is MLQA's ``mlqa_evaluation_v1.py``: punctuation is every Unicode P* character,
    articles are removed for en/es/de/vi/ar, and Chinese (``language="zh"``) is split into single CJK
    characters so that F1 gives partial credit. MLQA rejects other languages; here they get no article
    removal and whitespace tokens (so Thai, written without spaces, still scores near-EM under F1).
    """
    if normalizer not in NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}: use one of {', '.join(NORMALIZERS)}")
    text = text.lower()
    if normalizer == "squad":
        text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())
    text = "".join(ch for ch in text if not _is_unicode_punct(ch))
    if language in _MLQA_ARTICLES:
        text = re.sub(_MLQA_ARTICLES[language], " ", text)
    tokens = _mixed_segmentation(text) if language == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's Chinese tokens: each CJK character (or punctuation mark) alone, other runs split on spaces."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _CJK.search(ch) or _is_unicode_punct(ch):
            tokens.extend(run.split())
            tokens.append(ch)
            run = ""
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def squad_exact_match(prediction: str, gold: str, normalizer: str = "squad", language: str | None = None) -> float:
    """1.0 when the normalised strings are equal (SQuAD v1.1's ``exact_match_score``)."""
    return float(normalize_answer(prediction, normalizer, language) == normalize_answer(gold, normalizer, language))


def squad_f1(prediction: str, gold: str, normalizer: str = "squad", language: str | None = None) -> float:
    """Bag-of-tokens F1 of the normalised strings (SQuAD v1.1's ``f1_score``; 0 when nothing is shared)."""
    pred_tokens = normalize_answer(prediction, normalizer, language).split()
    gold_tokens = normalize_answer(gold, normalizer, language).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                 normalizer: str = "squad", language: str | None = None) -> dict:
    """Corpus EM and F1 as SQuAD v1.1's ``evaluate``: per question the max over its gold answers, then the mean.

    ``answers`` maps every question id to its gold answer texts; a question missing from
    ``predictions`` scores 0 and still counts (the official script warns "Unanswered question").
    Predictions for ids not in ``answers`` are ignored, as there.
    """
    if not answers:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for qid, golds in answers.items():
        if not golds:
            raise ValueError(f"question {qid} has no gold answer")
        if qid not in predictions:
            continue
        em += max(squad_exact_match(predictions[qid], g, normalizer, language) for g in golds)
        f1 += max(squad_f1(predictions[qid], g, normalizer, language) for g in golds)
    unanswered = sum(qid not in predictions for qid in answers)
    return {"exact_match": em / len(answers), "f1": f1 / len(answers), "n": len(answers), "unanswered": unanswered}


def _check_lengths(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions")
    if not gold:
        raise ValueError("nothing to score: no gold items")


# The metric names the task registry (xlpeft.data.tasks.TASKS) refers to.
METRICS = {
    "macro_f1": macro_f1,
    "accuracy": accuracy,
    "entity_f1": entity_scores,
    "squad": squad_scores,
}
