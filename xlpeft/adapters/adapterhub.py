"""Read and write bottleneck adapters in AdapterHub's saved layout (the ``adapters`` library, v1.x).

A saved adapter is a directory with ``adapter_config.json`` (``{"config": {...BnConfig fields...},
"name", "model_type", "hidden_size", "model_class", "model_name", "version"}``) and the weights in
``adapter.safetensors`` or ``pytorch_adapter.bin``. The weight keys are the model's own parameter
names, with the base-model prefix when the model had one (``bert.``, ``roberta.``, ``transformer.``,
``model.``), e.g.::

    bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight           BERT (roberta. for XLM-R)
    transformer.encoder.block.0.layer.1.adapters.<name>.adapter_up.bias         T5 / mT5 encoder
    transformer.decoder.block.0.layer.2.adapters.<name>.adapter_up.weight       T5 / mT5 decoder
    model.layers.0.output_adapters.adapters.<name>.adapter_down.0.bias          Llama

which are exactly the keys of ``model.adapter_state_dict`` (XGLM and BLOOM, absent from AdapterHub,
follow the Llama pattern: ``model.layers.i...``, ``transformer.h.i...``). Weights saved from a bare
model lack the prefix (``encoder.block.0...``) and load too; adapter-transformers 2.x / 3.x names
(``layer_text_lang_adapters`` ...) are renamed as AdapterHub does.

Only ``seq_bn`` adapters load: a config that differs from ``SeqBnConfig`` in anything but
``reduction_factor``, ``non_linearity``, ``leave_out``, ``init_weights`` and ``dropout`` is refused with
the offending keys, as are weights of invertible adapters (MAD-X's ``seq_bn_inv`` language adapters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from xlpeft import __version__
from xlpeft.adapters.config import AdapterConfig
from xlpeft.adapters.model import (
    adapter_config,
    adapter_state_dict,
    add_adapter,
    load_adapter_state_dict,
    n_blocks,
    remove_adapter,
)
from xlpeft.errors import XlpeftError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "pytorch_adapter.bin"
SAFE_WEIGHTS_NAME = "adapter.safetensors"

# SeqBnConfig().to_dict() of adapters 1.3.0, minus the keys AdapterConfig carries
SEQ_BN: dict[str, Any] = {
    "adapter_residual_before_ln": False, "cross_adapter": False, "factorized_phm_W": True,
    "factorized_phm_rule": False, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights_seed": None,
    "inv_adapter": None, "inv_adapter_reduction_factor": None, "is_parallel": False, "learn_phm": True,
    "ln_after": False, "ln_before": False, "mh_adapter": False, "original_ln_after": True,
    "original_ln_before": True, "output_adapter": True, "phm_bias": True, "phm_c_init": "normal", "phm_dim": 4,
    "phm_init_range": 0.0001, "phm_layer": False, "phm_rank": 1, "residual_before_ln": True, "scaling": 1.0,
    "shared_W_phm": False, "shared_phm_rule": True, "stochastic_depth": 0.0, "use_gating": False,
}
# the keys that change the forward computation, with BnConfig's defaults (what AdapterHub assumes when
# an older config omits them) and the value seq_bn needs
FORWARD_KEYS: dict[str, tuple[Any, Any]] = {
    "mh_adapter": (None, False), "output_adapter": (None, True), "cross_adapter": (False, False),
    "original_ln_before": (False, True), "original_ln_after": (True, True), "residual_before_ln": (True, True),
    "ln_before": (False, False), "ln_after": (False, False), "is_parallel": (False, False),
    "scaling": (1.0, 1.0), "use_gating": (False, False), "phm_layer": (False, False),
    "stochastic_depth": (0.0, 0.0),
}
CONFIG_STRINGS = ("seq_bn", "pfeiffer")  # AdapterHub's names for SeqBnConfig()
LEGACY_NAMES = {  # adapter-transformers' old module names, renamed by AdapterLoader.rename_func
    "attention_text_task_adapters": "adapters", "attention_text_lang_adapters": "adapters",
    "layer_text_task_adapters": "adapters", "layer_text_lang_adapters": "adapters",
    "invertible_lang_adapters": "invertible_adapters",
}
ACTIVATION_RENAME = {"gelu": "gelu_new", "gelu_orig": "gelu"}  # configs saved without "version"


def save_adapterhub(model: PreTrainedModel, name: str, directory: str | Path, safetensors: bool = False) -> Path:
    """Write adapter ``name`` as AdapterHub does (``model.save_adapter``); AdapterHub can load it back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = adapter_config(model, name)
    leave_out = [] if config.layers is None else [i for i in range(n_blocks(model)) if i not in config.layers]
    full = {**SEQ_BN, "reduction_factor": config.reduction_factor, "non_linearity": config.non_linearity,
            "init_weights": config.init_weights, "dropout": config.dropout, "leave_out": leave_out}
    meta = {"config": full, "name": name, "model_type": model.config.model_type,
            "hidden_size": model.config.hidden_size, "model_class": type(model).__name__,
            "model_name": model.config.name_or_path or "", "version": f"xlpeft.{__version__}"}
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    weights = adapter_state_dict(model, name)
    if safetensors:
        save_file(weights, directory / SAFE_WEIGHTS_NAME)
    else:
        torch.save(weights, directory / WEIGHTS_NAME)
    return directory


