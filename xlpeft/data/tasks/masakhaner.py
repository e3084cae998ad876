"""MasakhaNER 2.0: named entities in 20 African languages, with English CoNLL-2003 as the transfer source.

Source: GitHub ``masakhane-io/masakhane-ner`` (data CC-BY-NC-4.0). Files are CoNLL format, one
``token tag`` line per token and a blank line between sentences, tags in IOB2:
``MasakhaNER2.0/data/<lang>/{train,dev,test}.txt`` for the 20 languages, ``data/conll_2003_en/`` for
English (language code ``eng`` here). The repository's ``data/amh`` (Amharic) is MasakhaNER 1.0 and is
not read.

Label sets. MasakhaNER 2.0 tags PER, ORG, LOC and DATE. CoNLL-2003 tags PER, ORG, LOC and MISC; the copy
in this repository already has MISC removed (its tags are PER/ORG/LOC only), the hub copy
(``eriktks/conll2003``) still has it. Zero-shot transfer from English can only learn the types both
sides share, so :func:`load` keeps ``types=SHARED_TYPES`` (PER, ORG, LOC) by default and turns every
other entity (DATE in MasakhaNER, MISC in a CoNLL copy that has it) into ``O`` on both the training and
the evaluation side: a DATE the model was never taught is then neither a miss nor a false alarm.
Pass ``types=ENTITY_TYPES`` for in-language MasakhaNER experiments (DATE kept), or ``types=None`` to
keep the file's tags unchanged. Scores over PER/ORG/LOC are not comparable to published 4-type
MasakhaNER F1.

Text-to-text form (methods.md B, as on WikiANN): a sentence's target is its entities in order,
``"PER: Gani Adams$$LOC: Yorùbá"``, and :data:`NO_ENTITIES` when it has none; :func:`parse_target`
reads such a string (a model's output included) back into (type, text) pairs for
``xlpeft.metrics.entities.text_entity_scores``.

Only a local copy is read: the hub copies (``masakhane/masakhaner2``, ``eriktks/conll2003``) are
loading-script datasets that current ``datasets`` releases no longer run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xlpeft.data.tasks.common import check_choice, find_task_dir, require_dir, require_file
from xlpeft.errors import XlpeftError
from xlpeft.metrics.entities import bio_spans

TASK = "masakhaner"
ORIGIN = "github.com/masakhane-io/masakhane-ner"
SOURCE = "eng"
TARGETS: tuple[str, ...] = tuple(
    "bam bbj ewe fon hau ibo kin lug luo mos nya pcm sna swa tsn twi wol xho yor zul".split()
)
LANGUAGES: tuple[str, ...] = (SOURCE, *TARGETS)
FLORES: dict[str, str] = {
    "eng": "eng_Latn", "bam": "bam_Latn", "ewe": "ewe_Latn", "fon": "fon_Latn", "hau": "hau_Latn",
    "ibo": "ibo_Latn", "kin": "kin_Latn", "lug": "lug_Latn", "luo": "luo_Latn", "mos": "mos_Latn",
    "nya": "nya_Latn", "sna": "sna_Latn", "swa": "swh_Latn", "tsn": "tsn_Latn", "twi": "twi_Latn",
    "wol": "wol_Latn", "xho": "xho_Latn", "yor": "yor_Latn", "zul": "zul_Latn",
}  # bbj (Ghomálá') and pcm (Nigerian Pidgin) are not in SIB-200
SPLITS: tuple[str, ...] = ("train", "dev", "test")
ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC", "DATE")  # MasakhaNER 2.0
SHARED_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC")  # what English CoNLL-2003 and MasakhaNER share
SEPARATOR = "$$"
NO_ENTITIES = "none"  # the target of a sentence without entities: an explicit word, not an empty output


@dataclass(frozen=True)
class NerSentence:
    """One sentence: tokens and their IOB2 tags."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class NerSplit:
    """One language's split; ``types`` are the entity types its tags may hold (None: the file's own)."""

    language: str
    name: str
    sentences: list[NerSentence]
    types: tuple[str, ...] | None

    def __len__(self) -> int:
        return len(self.sentences)


