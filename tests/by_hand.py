"""Metrics recomputed by hand in the tests, so that a row's number is checked against something that does
not share xlpeft.evaluation's code."""

from __future__ import annotations

from collections import Counter


def accuracy(gold: list[int], pred: list[int]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: list[int], pred: list[int], n_labels: int) -> float:
    """Mean over all labels of F1 = 2 TP / (2 TP + FP + FN) (0 for a label neither predicted nor present)."""
    f1 = []
    for label in range(n_labels):
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        wrong = sum((g == label) != (p == label) for g, p in zip(gold, pred))
        f1.append(2 * tp / (2 * tp + wrong) if tp else 0.0)
    return sum(f1) / n_labels


def entity_f1(gold: list[str], pred: list[str]) -> float:
    """Micro F1 of "PER: X$$LOC: Y" strings: per sentence, (type, text) pairs matched at most once each."""
    def pairs(text: str) -> Counter:
        found = Counter()
        for part in text.split("$$"):
            kind, colon, name = part.partition(":")
            if colon and kind.strip() and name.split():
                found[kind.strip(), " ".join(name.split())] += 1
        return found

    correct = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        correct += sum((pairs(g) & pairs(p)).values())
        n_gold += sum(pairs(g).values())
        n_pred += sum(pairs(p).values())
    return 2 * correct / (n_gold + n_pred) if correct else 0.0
