"""Where and how numbers are computed: device, precision, seeding, threads.

bf16 autocast is the default on GPUs and an opt-in on CPUs (see docs/benchmarks.md for measurements).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
import types

import numpy as np
import torch

from xlpeft.errors import XlpeftError


def resolve_device(device: str) -> str:
    """``auto``: cuda when available, else cpu; a CUDA device that this torch cannot use is a one-line error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise XlpeftError(f"--device {device}: this torch has no usable CUDA (torch {torch.__version__}, "
                          f"{'no GPU visible' if torch.backends.cuda.is_built() else 'built without CUDA'}); "
                          "use --device cpu or auto, or install a CUDA build of torch")
    return device


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return precision


def autocast(precision: str, device: str):
    """bf16 autocast where asked for; fp32 otherwise (the paper's setting)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def store_frozen_linears_in_bf16(model: torch.nn.Module) -> int:
    """Keep the weights of ``model``'s frozen Linear layers in bf16; for a model run under bf16 autocast only.

    Why: autocast keeps its bf16 copy of a weight only for trainable leaves, so a frozen fp32 weight is
    converted again at every call; when a call has few rows (a cached prompt step runs L x batch positions)
    the conversion costs as much as the product, and for the output embedding (SmolLM2: 49152 x 576) it
    cost 8-84 ms of a 330 ms step (profile). Autocast would round these weights to bf16 anyway, so the
    results are bit-identical. Each layer gets new bf16 parameters rather than being converted in place: an
    output embedding tied to the input embeddings is untied (one bf16 copy of the vocabulary matrix more),
    and the input embeddings, which autocast does not round, stay fp32. Afterwards the model must not run
    outside bf16 autocast (a dtype error says so) and must not be saved. Returns the number of layers
    converted.
    """
    converted = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32:
            if not any(p.requires_grad for p in module.parameters()):
                for name, param in list(module.named_parameters(recurse=False)):
                    setattr(module, name, torch.nn.Parameter(param.detach().to(torch.bfloat16), requires_grad=False))
                converted += 1
    return converted


def eager_attention(model) -> None:
    """Switch a transformers ``model`` to its reference (eager) attention.

    Why: on CPU under bf16, SDPA's flash-attention backward for a few query positions against a short
    cache took 30 % of a cached prompt step (profile); eager attention made the step 1.2-1.6x faster and
    was as fast as SDPA in fp32 (docs/benchmarks.md).
    """
    model.set_attn_implementation("eager")


# ------------------------------------------------------------------------- fp32 products on CPU: oneDNN
_ONEDNN_MIN_MACS = 1 << 21  # below ~2 M multiply-adds oneDNN's ~15 us call cost outweighs its speed (measured)
# layers narrower than 256 x 256 (tiny test models) stay on MKL: oneDNN's call cost (~15 us vs ~4) is not repaid
_ONEDNN_MIN_WEIGHTS = 1 << 16


@functools.cache
def cpu_matmul_backend() -> str:
    """``"onednn"`` or ``"mkl"``: which library computes xlpeft's frozen fp32 Linear products on CPU.

    Why not always MKL (PyTorch's fp32 default): on non-Intel x86 CPUs MKL runs its generic kernels. On this
    project's AMD EPYC (AVX-512) oneDNN, which PyTorch ships and uses for bf16, ran the products of a
    SmolLM2 layer 1.4-3.1x faster in fp32 (benchmarks/bench_cpu_matmul.py, docs/benchmarks.md). On Intel
    CPUs MKL stays (not measured here). ``XLPEFT_CPU_MATMUL=onednn|mkl`` overrides the choice. The choice is
    fixed per machine (not timed at run time) so that the same run gives the same numbers; the two
    libraries agree to about 5e-7 relative.
    """
    override = os.environ.get("XLPEFT_CPU_MATMUL", "").strip().lower()
    if override:
        if override not in ("onednn", "mkl"):
            raise ValueError(f"XLPEFT_CPU_MATMUL={override!r}: use 'onednn' or 'mkl' (or leave it unset)")
        return override if torch.backends.mkldnn.is_available() else "mkl"
    if not torch.backends.mkldnn.is_available() or platform.machine().lower() not in ("x86_64", "amd64"):
        return "mkl"
    return "mkl" if _cpu_vendor() == "GenuineIntel" else "onednn"


def fp32_cpu_matmul(device: str, precision: str) -> str | None:
    """The library of a run's frozen fp32 products (:func:`cpu_matmul_backend`), or None when the run is not
    fp32 on CPU; the one condition under which xlpeft routes products and records the library."""
    return cpu_matmul_backend() if device == "cpu" and precision == "fp32" else None


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def route_frozen_linears_to_onednn(model: torch.nn.Module) -> int:
    """Compute ``model``'s frozen fp32 Linear layers on CPU with oneDNN where :func:`cpu_matmul_backend` says so.

    Each frozen Linear of at least 256 x 256 weights gets a forward that calls oneDNN for products of at
    least ~2 M multiply-adds (and the layer's own forward otherwise, or under autocast); gradients flow to
    the input, as through any frozen layer. Weights are untouched, so the model can still be saved. Returns
    the number of layers routed (0 when the backend is MKL).
    """
    if cpu_matmul_backend() != "onednn":
        return 0
    routed = 0
    for module in model.modules():
        if (isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32
                and module.weight.device.type == "cpu" and module.weight.numel() >= _ONEDNN_MIN_WEIGHTS
                and not any(p.requires_grad for p in module.parameters())):
            module.forward = types.MethodType(_onednn_forward, module)
            routed += 1
    return routed


def routed_to_onednn(module: torch.nn.Module) -> bool:
    """Whether :func:`route_frozen_linears_to_onednn` routed this Linear layer."""
    forward = module.__dict__.get("forward")
    return getattr(forward, "__func__", None) is _onednn_forward


def _onednn_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A routed layer's forward: oneDNN while the layer is as it was routed (frozen fp32 on CPU, no autocast)
    and the product is large enough; the layer's own forward otherwise."""
    params = [p for p in (self.weight, self.bias) if p is not None]
    if (x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_autocast_enabled("cpu")
            or any(p.requires_grad or p.dtype != torch.float32 for p in params)
            or x.numel() * self.out_features < _ONEDNN_MIN_MACS):
        return torch.nn.Linear.forward(self, x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _FrozenOneDnnLinear.apply(x, self.weight, self.bias)
    return onednn_linear(x, self.weight, self.bias)


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight.T + bias by oneDNN (fp32 CPU tensors; no autograd). ``weight`` may be a transposed view: a
    frozen layer's input gradient is ``onednn_linear(grad, weight.t())``, which oneDNN runs faster still.

    The rows are zero-padded to :func:`bucket_rows`. Why: oneDNN (and PyTorch's wrapper) build and cache a
    kernel, with buffers, for every input shape; with text lengths varying, exact shapes cost ≈ 2.6 ms to
    build each and 1.8 GB after 272 shapes of one weight (measured), 31 buckets of them 165 MB.
    """
    rows = x.numel() // x.shape[-1]
    padded = bucket_rows(rows)
    flat = x.reshape(rows, x.shape[-1])
    if padded != rows:
        flat = torch.nn.functional.pad(flat, (0, 0, 0, padded - rows))
    out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    return out[:rows].view(*x.shape[:-1], out.shape[-1])


def bucket_rows(rows: int) -> int:
    """``rows`` rounded up to one of 8 sizes per power of two (multiples of 8 up to 128): at most 12.5 % more
    rows above 64, and a handful of distinct shapes for all text lengths."""
    step = max(8, 1 << max(rows.bit_length() - 4, 0))
    return -(-rows // step) * step


def linear_input_grad(grad: torch.Tensor, weight: torch.Tensor, onednn: bool) -> torch.Tensor:
    """Gradient w.r.t. a frozen Linear layer's input: grad @ weight (by oneDNN when ``onednn`` and large)."""
    if (onednn and grad.dtype == weight.dtype == torch.float32
            and grad.numel() * weight.shape[1] >= _ONEDNN_MIN_MACS):
        return onednn_linear(grad, weight.t())
    return torch.matmul(grad, weight)


class _FrozenOneDnnLinear(torch.autograd.Function):
    """A frozen Linear layer by oneDNN: gradient w.r.t. the input only."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.weight = weight
        return onednn_linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return linear_input_grad(grad, ctx.weight, onednn=True), None, None
