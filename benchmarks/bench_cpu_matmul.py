"""fp32 Linear products on CPU: MKL (PyTorch's default) vs oneDNN, at the shapes xlpeft runs on SmolLM2-135M.

Why: xlpeft computes frozen fp32 products with oneDNN where :func:`xlpeft.runtime.cpu_matmul_backend` says
so (non-Intel x86 CPUs, on which MKL runs its generic kernels). This script shows the measurement behind
that choice on the machine at hand: for each weight shape and number of rows, the forward product
(x Wᵀ) and the input gradient (g W) with each library, in GFLOPS, and oneDNN's speed-up. Rows: 8 (the LM
head at the prediction positions), 80 (a cached prompt step: batch 8 × L = 10), 480 (text encoding).
Usage::

    python benchmarks/bench_cpu_matmul.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

import torch

from xlpeft.runtime import cpu_matmul_backend, onednn_linear

# SmolLM2-135M's Linear weights [out, in]: q/o, k/v, gate/up, down, LM head
SHAPES = {"q_proj, o_proj": (576, 576), "k_proj, v_proj": (192, 576), "gate_proj, up_proj": (1536, 576),
          "down_proj": (576, 1536), "lm_head": (49152, 576)}


def seconds(fn, budget: float) -> float:
    """Mean seconds per call over as many calls as fit in ``budget`` seconds (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds of calls per measurement")
    args = parser.parse_args()
    if not torch.backends.mkldnn.is_available():
        raise SystemExit("this PyTorch build has no oneDNN: xlpeft uses MKL (or PyTorch's default) only")
    torch.manual_seed(0)
    print(f"# bench_cpu_matmul  {date.today()}  {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; xlpeft's choice here: {cpu_matmul_backend()}\n")
    print("| weight | rows | forward MKL | forward oneDNN | speed-up | input grad MKL | input grad oneDNN | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (out_features, in_features) in SHAPES.items():
        weight = torch.randn(out_features, in_features)
        for rows in (8, 80, 480) if name != "lm_head" else (8,):
            x, grad = torch.randn(rows, in_features), torch.randn(rows, out_features)
            flop = 2 * rows * in_features * out_features / 1e9
            times = [seconds(fn, args.budget) for fn in (
                lambda: torch.nn.functional.linear(x, weight), lambda: onednn_linear(x, weight),
                lambda: torch.matmul(grad, weight), lambda: onednn_linear(grad, weight.t()))]
            gflops = [flop / t for t in times]
            print(f"| {name} {out_features}×{in_features} | {rows} | {gflops[0]:.0f} | {gflops[1]:.0f} | "
                  f"{times[0] / times[1]:.2f}× | {gflops[2]:.0f} | {gflops[3]:.0f} | {times[2] / times[3]:.2f}× |")
    print("\n(GFLOPS; speed-up = MKL time / oneDNN time)")


if __name__ == "__main__":
    main()
