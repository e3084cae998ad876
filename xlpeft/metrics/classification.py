"""Per-language classification metrics: accuracy (XNLI, AmericasNLI, SIB-200) and macro-F1 (NusaX)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score

from xlpeft.metrics import check_lengths


def classification_metrics(gold: list[int], pred: list[int], n_labels: int) -> dict:
    """Accuracy and macro-F1 over all ``n_labels`` labels (a label never predicted counts as F1 = 0).

    Macro-F1 is scikit-learn's ``f1_score(average="macro")``, the usual way NusaX's macro-F1 is computed;
    passing every label explicitly gives the same number whenever each class occurs in the gold labels (as
    in every NusaX split), and otherwise still scores a class absent from both gold and predictions as
    F1 = 0 instead of leaving it out.
    """
    check_lengths(gold, pred)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", labels=list(range(n_labels)), zero_division=0)),
        "n": len(gold),
    }


def present_label_metrics(gold: list[int], pred: list[int], n_labels: int) -> dict:
    """:func:`classification_metrics` with macro-F1 averaged over the labels present in ``gold`` only: how tasks
    defined in YAML score a language whose label set is a subset of the source's (a label the language never uses
    would otherwise add an F1 of 0, or of nothing, whatever the model does). Equal to it when every label occurs."""
    scores = classification_metrics(gold, pred, n_labels)
    present = sorted(set(gold))
    if len(present) < n_labels:
        scores["macro_f1"] = float(f1_score(gold, pred, average="macro", labels=present, zero_division=0))
    return scores
