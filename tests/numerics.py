"""One rule for "the same numbers computed another way" (issue 18, item 9).

Two float32 computations of one quantity (a written-out step against transformers' forward, MKL against
oneDNN products, a cached against a full forward) differ by rounding, and how much depends on which
kernels the CPU runs: a sum of n products of size m is off by about m * sqrt(n) float32 ulps, so the
error of an element scales with the magnitudes summed into it, not with the element itself (a small
gradient entry can come from cancelling large terms). A fixed absolute tolerance tuned on one machine
therefore fails on another (1.05e-6 against 1e-6 on 1 of 192 gradient entries), and a relative one
fails on entries near zero. Here the tolerance is a multiple of the tensor's largest magnitude,
``FP32`` = 2e-5: the equivalence tests' float32 rounding reached 3e-6 of it (tests/heads/test_text_cache.py,
this machine, 2026-12-03), while one weight matrix off by a factor 1.001 shows as 3e-4 to 9e-4 of it
(tests/base/test_numerics.py checks both sides).
"""

from __future__ import annotations

import torch

FP32 = 2e-5  # float32 agreement, relative to the largest magnitude (about 170 ulps of it)


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float = FP32) -> None:
    """Every |actual - expected| at most ``rel`` times max |expected| (exact equality if expected is 0)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    assert actual.shape == expected.shape, f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}"
    scale = expected.abs().max().item() if expected.numel() else 0.0
    error = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert error <= rel * scale, (f"max |difference| {error:.3g} exceeds {rel:g} x max |expected| {scale:.3g} "
                                  f"(= {rel * scale:.3g}; ratio {error / scale if scale else float('inf'):.3g})")
