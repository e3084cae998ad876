import math
from collections import Counter

import pytest

from xlpeft.data.sib200 import LABELS, Sib200
from xlpeft.errors import XlpeftError
from xlpeft.tasks import Examples, get_task


def few_shot(train, dev, shots, seed):
    """SIB-200's balanced sampler (xlpeft.tasks.ClassificationTask.sample) on two read splits."""
    def examples(split):
        return Examples(split.language, split.name, split.index_ids, split.texts, labels=split.labels)

    return get_task("sib200").sample(examples(train), examples(dev), shots, seed)


@pytest.fixture(scope="module")
def eng(sib_dir):
    data = Sib200.resolve(sib_dir)
    return data.load("eng_Latn", "train"), data.load("eng_Latn", "dev")


def test_reads_folder_or_parent_with_quoting(sib_dir, eng):
    assert Sib200.resolve(sib_dir.parent).root == Sib200.resolve(sib_dir).root
    train, dev = eng
    assert (len(train), len(dev)) == (701, 99)
    assert sum(t.startswith('"') for t in train.texts) > 0  # rows that begin with a quote survive
    assert Counter(train.labels)[LABELS.index("science/technology")] == 176


def test_data_dir_from_environment(sib_dir, monkeypatch):
    monkeypatch.setenv("XLPEFT_DATA_DIR", str(sib_dir))
    assert Sib200.resolve(None).root == sib_dir.resolve()


def test_missing_data_dir_names_the_fix(tmp_path):
    with pytest.raises(XlpeftError, match="--data-dir"):
        Sib200.resolve(tmp_path / "nope")


def test_malformed_file_is_named(tmp_path):
    (tmp_path / "eng_Latn").mkdir()
    (tmp_path / "eng_Latn" / "train.tsv").write_text("index_id\tlabel\ttext\n1\tx\thello\n")
    with pytest.raises(XlpeftError, match="malformed.*missing columns"):
        Sib200.resolve(tmp_path).load("eng_Latn", "train")


@pytest.mark.parametrize("k", [1, 5, 32])
def test_sampling_is_balanced_and_seeded(eng, k):
    train, dev = eng
    a, b, c = few_shot(train, dev, k, seed=7), few_shot(train, dev, k, seed=7), few_shot(train, dev, k, seed=8)
    assert a.train.ids == b.train.ids and a.validation.ids == b.validation.ids
    assert a.train.ids != c.train.ids
    assert set(Counter(a.train.labels).values()) == {k} and len(Counter(a.train.labels)) == 7
    assert set(Counter(a.validation.labels).values()) == {min(math.ceil(k / 4), 8)}
    assert set(a.train.ids) <= set(train.index_ids)
    assert a.record()["train_index_ids"] == a.train.ids


def test_k32_uses_all_eight_validation_examples_per_class(eng):
    sample = few_shot(*eng, shots=32, seed=0)
    assert (len(sample.train), len(sample.validation), sample.validation_per_class) == (224, 56, 8)


def test_k_beyond_smallest_class_is_an_error(eng):
    with pytest.raises(XlpeftError, match="--shots 58 or less"):
        few_shot(*eng, shots=59, seed=0)


def test_shots_all_keeps_the_splits(eng):
    sample = few_shot(*eng, shots=None, seed=0)
    assert (len(sample.train), len(sample.validation)) == (701, 99)


def test_no_data_dir_and_no_hub_fails_in_seconds(monkeypatch):
    import time

    monkeypatch.delenv("XLPEFT_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("xlpeft.data.sib200.hub_reachable", lambda: False)
    start = time.perf_counter()
    with pytest.raises(XlpeftError, match="hub .* is unreachable; pass --data-dir"):
        Sib200.resolve(None).load("eng_Latn", "train")
    assert time.perf_counter() - start < 5
