"""The docs regenerator rewrites exactly its marked block and refuses a document without the markers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("regenerate_docs", REPO / "benchmarks" / "regenerate_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_replace_block_rewrites_only_its_block(tmp_path, monkeypatch):
    regen = _module()
    monkeypatch.setattr(regen, "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- regenerate:a -->\nold a\n<!-- /regenerate:a -->\nmiddle\n"
                   "<!-- regenerate:b -->\nold b\n<!-- /regenerate:b -->\nend\n")
    regen.replace_block(doc, "a", "new a\nline 2\n")
    assert doc.read_text() == ("intro\n<!-- regenerate:a -->\nnew a\nline 2\n<!-- /regenerate:a -->\nmiddle\n"
                               "<!-- regenerate:b -->\nold b\n<!-- /regenerate:b -->\nend\n")


def test_replace_block_without_markers_is_an_error(tmp_path, monkeypatch):
    regen = _module()
    monkeypatch.setattr(regen, "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="no block 'a'"):
        regen.replace_block(doc, "a", "x")
    assert doc.read_text() == "no markers here\n"


def test_every_block_in_the_docs_has_a_target():
    """Each marked block in README.md and docs/ is one that the script writes (no orphan, hand-kept block)."""
    import re

    regen = _module()
    names = set()
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        names |= set(re.findall(r"<!-- regenerate:([\w.-]+) -->", path.read_text(encoding="utf-8")))
    known = {"quickstart-time", "quickstart-summary", "quickstart-claims"}
    orphans = {n for n in names - known if not n.startswith("bench-")}
    assert not orphans, f"blocks no target writes: {orphans}"
    assert regen.README.is_file() and regen.BENCHMARKS.is_file()
