"""Bottleneck adapters (seq_bn) on tiny XGLM, BLOOM, Llama, BERT, XLM-R, mT5 and T5 models.

The reference computations here are written independently of ``xlpeft.adapters.layer``: test-local
forward hooks apply AdapterHub's seq_bn formula with ``F.linear`` on the adapter weights (or on a
hand-built AdapterHub state dict), on the same frozen model with xlpeft's adapters inactive.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import make_backbone, make_encoder, make_seq2seq
from numerics import assert_close_scaled
from safetensors.torch import save_file
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

from xlpeft.adapters import (
    AdapterConfig,
    BottleneckAdapter,
    adapter_modules,
    adapter_names,
    adapter_parameters,
    adapter_state_dict,
    add_adapter,
    load_adapter_state_dict,
    load_adapterhub,
    n_blocks,
    remove_adapter,
    save_adapterhub,
    set_active,
    train_only,
)
from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError

FAMILIES = ("xglm", "bloom", "llama", "gemma3", "bert", "xlm-roberta", "mt5", "t5")
POST_LN = ("bert", "xlm-roberta")
SEQ2SEQ = ("mt5", "t5")
D = 32  # hidden size of every tiny model
PARAMETERS = ("adapter_down.0.weight", "adapter_down.0.bias", "adapter_up.weight", "adapter_up.bias")


def build(family: str, tiny_tokenizer, special_tokenizer) -> Backbone:
    if family in ("xglm", "bloom", "llama", "gemma3", "gemma3_text"):  # the fixture's name or the model type
        return make_backbone(family.removesuffix("_text"), tiny_tokenizer)
    if family in POST_LN:
        return make_encoder(special_tokenizer, family=family)
    if family == "mt5":
        return make_seq2seq(special_tokenizer)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(special_tokenizer), d_model=D, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      pad_token_id=special_tokenizer.pad_token_id, eos_token_id=special_tokenizer.eos_token_id,
                      decoder_start_token_id=special_tokenizer.pad_token_id, dropout_rate=0.0)
    return Backbone(name="tiny-t5", model=T5ForConditionalGeneration(config).eval(), tokenizer=special_tokenizer)


@pytest.fixture(params=FAMILIES)
def backbone(request, tiny_tokenizer, special_tokenizer) -> Backbone:
    return build(request.param, tiny_tokenizer, special_tokenizer)


def family(backbone: Backbone) -> str:
    return backbone.model.config.model_type


def batch(backbone: Backbone) -> dict[str, torch.Tensor]:
    out = dict(backbone.tokenizer(["The cat sat on the mat.", "Le chat dort."], padding=True, return_tensors="pt"))
    if backbone.kind == "seq2seq":
        out["decoder_input_ids"] = torch.tensor([[backbone.pad_id, 5, 6, 7], [backbone.pad_id, 9, 10, 11]])
    return out


def logits(backbone: Backbone) -> torch.Tensor:
    with torch.no_grad():
        return backbone.model(**batch(backbone)).logits


def blocks(backbone: Backbone) -> list[nn.Module]:
    """The blocks in AdapterHub's layer-index order, found here without xlpeft's layout table."""
    model = backbone.model
    return {
        "xglm": lambda: list(model.model.layers), "llama": lambda: list(model.model.layers),
        "gemma3_text": lambda: list(model.model.layers),
        "bloom": lambda: list(model.transformer.h), "bert": lambda: list(model.bert.encoder.layer),
        "xlm-roberta": lambda: list(model.roberta.encoder.layer),
        "mt5": lambda: [*model.encoder.block, *model.decoder.block],
        "t5": lambda: [*model.encoder.block, *model.decoder.block],
    }[family(backbone)]()


def ffn_last_linear(name: str, block: nn.Module) -> nn.Module:
    """The feed-forward sub-layer's last projection (its output is h)."""
    return {
        "xglm": lambda: block.fc2, "llama": lambda: block.mlp.down_proj, "bloom": lambda: block.mlp.dense_4h_to_h,
        "gemma3_text": lambda: block.mlp.down_proj,
        "bert": lambda: block.output.dense, "xlm-roberta": lambda: block.output.dense,
        "mt5": lambda: block.layer[-1].DenseReluDense.wo, "t5": lambda: block.layer[-1].DenseReluDense.wo,
    }[name]()


