"""Prompts move between xlpeft and PEFT: same files, same logits, on all three backbone kinds."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq
from numerics import assert_close_scaled
from peft import PeftModel, PromptTuningConfig, get_peft_model

from xlpeft.evaluation.predict import predict_uncached
from xlpeft.heads.build import build_head
from xlpeft.prompts.peft_format import TASK_TYPES, save_peft_prompt
from xlpeft.runs import load_run

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain."]
L = 4


def _peft(backbone, prompt):
    """PEFT's prompt tuning on ``backbone`` holding xlpeft's prompt (scaled, as PEFT stores it)."""
    config = PromptTuningConfig(task_type=TASK_TYPES[backbone.kind], num_virtual_tokens=L, num_attention_heads=4,
                                num_layers=2, token_dim=backbone.hidden_size, num_transformer_submodules=1)
    peft_model = get_peft_model(backbone.model, config).eval()
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt * backbone.embed_scale)
    return peft_model


@pytest.mark.parametrize("family", ["llama", "xglm"])
def test_causal_prefix_prompt_gives_pefts_logits(tiny_tokenizer, family):
    backbone = make_backbone(family, tiny_tokenizer)
    prompt = torch.randn(L, 32)
    ours = build_head(backbone, "prefix", L, 64)
    ids = ours.tokenize(TEXTS)
    logits = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([text + [backbone.eos_id]])
        theirs = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) - 1]
        assert_close_scaled(logits[row], theirs)


def test_encoder_start_prompt_gives_pefts_logits(special_tokenizer):
    backbone = make_encoder(special_tokenizer)
    tok = special_tokenizer
    prompt = torch.randn(L, 32)
    ours = build_head(backbone, "start", L, 64)
    ids = ours.tokenize(TEXTS)
    logits = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        theirs = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        assert_close_scaled(logits[row], theirs)


def test_seq2seq_prompt_gives_pefts_label_scores(special_tokenizer):
    backbone = make_seq2seq(special_tokenizer)
    prompt = torch.randn(L, 32)
    ours = build_head(backbone, "prefix", L, 64)
    ids = ours.tokenize(TEXTS)
    scores = ours.outputs(ids, prompt)
    peft_model = _peft(backbone, prompt)
    for row, text in enumerate(ids):
        seq = torch.tensor([text + [backbone.eos_id]])
        for k in range(len(ours.strings.words)):
            target = ours.strings.token_ids[k][: int(ours.strings.lengths[k])]
            logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq), labels=target[None]).logits[0]
            expected = logits.log_softmax(-1)[torch.arange(len(target)), target].sum()
            assert_close_scaled(scores[row, k], expected)


@pytest.mark.parametrize("kind", ["causal", "encoder", "seq2seq"])
def test_saved_prompt_loads_into_peft_and_pefts_adapter_loads_into_xlpeft(tmp_path, tiny_tokenizer, special_tokenizer,
                                                                          kind):
    make = {"causal": lambda: make_backbone("xglm", tiny_tokenizer), "encoder": lambda: make_encoder(special_tokenizer),
            "seq2seq": lambda: make_seq2seq(special_tokenizer)}[kind]
    backbone = make()
    prompt = torch.randn(L, 32)
    save_peft_prompt(tmp_path / "ours", prompt, backbone, base_model="tiny")
    config = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_transformer_submodules"] == 1
    loaded = PeftModel.from_pretrained(backbone.model, tmp_path / "ours")
    torch.testing.assert_close(loaded.get_prompt_embedding_to_save("default"), prompt * backbone.embed_scale)

    # the other way: PEFT trains/saves, xlpeft reads the directory as a run (placement 'start')
    theirs = _peft(make(), prompt)
    theirs.peft_config["default"].base_model_name_or_path = "tiny"
    theirs.save_pretrained(tmp_path / "theirs")
    run = load_run(tmp_path / "theirs")
    assert run.config["train"]["placement"] == "start" and run.prompt_length == L
    torch.testing.assert_close(run.prompt_for(backbone), prompt)


def test_peft_run_predicts_like_pefts_model(tmp_path, special_tokenizer):
    """A PEFT adapter directory evaluates through xlpeft with PEFT's own numbers."""
    backbone = make_encoder(special_tokenizer)
    prompt = torch.randn(L, 32)
    peft_model = _peft(make_encoder(special_tokenizer), prompt)
    peft_model.peft_config["default"].base_model_name_or_path = "tiny"
    peft_model.save_pretrained(tmp_path)
    run = load_run(tmp_path)
    preds = predict_uncached(backbone, run, TEXTS, batch_size=2)
    clf = build_head(backbone, "start", L, 128)
    ids = clf.tokenize(TEXTS)
    tok = special_tokenizer
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        assert preds[row] == int(clf.scores(logits[None])[0].argmax())


# SIB-200's published label words (methods.md A) in label order; a byte-level BPE reads them after a space
SIB_WORDS = ("science", "travel", "politics", "sports", "health", "entertainment", "earth")
SHORT = 60  # tokens: far inside the text budget of a PEFT run (max_length 128), so nothing is truncated


def _short_sib200(sib_dir, root, tokenizer, n=40):
    """A SIB-200 folder whose English test split is its first ``n`` sentences of at most SHORT tokens."""
    import shutil

    import pandas as pd

    english = root / "sib200" / "eng_Latn"
    shutil.copytree(sib_dir / "eng_Latn", english)
    test = pd.read_csv(english / "test.tsv", sep="\t", dtype=str)
    lengths = test["text"].map(lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]))
    test = test[lengths <= SHORT].head(n)
    assert len(test) == n
    test.to_csv(english / "test.tsv", sep="\t", index=False)
    return root / "sib200", list(test["text"]), [sib200_labels().index(c) for c in test["category"]]


