"""Multiple-choice tasks (kind ``choice``): an input, a few choices, the index of the right one; XCOPA is the first.

Each choice is scored by the backbone's log-likelihood of it after the input (heads/choice.py, lm-evaluation-
harness style) and the likeliest is the prediction; the metric is accuracy (lm-evaluation-harness's ``acc``, or
with ``--choice-score per_char`` its length-normalised ``acc_norm``). Training is text-to-text teacher forcing on
the gold choice (``model_inputs`` makes it the target), so method A's prompts and method B's task modules train
on multiple choice unchanged, and the epoch is kept by validation loss. A ranking loss over the choices (the
gold one against the others) would use the wrong choices too; it is left for later.

Few-shot sampling draws k examples from the seed, as text-to-text tasks do, not balanced by the gold index:
the index is a position among the choices, not a class, and it never reaches the model (training reads the
gold choice's text), so there is nothing for a balance to correct.

How a dataset's rows become examples is data, not code (``text_template``, ``value_maps``, ``choice_columns``,
``gold_column``, ``id_column``), so that a task definition can state it: ``rows_to_examples`` is all a task
needs once its reader gives rows as dicts.

- XCOPA: English COPA (``--source-data hub``: ``aps/super_glue``'s ``copa``, 400 training items, its 100
  validation items validate) or, offline, one XCOPA language's 100 validation items (``--source it``: a fixed
  quarter of them validates, the rest train; an in-language fallback, not zero-shot transfer, as AmericasNLI's);
  every language's 500 test items are evaluated. The input is the premise and the question written as an English
  question, ``"{premise} What was the cause of this?"`` or ``"{premise} What happened as a result?"`` (the
  wording of unitxt's COPA card), in every language; the choices are ``choice1`` and ``choice2``.
  lm-evaluation-harness instead cuts the premise's final character and continues it with a per-language
  connector ("because" / "therefore" in English); a question needs no cutting of the premise (Thai and Chinese
  premises end in other characters) and reads the same after any placement of the prompt.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import get_args

import numpy as np

from xlpeft.data.task_names import SourceData
from xlpeft.data.tasks import xcopa
from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import Examples, Kind, Task, TextTask
from xlpeft.tasks.templates import TEXT_FIELD, Template


class MultipleChoiceTask(Task):
    """Inputs with a few choices each, one of them gold (``Examples.choices``, ``labels``); accuracy."""

    kind: Kind = "choice"
    metric_columns = ("accuracy", "n")
    # how the dataset's rows become examples (rows_to_examples): data that a task definition can give
    text_template: str = "{" + TEXT_FIELD + "}"  # the input, over the rows' columns (after value_maps)
    value_maps: dict[str, dict[str, str]] = {}  # column -> {stored value: what the input says}
    choice_columns: tuple[str, ...] = ()  # the columns holding the choices, in order
    gold_column: str = "label"  # the index of the gold choice among choice_columns
    id_column: str = "idx"  # the dataset's own id; row positions where it is absent

    # k examples drawn from the seed alone, as text-to-text tasks do (the module docstring says why)
    sample = TextTask.sample

    def rows_to_examples(self, language: str, split: str, rows: list[dict]) -> Examples:
        """``rows`` (one dict of column values each) as examples: the input written by ``text_template`` (its
        columns kept as template fields), the choices, the gold index; a row whose gold index names no choice or
        whose choice is empty is an error naming the row."""
        template = Template(self.text_template)
        fields = {name: [self._value(name, row) for row in rows] for name in template.fields}
        choices = [tuple(str(row[column]).strip() for column in self.choice_columns) for row in rows]
        ids = [row.get(self.id_column, i) for i, row in enumerate(rows)]
        labels = [int(row[self.gold_column]) for row in rows]
        for row_id, options, gold in zip(ids, choices, labels):
            if not 0 <= gold < len(options) or not all(options):
                raise XlpeftError(f"{self.name} {language}/{split} item {row_id}: gold index {gold} among "
                                  f"{len(options)} choices {list(options)}; every choice needs text and the gold "
                                  f"index must be 0..{len(options) - 1} ({self.gold_column!r})")
        texts = [template.render({name: fields[name][i] for name in template.fields}) for i in range(len(rows))]
        named = {name: values for name, values in fields.items() if name != TEXT_FIELD}
        return Examples(language, split, ids, texts, labels=labels, fields=named or None, choices=choices)

    def _value(self, column: str, row: dict) -> str:
        value = str(row[column])
        return self.value_maps.get(column, {}).get(value, value)

    def model_inputs(self, examples: Examples, tokenizer, text_budget: int, training: bool) -> Examples:
        """The inputs as they are, with the gold choice as each one's target (what training teacher-forces)."""
        return replace(examples, targets=[options[gold] for options, gold in zip(examples.choices, examples.labels)])

    def score(self, examples: Examples, inputs: Examples, predictions: list[int]) -> dict:
        """Accuracy of the predicted choice indices (lm-evaluation-harness's ``acc``) and the count."""
        n = len(examples)
        correct = sum(int(p == g) for p, g in zip(predictions, examples.labels))
        return {"accuracy": correct / n if n else float("nan"), "n": n}


