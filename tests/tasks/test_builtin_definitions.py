"""The built-in tasks shipped as YAML definitions (NusaX, XNLI, XCOPA) read exactly what their Python readers read.

The fingerprints were recorded from the Python classes (NusaxTask over data/tasks/nusax.py, XnliTask over the
hub, XcopaTask over data/tasks/xcopa.py and English COPA from the hub) before they were replaced by
xlpeft/tasks/definitions/*.yaml: every language's train, dev and test Examples (ids, texts, labels, template
fields), the source splits, and the task's facts (labels, words, codes, metric columns, templates). A change
to the definitions or to the defined-task code that would change a run's data, and so its numbers, fails here.
"""

from __future__ import annotations

import hashlib
import json

import datasets
import pytest

from xlpeft.tasks import get_task

NUSAX = "11dd9612e4822744e3569601c9074305e21077b7dd910b43dc5643e839dac1cc"
XNLI = "90fdd5368421edab3c4c5737442cc92d1e82ec7ca2801baf65fe49a8b38251e6"


def stand_in_xnli(name, config, split):
    """XNLI's columns, six pairs per language and split, labels as the hub's class ids."""
    assert name == "facebook/xnli"
    return datasets.Dataset.from_dict({"premise": [f"{config} {split} premise {i}" for i in range(6)],
                                       "hypothesis": [f"{config} {split} hypothesis {i}" for i in range(6)],
                                       "label": [i % 3 for i in range(6)]})


def fingerprint(task) -> str:
    facts = {"name": task.name, "kind": task.kind, "labels": list(task.labels), "source": task.default_source,
             "targets": list(task.default_targets), "languages": list(task.languages),
             "modules": {lang: task.module_language(lang) for lang in task.languages},
             "iso": {lang: task.iso_code(lang) for lang in task.languages}, "metric": list(task.metric_columns),
             "words": task.label_words("default"), "source_data": list(task.source_data_choices),
             "fields": list(task.fields), "unparsed": task.unparsed_label,
             "paper": {f: [t.text, list(t.answers), t.origin] for f, t in task.paper_templates.items()}}
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
    for language in task.languages:
        for split in ("train", "dev", "test"):
            e = task.load(language, split)
            digest.update(json.dumps([e.language, e.split, e.ids, e.texts, e.labels, e.targets, e.fields],
                                     sort_keys=True).encode())
    for e in task.source_splits(task.default_source, task.source_data_choices[0]):
        digest.update(json.dumps([e.language, e.split, e.ids, e.texts, e.labels, e.fields], sort_keys=True).encode())
    return digest.hexdigest()


def test_nusax_reads_what_its_python_reader_read(sib_dir):
    data_root = sib_dir.parent
    if not (data_root / "tasks" / "nusax").is_dir():
        pytest.skip(f"no NusaX copy under {data_root}")
    task = get_task("nusax", data_root)
    assert fingerprint(task) == NUSAX
    # the metric is unchanged too: macro-F1 over present labels equals macro-F1 over all where all occur
    assert all(len(set(task.load(lang, "test").labels)) == 3 for lang in task.languages)


def test_xnli_reads_what_its_python_reader_read(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the stand-in answers as datasets' cache would: no network probe
    monkeypatch.setattr(datasets, "load_dataset", stand_in_xnli)
    assert fingerprint(get_task("xnli")) == XNLI


# ------------------------------------------------------------------------------------------------------ XCOPA
XCOPA = "35ea0e31ecb598552a188b36c128a58b2f596f72509366fc52f5375e59aaa79c"


def stand_in_copa(name, config, split):
    """English COPA's columns on the hub (``aps/super_glue``, ``copa``): five items per split."""
    assert (name, config) == ("aps/super_glue", "copa")
    return datasets.Dataset.from_dict({"premise": [f"{split} premise {i}." for i in range(5)],
                                       "choice1": [f"{split} first {i}" for i in range(5)],
                                       "choice2": [f"{split} second {i} " for i in range(5)],
                                       "question": ["cause", "effect", "cause", "effect", "cause"],
                                       "idx": list(range(5)), "label": [0, 1, 1, 0, 1]})


def choice_fingerprint(task) -> str:
    """XCOPA's facts, every language's dev and test Examples (ids, texts, golds, choices, template fields), every
    offline source's train and validation split and the samples drawn from them, and English COPA from the hub.
    A source split's ``Examples.split`` is left out: it names the file a split was read as (XcopaTask: "dev", the
    validation items; a definition: "train"/"dev"), is never stored, and only appears in error messages."""
    facts = {"name": task.name, "kind": task.kind, "labels": list(task.labels), "source": task.default_source,
             "targets": list(task.default_targets), "languages": list(task.languages),
             "modules": {lang: task.module_language(lang) for lang in task.languages},
             "iso": {lang: task.iso_code(lang) for lang in task.languages},
             "info": {lang: list(task.language_info(lang)) for lang in task.languages},
             "metric": list(task.metric_columns), "source_data": list(task.source_data_choices),
             "fields": list(task.fields), "paper": {f: t.text for f, t in task.paper_templates.items()}}
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())

    def add(e, split=True):
        digest.update(json.dumps([e.language, e.split if split else "", e.ids, e.texts, e.labels, e.choices,
                                  e.fields], sort_keys=True).encode())

    for language in task.default_targets:
        for split in ("dev", "test"):
            add(task.load(language, split))
        train, validation = task.source_splits(language, "local")
        add(train, split=False), add(validation, split=False)
        for seed in (0, 1):
            sample = task.sample(train, validation, 8, seed)
            add(sample.train, split=False), add(sample.validation, split=False)
    for e in task.source_splits("en", "hub"):
        add(e, split=False)
    return digest.hexdigest()


def test_xcopa_reads_what_its_python_reader_read(monkeypatch, sib_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the stand-in answers as datasets' cache would: no network probe
    data_root = sib_dir.parent
    if not (data_root / "tasks" / "xcopa").is_dir():
        pytest.skip(f"no XCOPA copy under {data_root}")
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split: stand_in_copa(name, config, split))
    assert choice_fingerprint(get_task("xcopa", data_root)) == XCOPA
