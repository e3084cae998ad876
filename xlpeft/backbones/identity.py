"""What identifies a backbone's weights: one fingerprint for runs and results, one checksum for method B.

A run records the fingerprint of the weights it was trained on (and where they came from) in its
config.json; evaluation refuses other weights, and every result row carries the fingerprint. The same
name can load different weights: ``smollm2-135m`` is the hub checkpoint online and a dequantized 4-bit
copy offline. Their embedding tables alone might agree (a GGUF file may keep embeddings unquantized),
so the fingerprint hashes a slice of *every* parameter tensor: quantized layers tell the copies apart,
and reading a few KiB per tensor keeps it cheap for large models.

The float ``embedding_checksum`` is what method B's module.json files have recorded since the registry
existed; it stays for their backbone check.
"""

from __future__ import annotations

import hashlib

import torch

VALUES_PER_TENSOR = 4096


def weights_fingerprint(model: torch.nn.Module) -> str:
    """12 hex digits of the SHA-256 over the name, shape and first values (as float32) of every
    floating-point state tensor, in state-dict order: equal weights give equal fingerprints on any device."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not torch.is_floating_point(tensor):
            continue
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        values = tensor.detach().reshape(-1)[:VALUES_PER_TENSOR].float().cpu().contiguous()
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:12]


def embedding_checksum(model: torch.nn.Module) -> float:
    """Sum of absolute values of the first 1024 embedding rows (method B's module.json records it)."""
    embeddings = model.get_input_embeddings().weight
    return float(embeddings[:1024].detach().double().abs().sum())
