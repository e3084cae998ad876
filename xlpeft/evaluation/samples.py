"""Per-example outputs (``xlpeft evaluate --log-samples``), as lm-evaluation-harness's ``--log_samples``.

One JSON Lines file per result row, ``<CSV stem>.samples/<run>/<language>.jsonl`` beside the results CSV:
a row (run x language) is the unit evaluation computes, writes, reuses and replaces, so each file is
written atomically with its row (before it), a resumed evaluation skips it with the row, a recomputed row
rewrites it whole (never appends twice), and another run or language never touches it. One file per
evaluation output would have to be merged and deduplicated on every language instead.

Each line is one example of the split, in the split's order. lm-evaluation-harness's records hold
``doc_id``, ``doc``, ``target``, ``resps``/``filtered_resps`` and each metric's value; here:

- ``doc_id`` (position in the split), ``id`` (the dataset's own id), ``input`` (what the model read: the
  token ids after the text budget cut them, decoded; without the soft prompt; a list of context windows
  for XQuAD), ``target`` and ``prediction``;
- classification: label names, ``accuracy`` (1.0 or 0.0) and ``scores``, the label scores the prediction
  is the argmax of (logits over the label words, not log-probabilities: the cached path computes the
  label words' logits only, not the whole vocabulary a log-probability needs);
- text-to-text: the generated text (tagging encoders: IOB2 tags per word), ``score`` (mean log-probability
  per generated token, XQuAD: of the window chosen) and the task's metrics on that one example (the row's
  entity F1 is micro over all entities: recompute it from ``target`` and ``prediction``);
- multiple choice: ``choices`` (as the dataset gives them), ``target`` and ``prediction`` (indices into
  ``choices``), ``scores`` (each choice's score under the row's ``choice_score``: the log-likelihood, or per
  character), ``loglikelihoods`` (each choice's summed log-likelihood after the input) and ``accuracy``;
- the row's identity (``run``, ``run_id``, ``language``, split, precision, weights, generation length,
  method B's ``module_id``): a file is reused only while it matches its row.

The row's numbers are the task's scores of these predictions: ``accuracy``, and macro-F1 over ``target`` and
``prediction``, recompute the row (tests/evaluation/test_samples.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from xlpeft.evaluation.identity import EvalIdentity, same_values
from xlpeft.files import atomic_write
from xlpeft.tasks import Examples, Task

IDENTITY = ("run", "run_id", "language", *EvalIdentity.columns(), "module_id")


def samples_dir(out_csv: Path) -> Path:
    """The folder of ``out_csv``'s samples, beside it."""
    return out_csv.with_name(f"{out_csv.stem}.samples")


def samples_path(out_csv: Path, run: str, language: str) -> Path:
    """Where the samples of one result row of ``out_csv`` go."""
    return samples_dir(out_csv) / run / f"{language}.jsonl"


def write_samples(path: Path, row: dict, records: list[dict]) -> None:
    """``records`` as JSON Lines, each with ``row``'s identity first (atomic: the old file or the new one)."""
    head = {name: row.get(name) for name in IDENTITY}
    text = "".join(json.dumps({**head, **record}, ensure_ascii=False, default=_plain) + "\n" for record in records)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def samples_current(path: Path, row: dict) -> bool:
    """Whether ``path`` holds the samples of ``row`` as it stands (a row recomputed since without
    ``--log-samples`` leaves samples of other numbers behind)."""
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as file:
        first = file.readline()
    return bool(first) and same_values(json.loads(first), row, IDENTITY)


def classification_records(task: Task, examples: Examples, read: list[str], predicted) -> list[dict]:
    """One record per example: ``predicted`` is the class ids with their ``scores`` ([N, n_labels]), or the
    labels read from generated answers (``ParsedAnswers``, ``--nli-output generate``), which have no scores."""
    labels = task.labels
    ids = getattr(predicted, "labels", predicted)
    scores = predicted.scores.tolist() if hasattr(predicted, "scores") else [None] * len(ids)
    records = []
    for i, (gold, pred, row) in enumerate(zip(examples.labels, ids, scores)):
        record = {"doc_id": i, "id": examples.ids[i], "input": read[i], "target": labels[gold],
                  "prediction": labels[pred], "accuracy": float(gold == pred)}
        records.append(record if row is None else {**record, "scores": dict(zip(labels, row))})
    return records


def choice_records(examples: Examples, read: list[str], chosen) -> list[dict]:
    """One record per multiple-choice example: ``chosen`` is the predicted indices with every choice's log-likelihood
    (``Choices``); the scores it ranked by and the summed log-likelihoods are both kept."""
    scores = chosen.scores.scores(chosen.kind)
    return [{"doc_id": i, "id": examples.ids[i], "input": read[i], "choices": list(examples.choices[i]),
             "target": gold, "prediction": pred, "scores": scores[i], "loglikelihoods": chosen.scores.loglik[i],
             "accuracy": float(gold == pred)}
            for i, (gold, pred) in enumerate(zip(examples.labels, chosen))]


def text_records(task: Task, examples: Examples, inputs: Examples, outputs: list, read: list[str]) -> list[dict]:
    """One record per scored example; ``inputs`` are what the model read (XQuAD: several windows of one
    question, its prediction the best-scoring window's answer, the first on a tie, as the task gathers them)."""
    tagging = bool(outputs) and isinstance(outputs[0], list)  # a tagging encoder's IOB2 tags per word
    records = []
    for i, positions in enumerate(_positions(examples, inputs)):
        metrics = task.score(examples.subset([i]), inputs.subset(positions), [outputs[p] for p in positions])
        record = {"doc_id": i, "id": examples.ids[i],
                  "input": read[positions[0]] if inputs.groups is None else [read[p] for p in positions],
                  "target": _target(examples, i, tagging)}
        if tagging:
            record["prediction"] = outputs[positions[0]]
        else:
            chosen = outputs[max(positions, key=lambda p: outputs[p].score)]
            record.update(prediction=chosen.text, score=chosen.score)
        records.append({**record, **{name: value for name, value in metrics.items() if name != "n"}})
    return records


def _positions(examples: Examples, inputs: Examples) -> list[list[int]]:
    """The positions in ``inputs`` of each example's model inputs (one each, unless inputs are grouped)."""
    if inputs.groups is None:
        return [[i] for i in range(len(examples))]
    by_group = defaultdict(list)
    for position, group in enumerate(inputs.groups):
        by_group[group].append(position)
    return [by_group[example_id] for example_id in examples.ids]


def _target(examples: Examples, i: int, tagging: bool):
    """What the example is scored against: a sentence's tags (tagging), all of a question's answers, or the
    target string."""
    item = examples.items[i] if examples.items is not None else None
    if tagging:
        return list(item.tags)
    if hasattr(item, "answers"):
        return [answer.text for answer in item.answers]
    return examples.targets[i]


def _plain(value):
    """numpy numbers (dataset ids) as Python numbers."""
    return value.item() if hasattr(value, "item") else str(value)