def load_adapterhub(model: PreTrainedModel, directory: str | Path, name: str | None = None) -> str:
    """Add the adapter saved in ``directory`` under ``name`` (default: its saved name); returns the name.

    The adapter is added inactive (``set_active`` it). Nothing is added if the files do not fit the model.
    """
    directory = Path(directory)
    meta = _read_config(directory)
    saved_name = meta["name"]
    name = name or saved_name
    _check_model(meta, model)
    weights = _adapter_weights(_read_weights(directory), saved_name, name)
    add_adapter(model, name, config_from_adapterhub(meta, n_blocks(model)))
    try:
        load_adapter_state_dict(model, name, weights)
    except XlpeftError:
        remove_adapter(model, name)
        raise
    return name


def config_from_adapterhub(meta: Mapping[str, Any], n_blocks: int) -> AdapterConfig:
    """The AdapterConfig of an ``adapter_config.json``; refuses anything that is not seq_bn."""
    config = meta["config"]
    if isinstance(config, str):
        if config not in CONFIG_STRINGS:
            raise XlpeftError(f"adapter config {config!r} is not a sequential bottleneck adapter; xlpeft loads "
                              f"{' / '.join(CONFIG_STRINGS)} adapters only")
        return AdapterConfig()
    if config.get("architecture") is not None:
        raise XlpeftError(f"adapter architecture {config['architecture']!r} is not a bottleneck adapter; "
                          "xlpeft loads seq_bn adapters only")
    wrong = {key: config.get(key, default) for key, (default, needed) in FORWARD_KEYS.items()
             if config.get(key, default) != needed}
    if wrong:
        raise XlpeftError(f"adapter config differs from seq_bn in {wrong}; xlpeft implements seq_bn "
                          "(Pfeiffer) adapters after the feed-forward sub-layer only")
    non_linearity = config["non_linearity"]
    if "version" not in meta:
        non_linearity = ACTIVATION_RENAME.get(non_linearity, non_linearity)
    leave_out = set(config.get("leave_out") or [])
    return AdapterConfig(
        reduction_factor=_reduction_factor(config["reduction_factor"]),
        non_linearity=non_linearity,
        layers=[i for i in range(n_blocks) if i not in leave_out] if leave_out else None,
        init_weights=config.get("init_weights", "bert"),
        dropout=config.get("dropout", 0.0),
    )


def _reduction_factor(value: float | Mapping[str, float]) -> float:
    """A number, or AdapterHub's per-layer mapping when it gives all layers the same factor."""
    if not isinstance(value, Mapping):
        return value
    factors = set(value.values())
    if len(factors) != 1:
        raise XlpeftError(f"per-layer reduction factors {dict(value)} are not supported; xlpeft uses one "
                          "factor for all layers")
    return factors.pop()


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise XlpeftError(f"no {CONFIG_NAME} in {directory}: give a directory saved by AdapterHub's "
                          "save_adapter or by xlpeft's save_adapterhub")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / SAFE_WEIGHTS_NAME).is_file():
        return load_file(directory / SAFE_WEIGHTS_NAME)
    if (directory / WEIGHTS_NAME).is_file():
        return torch.load(directory / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    raise XlpeftError(f"no adapter weights ({SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}) in {directory}")


def _adapter_weights(weights: dict[str, torch.Tensor], saved_name: str, name: str) -> dict[str, torch.Tensor]:
    """The bottleneck weights of ``saved_name``, legacy names updated, renamed to ``name``."""
    out = {}
    for key, value in weights.items():
        for old, new in LEGACY_NAMES.items():
            key = key.replace(old, new)
        if f"invertible_adapters.{saved_name}." in key:
            raise XlpeftError(f"adapter {saved_name!r} has invertible-adapter weights ({key}); xlpeft implements "
                              "seq_bn without invertible adapters, so it would not compute what was trained")
        if f".adapters.{saved_name}." in key:
            out[key.replace(f".adapters.{saved_name}.", f".adapters.{name}.")] = value
    if not out:
        raise XlpeftError(f"no weights of adapter {saved_name!r} in the weights file")
    return out


def _check_model(meta: Mapping[str, Any], model: PreTrainedModel) -> None:
    saved_type, model_type = meta.get("model_type"), model.config.model_type
    if saved_type and saved_type != model_type:
        raise XlpeftError(f"the adapter was trained on a {saved_type!r} model, this is a {model_type!r} model; "
                          "load it into the model it was trained with")
    saved_size, size = meta.get("hidden_size"), model.config.hidden_size
    if saved_size and saved_size != size:
        raise XlpeftError(f"the adapter expects hidden size {saved_size}, the model has {size}")