def sublayer(name: str, block: nn.Module) -> nn.Module:
    """The module whose output is the feed-forward sub-layer's output (residual added; BERT: LN applied)."""
    return {
        "xglm": lambda: block, "llama": lambda: block, "gemma3_text": lambda: block, "bloom": lambda: block.mlp,
        "bert": lambda: block.output, "xlm-roberta": lambda: block.output,
        "mt5": lambda: block.layer[-1], "t5": lambda: block.layer[-1],
    }[name]()


Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # W_down, b_down, W_up, b_up


def bottleneck(z: torch.Tensor, w: Weights) -> torch.Tensor:
    return F.linear(torch.relu(F.linear(z, w[0], w[1])), w[2], w[3])


def module_weights(module: BottleneckAdapter) -> Weights:
    down, up = module.adapter_down[0], module.adapter_up
    return down.weight, down.bias, up.weight, up.bias


def manual_seq_bn(backbone: Backbone, stacks: dict[int, list[Weights]]) -> list:
    """Hooks applying seq_bn by hand: block index -> adapter weights, first applied first."""
    name = family(backbone)

    def pre_ln(stack, module, args, output):
        y = output[0] if isinstance(output, tuple) else output
        for w in stack:
            y = y + bottleneck(y, w)
        return (y, *output[1:]) if isinstance(output, tuple) else y

    def post_ln(stack, module, args, output):
        h, x = module.dense(args[0]), args[1]  # dropout is 0 in these encoders
        s = h
        for w in stack:
            s = s + bottleneck(module.LayerNorm(s + x), w)
        return module.LayerNorm(s + x)

    hook = post_ln if name in POST_LN else pre_ln
    return [sublayer(name, blocks(backbone)[i]).register_forward_hook(lambda m, a, o, s=stack: hook(s, m, a, o))
            for i, stack in stacks.items()]


def randomise(backbone: Backbone, name: str, std: float = 0.3) -> None:
    """Adapter weights large enough to move the tiny models' logits visibly."""
    with torch.no_grad():
        for p in adapter_parameters(backbone.model, name):
            p.normal_(0.0, std)


def stacks_of(backbone: Backbone, names: list[str]) -> dict[int, list[Weights]]:
    out: dict[int, list[Weights]] = {}
    for name in names:
        for site, module in adapter_modules(backbone.model, name):
            out.setdefault(site.index, []).append(module_weights(module))
    return out


# --- placement ----------------------------------------------------------------------------------------

def test_each_adapter_runs_after_the_feed_forward_of_every_selected_block_in_stack_order(backbone):
    name, model = family(backbone), backbone.model
    n = len(blocks(backbone))
    selected = [1, 2] if name in SEQ2SEQ else [1]  # mT5/T5: the last encoder and the first decoder block
    add_adapter(model, "lang")
    add_adapter(model, "task", AdapterConfig(layers=selected))
    set_active(model, ["lang", "task"])
    calls: list[tuple[str, int]] = []
    for i, block in enumerate(blocks(backbone)):
        ffn_last_linear(name, block).register_forward_hook(lambda m, a, o, i=i: calls.append(("ffn", i)))
    for adapter in ("lang", "task"):
        for site, module in adapter_modules(model, adapter):
            module.register_forward_hook(lambda m, a, o, i=site.index, k=adapter: calls.append((k, i)))
    logits(backbone)
    expected = []
    for i in range(n):
        expected += [("ffn", i), ("lang", i)] + ([("task", i)] if i in selected else [])
    assert calls == expected  # mT5/T5: the encoder's blocks, then the decoder's (one forward pass)


