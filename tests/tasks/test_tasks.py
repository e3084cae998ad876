"""Task readers on the real files in ../shared/data/tasks, and the long-context QA chunker."""

import shutil
from collections import Counter

import pytest

from xlpeft.data.languages import SIB200_CODES
from xlpeft.data.tasks import americasnli, masakhaner, xquad
from xlpeft.data.tasks.masakhaner import NerSentence
from xlpeft.data.tasks.xquad import Answer, ChunkAnswer, QaExample
from xlpeft.errors import XlpeftError
from xlpeft.tasks import get_task


@pytest.fixture(scope="session")
def data_root(sib_dir):
    """The data root: the folder holding sib200/ and tasks/."""
    if not (sib_dir.parent / "tasks").is_dir():
        pytest.skip(f"no tasks/ folder beside {sib_dir}")
    return sib_dir.parent


@pytest.fixture(scope="module")
def xquad_en(data_root):
    return xquad.load("en", data_dir=data_root)


@pytest.mark.parametrize("name", ["nusax", "masakhaner", "xquad", "americasnli"])  # the tasks read from tasks/
def test_registry_is_consistent(data_root, name):
    task = get_task(name, data_root)
    assert task.metric_columns
    assert set(task.flores) <= set(task.languages)
    assert set(task.flores.values()) <= set(SIB200_CODES)
    assert len(task.load(task.default_targets[-1], "test")) > 0


def test_nusax_counts_labels_and_parallel_rows(data_root):
    nusax = get_task("nusax", data_root)  # a definition since issue 19 (xlpeft/tasks/definitions/nusax.yaml)
    eng = {split: nusax.load("eng", split) for split in ("train", "dev", "test")}
    assert [len(s) for s in eng.values()] == [500, 100, 400]
    test = eng["test"]
    assert Counter(nusax.labels[i] for i in test.labels) == {"negative": 153, "neutral": 96, "positive": 151}
    jav = nusax.load("jav", "test")
    assert (jav.ids, jav.labels) == (test.ids, test.labels) and jav.texts != test.texts
    assert len([code for code in nusax.languages if code != nusax.default_source]) == 11


def test_masakhaner_counts_and_label_sets(data_root):
    yor = {split: masakhaner.load("yor", split, data_root, types=None) for split in masakhaner.SPLITS}
    assert [len(s) for s in yor.values()] == [6876, 983, 1964]
    yor_types = {tag[2:] for s in yor["dev"].sentences for tag in s.tags if tag != "O"}
    assert yor_types == set(masakhaner.ENTITY_TYPES)
    shared = masakhaner.load("yor", "dev", data_root)  # default: the types English CoNLL-2003 shares
    assert {tag[2:] for s in shared.sentences for tag in s.tags if tag != "O"} == set(masakhaner.SHARED_TYPES)
    assert [s.tokens for s in shared.sentences] == [s.tokens for s in yor["dev"].sentences]
    eng = masakhaner.load("eng", "dev", data_root, types=None)
    assert len(eng) == 3250
    assert {tag[2:] for s in eng.sentences for tag in s.tags if tag != "O"} == set(masakhaner.SHARED_TYPES)


def test_masakhaner_drops_empty_tokens(data_root):
    xho = masakhaner.load("xho", "train", data_root, types=None)
    assert all(token.strip() for s in xho.sentences for token in s.tokens)
    assert all(len(s.tokens) == len(s.tags) for s in xho.sentences)


def test_ner_target_round_trip(data_root):
    tokens = ("Gàní", "Adams", "ní", "Èkó", "ní", "2021")
    sentence = NerSentence(tokens, ("B-PER", "I-PER", "O", "B-LOC", "O", "B-DATE"))
    target = masakhaner.render_target(sentence)
    assert target == "PER: Gàní Adams$$LOC: Èkó$$DATE: 2021"
    assert masakhaner.parse_target(target) == [("PER", "Gàní Adams"), ("LOC", "Èkó"), ("DATE", "2021")]
    assert masakhaner.render_target(masakhaner.restrict_types(sentence, masakhaner.SHARED_TYPES)) == \
        "PER: Gàní Adams$$LOC: Èkó"
    assert masakhaner.render_target(NerSentence(("ó",), ("O",))) == masakhaner.NO_ENTITIES
    assert masakhaner.parse_target(masakhaner.NO_ENTITIES) == []
    # generated text: colons inside entities survive, malformed parts yield nothing
    assert masakhaner.parse_target("ORG: FC Barcelona: B $$ garbage$$LOC:$$PER:  Ann   Lee") == \
        [("ORG", "FC Barcelona: B"), ("PER", "Ann Lee")]
    for s in masakhaner.load("yor", "dev", data_root).sentences:  # every real sentence survives the trip
        target = masakhaner.render_target(s)
        assert masakhaner.render_entities(masakhaner.parse_target(target)) == target
        assert masakhaner.parse_target(target) == masakhaner.entities(s)


