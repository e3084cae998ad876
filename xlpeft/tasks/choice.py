"""Multiple-choice tasks (kind ``choice``): an input, a few choices, the index of the right one.

Each choice is scored by the backbone's log-likelihood of it after the input (heads/choice.py, lm-evaluation-
harness style) and the likeliest is the prediction; the metric is accuracy (lm-evaluation-harness's ``acc``, or
with ``--choice-score per_char`` its length-normalised ``acc_norm``). Training is text-to-text teacher forcing on
the gold choice (``model_inputs`` makes it the target), so method A's prompts and method B's task modules train
on multiple choice unchanged, and the epoch is kept by validation loss. A ranking loss over the choices (the
gold one against the others) would use the wrong choices too; it is left for later.

Few-shot sampling draws k examples from the seed, as text-to-text tasks do, not balanced by the gold index:
the index is a position among the choices, not a class, and it never reaches the model (training reads the
gold choice's text), so there is nothing for a balance to correct.

The tasks themselves are definitions (``kind: multiple_choice``, ``tasks/defined.py``): XCOPA, XStoryCloze and
Belebele ship in ``definitions/``; how their rows become examples (input template, choice columns, gold column,
value maps) is stated there.
"""

from __future__ import annotations

from dataclasses import replace

from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import Examples, Kind, Task, TextTask


class MultipleChoiceTask(Task):
    """Inputs with a few choices each, one of them gold (``Examples.choices``, ``labels``); accuracy."""

    kind: Kind = "choice"
    metric_columns = ("accuracy", "n")
    # k examples drawn from the seed alone, as text-to-text tasks do (the module docstring says why)
    sample = TextTask.sample

    def model_inputs(self, examples: Examples, tokenizer, text_budget: int, training: bool) -> Examples:
        """The inputs as they are, with the gold choice as each one's target (what training teacher-forces)."""
        return replace(examples, targets=[options[gold] for options, gold in zip(examples.choices, examples.labels)])

    def score(self, examples: Examples, inputs: Examples, predictions: list[int]) -> dict:
        """Accuracy of the predicted choice indices (lm-evaluation-harness's ``acc``) and the count."""
        n = len(examples)
        correct = sum(int(p == g) for p, g in zip(predictions, examples.labels))
        return {"accuracy": correct / n if n else float("nan"), "n": n}


def choice_examples(examples: Examples, gold_column: str, task: str) -> Examples:
    """``examples`` (with ``choices`` and gold ``labels``) checked: an item whose gold index names no choice, or one
    of whose choices is empty, is an error naming the item."""
    for row_id, options, gold in zip(examples.ids, examples.choices, examples.labels):
        if not 0 <= gold < len(options) or not all(options):
            raise XlpeftError(f"{task} {examples.language}/{examples.split} item {row_id}: gold index {gold} among "
                              f"{len(options)} choices {list(options)}; every choice needs text and the gold "
                              f"index must be 0..{len(options) - 1} ({gold_column!r})")
    return examples