def test_adapters_sit_where_adapterhub_keeps_them(tiny_tokenizer, special_tokenizer):
    keys = {}
    for name in ("bert", "xlm-roberta", "mt5", "llama", "xglm", "bloom", "gemma3"):
        model = build(name, tiny_tokenizer, special_tokenizer).model
        add_adapter(model, "de")
        keys[name] = list(adapter_state_dict(model, "de"))
    assert keys["bert"][:4] == [f"bert.encoder.layer.0.output.adapters.de.{k}" for k in PARAMETERS]
    assert keys["xlm-roberta"][0] == "roberta.encoder.layer.0.output.adapters.de.adapter_down.0.weight"
    assert keys["mt5"][0] == "transformer.encoder.block.0.layer.1.adapters.de.adapter_down.0.weight"
    assert keys["mt5"][-1] == "transformer.decoder.block.1.layer.2.adapters.de.adapter_up.bias"
    assert keys["llama"][0] == "model.layers.0.output_adapters.adapters.de.adapter_down.0.weight"
    assert keys["xglm"][0] == "model.layers.0.output_adapters.adapters.de.adapter_down.0.weight"
    assert keys["bloom"][0] == "transformer.h.0.output_adapters.adapters.de.adapter_down.0.weight"
    assert keys["gemma3"][0] == "model.layers.0.output_adapters.adapters.de.adapter_down.0.weight"


# --- the seq_bn computation ---------------------------------------------------------------------------

def test_no_active_adapter_leaves_outputs_bitwise_unchanged_and_removal_restores_the_model(backbone):
    model = backbone.model
    before, keys = logits(backbone), list(model.state_dict())
    add_adapter(model, "lang")
    randomise(backbone, "lang")
    assert torch.equal(logits(backbone), before)
    remove_adapter(model, "lang")
    assert adapter_names(model) == [] and list(model.state_dict()) == keys
    assert torch.equal(logits(backbone), before)


def test_zero_up_projection_leaves_outputs_unchanged(backbone):
    model = backbone.model
    before = logits(backbone)
    for name in ("lang", "task"):
        add_adapter(model, name)
        randomise(backbone, name)
        with torch.no_grad():
            for _, module in adapter_modules(model, name):
                module.adapter_up.weight.zero_()
                module.adapter_up.bias.zero_()
    set_active(model, ["lang", "task"])
    assert_close_scaled(logits(backbone), before)


def test_stacking_order_matters_and_equals_the_manual_seq_bn_composition(backbone):
    model = backbone.model
    add_adapter(model, "lang", AdapterConfig(reduction_factor=4))
    add_adapter(model, "task", AdapterConfig(reduction_factor=8))
    randomise(backbone, "lang")
    randomise(backbone, "task")
    set_active(model, ["lang", "task"])
    lang_task = logits(backbone)
    set_active(model, ["task", "lang"])
    task_lang = logits(backbone)
    assert (lang_task - task_lang).abs().max() > 1e-3
    set_active(model, [])
    handles = manual_seq_bn(backbone, stacks_of(backbone, ["lang", "task"]))
    manual = logits(backbone)
    for handle in handles:
        handle.remove()
    assert_close_scaled(lang_task, manual)


def test_swapping_the_language_adapter_changes_outputs_and_nothing_else(backbone):
    model = backbone.model
    base = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("lang_src", "lang_tgt", "task"):
        add_adapter(model, name)
        randomise(backbone, name)
    everything = {k: v.clone() for k, v in model.state_dict().items()}
    set_active(model, ["lang_src", "task"])
    source = logits(backbone)
    set_active(model, ["lang_tgt", "task"])
    target = logits(backbone)
    assert (source - target).abs().max() > 1e-3
    after = model.state_dict()
    assert after.keys() == everything.keys() and all(torch.equal(after[k], v) for k, v in everything.items())
    assert all(torch.equal(after[k], v) for k, v in base.items())


