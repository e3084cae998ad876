"""The soft prompt: an L x d matrix, optionally produced by an MLP reparameterization during training.

Reparameterizations (methods.md A):
- ``none``: the matrix is the parameter.
- ``mlp``: each row goes through Linear(d->h) -> ReLU -> Linear(h->d) -> LayerNorm(d), no residual,
  no dropout. The LayerNorm has no affine parameters (identity affine, as in the frozen-model recipe),
  which gives the published 410 824 extra parameters for d = 1024, h = 200.
- ``residual``: the same stack plus a skip connection (Residual Prompt Tuning, Razdaibiedina et al. 2023).

After training :meth:`SoftPrompt.fold` applies the MLP once and returns a plain prompt, so inference
costs the same as plain prompt tuning.

Rows are stored *before* the backbone's embedding scale (XGLM's sqrt(d)), like token embeddings in the
embedding matrix; the splice multiplies by the scale.
"""

from __future__ import annotations

import torch
from torch import nn

from xlpeft.config import Init, Reparam


class PromptMLP(nn.Module):
    """Linear -> ReLU -> Linear -> LayerNorm (no affine), optionally with a residual connection."""

    def __init__(self, dim: int, hidden: int, residual: bool):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.up(torch.relu(self.down(x))))
        return x + out if self.residual else out


class SoftPrompt(nn.Module):
    """L prompt vectors of the backbone's width; ``forward()`` returns the (reparameterized) L x d matrix."""

    def __init__(self, weight: torch.Tensor, reparam: Reparam = "none", hidden: int = 200):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.reparam = reparam
        self.mlp = None if reparam == "none" else PromptMLP(weight.shape[1], hidden, residual=reparam == "residual")

    @property
    def length(self) -> int:
        return self.weight.shape[0]

    def forward(self) -> torch.Tensor:
        return self.weight if self.mlp is None else self.mlp(self.weight)

    @torch.no_grad()
    def fold(self) -> "SoftPrompt":
        """A plain prompt equal to this one's output: the MLP is applied once and dropped."""
        return SoftPrompt(self.forward().detach().clone(), reparam="none")


def initial_prompt(
    init: Init,
    length: int,
    embeddings: torch.Tensor,
    generator: torch.Generator,
    text_ids: list[int] | None = None,
) -> torch.Tensor:
    """The starting L x d matrix.

    ``uniform``: U(-0.5, 0.5) as in the paper; ``vocab``: rows of L vocabulary embeddings drawn at random
    (Lester et al.); ``text``: the embeddings of a text's tokens, repeated to fill L rows (Vykopal et al.).
    """
    dim = embeddings.shape[1]
    if init == "uniform":
        return torch.rand(length, dim, generator=generator, dtype=torch.float32) - 0.5
    if init == "vocab":
        rows = torch.randint(0, embeddings.shape[0], (length,), generator=generator)
        return embeddings[rows].float().clone()
    if init == "text":
        if not text_ids:
            raise ValueError("init 'text' needs the token ids of a non-empty text")
        reps = -(-length // len(text_ids))
        return embeddings[torch.tensor((text_ids * reps)[:length])].float().clone()
    raise ValueError(f"unknown prompt init {init!r}")