def sib200_labels():
    from xlpeft.data.sib200 import LABELS

    return list(LABELS)


def _peft_dir(model, kind, prompt, base, path):
    """PEFT's own prompt-tuning adapter for ``model``, saved with its base model's directory."""
    config = PromptTuningConfig(task_type=TASK_TYPES[kind], num_virtual_tokens=L, token_dim=32,
                                num_transformer_submodules=1)
    peft_model = get_peft_model(model, config).eval()
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt)
    peft_model.peft_config["default"].base_model_name_or_path = str(base)
    peft_model.save_pretrained(path)
    return peft_model


@torch.no_grad()
def _peft_causal_scores(peft_model, tokenizer, texts):
    """[N, 7]: PEFT's logits of the label words (" science" ...) at each text's last token."""
    words = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in SIB_WORDS]
    assert all(len(ids) == 1 for ids in words)
    rows = []
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        logits = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
        rows.append(logits[[w[0] for w in words]])
    return torch.stack(rows)


@torch.no_grad()
def _peft_seq2seq_scores(peft_model, tokenizer, texts):
    """[N, 7]: PEFT's summed log-probabilities of each label word (then EOS) given the text (then EOS)."""
    eos = tokenizer.eos_token_id
    targets = [torch.tensor([tokenizer(w, add_special_tokens=False)["input_ids"] + [eos]]) for w in SIB_WORDS]
    rows = []
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]])
        row = []
        for target in targets:
            logits = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=target).logits[0]
            row.append(logits.log_softmax(-1)[torch.arange(target.shape[1]), target[0]].sum())
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_peft_directory_through_xlpeft_evaluate_gives_pefts_predictions(tmp_path, tiny_tokenizer, special_tokenizer,
                                                                        sib_dir, kind, monkeypatch):
    """PEFT trains a prompt, ``xlpeft evaluate`` reads its directory: PEFT's predictions, accuracy and macro-F1."""
    import by_hand
    import pandas as pd

    from xlpeft.cli import main
    from xlpeft.evaluation.predict import classifier_for_run

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make, tokenizer, scores = {
        "causal": (lambda: make_backbone("llama", tiny_tokenizer), tiny_tokenizer, _peft_causal_scores),
        # seed 1: a random tiny mT5 whose label scores follow the text (seed 0's pick "science" for every text)
        "seq2seq": (lambda: make_seq2seq(special_tokenizer, seed=1), special_tokenizer, _peft_seq2seq_scores),
    }[kind]
    base = tmp_path / "base"
    make().model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    data, texts, gold = _short_sib200(sib_dir, tmp_path / "data", tokenizer)
    prompt = torch.randn(L, 32, generator=torch.Generator().manual_seed(0))
    peft_model = _peft_dir(make().model, kind, prompt, base, tmp_path / "adapter")
    theirs = scores(peft_model, tokenizer, texts)
    top2 = theirs.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-3  # no near-tie that kernel rounding could flip
    preds = theirs.argmax(-1).tolist()
    assert len(set(preds)) >= 3  # the prompt and the text decide, not one label for everything

    out = tmp_path / "res.csv"
    assert main(["evaluate", str(tmp_path / "adapter"), "--languages", "eng_Latn", "--data-dir", str(data),
                 "--out", str(out), "--no-plot", "--quiet"]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["n"] == len(texts)
    assert row["accuracy"] == pytest.approx(by_hand.accuracy(gold, preds), abs=1e-6)
    assert row["macro_f1"] == pytest.approx(by_hand.macro_f1(gold, preds, 7), abs=1e-6)

    # and the scores behind them: xlpeft's classifier for the directory against PEFT's numbers
    backbone = make()
    run = load_run(tmp_path / "adapter")
    classifier = classifier_for_run(backbone, run)
    with torch.no_grad():
        ours = classifier.scores(classifier.outputs(classifier.tokenize(texts), run.prompt_for(backbone)))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_a_peft_directory_reads_whole_texts_as_peft_does(tmp_path, special_tokenizer):
    """Issue 18: texts longer than the default max_length were cut without a word, so xlpeft's predictions of a
    PEFT prompt differed from PEFT's own. Now nothing is cut but at the model's context, and cuts are counted."""
    from xlpeft.evaluation.predict import text_counts
    from xlpeft.tasks import Examples

    backbone = make_encoder(special_tokenizer)
    torch.manual_seed(1)
    peft_model = _peft(make_encoder(special_tokenizer), torch.randn(L, 32))
    peft_model.peft_config["default"].base_model_name_or_path = "tiny"
    peft_model.save_pretrained(tmp_path)
    run = load_run(tmp_path)
    tok = special_tokenizer
    texts = [" ".join(["election results and football season"] * 12), TEXTS[0]]  # the first: > 128 tokens
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert 128 < len(ids[0]) < 300 - 1 - L - 3  # XLM-R: positions start after the pad id (0)
    preds = predict_uncached(backbone, run, texts, batch_size=2)
    clf = build_head(backbone, "start", L, 128)
    for row, text in enumerate(ids):
        seq = torch.tensor([[tok.cls_token_id, *text, tok.mask_token_id, tok.sep_token_id]])
        logits = peft_model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[0, L + len(text) + 1]
        assert preds[row] == int(clf.scores(logits[None])[0].argmax())
    counts = text_counts(backbone, run, None, Examples("eng_Latn", "test", [0, 1], texts, labels=[0, 0]))
    assert counts.n_truncated == 0 and counts.max_length == 300 - 1 - L - 3
