"""What identifies weights and result rows (issue 18): fingerprints and the one row-reuse rule."""

import math

import torch
from conftest import make_backbone

from xlpeft.backbones.identity import embedding_checksum, weights_fingerprint
from xlpeft.evaluation.identity import EvalIdentity, run_identity


def test_a_copy_with_equal_embeddings_but_other_layers_has_another_fingerprint(tiny_tokenizer):
    """A GGUF copy may keep the embeddings as they were and quantize the rest: the embedding checksum method B
    used cannot tell, the fingerprint can."""
    hub, copy = make_backbone("llama", tiny_tokenizer), make_backbone("llama", tiny_tokenizer)
    assert weights_fingerprint(hub.model) == weights_fingerprint(copy.model)
    with torch.no_grad():
        weight = copy.model.model.layers[-1].mlp.down_proj.weight
        weight.copy_(torch.round(weight * 8) / 8)  # a coarse quantization of one deep layer
    assert embedding_checksum(hub.model) == embedding_checksum(copy.model)
    assert weights_fingerprint(hub.model) != weights_fingerprint(copy.model)


def test_a_row_matches_only_its_own_identity_after_a_csv_round_trip():
    config = {"train": {}, "backbone": {"fingerprint": "0123456789ab"}}
    wanted = run_identity(config, "test", "fp32")
    row = {"split": "test", "eval_precision": "fp32", "backbone_fingerprint": "0123456789ab", "max_new_tokens": math.nan}
    assert wanted.matches(row)
    assert not wanted.matches({**row, "split": "dev"}) and not wanted.matches({**row, "eval_precision": "bf16"})
    assert not wanted.matches({**row, "backbone_fingerprint": "ba9876543210"})
    assert not wanted.matches({"split": "test"})  # rows written before identities were recorded are recomputed
    assert run_identity(config, "test", "fp32", 12).matches({**row, "max_new_tokens": 12.0})
    old_run = run_identity({"train": {}}, "test", "fp32")  # no recorded weights: checked when the model loads
    assert old_run.matches({**row, "backbone_fingerprint": "ba9876543210"})
    assert wanted.differences({**row, "split": "dev"}) == ["split: dev -> test"]
    assert EvalIdentity.columns() == ("split", "eval_precision", "backbone_fingerprint", "max_new_tokens", "nli_output",
                                      "choice_score")
    # rows of tasks that are not multiple choice have no choice_score; a multiple-choice row only matches its own
    per_char = run_identity(config, "test", "fp32", choice_score="per_char")
    assert not per_char.matches({**row, "choice_score": "sum"}) and per_char.matches({**row, "choice_score": "per_char"})
    # rows written before --nli-output ranked their labels: they match a ranked identity, never a generated one
    generated = run_identity(config, "test", "fp32", None, "generate")
    assert not generated.matches(row) and generated.matches({**row, "nli_output": "generate"})
