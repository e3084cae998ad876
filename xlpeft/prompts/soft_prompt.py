"""The soft prompt: an L x d matrix, optionally produced by a reparameterization during training.

Reparameterizations (methods.md A):
- ``none``: the matrix is the parameter.
- ``mlp``: each row goes through Linear(d->h) -> ReLU -> Linear(h->d) -> LayerNorm(d), no residual,
  no dropout. By default the LayerNorm has no affine parameters (identity affine, as in the frozen-model
  recipe), which gives the published 410 824 extra parameters for d = 1024, h = 200. With ``affine`` its
  weight and bias exist (initialised at identity) and train with the prompt: Philippy et al.'s code trained
  them whenever it trained the model (``--reparam-affine``, settled in config.py).
- ``residual``: the same stack plus a skip connection (Residual Prompt Tuning, Razdaibiedina et al. 2023).
- ``lstm``: PEFT's P-tuning encoder (``PromptEncoder`` with ``encoder_reparameterization_type="LSTM"``):
  see :class:`PromptLSTM`.

After training :meth:`SoftPrompt.fold` applies the reparameterization once and returns a plain prompt, so
inference costs the same as plain prompt tuning.

Rows are stored *before* the backbone's embedding scale (XGLM's sqrt(d)), like token embeddings in the
embedding matrix; the splice multiplies by the scale.
"""

from __future__ import annotations

import torch
from torch import nn

from xlpeft.config import Init, Reparam

LSTM_LAYERS = 2  # PEFT's PromptEncoderConfig.encoder_num_layers default


class PromptMLP(nn.Module):
    """Linear -> ReLU -> Linear -> LayerNorm, optionally with a residual connection; the LayerNorm has affine
    parameters only when ``affine``."""

    def __init__(self, dim: int, hidden: int, residual: bool, affine: bool = False):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=affine)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.up(torch.relu(self.down(x))))
        return x + out if self.residual else out


class PromptLSTM(nn.Module):
    """PEFT's P-tuning LSTM encoder (peft/tuners/p_tuning/model.py, ``PromptEncoder`` with
    ``encoder_reparameterization_type="LSTM"``), applied to the L prompt rows as one sequence.

    The same as PEFT: a bidirectional LSTM of ``LSTM_LAYERS`` = 2 layers (PEFT's default
    ``encoder_num_layers``), ``hidden`` units per direction, no dropout (PEFT's default ``encoder_dropout``),
    then Linear(2h->2h) -> ReLU -> Linear(2h->d) on every position; no LayerNorm, no residual. The
    submodules carry PEFT's names (``lstm_head``, ``mlp_head``), so a PEFT encoder's state dict, less its
    ``embedding.weight`` (which is this prompt's ``weight``), loads into this one.

    What differs: the input rows are the prompt's own parameter, initialised by ``--init`` (PEFT's
    ``nn.Embedding`` draws N(0, 1)), and stored before the backbone's embedding scale like every xlpeft
    prompt; PEFT runs the encoder on a batch of identical index rows, here it runs once per step on the
    single L x d matrix (the same numbers); ``hidden`` is ``--reparam-hidden`` (PEFT requires
    ``encoder_hidden_size``). After training, PEFT's saved P-tuning prompt is the encoder's output too, as
    :meth:`SoftPrompt.fold` gives.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lstm_head = nn.LSTM(input_size=dim, hidden_size=hidden, num_layers=LSTM_LAYERS, bidirectional=True,
                                 batch_first=True)
        self.mlp_head = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_head(self.lstm_head(x.unsqueeze(0))[0]).squeeze(0)


class SoftPrompt(nn.Module):
    """L prompt vectors of the backbone's width; ``forward()`` returns the (reparameterized) L x d matrix.

    The reparameterization sits under ``mlp`` (mlp, residual) or ``lstm``: these names are its tensors' keys in
    checkpoints (``prompt.mlp.down.weight`` as before the LSTM existed, so interrupted runs still resume)."""

    def __init__(self, weight: torch.Tensor, reparam: Reparam = "none", hidden: int = 200, affine: bool = False):
        super().__init__()
        if reparam not in ("none", "mlp", "residual", "lstm"):
            raise ValueError(f"unknown reparameterization {reparam!r}")
        self.weight = nn.Parameter(weight.detach().clone())
        self.reparam = reparam
        dim = weight.shape[1]
        self.mlp = PromptMLP(dim, hidden, reparam == "residual", affine) if reparam in ("mlp", "residual") else None
        self.lstm = PromptLSTM(dim, hidden) if reparam == "lstm" else None

    @property
    def length(self) -> int:
        return self.weight.shape[0]

    @property
    def encoder(self) -> nn.Module | None:
        """The reparameterization (trained with the prompt, dropped by :meth:`fold`); None for a plain prompt."""
        return self.mlp if self.mlp is not None else self.lstm

    def forward(self) -> torch.Tensor:
        encoder = self.encoder
        return self.weight if encoder is None else encoder(self.weight)

    @torch.no_grad()
    def fold(self) -> "SoftPrompt":
        """A plain prompt equal to this one's output: the reparameterization is applied once and dropped."""
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
