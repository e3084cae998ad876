"""URIEL distances: the same values as urielplus, missing values explained, the cache used and safe."""

from __future__ import annotations

import json
import logging
import math

import pytest

from xlpeft import files
from xlpeft.data import distances as D
from xlpeft.errors import XlpeftError

PAIRS = [("eng_Latn", "deu_Latn"), ("eng_Latn", "swh_Latn"), ("eng_Latn", "yor_Latn"), ("eng_Latn", "zho_Hans"),
         ("fra_Latn", "spa_Latn"), ("eng_Latn", "arb_Arab")]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def uriel():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    from urielplus import urielplus

    instance = urielplus.URIELPlus()
    root.handlers[:] = handlers  # urielplus calls logging.basicConfig(level=INFO) on import: undo it
    root.setLevel(level)
    return instance


def _reference(uriel, kind: str, source: str, target: str) -> float:
    """urielplus's own pair computation, NaN where it refuses (no shared features)."""
    try:
        return round(float(uriel.new_distance(kind, [source[:3], target[:3]])), 4)
    except ValueError:
        return math.nan


def test_same_values_as_urielplus(uriel):
    table = D.distances(["eng_Latn", "fra_Latn"], sorted({target for _, target in PAIRS}))
    table = table.set_index(["source", "target"])
    for source, target in PAIRS:
        for kind in D.ALL_KINDS:
            ours, theirs = table.loc[(source, target), kind], _reference(uriel, kind, source, target)
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs)), (source, target, kind)
    assert table.loc[("eng_Latn", "deu_Latn"), "genetic"] < table.loc[("eng_Latn", "zho_Hans"), "genetic"]


def test_missing_feature_group_is_nan_with_a_reason(uriel):
    # URIEL has no phonological (P_) feature for Modern Standard Arabic, but has English's
    pytest.raises(ValueError, uriel.new_distance, "phonological", ["eng", "arb"])
    forward = D.distances(["eng_Latn"], ["arb_Arab"]).iloc[0]
    backward = D.distances(["arb_Arab"], ["eng_Latn", "arb_Latn"]).set_index("target")
    assert math.isnan(forward["phonological"]) and forward["missing_phonological"] == "target_without_kind"
    assert backward.loc["eng_Latn", "missing_phonological"] == "source_without_kind"
    assert backward.loc["arb_Latn", "missing_phonological"] == "both_without_kind"
    assert forward["missing_syntactic"] is None and not math.isnan(forward["syntactic"])
    reasons = {*forward.filter(like="missing_").dropna(), *backward.filter(like="missing_").stack().dropna()}
    assert reasons and reasons <= set(D.MISSING_REASONS)


def test_unknown_language_or_kind_is_a_user_error():
    with pytest.raises(XlpeftError, match="xyz_Latn"):
        D.distances(["eng_Latn"], ["xyz_Latn"])
    with pytest.raises(XlpeftError, match="syntactic"):
        D.distances(["eng_Latn"], ["deu_Latn"], kinds=("lexical",))


def test_second_call_reads_the_cache(tmp_path, monkeypatch):
    first = D.distances(["eng_Latn"], ["deu_Latn", "yor_Latn"])
    files = list((tmp_path / "uriel").glob("*/eng.json"))
    assert len(files) == 1 and set(json.loads(files[0].read_text())) == {"deu", "yor"}

    def fail(*args):
        raise AssertionError("computed again instead of reading the cache")

    monkeypatch.setattr(D, "_compute", fail)
    again = D.distances(["eng_Latn"], ["yor_Latn", "deu_Latn"], kinds=("genetic", "syntactic"))
    assert again.set_index("target")["genetic"].to_dict() == first.set_index("target")["genetic"].to_dict()


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    D.distances(["eng_Latn"], ["deu_Latn"])
    path = next((tmp_path / "uriel").glob("*/eng.json"))
    before = path.read_text()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError):
        D.distances(["eng_Latn"], ["swh_Latn"])  # a new target: the file must be rewritten
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["eng.json"]  # no temporary file left behind


def test_cache_key_changes_with_the_urielplus_version(monkeypatch):
    key = D._cache_key()
    monkeypatch.setattr(D.importlib.metadata, "version", lambda name: "0.0.1")
    D._cache_key.cache_clear()
    try:
        assert D._cache_key() != key
    finally:
        D._cache_key.cache_clear()


def test_coordinates_from_glottolog_or_recovered_from_uriel():
    table = D.coordinates(["eng_Latn", "zho_Hans"]).set_index("language")
    assert table.loc["eng_Latn", "coord_source"] == "glottolog"
    assert (table.loc["eng_Latn", "latitude"], table.loc["eng_Latn", "longitude"]) == (53.0, -1.0)
    # Chinese (the macrolanguage zho) has no Glottocode: its point is recovered from URIEL's features
    assert table.loc["zho_Hans", "coord_source"] == "uriel_geographic"
    assert 30 < table.loc["zho_Hans", "latitude"] < 40 and 105 < table.loc["zho_Hans", "longitude"] < 120
    # where both exist, the recovered point lies near Glottolog's (Swahili: a few km)
    latitude, longitude = D._uriel_point("swh")
    assert abs(latitude - -8.25605) < 0.5 and abs(longitude - 37.624) < 0.5
