"""What a task is to training and evaluation, whatever its files look like.

A task turns its dataset (read by ``xlpeft.data.sib200`` or ``xlpeft.data.tasks``) into ``Examples``:
texts with a class id each (classification: SIB-200, NusaX, AmericasNLI) or a target string each
(text-to-text: MasakhaNER's "PER: X$$LOC: Y", XQuAD's answers) or a few choices each, one of them gold (multiple
choice: XCOPA, tasks/choice.py). It says where a run's source data
come from, how few-shot training sets are drawn, and how predictions are scored with the metric the
task's community uses. The trainer and the evaluator only talk to this interface, so a new task is a
new subclass, not a new branch in the training loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from xlpeft.data.languages import iso639_3_of, language_name, registry
from xlpeft.errors import XlpeftError
from xlpeft.tasks.templates import TEXT_FIELD, Template, resolve

Kind = Literal["classification", "text", "choice"]
Role = Literal["source", "target"]  # what a grid needs a language's data for: training, or evaluation


@dataclass(frozen=True)
class Examples:
    """One language's split as the model sees it: parallel lists.

    ``ids`` identify examples in the dataset (recorded with a run's sample); ``labels`` are class ids for
    classification, ``targets`` the strings a text-to-text model must produce; ``groups`` tie several
    inputs to one scored item (XQuAD: the chunks of one question's context), None when each input is one.
    """

    language: str
    split: str
    ids: list
    texts: list[str]
    labels: list[int] | None = None
    targets: list[str] | None = None
    groups: list[str] | None = None
    items: list | None = None  # the dataset's own records, where scoring needs more than the text (XQuAD)
    fields: dict[str, list[str]] | None = None  # the parts of each text by name, for templates (NLI: premise, ...)
    choices: list[tuple[str, ...]] | None = None  # multiple choice: each input's choices; ``labels`` index the gold one

    def __len__(self) -> int:
        return len(self.texts)

    def named_fields(self) -> dict[str, list[str]]:
        """What a template may name: ``text`` (each input as read without a template) and the task's fields."""
        return {TEXT_FIELD: self.texts, **(self.fields or {})}

    def subset(self, positions: Sequence[int]) -> Examples:
        def pick(values):
            return None if values is None else [values[i] for i in positions]

        fields = None if self.fields is None else {name: pick(values) for name, values in self.fields.items()}
        return replace(self, ids=pick(self.ids), texts=pick(self.texts), labels=pick(self.labels),
                       targets=pick(self.targets), groups=pick(self.groups), items=pick(self.items), fields=fields,
                       choices=pick(self.choices))


@dataclass(frozen=True)
class FewShotSample:
    """The training and validation examples a run uses, and how they were drawn (for the record)."""

    train: Examples
    validation: Examples
    validation_per_class: int  # classification: examples per class in validation; 0 = whole split

    def record(self) -> dict:
        return {
            "train_index_ids": self.train.ids,
            "validation_index_ids": self.validation.ids,
            "validation_per_class": self.validation_per_class,
        }


class Task:
    """Base class; subclasses fill in the class attributes and the data methods."""

    name: str = ""
    kind: Kind = "classification"
    labels: tuple[str, ...] = ()  # classification: label names, in class-id order
    default_source: str = ""
    default_targets: tuple[str, ...] = ()  # the languages evaluation covers by default
    metric_columns: tuple[str, ...] = ()  # the metric columns a results row holds
    flores: dict[str, str] = {}  # dataset code -> SIB-200 (FLORES-200) code, where SIB-200 has the language
    source_data_choices: tuple[str, ...] = ("local",)  # "local" = the offline copy; "hub" = the standard source
    fields: tuple[str, ...] = (TEXT_FIELD,)  # what an input template may name (templates.py)
    paper_templates: dict[str, Template] = {}  # backbone family ("default": the rest) -> the paper's template

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.data_dir = data_dir

    # ---- languages
    @property
    def languages(self) -> tuple[str, ...]:
        raise NotImplementedError

    def resolve_languages(self, spec: str) -> list[str]:
        """``all`` (every evaluation language), ``targets`` (all but the source), or a comma list of codes."""
        if spec in ("all", "targets"):
            return [code for code in self.default_targets if spec == "all" or code != self.default_source]
        codes = [item.strip() for item in spec.split(",") if item.strip()]
        unknown = [code for code in codes if code not in self.languages]
        if unknown or not codes:
            raise XlpeftError(f"unknown {self.name} language(s) {unknown or spec!r}: use all, targets, or codes among "
                              f"{', '.join(self.languages)}")
        return codes

    def missing_data(self, language: str, role: Role, source_data: str = "local") -> str | None:
        """Why this task has no data of ``language`` (a code it does not resolve) for ``role``, or None when it has
        them or the code names no language (a typo: resolving it says what is wrong). The facts are the task's
        language list (its source cited where it is declared); a task without one (WikiANN: the hub decides) lacks
        nothing. Grids list such pairs with this reason instead of failing."""
        name = language_name(language)
        if not self.languages or language in self.languages or name is None:
            return None
        return (f"{self.name} has no {name} {'training' if role == 'source' else 'test'} set (its languages: "
                f"{', '.join(self.languages)})")

    def module_language(self, language: str) -> str:
        """The code language modules are registered under: FLORES-200 where SIB-200 has the language."""
        return self.flores.get(language, language)

    def iso_code(self, language: str) -> str | None:
        """The ISO 639-3 code of ``language`` (URIEL's key), through its module code (FLORES) where it has one, else
        the code itself read as ISO 639-1/3; None when neither names a language."""
        return iso639_3_of(self.module_language(language)) or iso639_3_of(language)

    def language_info(self, language: str) -> tuple[str, str]:
        """(name, script) for results tables; empty strings for languages outside SIB-200."""
        lang = registry().get(self.module_language(language))
        return (lang.name, lang.script) if lang else ("", "")

    # ---- data
    def check_source_data(self, source: str, source_data: str) -> None:
        if source_data not in self.source_data_choices:
            raise XlpeftError(f"unknown --source-data {source_data!r} for {self.name}: use one of "
                              f"{', '.join(self.source_data_choices)}")
        reason = self.missing_data(source, "source", source_data)
        if reason:
            raise XlpeftError(f"--source {source}: {reason}")

    def source_splits(self, source: str, source_data: str) -> tuple[Examples, Examples]:
        """The whole training and validation data of the source language (a sample is drawn from them)."""
        raise NotImplementedError

    def load(self, language: str, split: str, source_data: str = "local") -> Examples:
        """Evaluation data of ``language``; ``source_data`` matters where the source data are carved out of
        the evaluation set (XQuAD offline: only held-out articles are evaluated)."""
        raise NotImplementedError

    def sample(self, train: Examples, validation: Examples, shots: int | None, seed: int) -> FewShotSample:
        raise NotImplementedError

    def template(self, spec: str, family: str) -> Template | None:
        """The input template ``--template spec`` gives on a backbone ``family`` (templates.resolve), checked
        against this task's fields; None: the inputs as they are."""
        template = resolve(spec, self.paper_templates, family)
        if template is not None:
            template.check(self.fields, self.name)
        return template

    def model_inputs(self, examples: Examples, tokenizer, text_budget: int, training: bool) -> Examples:
        """What the model reads; the identity except where long inputs are split (XQuAD contexts)."""
        return examples

    def score(self, examples: Examples, inputs: Examples, predictions: list) -> dict:
        raise NotImplementedError

    def baselines(self, language: str, split: str, source_data: str = "local") -> dict[str, dict[str, float]]:
        """What a model must beat on ``language``'s ``split``: ``{baseline: {metric column: value}}``. None here:
        a generated string (an entity list, an answer span) has no majority class or chance level to compare
        with, so text tasks report none (classification tasks do: :meth:`ClassificationTask.baselines`)."""
        return {}

    def describe(self) -> dict:
        return {"task": self.name, "task_kind": self.kind, "labels": list(self.labels)}


class ClassificationTask(Task):
    """Texts with one of ``labels`` each; LM-head verbalizer words per model family."""

    kind: Kind = "classification"
    metric_columns = ("accuracy", "macro_f1", "n")
    label_words_by_family: dict[str, tuple[str, ...]] = {}  # family -> words; "default" for the rest
    unparsed_label: str | None = None  # the label of a generated answer that names none (NLI: neutral); None: no generation
    macro_f1_over_present = False  # macro-F1 averaged over the labels a language's gold has (defined tasks), not all

    def label_words(self, family: str) -> dict[str, str]:
        """Default verbalizer words, bare: the verbalizer writes them the way they follow other text."""
        return dict(zip(self.labels, self.label_words_by_family.get(family, self.label_words_by_family["default"])))

    def sample(self, train: Examples, validation: Examples, shots: int | None, seed: int) -> FewShotSample:
        """Balanced undersampling (methods.md A): every class cut to the size of the smallest one, then k per
        class for training and ceil(k/4) per class for validation, all drawn from ``seed`` alone."""
        if shots is None:
            return FewShotSample(train, validation, validation_per_class=0)
        if shots < 1:
            raise XlpeftError(f"--shots must be a positive number of examples per class (got {shots}); or 'all'")
        rng = np.random.default_rng(seed)
        train_cap = self._smallest_class(train)
        if shots > train_cap:
            raise XlpeftError(
                f"--shots {shots} is more than the {train_cap} examples per class that balanced undersampling "
                f"leaves in {train.language}/{train.split}; use --shots {train_cap} or less, or --shots all"
            )
        dev_cap = self._smallest_class(validation)
        per_class_val = min(math.ceil(shots / 4), dev_cap)
        return FewShotSample(
            train=train.subset(self._draw(train, shots, train_cap, rng)),
            validation=validation.subset(self._draw(validation, per_class_val, dev_cap, rng)),
            validation_per_class=per_class_val,
        )

    def _smallest_class(self, examples: Examples) -> int:
        return int(np.bincount(np.asarray(examples.labels), minlength=len(self.labels)).min())

    def _draw(self, examples: Examples, k: int, cap: int, rng: np.random.Generator) -> list[int]:
        """Undersample each class to ``cap`` (in file order, shuffled), keep the first ``k``; classes in label
        order so that the seed alone decides the subset; sorted by class, then draw order."""
        labels = np.asarray(examples.labels)
        picked: list[int] = []
        for label in range(len(self.labels)):
            members = np.flatnonzero(labels == label)
            picked.extend(int(i) for i in rng.permutation(members)[:cap][:k])
        return picked

    def score(self, examples: Examples, inputs: Examples, predictions: list[int]) -> dict:
        from xlpeft.metrics.classification import classification_metrics

        return classification_metrics(examples.labels, predictions, len(self.labels))

    def baselines(self, language: str, split: str, source_data: str = "local") -> dict[str, dict[str, float]]:
        """From the data of ``language``'s ``split``, scored as :meth:`score` scores a model:

        - ``majority``: always answering the class most frequent in this split of this language (the first in
          label order on a tie), the best any constant answer scores here; computed on the evaluated split rather
          than the source's train split so that it holds for targets whose label shares (or label sets) differ.
        - ``chance``: answering each of the task's labels uniformly at random, in expectation: accuracy 1/C
          exactly whatever the gold labels, macro-F1 exactly (:func:`expected_macro_f1_of_guessing`).

        SIB-200's test split: 25 % and 0.4/7 macro-F1 for the majority (science/technology, 51 of 204), 1/7 chance."""
        from xlpeft.metrics.classification import expected_macro_f1_of_guessing

        examples = self.load(language, split, source_data)
        counts = np.bincount(np.asarray(examples.labels, dtype=int), minlength=len(self.labels))
        majority = self.score(examples, examples, [int(counts.argmax())] * len(examples))
        chance = {"accuracy": 1 / len(self.labels),
                  "macro_f1": expected_macro_f1_of_guessing(counts.tolist(), self.macro_f1_over_present)}
        columns = [column for column in self.metric_columns if column != "n"]
        return {"majority": {column: float(majority[column]) for column in columns if column in majority},
                "chance": {column: chance[column] for column in columns if column in chance}}


class TextTask(Task):
    """Inputs with a target string each, trained by teacher forcing and predicted by greedy generation
    (NER on encoders: a tag per word instead, from ``tags``)."""

    kind: Kind = "text"
    tags: tuple[str, ...] = ()  # IOB2 tags, for tasks that encoders can tag word by word

    def sample(self, train: Examples, validation: Examples, shots: int | None, seed: int) -> FewShotSample:
        """k training examples and ceil(k/4) (at least 8) validation examples, drawn from ``seed``; ``shots``
        counts examples here, as a text-to-text task has no classes to balance."""
        if shots is None:
            return FewShotSample(train, validation, validation_per_class=0)
        if not 1 <= shots <= len(train):
            raise XlpeftError(f"--shots {shots}: {self.name} draws that many training examples from the "
                              f"{len(train)} of {train.language}/{train.split}; use 1..{len(train)} or 'all'")
        rng = np.random.default_rng(seed)
        n_val = min(len(validation), max(8, math.ceil(shots / 4)))
        return FewShotSample(train.subset(sorted(rng.permutation(len(train))[:shots].tolist())),
                             validation.subset(sorted(rng.permutation(len(validation))[:n_val].tolist())), 0)

    def answer_tokens(self, inputs: Examples, tokenizer) -> int:
        """Generation length: the longest target of ``inputs`` in tokens, plus EOS and a little room; never
        a fixed cap that would cut long answers (the reference code stopped at 20 tokens)."""
        longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in inputs.targets)
        return longest + 1 + max(2, longest // 10)
