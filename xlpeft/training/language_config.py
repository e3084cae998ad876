"""The typed configuration of one language module (what ``xlpeft language-module train`` flags fill in).

Kept free of torch and transformers so that the CLI starts instantly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from xlpeft.data.languages import registry as language_registry

DEFAULT_LR = {"la": 1e-3, "slp": 3e-2}


@dataclass
class LanguageModuleConfig:
    """Everything that decides a language module's weights; stored in module.json."""

    model: str = "smollm2-135m"
    language: str = "eng_Latn"
    kind: Literal["la", "slp"] = "la"
    text: str = "auto"  # a source of xlpeft.data.text, a file, a hub dataset; auto = the largest local source
    max_lines: int | None = None
    steps: int = 300
    batch_size: int = 8
    block_length: int = 128  # tokens per example (span corruption: encoder input length; the paper: 256)
    lr: float | None = None  # None = DEFAULT_LR[kind]
    weight_decay: float = 0.0  # the paper's SLP used 1e-5 with Adafactor
    warmup_ratio: float = 0.06
    prompt_length: int = 50  # SLP rows (the paper: 50)
    init_text: str = ""  # SLP initial text; "" = "Generate the output in <language name>:"
    reduction_factor: float = 16  # LA bottleneck d / r (the paper: 16)
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    validation_lines: int = 200  # held-out lines for the validation loss
    eval_every: int = 50
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"

    @property
    def lr_used(self) -> float:
        return DEFAULT_LR[self.kind] if self.lr is None else self.lr

    @property
    def init_text_used(self) -> str:
        return self.init_text or f"Generate the output in {language_registry()[self.language].name}:"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LanguageModuleConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
