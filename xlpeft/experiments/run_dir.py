"""A run directory: what ``xlpeft train`` writes and ``xlpeft evaluate`` reads.

Layout::

    RUN_DIR/config.json          resolved TrainConfig + versions + data source + parameter counts
    RUN_DIR/sample.json          the sampled SIB-200 index_ids (train / validation)
    RUN_DIR/train_log.jsonl      one line per epoch: losses, validation accuracy / macro-F1, seconds
    RUN_DIR/prompt.safetensors   the best epoch's folded L x d prompt ("prompt"), unscaled
    RUN_DIR/model/               joint / full regimes only: the best epoch's model weights
    RUN_DIR/metrics.json         best epoch and its source-language validation metrics (written last)
    RUN_DIR/checkpoint.pt        while training: state to resume an interrupted run (removed at the end)

Every file is written to a temporary name and renamed, so an interrupted run never leaves a half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from xlpeft.errors import XlpeftError

CONFIG, SAMPLE, LOG, PROMPT, MODEL, METRICS, CHECKPOINT = (
    "config.json", "sample.json", "train_log.jsonl", "prompt.safetensors", "model", "metrics.json", "checkpoint.pt",
)


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def append_jsonl(path: Path, record: dict) -> None:
    """Rewrite the log with one more line (atomic; logs are a few dozen lines)."""
    old = path.read_text() if path.exists() else ""
    atomic_write(path, lambda tmp: tmp.write_text(old + json.dumps(record, sort_keys=True) + "\n"))


def save_prompt(path: Path, prompt: torch.Tensor) -> None:
    atomic_write(path, lambda tmp: save_file({"prompt": prompt.detach().float().cpu().contiguous()}, str(tmp)))


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def ensure_writable(directory: Path, flag: str = "--out") -> Path:
    """Create ``directory`` and prove it is writable before hours of work go into it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise XlpeftError(f"cannot write to {directory} ({exc.strerror}); choose a writable {flag} directory") from exc
    return directory


@dataclass(frozen=True)
class Run:
    """A finished training run as evaluation needs it."""

    path: Path
    config: dict
    prompt: torch.Tensor | None  # [L, d], unscaled; None for the full regime

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the trained artefacts change: results are only reused for the same one."""
        digest = hashlib.sha256((self.path / CONFIG).read_bytes())
        for name in (PROMPT, METRICS):
            if (self.path / name).exists():
                digest.update((self.path / name).read_bytes())
        return digest.hexdigest()[:12]

    @property
    def model_dir(self) -> Path | None:
        return self.path / MODEL if (self.path / MODEL).is_dir() else None

    @property
    def backbone_key(self) -> str:
        """Runs with equal keys share one frozen backbone and are evaluated together."""
        return str(self.model_dir) if self.model_dir else self.config["train"]["model"]


def load_run(path: str | os.PathLike) -> Run:
    run_path = Path(path)
    if not (run_path / METRICS).is_file():
        hint = "training was interrupted: rerun the same 'xlpeft train' command to resume" if (
            run_path / CONFIG
        ).is_file() else "it is not a run directory written by 'xlpeft train'"
        raise XlpeftError(f"{run_path} holds no finished run ({METRICS} missing): {hint}")
    config = json.loads((run_path / CONFIG).read_text())
    prompt = load_file(str(run_path / PROMPT))["prompt"] if (run_path / PROMPT).exists() else None
    return Run(run_path, config, prompt)
