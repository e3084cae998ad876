"""The language module registry: one trained module per (backbone, language, kind) on disk.

Layout (``MODULES`` is any directory, e.g. ``modules/``)::

    MODULES/<backbone>/<language>/la/    module.json + adapter/ (AdapterHub's files: adapter_config.json,
                                         pytorch_adapter.bin) — a language adapter
    MODULES/<backbone>/<language>/slp/   module.json + PEFT's prompt-tuning files — a soft language prompt
    MODULES/<backbone>/<language>/.<kind>.partial/   while training (checkpoint), renamed when done

``<backbone>`` is the model name with "/" written "--" (a local directory: its folder name). Every task
run reuses these modules; ``module.json`` records the backbone's identity (model type, sizes and a
checksum of its embedding table), so a module trained for one backbone is refused by another with a
clear error instead of silently computing nonsense.

A language without a module of its own can *borrow* the module of the nearest language that has one,
by a URIEL distance (``xlpeft.data.distances``); evaluation records which module was used.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch

from xlpeft.backbones import Backbone
from xlpeft.backbones.identity import embedding_checksum
from xlpeft.config import BORROW_NONE, LanguageKind
from xlpeft.errors import XlpeftError
from xlpeft.prompts.peft_format import load_peft_embeddings, unscale

LANGUAGE_KINDS: tuple[str, ...] = get_args(LanguageKind)
KIND_NAMES = {"la": "language adapter", "slp": "soft language prompt"}
MODULE_JSON = "module.json"
ADAPTER_DIR = "adapter"


def backbone_slug(name: str) -> str:
    """The registry folder of a backbone: hub ids with '--' for '/', local directories by folder name."""
    path = Path(name).expanduser()
    if path.is_dir():
        name = path.resolve().name
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/"))


def backbone_identity(backbone: Backbone) -> dict:
    """What must match between the backbone a module was trained on and the one it is loaded into."""
    embeddings = backbone.model.get_input_embeddings().weight
    return {
        "model": backbone.name,
        "model_type": backbone.family,
        "hidden_size": backbone.hidden_size,
        "vocab_size": int(embeddings.shape[0]),
        "embedding_checksum": embedding_checksum(backbone.model),
    }


def check_backbone(saved: dict, backbone: Backbone, what: str) -> None:
    """Refuse a module trained on another backbone (architecture, vocabulary or weights differ)."""
    here = backbone_identity(backbone)
    differing = [key for key in ("model_type", "hidden_size", "vocab_size") if saved.get(key) != here[key]]
    if not differing and not math.isclose(saved.get("embedding_checksum", 0.0), here["embedding_checksum"],
                                          rel_tol=1e-5):
        differing = ["embedding weights"]
    if differing:
        raise XlpeftError(
            f"{what} was trained for backbone {saved.get('model')!r} ({saved.get('model_type')}, hidden size "
            f"{saved.get('hidden_size')}), not for {backbone.name!r} ({here['model_type']}, hidden size "
            f"{here['hidden_size']}): {', '.join(differing)} differ. Train a module for this backbone with "
            "'xlpeft language-module train --model ...', or load the backbone it was trained with"
        )


@dataclass(frozen=True)
class LanguageModule:
    """A trained language module as stored in the registry."""

    language: str
    kind: str  # "la" | "slp"
    path: Path
    meta: dict

    @property
    def fingerprint(self) -> str:
        """Changes when the module is retrained (module.json holds its losses, text and settings)."""
        return module_fingerprint(self.path)

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER_DIR

    def prompt_for(self, backbone: Backbone) -> torch.Tensor:
        """A soft language prompt in xlpeft's space (before the embedding scale), frozen, on the backbone's device."""
        return unscale(load_peft_embeddings(self.path), backbone).to(backbone.model.device).detach()


@dataclass(frozen=True)
class Resolved:
    """The module used for a target language, and how it was chosen."""

    module: LanguageModule
    target: str
    borrowed: bool
    distance_kind: str | None
    distance: float  # 0 for the language's own module


class ModuleRegistry:
    """Reads and locates trained language modules under one root directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def path(self, model: str, language: str, kind: str) -> Path:
        _check_kind(kind)
        return self.root / backbone_slug(model) / language / kind

    def partial_path(self, model: str, language: str, kind: str) -> Path:
        final = self.path(model, language, kind)
        return final.parent / f".{kind}.partial"

    def exists(self, model: str, language: str, kind: str) -> bool:
        return (self.path(model, language, kind) / MODULE_JSON).is_file()

    def languages(self, model: str, kind: str) -> list[str]:
        """Languages that have a finished ``kind`` module for ``model``."""
        _check_kind(kind)
        folder = self.root / backbone_slug(model)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / kind / MODULE_JSON).is_file())

    def load(self, backbone: Backbone, language: str, kind: str) -> LanguageModule:
        """The ``kind`` module of ``language`` for ``backbone``; an error naming the fix if absent or foreign."""
        path = self.path(backbone.name, language, kind)
        if not (path / MODULE_JSON).is_file():
            have = self.languages(backbone.name, kind)
            raise XlpeftError(
                f"no {KIND_NAMES[kind]} ({kind}) for {language} on {backbone.name} in {self.root} "
                f"(it has {kind} modules for: {', '.join(have) or 'no language'}); train one with 'xlpeft "
                f"language-module train --model {backbone.name} --language {language} --kind {kind} "
                f"--modules-dir {self.root}'" + ("" if not have else ", or let evaluation borrow the nearest "
                                                  "language's module with --borrow syntactic")
            )
        meta = json.loads((path / MODULE_JSON).read_text())
        check_backbone(meta["backbone"], backbone, f"the {kind} module of {language} in {path}")
        return LanguageModule(language, kind, path, meta)

    def resolve(self, backbone: Backbone, language: str, kind: str, borrow: str = BORROW_NONE) -> Resolved:
        """``language``'s own module, else (``borrow`` = a URIEL distance kind) the nearest language's."""
        if self.exists(backbone.name, language, kind) or borrow == BORROW_NONE:
            return Resolved(self.load(backbone, language, kind), language, False, None, 0.0)
        nearest, distance = self.nearest(backbone.name, language, kind, borrow)
        return Resolved(self.load(backbone, nearest, kind), language, True, borrow, distance)

    def nearest(self, model: str, language: str, kind: str, distance_kind: str) -> tuple[str, float]:
        """The language with a ``kind`` module closest to ``language`` by ``distance_kind`` (ties: code order)."""
        from xlpeft.data.distances import ALL_KINDS, distances  # urielplus only when borrowing

        if distance_kind not in ALL_KINDS:
            raise XlpeftError(f"unknown --borrow {distance_kind!r}: use none or a URIEL distance "
                              f"({', '.join(ALL_KINDS)})")
        candidates = self.languages(model, kind)
        if not candidates:
            raise XlpeftError(f"no {kind} module for any language on {model} in {self.root} to borrow from")
        table = distances([language], candidates, (distance_kind,)).dropna(subset=[distance_kind])
        if table.empty:
            raise XlpeftError(f"URIEL has no {distance_kind} distance from {language} to any language with a "
                              f"{kind} module ({', '.join(candidates)}); try another --borrow distance")
        best = table.sort_values([distance_kind, "target"]).iloc[0]
        return str(best["target"]), float(best[distance_kind])


def module_fingerprint(path: Path) -> str | None:
    """12 hex digits of the SHA-256 of a module's module.json; None when there is no finished module."""
    file = Path(path) / MODULE_JSON
    return hashlib.sha256(file.read_bytes()).hexdigest()[:12] if file.is_file() else None


def _check_kind(kind: str) -> None:
    if kind not in LANGUAGE_KINDS:
        raise XlpeftError(f"unknown language module kind {kind!r}: use la (language adapter) or slp (soft "
                          "language prompt)")


def list_modules(root: str | Path):
    """A table of every finished module under ``root``: backbone folder, language, kind, text, tokens, losses."""
    import pandas as pd

    rows = []
    for path in sorted(Path(root).expanduser().glob(f"*/*/*/{MODULE_JSON}")):
        meta = json.loads(path.read_text())
        rows.append({"backbone": path.parents[2].name, "language": meta["language"], "kind": meta["kind"],
                     "text": meta["text"]["source"], "tokens_seen": meta["tokens_seen"],
                     "val_loss_initial": round(meta["val_loss_initial"], 4),
                     "val_loss_best": round(meta["val_loss_best"], 4), "parameters": meta["parameters"]})
    return pd.DataFrame(rows)
