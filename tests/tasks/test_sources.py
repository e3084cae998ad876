"""Several source languages (tasks/sources.py, TrainConfig.resolve): the stored source set, each language's sample
against counts read from the files, a language's sample independent of the others, one source as before."""

import hashlib
import json
import math

import pandas as pd
import pytest

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.experiments.grid import run_id
from xlpeft.tasks import Examples, get_task
from xlpeft.tasks.sources import evaluation_languages, language_seed, sample_sources, source_languages, union

SOURCES = "eng_Latn,fra_Latn,arb_Arab"


@pytest.fixture(scope="module")
def sib(sib_dir):
    return get_task("sib200", sib_dir)


@pytest.fixture(scope="module")
def data_root(sib_dir):
    """The data root: the folder holding sib200/ and tasks/."""
    if not (sib_dir.parent / "tasks").is_dir():
        pytest.skip(f"no tasks/ folder beside {sib_dir}")
    return sib_dir.parent


def _digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()[:16]


def _resolved(task_dir, **settings) -> TrainConfig:
    config = TrainConfig(**settings)
    config.resolve(get_task(config.task, task_dir))
    return config


# run ids and sample digests computed on main at f0e8578, before several sources existed
@pytest.mark.parametrize("settings, rid", [({}, "54bafa01af16"), ({"source": "eng_Latn"}, "54bafa01af16"),
                                           ({"source": "fra_Latn", "seed": 1}, "d43a08078e52"),
                                           ({"task": "nusax", "source": "eng"}, "ac659004d208"),
                                           ({"task": "nusax", "source": "jav", "shots": 4}, "544383bcdb92")])
def test_a_single_source_keeps_its_stored_form_and_run_id(data_root, settings, rid):
    config = _resolved(data_root, **settings)
    assert "," not in config.source and run_id(config) == rid


@pytest.mark.parametrize("task, source, shots, seed, digest", [
    ("sib200", "eng_Latn", 4, 0, "a84db022c2fd388f"), ("sib200", "fra_Latn", 8, 3, "f6a076cc285d3498"),
    ("nusax", "eng", 4, 0, "2eaefaba24e79677"), ("masakhaner", "eng", 8, 0, "dc279297c1739c62")])
def test_a_single_source_draws_the_sample_it_drew_before(data_root, task, source, shots, seed, digest):
    t = get_task(task, data_root)
    sample = sample_sources(t, source, "local", shots, seed)
    assert sample.seeds == {source: seed} and sample.train is sample.samples[source].train
    assert _digest(sample.record(t.labels)) == digest  # sample.json's ids, exactly as main wrote them


@pytest.mark.parametrize("shots", [4, 5])
def test_several_sources_sample_k_per_class_in_each_language(sib, sib_dir, shots):
    sample = sample_sources(sib, SOURCES, "local", shots, seed=0)
    record = sample.record(sib.labels)["languages"]
    assert list(record) == source_languages(SOURCES)
    for language in source_languages(SOURCES):
        train = pd.read_csv(sib_dir / language / "train.tsv", sep="\t", index_col="index_id")
        dev = pd.read_csv(sib_dir / language / "dev.tsv", sep="\t", index_col="index_id")
        ids = record[language]["train_index_ids"]
        assert len(set(ids)) == len(ids) == 7 * shots
        assert train.loc[ids, "category"].value_counts().to_dict() == dict.fromkeys(sib.labels, shots)
        val_ids = record[language]["validation_index_ids"]
        per_class = math.ceil(shots / 4)
        assert dev.loc[val_ids, "category"].value_counts().to_dict() == dict.fromkeys(sib.labels, per_class)
        assert record[language]["train_counts"] == dict.fromkeys(sib.labels, shots)
        assert record[language]["validation_counts"] == dict.fromkeys(sib.labels, per_class)
        assert record[language]["seed"] == language_seed(0, language)
    # the union the run trains on: every language's examples, in the order given
    assert len(sample.train) == 3 * 7 * shots and sample.train.language == SOURCES
    assert sample.train.texts[:7 * shots] == sample.samples["eng_Latn"].train.texts


