"""Extractive QA (XQuAD): SQuAD v1.1's exact match and F1, with SQuAD's or MLQA's answer normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

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
