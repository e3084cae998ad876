"""Scores: classification (accuracy, macro-F1), named entities (seqeval spans) and extractive QA (SQuAD
exact match and F1), each reproducing a community standard (named in its docstring).

All scores are fractions in [0, 1] (the official SQuAD script prints them times 100). Every function
checks that gold and predictions line up (:func:`check_lengths`), because a silent off-by-one would still
produce a number.
"""

from __future__ import annotations

from collections.abc import Sequence


def check_lengths(gold: Sequence, pred: Sequence) -> None:
    """Refuse gold and predictions of different lengths, or nothing to score."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions")
    if len(gold) == 0:  # also for arrays, whose truth is ambiguous
        raise ValueError("nothing to score: no gold items")
