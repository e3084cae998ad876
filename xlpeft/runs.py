"""A run directory: what ``xlpeft train`` writes and ``xlpeft evaluate`` reads.

Layout::

    RUN_DIR/config.json          resolved TrainConfig + versions + data source + parameter counts + the backbone
                                 weights trained on (``backbone``: fingerprint, source), what max_length counts
                                 (``max_length_counts``: "text"; absent in older runs: everything) and, for
                                 text-to-text runs, the generation length (``max_new_tokens``)
    RUN_DIR/sample.json          the sampled SIB-200 index_ids (train / validation)
    RUN_DIR/train_log.jsonl      one line per evaluation (each epoch's end; with --eval-every or --max-steps every
                                 N steps, with its ``step``): losses, validation accuracy / macro-F1, seconds
    RUN_DIR/adapter_config.json  the best epoch's folded L x d prompt in PEFT's prompt-tuning format
    RUN_DIR/adapter_model.safetensors   (``PeftModel.from_pretrained(model, RUN_DIR)`` loads it)
    RUN_DIR/head.safetensors     a linear classification head, when the run trained one
    RUN_DIR/model/               joint / full regimes only: the best epoch's model weights
    RUN_DIR/task_adapter/        method B task adapters (ta configurations): AdapterHub's files
    RUN_DIR/metrics.json         best epoch (and step) and its source-language validation metrics (written last)
    RUN_DIR/checkpoint.pt        while training: state to resume an interrupted run (removed at the end)

Every file is written to a temporary name and renamed, so an interrupted run never leaves a half file.
A directory written by PEFT for a prompt-tuning adapter (the two adapter files, nothing else) also loads
as a run: prefix placement as PEFT does it, the base model's LM head, default label words.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.files import atomic_write
from xlpeft.prompts.peft_format import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    load_peft_embeddings,
    read_peft_config,
    unscale,
)

# the file names of a run directory (a language module's partial folder keeps its LOG and CHECKPOINT too)
CONFIG, SAMPLE, LOG, HEAD, MODEL, METRICS, CHECKPOINT = (
    "config.json", "sample.json", "train_log.jsonl", "head.safetensors", "model", "metrics.json", "checkpoint.pt",
)
TASK_ADAPTER = "task_adapter"


def save_head(path: Path, state: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


@dataclass(frozen=True)
class Run:
    """A finished training run as evaluation needs it: ``config`` is its config.json as written, ``train`` the
    TrainConfig in it, read once (fields added later at the value earlier runs had); everything reads the run's
    settings from ``train`` and only what training recorded (weights, label tokens, ...) from ``config``."""

    path: Path
    config: dict
    peft_prompt: torch.Tensor | None  # [L, d] as PEFT stores it (after the embedding scale); None without prompt
    head: dict[str, torch.Tensor] | None  # a linear head's weights, if the run trained one
    train: TrainConfig = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", TrainConfig.from_dict(self.config["train"]))

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the trained artefacts change: results are only reused for the same one."""
        digest = hashlib.sha256((self.path / CONFIG).read_bytes() if (self.path / CONFIG).exists() else b"peft")
        adapter = [f"{TASK_ADAPTER}/{p.name}" for p in sorted((self.path / TASK_ADAPTER).glob("*"))]
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, HEAD, METRICS, *adapter):
            if (self.path / name).is_file():
                digest.update((self.path / name).read_bytes())
        return digest.hexdigest()[:12]

    @property
    def prompt_length(self) -> int:
        return 0 if self.peft_prompt is None else self.peft_prompt.shape[0]

    def prompt_for(self, backbone) -> torch.Tensor | None:
        """The prompt in xlpeft's space (before ``backbone``'s embedding scale), on its device."""
        if self.peft_prompt is None:
            return None
        return unscale(self.peft_prompt, backbone).to(backbone.model.device)

    @property
    def configuration(self) -> str:
        """Method B's configuration (zero-shot, ta, ..., slp+tp), or "" for a method A run."""
        return self.train.configuration

    @property
    def task(self) -> str:
        """The task the run was trained on."""
        return self.train.task

    @property
    def task_key(self) -> str:
        """Equal for runs of the same task: its name, and for a task defined in YAML its stored definition."""
        definition = self.train.identity().get("task_definition")
        return self.task if definition is None else f"{self.task} {json.dumps(definition, sort_keys=True)}"

    @property
    def task_adapter_dir(self) -> Path:
        return self.path / TASK_ADAPTER

    @property
    def model_dir(self) -> Path | None:
        return self.path / MODEL if (self.path / MODEL).is_dir() else None

    @property
    def backbone_key(self) -> str:
        """Runs with equal keys share one frozen backbone and are evaluated together."""
        return str(self.model_dir) if self.model_dir else self.train.model


def load_run(path: str | os.PathLike) -> Run:
    """A finished xlpeft run directory, or a PEFT prompt-tuning adapter directory."""
    run_path = Path(path)
    if not (run_path / CONFIG).is_file() and (run_path / ADAPTER_CONFIG).is_file():
        return _peft_run(run_path)
    if not (run_path / METRICS).is_file():
        hint = "training was interrupted: rerun the same 'xlpeft train' command to resume" if (
            run_path / CONFIG
        ).is_file() else "it is not a run directory written by 'xlpeft train'"
        raise XlpeftError(f"{run_path} holds no finished run ({METRICS} missing): {hint}")
    config = json.loads((run_path / CONFIG).read_text())
    prompt = load_peft_embeddings(run_path) if (run_path / ADAPTER_WEIGHTS).exists() else None
    head = load_file(str(run_path / HEAD)) if (run_path / HEAD).exists() else None
    return Run(run_path, config, prompt, head)


def _peft_run(path: Path) -> Run:
    """A run description for a prompt trained with PEFT: its placement, the base model, default words, and no
    text budget but the model's context (PEFT truncates nothing, so its own predictions are reproduced)."""
    from xlpeft.heads.layout import NO_LIMIT, TEXT_ONLY

    peft = read_peft_config(path)
    if not peft.get("base_model_name_or_path"):
        raise XlpeftError(f"{path / ADAPTER_CONFIG} names no base_model_name_or_path; xlpeft needs the model it was "
                          "trained for")
    prompt = load_peft_embeddings(path)
    train = TrainConfig(model=peft["base_model_name_or_path"], placement="start", prompt_length=prompt.shape[0],
                        head="lm", shots=None, regime="prompt", max_length=NO_LIMIT)
    return Run(path, {"train": train.to_dict(), "source": "peft", "max_length_counts": TEXT_ONLY}, prompt, None)