# --- training -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction_factor", [16, 4])
def test_train_only_leaves_exactly_one_adapter_trainable(backbone, reduction_factor):
    model = backbone.model
    add_adapter(model, "lang")
    add_adapter(model, "task", AdapterConfig(reduction_factor=reduction_factor))
    params = train_only(model, "task")
    b = D // reduction_factor
    per_sublayer = 2 * D * b + b + D
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in params) == per_sublayer * n_blocks(model) == len(blocks(backbone)) * (
        AdapterConfig(reduction_factor=reduction_factor).parameter_count(D))


def test_the_published_mt0_base_adapter_size():
    """methods.md B: about 1.79 M parameters per adapter on mt0-base (d 768, r 16, 12 + 12 blocks)."""
    assert AdapterConfig().bottleneck_size(768) == 48
    assert AdapterConfig().parameter_count(768) * 24 == 24 * (2 * 768 * 48 + 48 + 768) == 1_789_056


def test_gradients_reach_only_the_trained_adapter(backbone):
    model = backbone.model
    add_adapter(model, "lang")
    add_adapter(model, "task")
    set_active(model, ["lang", "task"])
    train_only(model, "task")
    model(**batch(backbone)).logits.float().pow(2).mean().backward()
    task = {id(p) for p in adapter_parameters(model, "task")}
    for name, p in model.named_parameters():
        if id(p) in task:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


# --- saving and loading -------------------------------------------------------------------------------

def test_adapter_state_dict_round_trip(backbone, tiny_tokenizer, special_tokenizer):
    add_adapter(backbone.model, "lang", AdapterConfig(reduction_factor=4, layers=[0]))
    randomise(backbone, "lang")
    set_active(backbone.model, ["lang"])
    expected, weights = logits(backbone), adapter_state_dict(backbone.model, "lang")
    fresh = build(family(backbone), tiny_tokenizer, special_tokenizer)
    add_adapter(fresh.model, "lang", AdapterConfig(reduction_factor=4, layers=[0]))
    load_adapter_state_dict(fresh.model, "lang", weights)
    set_active(fresh.model, ["lang"])
    assert torch.equal(logits(fresh), expected)


@pytest.mark.parametrize("safetensors", [False, True])
def test_adapterhub_files_round_trip_under_another_name(tmp_path, tiny_tokenizer, special_tokenizer, safetensors):
    source = build("mt5", tiny_tokenizer, special_tokenizer)
    add_adapter(source.model, "lang", AdapterConfig(reduction_factor=8, non_linearity="gelu", layers=[0, 3]))
    randomise(source, "lang")
    set_active(source.model, ["lang"])
    expected = logits(source)
    save_adapterhub(source.model, "lang", tmp_path, safetensors=safetensors)
    meta = json.loads((tmp_path / "adapter_config.json").read_text())
    assert meta["name"] == "lang" and meta["config"]["leave_out"] == [1, 2] and meta["model_type"] == "mt5"
    target = build("mt5", tiny_tokenizer, special_tokenizer)
    assert load_adapterhub(target.model, tmp_path, name="de") == "de"
    set_active(target.model, ["de"])
    assert torch.equal(logits(target), expected)


def hub_config(name: str, model_type: str, **changes) -> dict:
    """An adapter_config.json as adapters 1.3.0's save_adapter writes it for SeqBnConfig(**changes)."""
    config = {
        "adapter_residual_before_ln": False, "cross_adapter": False, "dropout": 0.0, "factorized_phm_W": True,
        "factorized_phm_rule": False, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": "bert",
        "init_weights_seed": None, "inv_adapter": None, "inv_adapter_reduction_factor": None, "is_parallel": False,
        "learn_phm": True, "leave_out": [], "ln_after": False, "ln_before": False, "mh_adapter": False,
        "non_linearity": "relu", "original_ln_after": True, "original_ln_before": True, "output_adapter": True,
        "phm_bias": True, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": False,
        "phm_rank": 1, "reduction_factor": 16, "residual_before_ln": True, "scaling": 1.0, "shared_W_phm": False,
        "shared_phm_rule": True, "stochastic_depth": 0.0, "use_gating": False,
    }
    return {"config": config | changes, "hidden_size": D, "model_class": "X", "model_name": "",
            "model_type": model_type, "name": name, "version": "adapters.1.3.0"}


