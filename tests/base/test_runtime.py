"""runtime.store_frozen_linears_in_bf16 on encoders and encoder-decoders: bit-identical under bf16 autocast
(causal models: tests/heads/test_text_cache.py); frozen fp32 Linear layers routed to oneDNN: same outputs and input
gradients, the choice of library per machine."""

import pytest
import torch
from conftest import make_encoder, make_seq2seq
from numerics import assert_close_scaled

from xlpeft.runtime import store_frozen_linears_in_bf16

IDS = torch.tensor([[5, 17, 42, 9, 3, 11], [8, 23, 4, 0, 0, 0]])
MASK = (IDS != 0).long()


@pytest.mark.parametrize("make", [make_encoder, make_seq2seq], ids=["xlm-roberta", "mt5"])
def test_bf16_weights_are_bit_identical_under_autocast(special_tokenizer, make):
    model = make(special_tokenizer).model
    model.requires_grad_(False)
    extra = {"decoder_input_ids": IDS[:, :3]} if model.config.is_encoder_decoder else {}

    def logits():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=IDS, attention_mask=MASK, **extra).logits

    before = logits()
    assert store_frozen_linears_in_bf16(model) > 0
    assert torch.equal(before, logits())


def test_bf16_weights_skip_trainable_layers(special_tokenizer):
    model = make_encoder(special_tokenizer).model
    model.requires_grad_(True)
    assert store_frozen_linears_in_bf16(model) == 0
    assert all(p.dtype == torch.float32 for p in model.parameters())


# --------------------------------------------------------------------------- fp32 products on oneDNN
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.fixture
def onednn_calls(monkeypatch):
    """oneDNN chosen for every product however small; yields the list of calls made to it."""
    from xlpeft import runtime

    calls = []
    linear = runtime.onednn_linear
    monkeypatch.setattr(runtime, "cpu_matmul_backend", lambda: "onednn")
    monkeypatch.setattr(runtime, "_ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(runtime, "_ONEDNN_MIN_WEIGHTS", 0)
    monkeypatch.setattr(runtime, "onednn_linear", lambda *args: calls.append(args) or linear(*args))
    return calls


@needs_onednn
def test_routed_linears_give_the_same_outputs_and_input_gradients(onednn_calls):
    from xlpeft.runtime import route_frozen_linears_to_onednn, routed_to_onednn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.GELU(), torch.nn.Linear(96, 40, bias=False))
    model.requires_grad_(False)
    x = torch.randn(3, 7, 48, requires_grad=True)
    before = model(x)
    grad_before = torch.autograd.grad(before.square().sum(), x)[0]
    assert route_frozen_linears_to_onednn(model) == 2 and routed_to_onednn(model[0])
    after = model(x)
    grad_after = torch.autograd.grad(after.square().sum(), x)[0]
    assert_close_scaled(after, before)
    assert_close_scaled(grad_after, grad_before)
    assert len(onednn_calls) == 4  # two forwards and two input gradients
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast the layer's own (autocast) forward
        assert model(x).dtype == torch.bfloat16
    assert len(onednn_calls) == 4
    assert "forward" not in model.state_dict() and set(model.state_dict()) == {"0.weight", "0.bias", "2.weight"}


@needs_onednn
def test_trainable_layers_are_not_routed(onednn_calls):
    from xlpeft.runtime import route_frozen_linears_to_onednn, routed_to_onednn

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    model[0].requires_grad_(False)
    assert route_frozen_linears_to_onednn(model) == 1
    assert routed_to_onednn(model[0]) and not routed_to_onednn(model[1])
    model[0].weight.requires_grad_(True)  # trained after routing: autograd's own layer again
    model(torch.randn(2, 8)).sum().backward()
    assert model[0].weight.grad is not None and not onednn_calls


def test_cpu_matmul_backend_choice(monkeypatch):
    from xlpeft import runtime

    def choice(vendor: str, env: str = "") -> str:
        monkeypatch.setenv("XLPEFT_CPU_MATMUL", env)
        monkeypatch.setattr(runtime, "_cpu_vendor", lambda: vendor)
        runtime.cpu_matmul_backend.cache_clear()
        try:
            return runtime.cpu_matmul_backend()
        finally:
            runtime.cpu_matmul_backend.cache_clear()

    assert choice("GenuineIntel") == "mkl"
    assert choice("GenuineIntel", env="mkl") == "mkl"
    if torch.backends.mkldnn.is_available() and runtime.platform.machine().lower() in ("x86_64", "amd64"):
        assert choice("AuthenticAMD") == "onednn"
        assert choice("GenuineIntel", env="oneDNN") == "onednn"
    with pytest.raises(ValueError, match="XLPEFT_CPU_MATMUL='blas'.*'onednn' or 'mkl'"):
        choice("AuthenticAMD", env="blas")
    monkeypatch.setattr(runtime, "cpu_matmul_backend", lambda: "mkl")
    assert runtime.route_frozen_linears_to_onednn(torch.nn.Linear(4, 4).requires_grad_(False)) == 0


def test_narrow_layers_stay_on_mkl(monkeypatch):
    """oneDNN's call cost (~15 us against MKL's ~4) is not repaid by layers below 256 x 256: tiny models are
    left alone."""
    from xlpeft import runtime
    from xlpeft.runtime import route_frozen_linears_to_onednn, routed_to_onednn

    monkeypatch.setattr(runtime, "cpu_matmul_backend", lambda: "onednn")
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(256, 256)).requires_grad_(False)
    assert route_frozen_linears_to_onednn(model) == 1
    assert not routed_to_onednn(model[0]) and routed_to_onednn(model[1])


def test_onednn_rows_are_bucketed_to_few_shapes():
    """oneDNN keeps a kernel and buffers per input shape: rows are padded to a few sizes, at most 12.5 % more."""
    from xlpeft.runtime import bucket_rows

    sizes = [bucket_rows(rows) for rows in range(1, 2049)]
    assert all(size >= rows for rows, size in enumerate(sizes, start=1))
    assert all(size <= rows * 1.125 for rows, size in enumerate(sizes, start=1) if rows > 64)
    assert sizes == sorted(sizes) and len(set(sizes)) <= 72
    assert bucket_rows(80) == 80 and bucket_rows(8) == 8  # a cached step's products (batch 8 x L = 10) and LM head


@needs_onednn
def test_onednn_linear_equals_a_product_for_any_row_count():
    from xlpeft.runtime import onednn_linear

    torch.manual_seed(0)
    weight, bias = torch.randn(24, 40), torch.randn(24)
    for shape in [(1, 40), (3, 7, 40), (67, 40), (2, 5, 13, 40)]:
        x = torch.randn(*shape)
        out = onednn_linear(x, weight, bias)
        assert_close_scaled(out, torch.nn.functional.linear(x, weight, bias))
        assert out.shape == (*shape[:-1], 24) and out.is_contiguous()
        grad = torch.randn(*shape[:-1], 24)
        assert_close_scaled(onednn_linear(grad, weight.t()), grad @ weight)
