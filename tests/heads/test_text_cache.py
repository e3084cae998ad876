"""Cached text states give the same logits and gradients as the full forward (issue: speed)."""

from pathlib import Path

import pytest
import torch
from conftest import FAMILIES, make_backbone, tiny_config
from numerics import assert_close_scaled
from transformers import AutoModelForCausalLM

from xlpeft.backbones import Backbone
from xlpeft.evaluation.predict import Plan, predict_cached, predict_uncached
from xlpeft.heads.layout import PromptLayout, prediction_hidden
from xlpeft.heads.text_cache import TextCache, prompt_hidden
from xlpeft.runs import Run

LLAMA_ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma3")  # the families llama_prompt_step writes out
TEXTS = [
    "The minister spoke about the election results in the capital city today, and the crowd listened.",
    "Football season starts.",
    "Scientists found water on a distant planet using a new telescope.",
    "Rain.",
    "The museum opens a new exhibition of modern art next week for all visitors.",
]


@pytest.mark.parametrize("tiny_backbone", [*FAMILIES, "gemma3"], indirect=True)  # XGLM, Gemma3: scaled embeddings
@pytest.mark.parametrize("side", ["right", "left"])
def test_cached_logits_and_gradients_equal_full_forward(tiny_backbone, side):
    backbone = tiny_backbone
    assert backbone.family != "gemma3_text" or backbone.embed_scale == pytest.approx(32**0.5)
    backbone.freeze()
    layout = PromptLayout(backbone, "suffix", prompt_length=6)
    ids = layout.tokenize(TEXTS)
    assert len({len(i) for i in ids}) > 3  # mixed lengths in one batch
    cache = TextCache(backbone, ids, chunk_size=2)
    prompt = (torch.rand(6, 32) - 0.5).requires_grad_()
    head = backbone.lm_head

    full = head(prediction_hidden(backbone, layout.build(ids, prompt, padding_side=side)))
    order = [3, 0, 4, 1, 2]  # a shuffled batch from the cache
    cached = head(prompt_hidden(backbone, cache.batch(order), prompt))
    assert_close_scaled(cached, full[order])

    grad_full = torch.autograd.grad(full[order].logsumexp(-1).sum(), prompt)[0]
    grad_cached = torch.autograd.grad(cached.logsumexp(-1).sum(), prompt)[0]
    assert_close_scaled(grad_cached, grad_full)


def _run(backbone, name: str, prompt: torch.Tensor, max_length: int, label_ids: list[int]) -> Run:
    config = {"train": {"regime": "prompt", "placement": "suffix", "prompt_length": prompt.shape[0], "head": "lm",
                        "max_length": max_length}, "head_used": "lm", "label_token_ids": label_ids,
              "label_words": [str(i) for i in label_ids]}
    return Run(path=Path(name), config=config, peft_prompt=prompt * backbone.embed_scale, head=None)


@pytest.mark.parametrize("prompts_per_pass", [1, 3, 8])
def test_multi_prompt_evaluation_equals_each_prompt_alone(tiny_backbone, prompts_per_pass):
    backbone = tiny_backbone
    torch.manual_seed(0)
    label_ids = list(range(10, 17))
    # different lengths, so text budgets differ (max_length 20 truncates the long texts)
    runs = [_run(backbone, f"r{i}", torch.randn(length, 32), 20, label_ids) for i, length in enumerate([2, 5, 5, 8])]
    ids = PromptLayout(backbone, "suffix", 2, 20).tokenize(TEXTS * 3)
    together = predict_cached(backbone, runs, ids, Plan(chunk_sentences=4, prompts_per_pass=prompts_per_pass))
    assert len({tuple(p) for p in together.values()}) > 1  # the prompts really differ in effect
    assert any(len(set(p)) > 1 for p in together.values())
    for run in runs:
        alone = predict_cached(backbone, [run], ids, Plan(chunk_sentences=16, prompts_per_pass=1))
        full = predict_uncached(backbone, run, TEXTS * 3, batch_size=7)
        assert together[run.name] == alone[run.name] == full


