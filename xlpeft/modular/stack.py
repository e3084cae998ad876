"""Method B's composition: a frozen language module under a task module on one backbone, swappable per language.

The seven configurations of methods.md B: ``zero-shot`` (the backbone alone), ``ta``, ``tp``, ``la+ta``,
``la+tp``, ``slp+ta``, ``slp+tp``. Adapters are named ``language`` and ``task`` in the model and stacked
in that order in every block (``set_active``: language first, the task adapter on top). Prompts are
concatenated as ``[language prompt, task prompt]`` and placed before the text, so the input is
``[SLP, TP, text]`` in training and at prediction alike (the reference code prepended the language
prompt twice in training and once at prediction). Swapping the language module (``use_language``)
replaces only the language adapter's weights or the language prompt: the task module and the backbone
are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from xlpeft.adapters import (
    AdapterConfig,
    adapter_names,
    adapter_parameters,
    add_adapter,
    load_adapterhub,
    remove_adapter,
    set_active,
)
from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError
from xlpeft.modular.configurations import Configuration
from xlpeft.modular.registry import LanguageModule

LANGUAGE_ADAPTER, TASK_ADAPTER = "language", "task"


class ModuleStack:
    """The modules of one configuration on a backbone. ``detach()`` leaves the backbone as it was loaded."""

    def __init__(self, backbone: Backbone, configuration: Configuration):
        self.backbone = backbone
        self.configuration = configuration
        self.language_module: LanguageModule | None = None
        self.language_prompt: torch.Tensor | None = None

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    @property
    def language_prompt_length(self) -> int:
        return 0 if self.language_prompt is None else self.language_prompt.shape[0]

    def use_language(self, module: LanguageModule) -> None:
        """Put ``module`` in the language slot, replacing the previous language module (if any)."""
        wanted = self.configuration.language
        if wanted is None:
            raise XlpeftError(f"configuration {self.configuration.name!r} has no language module")
        if module.kind != wanted:
            raise XlpeftError(f"configuration {self.configuration.name!r} needs a {wanted} module, got {module.kind} "
                              f"({module.path})")
        if module.kind == "la":
            if LANGUAGE_ADAPTER in adapter_names(self.model):
                remove_adapter(self.model, LANGUAGE_ADAPTER)
            load_adapterhub(self.model, module.adapter_dir, LANGUAGE_ADAPTER)
            for p in adapter_parameters(self.model, LANGUAGE_ADAPTER):
                p.requires_grad_(False)
        else:
            self.language_prompt = module.prompt_for(self.backbone)
        self.language_module = module
        self._activate()

    def add_task_adapter(self, config: AdapterConfig, seed: int) -> list[nn.Parameter]:
        """A new task adapter initialised from ``seed``; returns its parameters (the only trainable ones)."""
        self._require_task("ta")
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            add_adapter(self.model, TASK_ADAPTER, config)
        finally:
            torch.random.set_rng_state(state)
        self._activate()
        return adapter_parameters(self.model, TASK_ADAPTER)

    def load_task_adapter(self, directory) -> None:
        """The trained task adapter of a run (AdapterHub's files), frozen."""
        self._require_task("ta")
        load_adapterhub(self.model, directory, TASK_ADAPTER)
        for p in adapter_parameters(self.model, TASK_ADAPTER):
            p.requires_grad_(False)
        self._activate()

    def compose(self, task_prompt: torch.Tensor | None) -> torch.Tensor | None:
        """The prompt rows placed before the text: [language prompt, task prompt] (either may be absent)."""
        parts = [p for p in (self.language_prompt, task_prompt) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat([parts[0].to(parts[1].dtype), parts[1]])

    def detach(self) -> None:
        for name in (TASK_ADAPTER, LANGUAGE_ADAPTER):
            if name in adapter_names(self.model):
                remove_adapter(self.model, name)
        self.language_module, self.language_prompt = None, None

    def _require_task(self, kind: str) -> None:
        if self.configuration.task != kind:
            raise XlpeftError(f"configuration {self.configuration.name!r} has no task adapter")

    def _activate(self) -> None:
        names = [n for n in (LANGUAGE_ADAPTER, TASK_ADAPTER) if n in adapter_names(self.model)]
        if names:
            set_active(self.model, names)


def splice_lm_prompt(backbone: Backbone, batch: dict[str, torch.Tensor], prompt: torch.Tensor | None) -> dict:
    """Model inputs of a language-modelling batch (``objectives.language_modeling``) with ``prompt`` before the text.

    Causal LMs and mT5's encoder get ``[prompt, tokens]``; encoders ``[CLS, prompt, tokens]`` and causal LMs
    that read a BOS first ``[BOS, prompt, tokens]`` (the prompt follows the lead, as the prefix layout puts it). Prompt positions are attended and never
    predicted (label -100). Padding stays on the right, where every kind's positions are correct.
    """
    device = backbone.model.device
    batch = {k: v.to(device) for k, v in batch.items()}
    if prompt is None:
        return batch
    embed = backbone.model.get_input_embeddings()
    tokens = embed(batch["input_ids"])
    rows = (prompt.to(tokens.dtype) * backbone.embed_scale).unsqueeze(0).expand(tokens.shape[0], -1, -1)
    at = 1 if backbone.kind == "encoder" else len(backbone.lead_ids)  # after [CLS] or a causal LM's BOS
    n = prompt.shape[0]
    mask = batch["attention_mask"]
    out = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "labels")}
    out["inputs_embeds"] = torch.cat([tokens[:, :at], rows, tokens[:, at:]], dim=1)
    out["attention_mask"] = torch.cat([mask[:, :at], mask.new_ones(mask.shape[0], n), mask[:, at:]], dim=1)
    labels = batch["labels"]
    if backbone.kind == "seq2seq":  # the labels belong to the decoder
        out["labels"] = labels
    else:
        ignore = labels.new_full((labels.shape[0], n), -100)
        out["labels"] = torch.cat([labels[:, :at], ignore, labels[:, at:]], dim=1)
    return out
