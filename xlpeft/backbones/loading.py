"""Load a frozen causal LM and its tokenizer: an embedded offline model, a local directory, or a hub id.

The rest of xlpeft talks to a :class:`Backbone`, which also carries the per-family facts that the
prompt splice needs (embedding scale, EOS/pad ids) so that no other module inspects model classes.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from xlpeft.backbones.embedded import EMBEDDED_MODELS, load_embedded
from xlpeft.hub import hub_reachable
from xlpeft.errors import XlpeftError

log = logging.getLogger("xlpeft")


@dataclass
class Backbone:
    """A causal LM plus the facts about it that prompt splicing relies on."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def family(self) -> str:
        """The transformers ``model_type`` ("xglm", "bloom", "llama", ...): picks verbalizer defaults."""
        return self.model.config.model_type

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @cached_property
    def embed_scale(self) -> float:
        """The factor the embedding module multiplies token embeddings by (XGLM: sqrt(d_model)).

        A prompt spliced in *after* the embedding module must be multiplied by it explicitly to keep the
        published behaviour (the reference code's prompt lived inside the embedding module).
        """
        scale = getattr(self.model.get_input_embeddings(), "embed_scale", 1.0)
        return float(scale.item() if isinstance(scale, torch.Tensor) else scale)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @cached_property
    def accepts_position_ids(self) -> bool:
        """BLOOM (ALiBi) derives positions from the attention mask; most others need them given."""
        return "position_ids" in inspect.signature(self.model.base_model.forward).parameters

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    def freeze(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)


def load_backbone(name: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Backbone:
    """Load ``name``: an embedded model (``smollm2-135m``), a local directory, or a hub id."""
    if name in EMBEDDED_MODELS:
        model, tokenizer = load_embedded(name, torch_dtype=dtype)
    elif Path(name).expanduser().is_dir():
        model, tokenizer = _load_pretrained(str(Path(name).expanduser()), dtype, local_only=True)
    else:
        model, tokenizer = _load_pretrained(name, dtype, local_only=not hub_reachable())
    _check_tokenizer(name, tokenizer)
    model.to(device)
    return Backbone(name=name, model=model, tokenizer=tokenizer)


def _load_pretrained(name: str, dtype: torch.dtype, local_only: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        where = "the local directory" if Path(name).exists() else (
            "the local hub cache (the hub is unreachable)" if local_only else "the hub"
        )
        raise XlpeftError(
            f"cannot load causal LM {name!r} from {where}: {str(exc).splitlines()[0][:160]}; give a hub id such as "
            f"facebook/xglm-564M, a directory with config.json, or an embedded model ({', '.join(EMBEDDED_MODELS)})"
        ) from exc
    log.info("loaded %s (%s)", name, model.config.model_type)
    return model, tokenizer


def _check_tokenizer(name: str, tokenizer: PreTrainedTokenizerBase) -> None:
    """The input layout ends every sequence with EOS, and batches need a pad id."""
    if tokenizer.eos_token_id is None:
        raise XlpeftError(f"tokenizer of {name!r} has no EOS token; xlpeft's layout [text][prompt][EOS] needs one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