def held_out_quarter(examples: Examples) -> tuple[Examples, Examples]:
    """(train, validation) of one split: a fixed quarter validates (seed 0, the same for every run seed, so no
    seed trains on another seed's validation items), the rest trains; as AmericasNLI's offline source."""
    order = np.random.default_rng(0).permutation(len(examples))
    held = set(order[: len(examples) // 4].tolist())
    return (examples.subset([i for i in range(len(examples)) if i not in held]), examples.subset(sorted(held)))


class XcopaTask(MultipleChoiceTask):
    """XCOPA: 11 languages' cause/effect alternatives; English COPA (hub) or a target's validation items (offline)."""

    name = "xcopa"
    text_template = "{premise} {question}"
    value_maps = {"question": {"cause": "What was the cause of this?", "effect": "What happened as a result?"}}
    choice_columns = ("choice1", "choice2")
    gold_column = "label"
    id_column = "idx"
    fields = (TEXT_FIELD, "premise", "question")  # question: as the input words it
    default_source = xcopa.SOURCE
    default_targets = xcopa.LANGUAGES
    flores = {**xcopa.FLORES, xcopa.SOURCE: "eng_Latn"}
    source_data_choices = get_args(SourceData)

    @property
    def languages(self):
        return (xcopa.SOURCE, *xcopa.LANGUAGES)

    def check_source_data(self, source, source_data):
        super().check_source_data(source, source_data)
        if source == xcopa.SOURCE and source_data != "hub":
            raise XlpeftError("XCOPA has no training split and English COPA is not in the local copy: train on English "
                              "COPA with --source-data hub (online), or offline on one XCOPA language's validation items "
                              f"with --source one of {', '.join(xcopa.LANGUAGES)}")
        if source != xcopa.SOURCE and source_data == "hub":
            raise XlpeftError(f"--source-data hub means English COPA: use --source {xcopa.SOURCE} with it")

    def source_splits(self, source, source_data):
        if source == xcopa.SOURCE:
            return (self._examples(xcopa.load_copa_english("train")),
                    self._examples(xcopa.load_copa_english("validation")))
        return held_out_quarter(self._examples(xcopa.load(source, "dev", self.data_dir)))

    def load(self, language, split, source_data="local"):
        if language == xcopa.SOURCE:
            raise XlpeftError("XCOPA evaluates its 11 languages; English (COPA) is only a training source")
        return self._examples(xcopa.load(language, split, self.data_dir))

    def _examples(self, data: xcopa.CopaSplit) -> Examples:
        return self.rows_to_examples(data.language, data.name, [asdict(example) for example in data.examples])
