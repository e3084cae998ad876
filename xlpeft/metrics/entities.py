"""Named-entity scores: seqeval's entity-level precision, recall and F1 on BIO tags, and the same F1 on
the (type, text) pairs of text-to-text outputs such as "PER: X$$LOC: Y"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from xlpeft.metrics import check_lengths

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
    check_lengths(gold_tags, pred_tags)
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
    check_lengths(gold, pred)

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
