"""xlpeft: cross-lingual transfer with parameter-efficient modules on frozen multilingual language models.

The public API is importable from here; heavy modules (torch, transformers) load on first use so that
``xlpeft languages`` and ``--help`` stay instant.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "xlpeft.config",
    "Trainer": "xlpeft.training.trainer",
    "EvalOptions": "xlpeft.config",
    "evaluate": "xlpeft.evaluation.evaluate",
    "load_run": "xlpeft.runs",
    "load_backbone": "xlpeft.backbones",
    "Sib200": "xlpeft.data.sib200",
    "resolve_languages": "xlpeft.data.languages",
    "XlpeftError": "xlpeft.errors",
    "LanguageModuleConfig": "xlpeft.config",
    "LanguageModuleTrainer": "xlpeft.training.language_module",
    "ModuleRegistry": "xlpeft.modular.registry",
    "get_task": "xlpeft.tasks",
    "TASKS": "xlpeft.tasks",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'xlpeft' has no attribute {name!r}")