def test_xquad_flattened_and_parallel(data_root, xquad_en):
    de = xquad.load("de", data_dir=data_root)
    assert len(xquad_en) == len(de) == 1190
    assert len({e.article for e in xquad_en.examples}) == 48
    assert [e.id for e in xquad_en.examples] == [e.id for e in de.examples]
    first = de.examples[0]
    answer = first.answers[0]
    assert first.context[answer.start:answer.start + len(answer.text)] == answer.text
    with pytest.raises(XlpeftError, match="no train"):
        xquad.load("en", "train", data_root)


def test_xquad_article_split_is_disjoint_and_parallel(data_root, xquad_en):
    train, evaluation = xquad.article_split(xquad_en, eval_articles=24, seed=3)
    assert {e.article for e in train.examples}.isdisjoint({e.article for e in evaluation.examples})
    assert len(train) + len(evaluation) == 1190
    _, de_eval = xquad.article_split(xquad.load("de", data_dir=data_root), eval_articles=24, seed=3)
    assert [e.id for e in de_eval.examples] == [e.id for e in evaluation.examples]


def test_english_sources_from_hub_rows(monkeypatch):
    """The hub readers' conversion, fed rows in the hub's schemas (no network in tests)."""
    datasets = pytest.importorskip("datasets")
    squad_rows = datasets.Dataset.from_dict({
        "id": ["a", "b", "c"], "title": ["T1", "T1", "T2"], "context": ["Paris is in France."] * 3,
        "question": ["Where?"] * 3, "answers": [{"text": ["France"], "answer_start": [12]}] * 3,
    })
    nli_rows = datasets.Dataset.from_dict({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]})
    monkeypatch.setattr(xquad, "load_hub", lambda *args: squad_rows)
    monkeypatch.setattr(americasnli, "load_hub", lambda *args: nli_rows)
    squad = xquad.load_squad()
    assert [e.article for e in squad.examples] == [0, 0, 1]
    assert squad.examples[0].answers == (Answer("France", 12),)
    xnli = americasnli.load_xnli_english()
    assert [americasnli.LABELS[i] for i in xnli.labels] == ["contradiction", "entailment"]


def test_americasnli_counts_labels_and_quotes(data_root):
    aym = americasnli.load("aym", "dev", data_root)
    assert (len(aym), len(americasnli.load("aym", "test", data_root)), len(americasnli.load("oto", "dev", data_root))) \
        == (743, 750, 222)
    assert Counter(americasnli.LABELS[i] for i in aym.labels) == {"entailment": 248, "contradiction": 248,
                                                                    "neutral": 247}
    assert any('"güis"' in p for p in aym.premises)  # quote characters are text, not CSV quoting


def test_xcopa_counts(data_root):
    xcopa = get_task("xcopa", data_root)  # a definition since issue 19 (xlpeft/tasks/definitions/xcopa.yaml)
    qu = xcopa.load("qu", "dev")
    flores = {code: xcopa.module_language(code) for code in xcopa.default_targets if code != "qu"}
    assert set(flores.values()) <= set(SIB200_CODES) and xcopa.module_language("qu") == "qu"
    assert (len(qu), len(xcopa.load("it", "test"))) == (100, 500)
    assert set(qu.fields["question"]) == {"What was the cause of this?", "What happened as a result?"}
    assert set(qu.labels) == {0, 1}


def test_errors_name_what_exists(data_root, tmp_path, monkeypatch):
    with pytest.raises(XlpeftError, match="unknown nusax language 'xyz': use one of ace, ban"):
        get_task("nusax", data_root).load("xyz", "test")
    with pytest.raises(XlpeftError, match="unknown MasakhaNER split 'valid'"):
        masakhaner.load("yor", "valid", data_root)
    # a partial copy: only English; asking for Javanese names what the copy holds
    english = tmp_path / "tasks" / "nusax" / "datasets" / "sentiment" / "english"
    shutil.copytree(data_root / "tasks" / "nusax" / "datasets" / "sentiment" / "english", english)
    assert len(get_task("nusax", tmp_path).load("eng", "dev")) == 100
    with pytest.raises(XlpeftError, match="no dev split for jav: no file .*language=javanese, split=valid"):
        get_task("nusax", tmp_path).load("jav", "dev")
    with pytest.raises(XlpeftError, match="americasnli data not found"):
        americasnli.load("aym", "dev", tmp_path)
    monkeypatch.delenv("XLPEFT_DATA_DIR", raising=False)
    with pytest.raises(XlpeftError, match="no data directory for xcopa.*tasks/xcopa"):
        get_task("xcopa").load("qu", "dev")


