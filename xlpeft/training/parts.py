"""What a run trains, one object per part: the soft prompt, the head, the whole model (joint and full
regimes) and method B's task adapter.

Each part knows its parameters (one optimizer group, at its learning rate), its tensors in a checkpoint
(under its own key, e.g. ``prompt.weight``) and what it leaves in the run directory. The trainer builds
the list of parts a run trains (``Trainer._parts``) and otherwise treats them alike, so the regime, a head
trained alone and method B's modules are told apart in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from xlpeft import files
from xlpeft import runs as rd
from xlpeft.adapters import adapter_parameters, adapter_state_dict, load_adapter_state_dict
from xlpeft.adapters.adapterhub import save_adapterhub
from xlpeft.backbones import Backbone
from xlpeft.heads.classifier import Classifier
from xlpeft.modular.stack import TASK_ADAPTER
from xlpeft.prompts import SoftPrompt
from xlpeft.prompts.peft_format import save_peft_prompt


class Part:
    """One trained part of a run."""

    key: str  # its tensors' prefix in checkpoints: "<key>.<name>"
    lr: float

    def parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def save(self, out: Path) -> None:
        """Write the part's artefacts into the run directory ``out`` (runs.py names them)."""
        raise NotImplementedError


class ModulePart(Part):
    """A part that is one module: its parameters and checkpoint state are that module's."""

    @property
    def module(self) -> nn.Module:
        raise NotImplementedError

    def parameters(self) -> list[nn.Parameter]:
        return list(self.module.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


@dataclass(eq=False)
class PromptPart(ModulePart):
    """The soft prompt (method B: the task prompt), saved folded in PEFT's prompt-tuning format.

    Its parameters include the reparameterization's (the MLP or LSTM, and with ``--reparam-affine`` the
    LayerNorm's weight and bias): they exist only to produce the prompt and are folded into it, so they
    train at the prompt's lr even in joint runs, where the model has its own (``--lr-model``). Philippy et
    al.'s code trained everything at one lr, which is this when ``--lr-model`` is left unset."""

    prompt: SoftPrompt
    backbone: Backbone
    model_name: str
    lr: float
    key = "prompt"

    @property
    def module(self) -> nn.Module:
        return self.prompt

    def save(self, out: Path) -> None:
        save_peft_prompt(out, self.prompt.fold().weight, self.backbone, self.model_name)


@dataclass(eq=False)
class HeadPart(ModulePart):
    """The run's head: a linear head or a tagger's layer is trained and saved; an LM-head verbalizer has no
    parameters (nothing trained, nothing saved)."""

    classifier: Classifier
    lr: float
    key = "head"

    @property
    def module(self) -> nn.Module:
        return self.classifier

    def save(self, out: Path) -> None:
        if self.parameters():
            rd.save_head(out / rd.HEAD, self.classifier.state_dict())


@dataclass(eq=False)
class ModelPart(ModulePart):
    """The whole model (joint and full regimes), saved with its tokenizer as a model directory."""

    backbone: Backbone
    lr: float
    key = "model"

    @property
    def module(self) -> nn.Module:
        return self.backbone.model

    def save(self, out: Path) -> None:
        def write(tmp: Path) -> None:
            self.backbone.model.save_pretrained(tmp)
            self.backbone.tokenizer.save_pretrained(tmp)

        files.atomic_dir(out / rd.MODEL, write)


@dataclass(eq=False)
class TaskAdapterPart(Part):
    """Method B's task adapter (ta configurations) inside the model, saved in AdapterHub's format."""

    model: nn.Module
    lr: float
    key = "task_adapter"

    def parameters(self) -> list[nn.Parameter]:
        return adapter_parameters(self.model, TASK_ADAPTER)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return adapter_state_dict(self.model, TASK_ADAPTER)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        load_adapter_state_dict(self.model, TASK_ADAPTER, state)

    def save(self, out: Path) -> None:
        files.atomic_dir(out / rd.TASK_ADAPTER, lambda tmp: save_adapterhub(self.model, TASK_ADAPTER, tmp))
