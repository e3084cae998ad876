"""Soft prompts in PEFT's prompt-tuning format, so prompts move between xlpeft and PEFT both ways.

A prompt directory holds PEFT's two files: ``adapter_config.json`` (a ``PromptTuningConfig``) and
``adapter_model.safetensors`` with one tensor, ``prompt_embeddings`` [L, d]. PEFT concatenates that
tensor to the *output* of the model's embedding module, so it is stored scaled: xlpeft's prompt rows
live in the embedding table's space (before XGLM's sqrt(d) scale, as in the published recipe) and are
multiplied by the backbone's embedding scale on the way out and divided on the way in.

PEFT places a prompt before every token (:data:`~xlpeft.heads.layout.Placement` ``start``), which
equals xlpeft's ``prefix`` for causal LMs and mT5; suffix prompts and prompts after an encoder's [CLS]
cannot be expressed in PEFT: they are saved in the same files and the placement is recorded in xlpeft's
own run config. For encoder-decoders PEFT would by default allocate a second, never used block of L
rows for the decoder (``num_transformer_submodules=2``, the "half a table wasted" of the reference
code); xlpeft writes 1, which PEFT honours.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PromptTuningConfig, TaskType
from safetensors.torch import load_file, save_file

from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError

ADAPTER_CONFIG, ADAPTER_WEIGHTS, TENSOR = "adapter_config.json", "adapter_model.safetensors", "prompt_embeddings"
TASK_TYPES = {"causal": TaskType.CAUSAL_LM, "seq2seq": TaskType.SEQ_2_SEQ_LM, "encoder": TaskType.FEATURE_EXTRACTION}


def _first(config, names: tuple[str, ...]) -> int | None:
    return next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None)


def peft_config(backbone: Backbone, length: int, base_model: str) -> PromptTuningConfig:
    """PEFT's config for this prompt; head and layer counts filled in, since PEFT cannot find XGLM's names."""
    config = backbone.model.config
    return PromptTuningConfig(
        task_type=TASK_TYPES[backbone.kind], num_virtual_tokens=length, token_dim=backbone.hidden_size,
        num_transformer_submodules=1, base_model_name_or_path=base_model, inference_mode=True,
        num_attention_heads=_first(config, ("num_attention_heads", "n_head", "num_heads", "attention_heads")),
        num_layers=_first(config, ("num_hidden_layers", "num_layers", "n_layer")),
    )


def save_peft_prompt(directory: Path, prompt: torch.Tensor, backbone: Backbone, base_model: str) -> None:
    """Write ``prompt`` (unscaled, [L, d]) as a PEFT prompt-tuning adapter into ``directory`` (atomic files)."""
    from xlpeft.files import atomic_write, write_json

    config = peft_config(backbone, prompt.shape[0], base_model).to_dict()
    config = {k: (v.value if isinstance(v, TaskType) else v) for k, v in config.items()}
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    scaled = (prompt.detach().float() * backbone.embed_scale).cpu().contiguous()
    atomic_write(directory / ADAPTER_WEIGHTS, lambda tmp: save_file({TENSOR: scaled}, str(tmp)))
    write_json(directory / ADAPTER_CONFIG, config)


def read_peft_config(directory: Path) -> dict:
    path = Path(directory) / ADAPTER_CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise XlpeftError(f"cannot read {path} ({exc}); a PEFT prompt directory holds {ADAPTER_CONFIG} and "
                          f"{ADAPTER_WEIGHTS}") from exc
    if config.get("peft_type") != "PROMPT_TUNING":
        raise XlpeftError(f"{directory} holds a {config.get('peft_type')} adapter; xlpeft reads PEFT prompt tuning "
                          "(PROMPT_TUNING) adapters")
    return config


def load_peft_embeddings(directory: Path) -> torch.Tensor:
    """The stored (scaled) ``prompt_embeddings`` [L, d]; a table PEFT padded for a decoder is cut to L rows."""
    config = read_peft_config(directory)
    tensors = load_file(str(Path(directory) / ADAPTER_WEIGHTS))
    if TENSOR not in tensors:
        raise XlpeftError(f"{directory / ADAPTER_WEIGHTS} has no {TENSOR!r} tensor (found {sorted(tensors)})")
    return tensors[TENSOR][: config["num_virtual_tokens"]].float()


def unscale(embeddings: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """PEFT's stored rows -> xlpeft's rows (before the embedding scale); checks the width."""
    if embeddings.shape[1] != backbone.hidden_size:
        raise XlpeftError(f"prompt width {embeddings.shape[1]} does not match {backbone.name}'s hidden size "
                          f"{backbone.hidden_size}: the prompt was trained for another backbone")
    return embeddings / backbone.embed_scale
