"""The typed configuration of one training run (what ``xlpeft train`` flags fill in)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from xlpeft.errors import XlpeftError

if TYPE_CHECKING:
    from xlpeft.tasks import Task

Regime = Literal["prompt", "joint", "full"]
REGIME_HELP = {
    "prompt": "model frozen, only the soft prompt (its MLP while it exists, and a linear head if any) is trained",
    "joint": "soft prompt and the whole model trained together ('unfrozen' in the paper)",
    "full": "fine-tune the whole model with no prompt, predicting from the last text position",
}


# fields added once runs existed, with the value every earlier run implicitly had
ADDED_LATER = {"task": "sib200", "source_data": "local", "select": "val_loss"}

# method B configurations without a task prompt (their prompt, if any, is the language prompt)
NO_TASK_PROMPT = ("zero-shot", "ta", "la+ta", "slp+ta")


@dataclass
class TrainConfig:
    """Everything that decides a run's numbers; stored in RUN_DIR/config.json."""

    model: str = "smollm2-135m"
    task: str = "sib200"  # a name in xlpeft.tasks.TASKS
    source: str = ""  # the source language in the task's codes; "" = the task's default (eng_Latn for SIB-200)
    source_data: str = "local"  # local copy, or "hub": the standard source where it is online (SQuAD, XNLI)
    shots: int | None = 32  # examples per class; None = the whole train/dev split
    prompt_length: int = 10
    placement: Literal["suffix", "prefix", "start"] = "suffix"
    head: Literal["auto", "lm", "linear"] = "auto"  # auto: the LM / masked-LM head if the model has one
    reparam: Literal["none", "mlp", "residual"] = "none"
    reparam_hidden: int = 200
    # random vocabulary embeddings: +10 points on SmolLM2 and +21.6 English / +17.9 nine-language mean on
    # Gemma-3-270M over the paper's uniform(-0.5, 0.5) (docs/backbones.md, "Defaults and what was tried")
    init: Literal["uniform", "vocab", "text"] = "vocab"
    init_text: str = ""
    regime: Regime = "prompt"
    epochs: int = 20
    # the epoch kept: lowest source validation loss, or highest validation accuracy (ties: lower loss);
    # text-to-text tasks have no validation accuracy and always use the loss
    select: Literal["val_loss", "val_accuracy"] = "val_loss"
    lr: float = 5e-3
    lr_model: float | None = None  # joint/full: the model's rate; None = same as lr (the paper's joint setting)
    batch_size: int = 8
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    label_words: str = ""  # overrides, "label=word,..."
    text_prefix: str = ""  # prepended to every text, e.g. "query: " for e5 models
    seed: int = 0
    text_cache: bool = True
    frozen_dropout: bool = False  # keep the frozen model's dropout on, as the reference code did (uncached only)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"
    # method B (modular/stack.py): "" = method A's soft prompt; else zero-shot, ta, tp, la+ta, la+tp, slp+ta,
    # slp+tp. The task prompt (tp) has prompt_length rows; language modules come from the registry modules_dir.
    configuration: str = ""
    modules_dir: str = ""
    adapter_reduction_factor: float = 16  # the task adapter's d / bottleneck

    def __post_init__(self) -> None:
        if self.regime == "full" or self.configuration in NO_TASK_PROMPT:
            self.prompt_length = 0

    @property
    def placement_used(self) -> str:
        if self.regime == "full" or (self.prompt_length == 0 and not self.configuration.startswith("slp")):
            return "none"
        return self.placement

    def resolve(self, task: Task) -> None:
        """Settle what depends on the task and the machine, for ``xlpeft train`` and grids alike: the one source
        language in the task's codes (its default when empty), the source data, and a model directory made
        absolute (evaluation may run from another working directory)."""
        sources = task.resolve_languages(self.source or task.default_source)
        if len(sources) != 1:
            raise XlpeftError(f"the source must be one language, not {self.source!r} ({len(sources)} languages): "
                              f"give one code such as {sources[0]}")
        [self.source] = sources
        task.check_source_data(self.source, self.source_data)
        if Path(self.model).expanduser().is_dir():
            self.model = str(Path(self.model).expanduser().resolve())

    def identity(self) -> dict:
        """What a run's id hashes: every field that decides its numbers. Fields added after runs existed are
        left out at their defaults, so those runs keep their ids."""
        return {k: v for k, v in self.to_dict().items()
                if k != "device" and not (k in ADDED_LATER and v == ADDED_LATER[k])}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        # a run written before a field existed had that field's earlier value, whatever today's default is
        return cls(**{k: v for k, v in {**ADDED_LATER, **data}.items() if k in known})
