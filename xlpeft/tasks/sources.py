"""Several source languages in one run (``--source eng_Latn,fra_Latn``): the stored form of a source set, each
language's few-shot sample and their union, and what ``targets`` leaves out of an evaluation.

A source set is stored as one string, its codes in the order given joined by commas, so configs and run ids stay
strings and a single source is stored exactly as before. Each language's sample is drawn by the task's own
``sample`` (classification: balanced, k per class and ceil(k/4) per class validating; text-to-text: k), just as a
run on that language alone draws it, but from a seed derived from the run's seed and the language alone
(:func:`language_seed`), so adding or removing a language leaves the other languages' samples as they were. A
single source keeps the run's seed itself, so runs trained before keep their samples, numbers and ids (the price:
English alone and English within {English, French} draw different English examples).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields

from xlpeft.tasks.base import Examples, FewShotSample, Task

SEPARATOR = ","


def source_languages(source: str) -> list[str]:
    """The languages of a stored source set (one code, or codes joined by commas), in their order."""
    return [code.strip() for code in source.split(SEPARATOR) if code.strip()]


def language_seed(seed: int, language: str) -> int:
    """The seed a language's sample is drawn with in a set of several sources: from the run's seed and the
    language's code alone (the first 8 bytes of SHA-256 of "seed:code"), never from the other languages."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{language}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class SourceSample:
    """A run's few-shot samples, one per source language in the set's order, with the seed each was drawn from."""

    samples: dict[str, FewShotSample]
    seeds: dict[str, int]

    @property
    def several(self) -> bool:
        return len(self.samples) > 1

    @property
    def train(self) -> Examples:
        """Every language's training examples, one language after another (:func:`union`)."""
        return union(self.train_parts(), SEPARATOR.join(self.samples))

    @property
    def validation(self) -> Examples:
        return union(self.validation_parts(), SEPARATOR.join(self.samples))

    def train_parts(self) -> list[Examples]:
        return [sample.train for sample in self.samples.values()]

    def validation_parts(self) -> list[Examples]:
        return [sample.validation for sample in self.samples.values()]

    def record(self, labels: tuple[str, ...]) -> dict:
        """sample.json's ids: one source as before (``FewShotSample.record``); several: per language its ids, seed
        and counts (classification: per label name, in ``labels`` order)."""
        if not self.several:
            [sample] = self.samples.values()
            return sample.record()
        return {"languages": {language: {**sample.record(), "seed": self.seeds[language],
                                         "train_counts": _counts(sample.train, labels),
                                         "validation_counts": _counts(sample.validation, labels)}
                              for language, sample in self.samples.items()}}


def _counts(examples: Examples, labels: tuple[str, ...]) -> dict[str, int]:
    """Examples per label name (classification), or ``{"examples": n}`` (text-to-text)."""
    if examples.labels is None or not labels:
        return {"examples": len(examples)}
    per_class = Counter(examples.labels)
    return {name: per_class[i] for i, name in enumerate(labels)}


def sample_sources(task: Task, source: str, source_data: str, shots: int | None, seed: int) -> SourceSample:
    """Each source language's few-shot sample from its own training and validation data (``task.sample``, the
    same rule and errors as for one language); one language is drawn with ``seed`` as before."""
    languages = source_languages(source)
    seeds = {language: seed if len(languages) == 1 else language_seed(seed, language) for language in languages}
    samples = {language: task.sample(*task.source_splits(language, source_data), shots, seeds[language])
               for language in languages}
    return SourceSample(samples, seeds)


def union(parts: list[Examples], language: str) -> Examples:
    """The examples of ``parts`` (one per language) one after another, as one split named ``language`` (the source
    set); one part is returned as it is. Ids stay the datasets' own (a parallel dataset repeats them across
    languages): the run records them per language."""
    if len(parts) == 1:
        return parts[0]
    joined = {}
    for f in fields(Examples):
        values = [getattr(part, f.name) for part in parts]
        if f.name in ("language", "split") or values[0] is None:
            continue
        if isinstance(values[0], dict):  # named parts of each text (templates' fields)
            joined[f.name] = {key: [v for value in values for v in value[key]] for key in values[0]}
        else:
            joined[f.name] = [v for value in values for v in value]
    return Examples(language=language, split=parts[0].split, **joined)


def evaluation_languages(task: Task, spec: str, sources: Iterable[str]) -> list[str]:
    """``task.resolve_languages(spec)``, where ``targets`` (every language but the task's source) also leaves out
    every language of the runs' several-language source sets (``sources``: the runs' stored sources). A run on
    one language keeps today's meaning of ``targets``, so its evaluations are unchanged. SIB-200 resolves it too:
    its 205 languages but English and the sets' languages."""
    if spec != "targets":
        return task.resolve_languages(spec)
    trained = {language for source in sources if len(languages := source_languages(source)) > 1
               for language in languages}
    excluded = trained | {task.default_source}
    return [code for code in task.resolve_languages("all") if code not in excluded]
