"""``--nli-output generate``: an encoder-decoder NLI run's labels read from its greedy answers (the method B
paper's way), end to end on a tiny mT5: the answers are transformers' own greedy ones, read by hand, and the
row counts the answers that named no label."""

import by_hand
import pytest
from conftest import make_backbone, make_seq2seq

from xlpeft import runs as rd
from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.evaluation import evaluate as ev
from xlpeft.evaluation.predict import ANSWER_MARGIN, classifier_for_run
from xlpeft.evaluation.samples import read_samples, samples_path
from xlpeft.tasks import get_task
from xlpeft.training.trainer import Trainer

TARGET = "aym"


@pytest.fixture(scope="module")
def data_root(sib_dir):
    if not (sib_dir.parent / "tasks").is_dir():
        pytest.skip(f"no tasks/ folder beside {sib_dir}")
    return str(sib_dir.parent)


def train(path, backbone, data_root, **overrides):
    settings = dict(model=backbone.name, task="americasnli", source="quy", shots=4, prompt_length=3, epochs=6,
                    lr=0.3, batch_size=4, max_length=48, placement="prefix", template="paper")
    Trainer(TrainConfig(**{**settings, **overrides}), path, data_dir=data_root, backbone=backbone).run(progress=False)
    return rd.load_run(path)


def evaluate(tmp_path, backbone, run, data_root, monkeypatch, **options):
    monkeypatch.setattr(ev, "load_backbone", lambda key, device: backbone)
    return ev.evaluate([run], [TARGET], data_root, tmp_path / "out.csv", ev.EvalOptions(**options), progress=False)


def by_hand_labels(answers: list[str]) -> tuple[list[int], int]:
    """The paper's reading: Yes / Maybe / No (any case) as the first word, anything else neutral."""
    words = {"yes": 0, "maybe": 1, "no": 2}
    firsts = [answer.split()[0].lower() if answer.split() else "" for answer in answers]
    return [words.get(first, 1) for first in firsts], sum(first not in words for first in firsts)


def transformers_answers(backbone, run, examples) -> list[str]:
    """transformers' greedy ``generate`` on the run's own encoder input (its template and prompt)."""
    classifier = classifier_for_run(backbone, run)
    batch = classifier.layout.build(classifier.tokenize(examples.texts, examples.fields), run.prompt_for(backbone))
    length = int(classifier.strings.lengths.max()) + ANSWER_MARGIN
    out = backbone.model.generate(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask, do_sample=False,
                                  num_beams=1, max_new_tokens=length)
    return backbone.tokenizer.batch_decode(out, skip_special_tokens=True)


# method A with the model trained too (a tiny mT5 then answers "No" and half-words like "May z z"), and method B's
# task prompt alone (the model frozen: the answers are mostly no label, all of them counted)
SETTINGS = {"joint": dict(regime="joint", lr=0.01), "tp": dict(configuration="tp")}


@pytest.mark.parametrize("setting", SETTINGS)
def test_generated_answers_are_parsed_counted_and_identified(tmp_path, special_tokenizer, data_root, monkeypatch,
                                                             setting):
    mt5 = make_seq2seq(special_tokenizer)
    run = train(tmp_path / "run", mt5, data_root, **SETTINGS[setting])
    assert run.config["template_used"]["answers"] == ["Yes", "Maybe", "No"] == run.config["label_words"]
    examples = get_task("americasnli", data_root).load(TARGET, "test")
    expected, unparsed = by_hand_labels(transformers_answers(mt5, run, examples))
    if setting == "joint":
        assert 0 < unparsed < len(examples), "some answers should name a label and some not"

    ranked = evaluate(tmp_path, mt5, run, data_root, monkeypatch).iloc[0]
    assert "n_unparsed" not in ranked or ranked.isna()["n_unparsed"]
    generated = evaluate(tmp_path, mt5, run, data_root, monkeypatch, nli_output="generate").iloc[0]
    assert generated["nli_output"] == "generate"  # a ranked row is not reused for a generated one
    assert generated["n_unparsed"] == unparsed and generated["n"] == len(examples)
    assert generated["accuracy"] == pytest.approx(by_hand.accuracy(examples.labels, expected), abs=1e-9)
    calls = []
    with monkeypatch.context() as patched:
        patched.setattr(ev, "predict_generated", lambda *a, **k: calls.append(a))
        evaluate(tmp_path, mt5, run, data_root, monkeypatch, nli_output="generate")
    assert calls == []  # the generated rows are reused under the same identity

    # --log-samples: each generated answer's label, as read by hand, with no scores (generation ranks nothing)
    evaluate(tmp_path, mt5, run, data_root, monkeypatch, nli_output="generate", log_samples=True)
    records = read_samples(samples_path(tmp_path / "out.csv", run.name, TARGET))
    labels = get_task("americasnli", data_root).labels
    assert [r["prediction"] for r in records] == [labels[i] for i in expected]
    assert all("scores" not in r for r in records)


def test_only_encoder_decoders_generate_nli_answers(tmp_path, tiny_tokenizer, data_root, monkeypatch):
    llama = make_backbone("llama", tiny_tokenizer)
    run = train(tmp_path / "run", llama, data_root, epochs=1, placement="suffix")
    with pytest.raises(XlpeftError, match="encoder-decoder"):
        evaluate(tmp_path, llama, run, data_root, monkeypatch, nli_output="generate")
    row = evaluate(tmp_path, llama, run, data_root, monkeypatch, nli_output="rank").iloc[0]
    assert row["n"] > 0