def test_a_languages_sample_does_not_depend_on_the_other_sources(sib):
    alone = sample_sources(sib, "fra_Latn,eng_Latn", "local", 4, seed=2).samples["eng_Latn"]
    for others in ("eng_Latn,arb_Arab", "arb_Arab,deu_Latn,eng_Latn"):
        with_others = sample_sources(sib, others, "local", 4, seed=2).samples["eng_Latn"]
        assert with_others.record() == alone.record()
    again = sample_sources(sib, SOURCES, "local", 4, seed=2)
    assert again.record(sib.labels) == sample_sources(sib, SOURCES, "local", 4, seed=2).record(sib.labels)
    assert again.samples["eng_Latn"].record() == alone.record()
    other_seed = sample_sources(sib, SOURCES, "local", 4, seed=3).samples["eng_Latn"]
    assert other_seed.train.ids != alone.train.ids


def test_a_text_task_samples_k_examples_per_language(data_root):
    xquad = get_task("xquad", data_root)
    sample = sample_sources(xquad, "en,de", "local", 8, seed=0)
    for language in ("en", "de"):
        train, validation = xquad.source_splits(language, "local")
        part = sample.samples[language]
        assert len(part.train) == 8 and set(part.train.ids) <= set(train.ids)
        assert len(part.validation) == 8 and set(part.validation.ids) <= set(validation.ids)  # ceil(8/4), at least 8
        assert sample.record(xquad.labels)["languages"][language]["train_counts"] == {"examples": 8}


def test_union_joins_every_field_language_after_language():
    a = Examples("x", "train", [1, 2], ["a1", "a2"], labels=[0, 1], fields={"premise": ["p1", "p2"]})
    b = Examples("y", "train", [1], ["b1"], labels=[2], fields={"premise": ["q1"]})
    joined = union([a, b], "x,y")
    assert (joined.language, joined.ids, joined.texts, joined.labels) == ("x,y", [1, 2, 1], ["a1", "a2", "b1"], [0, 1, 2])
    assert joined.fields == {"premise": ["p1", "p2", "q1"]} and joined.targets is None and union([a], "x") is a


def test_several_sources_are_stored_as_one_string_in_the_order_given(sib_dir):
    config = _resolved(sib_dir, source=" fra_Latn, eng_Latn,deu")  # ISO 639-3 resolved, as for one source
    assert config.source == "fra_Latn,eng_Latn,deu_Latn"
    assert run_id(config) != run_id(_resolved(sib_dir, source="eng_Latn,fra_Latn,deu_Latn"))


@pytest.mark.parametrize("source, message", [
    ("eng_Latn,fra_Latn,eng_Latn", "eng_Latn is given twice; name each source language once"),
    ("deu,deu_Latn", "deu_Latn is given twice"),
    ("eng_Latn,quick", "the source must be one language, not 'quick'"),
    ("eng_Latn,engl_Latn", "unknown language 'engl_Latn'")])
def test_a_bad_source_set_is_refused_naming_the_language(sib_dir, source, message):
    with pytest.raises(XlpeftError, match=message):
        _resolved(sib_dir, source=source)


@pytest.mark.parametrize("configuration", ["la+ta", "la+tp", "slp+ta", "slp+tp"])
def test_method_b_stacking_a_language_module_takes_one_source(sib_dir, configuration):
    with pytest.raises(XlpeftError, match=f"stacks the source language's .* module, one per run: give one source "
                                          f"language, or train {configuration[-2:]} alone on several"):
        _resolved(sib_dir, source="eng_Latn,fra_Latn", configuration=configuration, modules_dir="modules")
    assert _resolved(sib_dir, source="eng_Latn", configuration=configuration, modules_dir="modules").source == "eng_Latn"


@pytest.mark.parametrize("configuration", ["ta", "tp"])
def test_method_b_task_modules_alone_train_on_several_sources(sib_dir, configuration):
    assert _resolved(sib_dir, source="eng_Latn,fra_Latn", configuration=configuration).source == "eng_Latn,fra_Latn"


def test_targets_leave_out_every_language_of_a_runs_source_set(data_root):
    nusax = get_task("nusax", data_root)
    before = nusax.resolve_languages("targets")
    assert evaluation_languages(nusax, "targets", ["eng", "jav"]) == before  # one source each: as before
    assert evaluation_languages(nusax, "targets", ["eng,jav,sun"]) == [c for c in before if c not in ("jav", "sun")]
    assert evaluation_languages(nusax, "jav,sun", ["eng,jav,sun"]) == ["jav", "sun"]  # named languages stay
    sib = get_task("sib200", data_root / "sib200")
    targets = evaluation_languages(sib, "targets", ["eng_Latn,fra_Latn"])
    assert len(targets) == 203 and not {"eng_Latn", "fra_Latn"} & set(targets)
