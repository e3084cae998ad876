"""Unlabeled text per language: the text/ folders, SIB-200 train text, user files, hub datasets."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import regex

import xlpeft.data.text as text
from xlpeft.data.text import available_sources, load_text, tokenize, wikipedia_config
from xlpeft.errors import XlpeftError

CYRILLIC = regex.compile(r"\p{Cyrillic}")


@pytest.fixture(scope="module")
def data_root(sib_dir) -> Path:
    """The folder holding sib200/ and text/ (../shared/data in the project's layout)."""
    root = sib_dir.parent
    if not (root / "text" / "tatoeba").is_dir():
        pytest.skip(f"no text/ folder beside {sib_dir}")
    return root


def test_tatoeba_and_bible_files(data_root):
    deu = load_text("deu_Latn", "tatoeba", data_root)
    assert Path(deu.path).resolve() == (data_root / "text" / "tatoeba" / "deu.txt").resolve()  # ../shared may be a link
    assert (deu.language, deu.source, deu.n_lines) == ("deu_Latn", "tatoeba", 1000)
    assert sum(len(line) for line in deu.lines) > 20_000
    swh = load_text("swh_Latn", "bible_nt", data_root)
    assert Path(swh.path).name == "swh.txt" and swh.n_lines > 7000
    assert all(line == line.strip() and line for line in swh.lines)


def test_equivalent_codes_and_named_scripts(data_root):
    assert Path(load_text("arb_Arab", "tatoeba", data_root).path).name == "ara.txt"  # macrolanguage file
    assert Path(load_text("swh_Latn", "lafand", data_root).path).name == "swa.txt"
    assert Path(load_text("zho_Hant", "udhr", data_root).path).name == "cmn_Hant.txt"
    assert Path(load_text("quy_Latn", "udhr", data_root).path).name == "quy_Latn.txt"  # exact code beats que_Latn
    assert Path(load_text("quy_Latn", "bible_nt", data_root).path).name == "que.txt"


def test_mixed_files_are_split_by_script(data_root):
    srp = load_text("srp_Cyrl", "tatoeba", data_root)
    file_lines = (data_root / "text" / "tatoeba" / "srp.txt").read_text(encoding="utf-8").splitlines()
    assert 200 < srp.n_lines < len(file_lines) / 2  # Tatoeba's srp is mostly Latin
    assert all(CYRILLIC.search(line) for line in srp.lines)
    uzn = load_text("uzn_Latn", "tatoeba", data_root)
    assert 250 < uzn.n_lines < 428 and not any(CYRILLIC.search(line) for line in uzn.lines)  # 428 lines in all
    hans, hant = (set(load_text(code, "tatoeba", data_root).lines) for code in ("zho_Hans", "zho_Hant"))
    # every line goes to one of the two (the few lines mostly in Latin letters to neither)
    assert not hans & hant and 980 < len(hans | hant) <= 1000 and min(len(hans), len(hant)) > 350
    assert "我们" not in "".join(hant) and "們" not in "".join(hans)


def test_missing_source_lists_what_there_is(data_root):
    with pytest.raises(XlpeftError, match=r"no bible_nt text for eng_Latn.*udhr \(\d+ kB\).*sib200-train"):
        load_text("eng_Latn", "bible_nt", data_root)
    # Tatoeba's Arabic file has two Latin (Spanish) lines: not arb_Latn text
    with pytest.raises(XlpeftError, match="no tatoeba text for arb_Latn"):
        load_text("arb_Latn", "tatoeba", data_root)
    # UDHR's Cantonese is in simplified characters: no yue_Hant text there
    assert "udhr" not in available_sources("yue_Hant", data_root)


def test_unknown_language_or_source(data_root):
    with pytest.raises(XlpeftError, match="unknown language 'xyz_Latn'"):
        load_text("xyz_Latn", "tatoeba", data_root)
    with pytest.raises(XlpeftError, match="unknown text source 'bible'.*bible_nt.*sib200-train"):
        load_text("swh_Latn", "bible", data_root)


def test_sib200_train_text(sib_dir, data_root):
    corpus = load_text("yor_Latn", "sib200-train", sib_dir)
    assert corpus.n_lines == 701 and corpus.path.endswith("yor_Latn/train")
    for given in (data_root, data_root / "text"):  # the data root or the text folder find SIB-200 too
        assert sorted(load_text("yor_Latn", "sib200-train", given).lines) == sorted(corpus.lines)


def test_seeded_order_and_subsampling(data_root):
    a, b = (load_text("amh_Ethi", "masakhane", data_root, max_lines=200, seed=1) for _ in range(2))
    c = load_text("amh_Ethi", "masakhane", data_root, max_lines=200, seed=2)
    larger = load_text("amh_Ethi", "masakhane", data_root, max_lines=400, seed=1)
    assert a.lines == b.lines and a.n_lines == 200 and a.lines != c.lines
    assert larger.lines[:200] == a.lines
    full = load_text("amh_Ethi", "masakhane", data_root)
    in_file_order = (data_root / "text" / "masakhane" / "amh.txt").read_text(encoding="utf-8").split("\n")
    assert set(a.lines) <= set(full.lines) and full.lines != [line for line in in_file_order if line.strip()]


def test_user_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("  first line \n\nsecond line\nthird\n", encoding="utf-8")
    corpus = load_text("swh", str(path), seed=0)  # ISO code with one script; no data directory needed
    assert corpus.language == "swh_Latn" and Path(corpus.path) == path.resolve()
    assert sorted(corpus.lines) == ["first line", "second line", "third"]


def test_available_sources_match_the_coverage_table(data_root):
    with open(data_root / "text" / "coverage_vs_sib200.tsv", encoding="utf-8") as f:
        table = {row["sib_code"]: row for row in csv.DictReader(f, delimiter="\t")}
    for code in ("swh_Latn", "amh_Ethi", "wol_Latn", "yor_Latn", "deu_Latn", "hye_Armn", "eng_Latn", "nqo_Nkoo"):
        have = available_sources(code, data_root)
        assert have.pop("sib200-train") > 50_000
        expected = {s: int(table[code][s]) for s in text.FOLDER_SOURCES if int(table[code][s])}
        assert have.keys() == expected.keys(), code
        assert all(abs(have[s] - expected[s]) <= 0.01 * expected[s] for s in have), code


def test_data_dir_forms(sib_dir, data_root, monkeypatch):
    expected = available_sources("wol_Latn", data_root)
    assert available_sources("wol_Latn", data_root / "text") == expected
    assert available_sources("wol_Latn", sib_dir) == expected  # the sib200 folder: text/ is its sibling
    monkeypatch.setenv("XLPEFT_DATA_DIR", str(sib_dir))
    assert available_sources("wol_Latn") == expected
    monkeypatch.delenv("XLPEFT_DATA_DIR")
    with pytest.raises(XlpeftError, match="XLPEFT_DATA_DIR"):
        available_sources("wol_Latn")


def test_tokenize_in_chunks(data_root, tiny_tokenizer):
    corpus = load_text("fra_Latn", "tatoeba", data_root, max_lines=50)
    ids = list(tokenize(corpus.lines, tiny_tokenizer, chunk=7))
    assert len(ids) == 50 and ids[3] == tiny_tokenizer(corpus.lines[3], add_special_tokens=False)["input_ids"]
    assert sum(map(len, ids)) > corpus.n_lines


def test_wikipedia_configs():
    assert wikipedia_config("deu_Latn") == "20231101.de"
    assert wikipedia_config("swh_Latn") == "20231101.sw"
    assert wikipedia_config("als_Latn") == "20231101.sq"  # not als.wikipedia (Alemannic)
    assert wikipedia_config("zho_Hant") == "20231101.zh"
    assert wikipedia_config("ace_Latn") == "20231101.ace"  # no ISO 639-1 code


def test_hub_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(text, "offline_mode", lambda: False)
    monkeypatch.setattr(text, "hub_reachable", lambda: False)
    with pytest.raises(XlpeftError, match=r"unreachable, so wikimedia/wikipedia \(20231101.sw\)"):
        load_text("swh_Latn", "wikimedia/wikipedia", max_lines=10)
    with pytest.raises(XlpeftError, match="give max_lines"):
        load_text("swh_Latn", "wikimedia/wikipedia")


class FakeStream:
    """What datasets.load_dataset(..., streaming=True) returns, reduced to what load_text uses."""

    def __init__(self, records):
        self.records = records

    def shuffle(self, seed, buffer_size):
        return iter(self.records[seed:] + self.records[:seed])


def test_hub_stream_is_split_and_script_filtered(monkeypatch):
    import datasets

    records = [{"text": "我们说话。\n\n這是我們的書。\n你好"}, {"text": "Hello world\n他们来了"}]
    calls = []
    monkeypatch.setattr(text, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kw: calls.append((args, kw)) or FakeStream(records))
    corpus = load_text("zho_Hans", "wikimedia/wikipedia", max_lines=3, seed=0)
    assert calls == [(("wikimedia/wikipedia", "20231101.zh"), {"split": "train", "streaming": True})]
    assert corpus.lines == ["我们说话。", "你好", "他们来了"] and corpus.path == "hub:wikimedia/wikipedia:20231101.zh"
    other = load_text("zho_Hant", "org/corpus:zh_trad", max_lines=5)
    assert calls[-1][0] == ("org/corpus", "zh_trad") and other.lines == ["這是我們的書。"]
