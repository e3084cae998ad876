"""Per-language classification metrics."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score


def classification_metrics(gold: list[int], pred: list[int], n_labels: int) -> dict:
    """Accuracy and macro-F1 over all ``n_labels`` labels (a label never predicted counts as F1 = 0)."""
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", labels=list(range(n_labels)), zero_division=0)),
        "n": len(gold),
    }