def test_data_dir_from_environment_or_sib_folder(data_root, sib_dir, monkeypatch):
    monkeypatch.setenv("XLPEFT_DATA_DIR", str(sib_dir))  # the SIB-200 folder: tasks/ sits beside it
    assert len(get_task("xcopa").load("it", "dev")) == 100
    assert len(get_task("xcopa", data_root / "tasks" / "xcopa").load("it", "dev")) == 100  # or the task folder itself


# ---------------------------------------------------------------------------------------------------
# Long QA contexts


def _long_examples(xquad_en, count=4):
    return sorted(xquad_en.examples, key=lambda e: -len(e.context))[:count]


def test_chunks_keep_the_question_and_cover_the_context(xquad_en, tiny_tokenizer):
    examples = _long_examples(xquad_en)
    chunks = xquad.chunk_examples(examples, tiny_tokenizer, max_tokens=96, overlap=24, reserved=4)

    def n_tokens(text):
        return len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"])

    for index, example in enumerate(examples):
        mine = [c for c in chunks if c.example == index]
        assert len(mine) > 1  # these contexts are far longer than one window
        assert all(c.question == example.question and c.id == example.id for c in mine)
        assert all(c.context == example.context[c.start:c.end] for c in mine)
        assert all(n_tokens(c.question) + n_tokens(c.context) <= 96 - 4 + 1 for c in mine)  # one token of slack
        assert mine[0].start == 0 and mine[-1].end == len(example.context)
        assert all(b.start < a.end for a, b in zip(mine, mine[1:]))  # overlapping: nothing left out
        answer = example.answers[0]
        holding = [c for c in mine if c.answer_start is not None]
        assert holding, "a short answer lies whole in some window"
        for c in holding:
            assert example.context[c.start + c.answer_start:][:len(answer.text)] == answer.text == c.answer_text


def test_gather_picks_the_best_answer_over_chunks(xquad_en, tiny_tokenizer):
    examples = _long_examples(xquad_en)
    chunks = xquad.chunk_examples(examples, tiny_tokenizer, max_tokens=96, overlap=24)
    # a mock model: confident where the window holds the gold answer, vague elsewhere
    answers = [
        ChunkAnswer(i, c.answer_text, 0.9, c.answer_start) if c.answer_start is not None
        else ChunkAnswer(i, c.context[:5], 0.1, 0)
        for i, c in enumerate(chunks)
    ]
    gathered = xquad.gather_answers(chunks, answers)
    for example in examples:
        best = gathered[example.id]
        assert (best.text, best.start, best.score) == (example.answers[0].text, example.answers[0].start, 0.9)


def test_gather_ties_and_generated_answers():
    example = QaExample("q", 0, "abcdefghij", "which?", (Answer("fgh", 5),))
    chunks = [xquad._chunk(0, example, 0, 6), xquad._chunk(0, example, 4, 10)]
    assert (chunks[0].answer_start, chunks[1].answer_start) == (None, 1)
    gathered = xquad.gather_answers(chunks, [ChunkAnswer(0, "abc", 0.5), ChunkAnswer(1, "fgh", 0.5, 1)])
    assert (gathered["q"].text, gathered["q"].start) == ("abc", None)  # a tie keeps the first; no span given


def test_chunker_refuses_a_question_that_leaves_no_room(xquad_en, tiny_tokenizer):
    with pytest.raises(XlpeftError, match="no context fits"):
        xquad.chunk_examples(xquad_en.examples[:1], tiny_tokenizer, max_tokens=8, overlap=4)
    longest = max(len(tiny_tokenizer(a.text, add_special_tokens=False)["input_ids"]) for e in xquad_en.examples
                  for a in e.answers)
    assert longest > 20


def test_iso_code_reads_every_code_system_a_task_uses():
    """URIEL is keyed by ISO 639-3: FLORES codes, ISO 639-1 and ISO 639-3 codes all reach it; a non-code does not."""
    from xlpeft.tasks import get_task

    assert get_task("sib200").iso_code("zho_Hans") == "zho"
    assert get_task("xquad").iso_code("en") == "eng"
    assert get_task("nusax").iso_code("bbc") == "bbc"  # Toba Batak: outside SIB-200, still an ISO 639-3 code
    assert get_task("masakhaner").iso_code("yor") == "yor"
    assert get_task("wikiann").iso_code("xx") is None
