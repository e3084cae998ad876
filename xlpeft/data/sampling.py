"""Seeded few-shot sampling, as methods.md A describes (but reproducible).

Balanced undersampling: every class is cut to the size of the smallest class (58 per class in SIB-200
train, 8 in dev), then k examples per class are drawn for training and ceil(k/4) per class for
validation (all 8 when k = 32). The reference code did not seed this; here one seed fixes the subset,
and the chosen ``index_id``s are recorded with the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xlpeft.data.sib200 import LABELS, Split
from xlpeft.errors import XlpeftError


@dataclass(frozen=True)
class FewShotSample:
    """The sampled subsets, as positions into the splits and as SIB-200 ids (for the record)."""

    train: Split
    validation: Split
    validation_per_class: int

    def record(self) -> dict:
        return {
            "train_index_ids": self.train.index_ids,
            "validation_index_ids": self.validation.index_ids,
            "validation_per_class": self.validation_per_class,
        }


def few_shot(train: Split, dev: Split, shots: int | None, seed: int) -> FewShotSample:
    """Draw k = ``shots`` training and ceil(k/4) validation examples per class; ``None`` keeps everything."""
    if shots is None:
        return FewShotSample(train, dev, validation_per_class=0)
    if shots < 1:
        raise XlpeftError(f"--shots must be a positive number of examples per class (got {shots}); or 'all'")
    rng = np.random.default_rng(seed)
    train_cap = _smallest_class(train)
    if shots > train_cap:
        raise XlpeftError(
            f"--shots {shots} is more than the {train_cap} examples per class that balanced undersampling "
            f"leaves in {train.language}/train; use --shots {train_cap} or less, or --shots all"
        )
    dev_cap = _smallest_class(dev)
    per_class_val = min(math.ceil(shots / 4), dev_cap)
    return FewShotSample(
        train=_subset(train, _draw(train, shots, train_cap, rng)),
        validation=_subset(dev, _draw(dev, per_class_val, dev_cap, rng)),
        validation_per_class=per_class_val,
    )


def _smallest_class(split: Split) -> int:
    counts = np.bincount(np.asarray(split.labels), minlength=len(LABELS))
    return int(counts.min())


def _draw(split: Split, k: int, cap: int, rng: np.random.Generator) -> list[int]:
    """Undersample each class to ``cap`` (in file order, shuffled), then keep the first ``k``.

    Classes are visited in the fixed LABELS order so that the seed alone decides the subset; the result
    is returned sorted by class, then draw order.
    """
    labels = np.asarray(split.labels)
    picked: list[int] = []
    for label in range(len(LABELS)):
        members = np.flatnonzero(labels == label)
        balanced = rng.permutation(members)[:cap]
        picked.extend(int(i) for i in balanced[:k])
    return picked


def _subset(split: Split, positions: list[int]) -> Split:
    return Split(
        language=split.language,
        name=split.name,
        index_ids=[split.index_ids[i] for i in positions],
        texts=[split.texts[i] for i in positions],
        labels=[split.labels[i] for i in positions],
    )