HUB_SITES = {  # AdapterHub's key prefix of each adapted sub-layer, by AdapterHub layer index
    "bert": ["bert.encoder.layer.0.output", "bert.encoder.layer.1.output"],
    "xlm-roberta": ["roberta.encoder.layer.0.output", "roberta.encoder.layer.1.output"],
    "mt5": ["transformer.encoder.block.0.layer.1", "transformer.encoder.block.1.layer.1",
            "transformer.decoder.block.0.layer.2", "transformer.decoder.block.1.layer.2"],
    "llama": ["model.layers.0.output_adapters", "model.layers.1.output_adapters"],
}


@pytest.mark.parametrize("name", list(HUB_SITES))
def test_a_hand_built_adapterhub_adapter_loads_weight_by_weight_and_computes_seq_bn(name, tmp_path, tiny_tokenizer,
                                                                                     special_tokenizer):
    backbone = build(name, tiny_tokenizer, special_tokenizer)
    before = logits(backbone)
    generator = torch.Generator().manual_seed(1)
    b = D // 4
    weights = {}
    for prefix in HUB_SITES[name]:
        for key, shape in (("adapter_down.0.weight", (b, D)), ("adapter_down.0.bias", (b,)),
                           ("adapter_up.weight", (D, b)), ("adapter_up.bias", (D,))):
            weights[f"{prefix}.adapters.wiki.{key}"] = torch.randn(shape, generator=generator) * 0.3
    torch.save(weights, tmp_path / "pytorch_adapter.bin")
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("wiki", name, reduction_factor=4)))
    assert load_adapterhub(backbone.model, tmp_path, name="lang") == "lang"
    for site, module in adapter_modules(backbone.model, "lang"):
        prefix = f"{HUB_SITES[name][site.index]}.adapters.wiki."
        assert torch.equal(module.adapter_down[0].weight, weights[prefix + "adapter_down.0.weight"])
        assert torch.equal(module.adapter_down[0].bias, weights[prefix + "adapter_down.0.bias"])
        assert torch.equal(module.adapter_up.weight, weights[prefix + "adapter_up.weight"])
        assert torch.equal(module.adapter_up.bias, weights[prefix + "adapter_up.bias"])
    set_active(backbone.model, ["lang"])
    loaded = logits(backbone)
    set_active(backbone.model, [])
    by_hand = {i: [tuple(weights[f"{p}.adapters.wiki.{k}"] for k in PARAMETERS)] for i, p in enumerate(HUB_SITES[name])}
    manual_seq_bn(backbone, by_hand)
    assert (loaded - before).abs().max() > 1e-3
    assert_close_scaled(loaded, logits(backbone))


def test_adapterhub_bare_model_keys_legacy_names_and_leave_out_load(tmp_path, special_tokenizer):
    """Weights saved from a bare T5 (no ``transformer.``), adapter-transformers 2.x module names, leave_out."""
    backbone = make_seq2seq(special_tokenizer)
    weights = {f"{p.removeprefix('transformer.')}.layer_text_lang_adapters.de.{k}": v
               for p in HUB_SITES["mt5"][1:3]
               for k, v in (("adapter_down.0.weight", torch.ones(2, D)), ("adapter_down.0.bias", torch.ones(2)),
                            ("adapter_up.weight", torch.ones(D, 2)), ("adapter_up.bias", torch.ones(D)))}
    save_file(weights, tmp_path / "adapter.safetensors")
    keys = list(backbone.model.state_dict())
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("de", "mt5")))  # all four blocks
    with pytest.raises(XlpeftError, match="8 missing"):
        load_adapterhub(backbone.model, tmp_path)
    assert list(backbone.model.state_dict()) == keys
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("de", "mt5", leave_out=[0, 3])))
    load_adapterhub(backbone.model, tmp_path)
    assert [site.index for site, _ in adapter_modules(backbone.model, "de")] == [1, 2]
    assert all(torch.equal(m.adapter_up.bias, torch.ones(D)) for _, m in adapter_modules(backbone.model, "de"))