def load(language: str, split: str, data_dir: str | os.PathLike | None = None,
         types: Sequence[str] | None = SHARED_TYPES) -> NerSplit:
    """Read ``split`` of ``language``, keeping only entities of ``types`` (see the module docstring)."""
    check_choice("MasakhaNER language", language, LANGUAGES)
    check_choice("MasakhaNER split", split, SPLITS)
    root = require_dir(TASK, find_task_dir(TASK, "MasakhaNER2.0/data", data_dir), ORIGIN)
    present = [code for code in LANGUAGES if _folder(root, code).is_dir()]
    path = require_file(_folder(root, language) / f"{split}.txt", f"MasakhaNER {language}/{split}", present)
    sentences = read_conll(path)
    if types is not None:
        sentences = [restrict_types(s, types) for s in sentences]
    return NerSplit(language, split, sentences, None if types is None else tuple(types))


def _folder(root: Path, language: str) -> Path:
    return root / "data" / "conll_2003_en" if language == SOURCE else root / "MasakhaNER2.0" / "data" / language


def read_conll(path: Path) -> list[NerSentence]:
    """Sentences of a two-column CoNLL file (``token tag``; blank lines end sentences).

    Two lines of ``xho/train.txt`` have an empty token (``" O"``); the reader drops such tokens when
    tagged ``O``: they carry no text, and a token that is no word would break subword alignment.
    """
    sentences: list[NerSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if tokens:
                sentences.append(NerSentence(tuple(tokens), tuple(tags)))
            tokens, tags = [], []
            continue
        token, _, tag = line.rpartition(" ")
        if not _valid_tag(tag) or (not token.strip() and tag != "O"):
            raise XlpeftError(f"malformed line {number} of {path}: {line!r}; expected 'token tag' with an IOB2 tag")
        if token.strip():
            tokens.append(token)
            tags.append(tag)
    if tokens:
        sentences.append(NerSentence(tuple(tokens), tuple(tags)))
    return sentences


def _valid_tag(tag: str) -> bool:
    return tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def restrict_types(sentence: NerSentence, types: Sequence[str]) -> NerSentence:
    """The sentence with every entity whose type is not in ``types`` turned into ``O`` tags."""
    keep = set(types)
    tags = tuple(tag if tag == "O" or tag[2:] in keep else "O" for tag in sentence.tags)
    return NerSentence(sentence.tokens, tags)


def entities(sentence: NerSentence) -> list[tuple[str, str]]:
    """The sentence's entities as (type, text) in order, text being the entity's tokens joined by spaces."""
    return [(type_, " ".join(sentence.tokens[start:end])) for type_, start, end in bio_spans(sentence.tags)]


def render_target(sentence: NerSentence) -> str:
    """The text-to-text target, e.g. ``"PER: Gani Adams$$LOC: Yorùbá"`` (NO_ENTITIES when there is none)."""
    return render_entities(entities(sentence))


def render_entities(spans: Sequence[tuple[str, str]]) -> str:
    """(type, text) pairs as ``"TYPE: text"`` joined by ``$$``; the inverse of :func:`parse_target`."""
    return SEPARATOR.join(f"{type_}: {text}" for type_, text in spans) or NO_ENTITIES


def parse_target(text: str) -> list[tuple[str, str]]:
    """(type, text) pairs of a ``"PER: X$$LOC: Y"`` string, such as a model's generated output.

    Each ``$$``-separated part is split at its first colon, so entity texts may contain colons. Parts
    without a colon, type or text (``NO_ENTITIES``, or malformed generations) yield nothing: a malformed
    output then costs recall, never a crash. Whitespace inside texts is collapsed, as in the gold.
    """
    spans = []
    for part in text.split(SEPARATOR):
        type_, colon, value = part.partition(":")
        type_, value = type_.strip(), " ".join(value.split())
        if colon and type_ and value:
            spans.append((type_, value))
    return spans