def test_bf16_weights_give_bit_identical_results_under_autocast(tiny_backbone):
    """runtime.store_frozen_linears_in_bf16 only saves autocast its per-call casts: the numbers do not move."""
    from xlpeft.runtime import store_frozen_linears_in_bf16

    backbone = tiny_backbone
    backbone.freeze()
    layout = PromptLayout(backbone, "suffix", prompt_length=4)
    ids = layout.tokenize(TEXTS)
    prompt = torch.rand(4, 32) - 0.5

    def outputs():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            full = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt)))
            cached = prompt_hidden(backbone, TextCache(backbone, ids).batch(list(range(len(ids)))), prompt)
        return full, cached

    before = outputs()
    assert store_frozen_linears_in_bf16(backbone.model) > 0
    assert backbone.lm_head.weight.dtype == torch.bfloat16  # a tied one (XGLM, BLOOM) gets its own copy
    assert backbone.model.get_input_embeddings().weight.dtype == torch.float32  # the input embeddings stay fp32
    after = outputs()
    assert all(torch.equal(a, b) for a, b in zip(before, after))



def test_written_out_step_is_taken_by_llama_architectures_only(tiny_tokenizer):
    """The written-out step runs for Llama, Qwen2, Mistral and Gemma3 models; others, Mistral and Gemma3 with a
    sliding window shorter than the step's text and prompt, Gemma3 with attention softcapping, and Llama with
    extended layers go through transformers (so the equivalence tests above exercise both paths)."""
    from xlpeft.kernels.llama_prompt_step import llama_prompt_step

    for family in (*FAMILIES, *LLAMA_ARCHITECTURES):
        model = make_backbone(family, tiny_tokenizer).model
        assert (llama_prompt_step(model, width=128) is not None) == (family in LLAMA_ARCHITECTURES)
    for family in ("mistral", "gemma3"):
        model = make_backbone(family, tiny_tokenizer).model
        model.config.sliding_window = 16  # a window covering a step's text and prompt is no window at all
        assert llama_prompt_step(model) is None and llama_prompt_step(model, width=17) is None
        assert llama_prompt_step(model, width=16) is not None
    model = make_backbone("gemma3", tiny_tokenizer).model
    model.config.layer_types = ["full_attention"] * 3  # its sliding_window then bounds nothing
    assert llama_prompt_step(model) is not None
    model.config.attn_logit_softcapping = 50.0
    assert llama_prompt_step(model) is None
    model = make_backbone("llama", tiny_tokenizer).model
    mlp = model.model.layers[1].mlp
    mlp.__class__ = type("MLPWithAdapter", (type(mlp),), {})  # as adapter libraries extend layers
    assert llama_prompt_step(model) is None


def _llama_cache(tiny_tokenizer, family: str = "llama"):
    """Tiny Llama-architecture or Gemma3 model (4 query heads over 2 KV heads; Qwen2's q/k/v biases and
    every RMSNorm weight made non-trivial, Gemma's being zeros at initialisation), its cache of mixed-length
    texts and per-row prompts, with one row's text clipped by its mask as multi-prompt evaluation does."""
    backbone = make_backbone(family, tiny_tokenizer)
    backbone.freeze()
    with torch.no_grad():
        for module in backbone.model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0, 0.5)
            if type(module).__name__.endswith("RMSNorm"):
                module.weight.add_(torch.randn_like(module.weight) * 0.3)
    ids = PromptLayout(backbone, "suffix", prompt_length=5).tokenize(TEXTS)
    batch = TextCache(backbone, ids, chunk_size=2).batch([4, 1, 3, 0, 2])
    batch.attention_mask[0, 6:] = 0
    batch.lengths[0] = 6
    torch.manual_seed(1)
    prompts = (torch.rand(len(TEXTS), 5, 32) - 0.5).requires_grad_()
    return backbone, batch, prompts


def _through_transformers(monkeypatch, backbone, batch, prompts):
    from xlpeft.heads import text_cache

    with monkeypatch.context() as patched:
        patched.setattr(text_cache, "llama_prompt_step", lambda model, width=None: None)
        return prompt_hidden(backbone, batch, prompts)