@pytest.mark.parametrize("change, message", [
    ({"mh_adapter": True}, "mh_adapter"),
    ({"original_ln_before": False}, "original_ln_before"),
    ({"reduction_factor": {"1": 8, "default": 16}}, "per-layer"),
    ({"architecture": "lora"}, "lora"),
])
def test_non_seq_bn_adapterhub_configs_are_refused(tmp_path, special_tokenizer, change, message):
    backbone = make_encoder(special_tokenizer, family="bert")
    weights = {"bert.encoder.layer.0.output.adapters.x.adapter_up.bias": torch.zeros(D)}
    torch.save(weights, tmp_path / "pytorch_adapter.bin")
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("x", "bert", **change)))
    with pytest.raises(XlpeftError, match=message):
        load_adapterhub(backbone.model, tmp_path)
    assert adapter_names(backbone.model) == []


def test_invertible_adapter_weights_and_wrong_models_are_refused(tmp_path, special_tokenizer):
    backbone = make_encoder(special_tokenizer, family="bert")
    torch.save({"bert.invertible_adapters.x.F.0.weight": torch.zeros(D, D)}, tmp_path / "pytorch_adapter.bin")
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("x", "bert")))
    with pytest.raises(XlpeftError, match="invertible"):
        load_adapterhub(backbone.model, tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps(hub_config("x", "xlm-roberta")))
    with pytest.raises(XlpeftError, match="'xlm-roberta' model"):
        load_adapterhub(backbone.model, tmp_path)


# --- the module and the errors ------------------------------------------------------------------------

def test_initialisations_follow_adapterhub():
    torch.manual_seed(0)
    bert = BottleneckAdapter(768, AdapterConfig())
    for linear in (bert.adapter_down[0], bert.adapter_up):
        assert abs(linear.weight.std().item() - 0.02) < 1e-3 and not linear.bias.any()
    mam = BottleneckAdapter(64, AdapterConfig(init_weights="mam_adapter"))
    x = torch.randn(3, 64)
    assert torch.equal(mam(x, x), x)
    houlsby = BottleneckAdapter(64, AdapterConfig(init_weights="houlsby"))
    assert houlsby.adapter_up.weight.abs().max() <= 2e-2


def test_unsupported_models_and_misuse_raise_clear_errors(special_tokenizer):
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=D, n_layer=2, n_head=4))
    with pytest.raises(XlpeftError, match=r"'gpt2'.*supported: bert, xlm-roberta, t5, mt5, xglm, llama, gemma3_text, bloom"):
        add_adapter(gpt2, "lang")
    model = make_encoder(special_tokenizer, family="bert").model
    keys = list(model.state_dict())
    with pytest.raises(XlpeftError, match="blocks 0..1"):
        add_adapter(model, "lang", AdapterConfig(layers=[2]))
    assert list(model.state_dict()) == keys
    add_adapter(model, "lang")
    with pytest.raises(XlpeftError, match="already has"):
        add_adapter(model, "lang")
    with pytest.raises(XlpeftError, match="no adapter named"):
        set_active(model, ["lang", "task"])
    with pytest.raises(XlpeftError, match="non_linearity"):
        AdapterConfig(non_linearity="sparkle")


def test_adapters_xlpeft_adds_start_as_the_identity_where_adapterhubs_init_breaks_the_model(tiny_tokenizer,
                                                                                             special_tokenizer):
    """Gemma 3's adapters (language and task: AdapterConfig.for_model) start as the identity, so an untrained
    module leaves the model's logits exactly as they were; other families keep AdapterHub's default init."""
    for name, unchanged in (("gemma3", True), ("llama", False)):
        backbone = build(name, tiny_tokenizer, special_tokenizer)
        before = logits(backbone)
        torch.manual_seed(0)
        add_adapter(backbone.model, "lang", AdapterConfig.for_model(family(backbone), 16))
        set_active(backbone.model, ["lang"])
        assert torch.equal(logits(backbone), before) is unchanged, name
