"""Per-language classification metrics: accuracy (XNLI, AmericasNLI, SIB-200) and macro-F1 (NusaX), and the
macro-F1 that guessing uniformly at random is expected to score (the chance baseline of reports and plots)."""

from __future__ import annotations

import numpy as np
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


def expected_macro_f1_of_guessing(counts: list[int], present_only: bool = False) -> float:
    """Macro-F1 expected from answering each of the ``len(counts)`` labels uniformly at random, exactly, on gold
    labels with ``counts[c]`` examples of class c (averaged over every label, as :func:`classification_metrics`).

    Why this is exact: with n examples and C labels, the number k of predictions of class c is Binomial(n, 1/C);
    given k, those predictions fall on k examples drawn without replacement, so the true positives average
    k n_c / n; and F1_c = 2 TP / (k + n_c) is linear in TP once k is fixed. Hence
    E[F1_c] = sum_k P(k) 2 k n_c / (n (k + n_c)), and a class absent from the gold labels scores 0. (Plugging the
    expected counts into F1 instead, 2 (n_c/C) / (n/C + n_c), is only an approximation.) ``present_only``: the
    mean over the labels present in the gold only, as :func:`present_label_metrics` scores (guessing still
    spreads over all C labels)."""
    from scipy.stats import binom

    counts = np.asarray(counts, dtype=float)
    n, labels = counts.sum(), len(counts)
    k = np.arange(int(n) + 1)
    chance = binom.pmf(k, int(n), 1 / labels)
    per_class = [float((chance[1:] * 2 * k[1:] * n_c / (n * (k[1:] + n_c))).sum()) if n_c else 0.0 for n_c in counts]
    if present_only:
        per_class = [f1 for f1, n_c in zip(per_class, counts) if n_c]
    return float(np.mean(per_class))