@pytest.mark.parametrize("family", LLAMA_ARCHITECTURES)
def test_written_out_llama_step_equals_transformers(tiny_tokenizer, monkeypatch, family):
    backbone, batch, prompts = _llama_cache(tiny_tokenizer, family)
    ours, theirs = prompt_hidden(backbone, batch, prompts), _through_transformers(monkeypatch, backbone, batch, prompts)
    assert_close_scaled(ours, theirs)
    grads = [torch.autograd.grad(backbone.lm_head(h).logsumexp(-1).sum(), prompts)[0] for h in (ours, theirs)]
    assert_close_scaled(grads[0], grads[1])


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_fused_bf16_projections_add_no_memory_and_keep_results(tiny_tokenizer, monkeypatch, family):
    from xlpeft.kernels.llama_prompt_step import fuse_frozen_projections
    from xlpeft.runtime import store_frozen_linears_in_bf16

    backbone, batch, prompts = _llama_cache(tiny_tokenizer, family)
    assert not fuse_frozen_projections(backbone.model)  # fp32 weights: nothing to gain
    store_frozen_linears_in_bf16(backbone.model)
    backbone.model.set_attn_implementation("eager")  # as the trainer runs bf16 on CPU, and as this step computes
    layout = PromptLayout(backbone, "suffix", prompt_length=5)
    ids = layout.tokenize(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = prediction_hidden(backbone, layout.build(ids, prompts[0]))
        theirs = _through_transformers(monkeypatch, backbone, batch, prompts)
        assert fuse_frozen_projections(backbone.model)
        attn = backbone.model.model.layers[0].self_attn
        assert attn.q_proj.weight.untyped_storage().data_ptr() == attn.v_proj.weight.untyped_storage().data_ptr()
        assert torch.equal(prediction_hidden(backbone, layout.build(ids, prompts[0])), full)  # same weights
        ours = prompt_hidden(backbone, batch, prompts)
    # equal here; bf16 tolerances in case another CPU's kernels round a fused product differently
    torch.testing.assert_close(ours, theirs, rtol=1.6e-2, atol=1.6e-2)
    assert ours.requires_grad


def _graph_names(tensor: torch.Tensor) -> set[str]:
    """Names of the autograd nodes that ``tensor`` depends on."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_written_out_backward_runs_for_a_frozen_model_only(tiny_tokenizer, monkeypatch, family):
    """A frozen Llama or Gemma3 gets the written-out backward (one autograd node for all layers, compared with
    transformers' gradients above); with another activation than SiLU or tanh GELU, or once a weight is
    trained, autograd differentiates the same forward (and a trained weight's gradient is transformers' own)."""
    backbone, batch, prompts = _llama_cache(tiny_tokenizer, family)
    assert "_FrozenLayersBackward" in _graph_names(prompt_hidden(backbone, batch, prompts))
    with torch.no_grad():
        assert prompt_hidden(backbone, batch, prompts).grad_fn is None

    gelu = tiny_config(family, len(tiny_tokenizer), tiny_tokenizer.pad_token_id, tiny_tokenizer.eos_token_id)
    setattr(gelu, "hidden_activation" if family == "gemma3" else "hidden_act", "gelu")  # not written out
    other = Backbone("tiny-gelu", AutoModelForCausalLM.from_config(gelu).eval(), tiny_tokenizer)
    other.freeze()
    other_batch = TextCache(other, PromptLayout(other, "suffix", prompt_length=5).tokenize(TEXTS)).batch([0, 1])
    hidden = prompt_hidden(other, other_batch, prompts[:2])
    assert "_FrozenLayersBackward" not in _graph_names(hidden)
    grads = [torch.autograd.grad(other.lm_head(h).logsumexp(-1).sum(), prompts)[0]
             for h in (hidden, _through_transformers(monkeypatch, other, other_batch, prompts[:2]))]
    assert_close_scaled(grads[0], grads[1])

    up = backbone.model.model.layers[0].mlp.up_proj.weight
    up.requires_grad_(True)
    grads = []
    for hidden in (prompt_hidden(backbone, batch, prompts), _through_transformers(monkeypatch, backbone, batch, prompts)):
        assert "_FrozenLayersBackward" not in _graph_names(hidden)
        grads.append(torch.autograd.grad(backbone.lm_head(hidden).logsumexp(-1).sum(), [prompts, up]))
    for ours, theirs in zip(*grads):
        assert_close_scaled(ours, theirs)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_written_out_backward_in_bf16_is_as_close_to_fp32_as_autograd(tiny_tokenizer, monkeypatch, family):
    """Under bf16 autocast with frozen bf16 weights (fused, as the trainer runs them) the written-out
    backward's prompt gradient is as close to the fp32 gradient as autograd's through transformers."""
    from xlpeft.kernels.llama_prompt_step import fuse_frozen_projections
    from xlpeft.runtime import store_frozen_linears_in_bf16

    backbone, batch, prompts = _llama_cache(tiny_tokenizer, family)

    def grad(hidden):
        return torch.autograd.grad(backbone.lm_head(hidden).float().logsumexp(-1).sum(), prompts)[0]

    exact = grad(prompt_hidden(backbone, batch, prompts))
    store_frozen_linears_in_bf16(backbone.model)
    backbone.model.set_attn_implementation("eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = grad(_through_transformers(monkeypatch, backbone, batch, prompts))
        assert fuse_frozen_projections(backbone.model)
        hidden = prompt_hidden(backbone, batch, prompts)
        assert "_FrozenLayersBackward" in _graph_names(hidden)
        ours = grad(hidden)
    error = lambda g: ((g - exact).norm() / exact.norm()).item()  # noqa: E731
    assert error(theirs) > 0  # bf16 really rounded
    assert error(ours) < max(2 * error(theirs), 1e-2)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
@pytest.mark.parametrize("family", ["xglm", "bloom", "llama", "qwen2", "gemma3"])
def test_cached_step_with_products_on_onednn_equals_full_forward(tiny_tokenizer, monkeypatch, family):
    """fp32 training on CPU routes the frozen products to oneDNN (runtime.py): the cached step (written out
    for Llama, Qwen2 and Gemma3, forward and backward) still equals the full forward, which is routed too."""
    from xlpeft import runtime

    calls = []
    linear = runtime.onednn_linear
    monkeypatch.setattr(runtime, "cpu_matmul_backend", lambda: "onednn")
    monkeypatch.setattr(runtime, "_ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(runtime, "_ONEDNN_MIN_WEIGHTS", 0)  # the tiny model's products would stay on MKL
    monkeypatch.setattr(runtime, "onednn_linear", lambda *args: calls.append(args) or linear(*args))
    backbone = make_backbone(family, tiny_tokenizer)
    backbone.freeze()
    layout = PromptLayout(backbone, "suffix", prompt_length=6)
    ids = layout.tokenize(TEXTS)
    cache = TextCache(backbone, ids, chunk_size=2)
    prompt = (torch.rand(6, 32) - 0.5).requires_grad_()
    full_mkl = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt)))
    assert runtime.route_frozen_linears_to_onednn(backbone.model) > 0
    full = backbone.lm_head(prediction_hidden(backbone, layout.build(ids, prompt)))
    cached = backbone.lm_head(prompt_hidden(backbone, cache.batch(list(range(len(TEXTS)))), prompt))
    assert_close_scaled(full, full_mkl)
    assert_close_scaled(cached, full)
    grad_full = torch.autograd.grad(full.logsumexp(-1).sum(), prompt)[0]
    calls.clear()
    grad_cached = torch.autograd.grad(cached.logsumexp(-1).sum(), prompt)[0]
    assert_close_scaled(grad_cached, grad_full)
    assert len(calls) >= backbone.model.config.num_hidden_layers * 4  # the backward's products were oneDNN's


def test_gemma3_with_a_window_shorter_than_the_step_runs_through_transformers(tiny_tokenizer, monkeypatch):
    """A Gemma3 sliding window shorter than a step's text and prompt is not written out: transformers computes
    that step, window included (it changes the result, so the window really cuts into the text)."""
    backbone, batch, prompts = _llama_cache(tiny_tokenizer, "gemma3")
    wide = prompt_hidden(backbone, batch, prompts)
    backbone.model.config.sliding_window = 8
    narrow = prompt_hidden(backbone, batch, prompts)
    assert "_FrozenLayersBackward" not in _graph_names(narrow)
    assert torch.equal(narrow, _through_transformers(monkeypatch, backbone, batch, prompts))
    assert (narrow - wide).abs().max() > 1e-3
