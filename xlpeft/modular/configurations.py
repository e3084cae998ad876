"""Method B's seven configurations: which language module and which task module a run composes.

Kept free of torch and transformers so that the CLI can list the choices instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from xlpeft.config import ConfigurationName
from xlpeft.errors import XlpeftError

CONFIGURATIONS: tuple[str, ...] = get_args(ConfigurationName)
@dataclass(frozen=True)
class Configuration:
    """One of CONFIGURATIONS: which language module (la / slp / none) and task module (ta / tp / none)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in CONFIGURATIONS:
            raise XlpeftError(f"unknown configuration {self.name!r}: use one of {', '.join(CONFIGURATIONS)}")

    @property
    def language(self) -> str | None:
        return self.name.split("+")[0] if "+" in self.name else None

    @property
    def task(self) -> str | None:
        return None if self.name == "zero-shot" else self.name.split("+")[-1]
