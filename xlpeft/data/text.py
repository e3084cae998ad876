"""Unlabeled text per language, for training language adapters and soft language prompts.

A ``source`` is one of:

- a folder of ``<data>/text``: ``bible_nt``, ``masakhane``, ``lafand``, ``tatoeba``, ``udhr``, ``ud``
  (one sentence / verse / paragraph per line);
- ``sib200-train``: the unlabeled text of SIB-200's train split (all 205 languages; disjoint from
  dev/test, so it never leaks evaluation sentences);
- a path to the user's own UTF-8 text file, one document per line, used as it is;
- a hub dataset ``owner/name`` or ``owner/name:config``, streamed with ``datasets`` (its ``text``
  column). ``wikimedia/wikipedia`` defaults to the ``20231101.<wiki>`` dump of the language; any other
  dataset defaults to the SIB-200 code as its config, the convention of FLORES-coded corpora such as
  ``HuggingFaceFW/fineweb-2``.

How a SIB-200 code finds its file in a folder. Files are named ``<iso639-3>.txt`` or, in ``udhr``,
``<iso639-3>_<Script>.txt``. For ``srp_Cyrl`` the candidates are, in order: ``srp_Cyrl.txt``, then
``srp.txt``; after them the same for the codes the sources use for the same variety
(:data:`FILE_CODES`, e.g. ``ara`` for Standard Arabic ``arb``, ``cmn`` for FLORES's ``zho``).
``zho_Hans`` / ``zho_Hant`` / ``yue_Hant`` also try ``<iso>_Hani.txt`` (Han, variant unspecified). The
first candidate that yields text wins, so an exact ISO 639-3 code beats an equivalent.

Scripts. A file that names its script (``cmn_Hant.txt``) is used whole, only for that script. A file
that does not (``srp.txt``) or names only ``Hani`` is filtered line by line to the requested script,
because several are mixed: Tatoeba's ``srp`` is 70 % Latin and 30 % Cyrillic lines, ``uzb`` mixes
Latin and Cyrillic, ``jav`` has Javanese-script lines, ``cmn`` mixes simplified and traditional
Chinese. A line is kept when at least half of its letters are in the script (lines without letters
are kept); a file with under 5 % of its lines kept serves nothing (Tatoeba's Arabic ``ara.txt`` has
two Spanish lines, which must not make it ``arb_Latn`` text). Simplified and traditional Chinese
share the Han script, so a Han line is assigned by counting characters that exist in only one of the
two forms (:data:`HAN_PAIRS`); a line with none of them follows the majority of its file (or hub
record): UDHR's ``yue_Hani.txt`` is simplified, so it is no text for ``yue_Hant``. Hub text is
filtered the same way; a user's file is not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
import pycountry
import regex

from xlpeft.data.languages import Language, registry, resolve_languages
from xlpeft.data.sib200 import Sib200
from xlpeft.errors import XlpeftError
from xlpeft.hub import hub_reachable, offline_mode

FOLDER_SOURCES: tuple[str, ...] = ("bible_nt", "masakhane", "lafand", "tatoeba", "udhr", "ud")
SIB_TRAIN = "sib200-train"
WIKIPEDIA = "wikimedia/wikipedia"
WIKIPEDIA_DUMP = "20231101"
HUB_SHUFFLE_BUFFER = 10_000
# Below this share of a file's lines, lines in the script are strays (two Spanish sentences in
# Tatoeba's Arabic file), not text in that script.
MIN_SCRIPT_SHARE = 0.05

# SIB-200 ISO 639-3 code -> other codes the text sources use for the same variety. Each is either the
# ISO macrolanguage the source files the text under, or (zho, est) the individual language the source
# uses where FLORES uses the macrolanguage. Script filtering still applies: Tatoeba's ara.txt serves
# arb_Arab, not arb_Latn.
FILE_CODES: dict[str, tuple[str, ...]] = {
    "arb": ("ara",),  # Tatoeba: Standard Arabic under the macrolanguage
    "zho": ("cmn",),  # FLORES zho is Mandarin; UDHR cmn_Hans / cmn_Hant, Tatoeba cmn
    "est": ("ekk",),  # UDHR: Standard Estonian
    "lvs": ("lav",),  # bible: Standard Latvian under the macrolanguage
    "als": ("sqi",),  # Tatoeba: Albanian (standard Albanian is Tosk-based)
    "azj": ("aze",),  # Tatoeba: North Azerbaijani
    "uzn": ("uzb",),  # Tatoeba: Northern Uzbek
    "khk": ("mon",),  # Tatoeba: Halh Mongolian
    "swh": ("swa",),  # LAFAND: Swahili
    "ydd": ("yid",),  # Tatoeba: Eastern Yiddish
    "zsm": ("zlm",),  # UDHR: the standard Malay text
    "kmr": ("kur",),  # Tatoeba: Kurmanji (Latin)
    "grn": ("gug",),  # UDHR: Paraguayan Guarani, the Guarani of FLORES
    "quy": ("que",),  # bible: Quechua under the macrolanguage (a northern variety, not Ayacucho)
}

# Wikipedia subdomains where "ISO 639-1 if any, else ISO 639-3" is wrong (macrolanguage editions,
# and als.wikipedia being Alemannic, not Albanian).
WIKIPEDIA_CODES: dict[str, str] = {
    "arb": "ar", "als": "sq", "azj": "az", "uzn": "uz", "khk": "mn", "swh": "sw", "ydd": "yi", "zsm": "ms",
    "kmr": "ku", "quy": "qu", "pes": "fa", "prs": "fa", "gaz": "om", "plt": "mg", "npi": "ne", "ory": "or",
    "pbt": "ps", "lvs": "lv", "nob": "no", "yue": "zh-yue", "fuv": "ff", "dik": "din", "bho": "bh",
}

# (simplified, traditional) characters that exist in only one of the two standards; frequent ones,
# leaving out characters that are valid in both (后 里 干 台 ...).
HAN_PAIRS: tuple[str, ...] = tuple(
    """
    这這 们們 个個 国國 说說 时時 会會 来來 对對 为為 过過 还還 没沒 吗嗎 东東 车車 书書 学學 见見 长長
    门門 问問 间間 开開 关關 头頭 电電 话話 语語 让讓 给給 认認 识識 经經 发發 现現 点點 动動 样樣 实實
    体體 无無 从從 两兩 当當 进進 应應 该該 觉覺 钱錢 买買 卖賣 边邊 难難 处處 与與 业業 乐樂 习習 亲親
    写寫 军軍 农農 则則 刚剛 办辦 务務 华華 单單 历歷 压壓 县縣 参參 双雙 变變 号號 听聽 员員 围圍 图圖
    场場 坏壞 声聲 备備 妈媽 孙孫 宁寧 宝寶 将將 岁歲 师師 帮幫 广廣 庆慶 张張 总總 战戰 报報 护護 据據
    数數 断斷 旧舊 显顯 杀殺 条條 极極 标標 树樹 欢歡 气氣 汉漢 济濟 热熱 爱愛 爷爺 猫貓 环環 产產 画畫
    离離 笔筆 简簡 类類 级級 线線 组組 结結 绝絕 统統 继繼 网網 罗羅 联聯 脑腦 节節 药藥 虽雖 补補 视視
    观觀 规規 讨討 记記 讲講 许許 论論 设設 证證 评評 词詞 试試 请請 读讀 谁誰 谢謝 负負 贵貴 费費 资資
    赛賽 转轉 轻輕 输輸 达達 运運 选選 钟鐘 银銀 错錯 阳陽 队隊 际際 随隨 险險 须須 顾顧 风風 飞飛 饭飯
    马馬 鱼魚 鸟鳥 鸡雞 龙龍 权權 义義 议議 严嚴 鉴鑒 础礎 约約 织織 职職 获獲 举舉 协協 责責 儿兒 机機
    么麼
    """.split()
)
_SIMPLIFIED = frozenset(pair[0] for pair in HAN_PAIRS)
_TRADITIONAL = frozenset(pair[1] for pair in HAN_PAIRS)
_HAN_VARIANTS = ("Hans", "Hant")
# ISO 15924 codes of SIB-200 whose text mixes Unicode scripts; every other code is its own script.
_SCRIPT_PARTS = {"Jpan": ("Hani", "Hira", "Kana"), "Hang": ("Hang", "Hani"), "Hans": ("Hani",), "Hant": ("Hani",)}
_LETTER = regex.compile(r"\p{L}")
_HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?$")


@dataclass(frozen=True)
class TextCorpus:
    """Lines of one language from one source; ``path`` is the file, or ``hub:<dataset>:<config>``."""

    language: str
    source: str
    path: str
    lines: list[str]

    @property
    def n_lines(self) -> int:
        return len(self.lines)


def available_sources(code: str, data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """UTF-8 bytes (lines plus newlines) of each local source that has text for ``code``.

    Files are read rather than trusting ``coverage_vs_sib200.tsv``: a copied directory may lack files,
    and script filtering changes the amount (the table gives all of Tatoeba's mixed ``srp.txt`` to
    ``srp_Cyrl``). Hub datasets are not listed: their size is unknown offline.
    """
    lang = _language(code)
    text_dir = _text_dir(data_dir)
    found = {}
    for source in FOLDER_SOURCES:
        match = _find_file(text_dir / source, lang)
        if match is not None:
            found[source] = _n_bytes(match[1])
    try:
        sib = _sib200(data_dir)
    except XlpeftError:  # a text folder without SIB-200 beside it
        return found
    if sib.root is not None:
        found[SIB_TRAIN] = _n_bytes(_clean(sib.load(lang.code, "train").texts))
    return found


def load_text(
    code: str,
    source: str,
    data_dir: str | os.PathLike | None = None,
    max_lines: int | None = None,
    seed: int = 0,
) -> TextCorpus:
    """The lines of ``code`` from ``source`` (see the module docstring), in a seeded random order.

    The order is a permutation drawn from ``seed``, so batches are not all from one book or article;
    ``max_lines`` keeps its first lines, so a larger ``max_lines`` with the same seed gives a superset.
    """
    lang = _language(code)
    if max_lines is not None and max_lines < 1:
        raise XlpeftError(f"max_lines must be at least 1, not {max_lines}")
    if source in FOLDER_SOURCES:
        path, lines = _folder_text(lang, source, data_dir)
    elif source == SIB_TRAIN:
        sib = _sib200(data_dir)
        path, lines = f"{sib.describe()}/{lang.code}/train", _clean(sib.load(lang.code, "train").texts)
    elif Path(source).expanduser().is_file():
        path = str(Path(source).expanduser().resolve())
        lines = _clean(Path(path).read_text(encoding="utf-8").splitlines())
    elif _HUB_NAME.match(source):
        return _hub_text(lang, source, max_lines, seed)
    else:
        raise XlpeftError(
            f"unknown text source {source!r}: use one of {', '.join(FOLDER_SOURCES)}, {SIB_TRAIN}, an existing "
            f"text file, or a hub dataset such as {WIKIPEDIA}"
        )
    return TextCorpus(lang.code, source, path, _shuffle(lines, max_lines, seed))


def tokenize(lines: Iterable[str], tokenizer, chunk: int = 1000) -> Iterator[list[int]]:
    """Token ids of each line without special tokens: the token streams the LM objectives pack."""
    it = iter(lines)
    while batch := list(islice(it, chunk)):
        yield from tokenizer(batch, add_special_tokens=False)["input_ids"]


def wikipedia_config(code: str) -> str:
    """The ``wikimedia/wikipedia`` config of a SIB-200 language, e.g. ``20231101.sw`` for ``swh_Latn``."""
    lang = _language(code)
    iso = pycountry.languages.get(alpha_3=lang.iso639_3)
    wiki = WIKIPEDIA_CODES.get(lang.iso639_3) or getattr(iso, "alpha_2", None) or lang.iso639_3
    return f"{WIKIPEDIA_DUMP}.{wiki}"


def _language(code: str) -> Language:
    """One SIB-200 language; ISO codes with a single script (``swh``) are accepted as elsewhere."""
    resolved = resolve_languages(code)
    if len(resolved) != 1:
        raise XlpeftError(f"give one language, not {code!r} ({len(resolved)} languages)")
    return registry()[resolved[0]]


def _has_sources(path: Path) -> bool:
    return any((path / source).is_dir() for source in FOLDER_SOURCES)


def _text_dir(data_dir: str | os.PathLike | None) -> Path:
    """The ``text`` folder: ``data_dir`` may be the data root, the ``text`` folder, or the sibling ``sib200``."""
    given = data_dir or os.environ.get("XLPEFT_DATA_DIR")
    if not given:
        raise XlpeftError(
            "no data directory for local text: pass data_dir (--data-dir) or set XLPEFT_DATA_DIR to the folder "
            f"holding text/ (e.g. ../shared/data); hub datasets such as {WIKIPEDIA} need no directory"
        )
    path = Path(given).expanduser()
    for candidate in (path / "text", path, path.parent / "text"):
        if _has_sources(candidate):
            return candidate.resolve()
    raise XlpeftError(
        f"no text folder found from {path}: expected {path}/text/<source>/ with sources such as "
        f"{', '.join(FOLDER_SOURCES[:3])}; point the data directory at the folder holding text/"
    )


def _sib200(data_dir: str | os.PathLike | None) -> Sib200:
    """SIB-200 next to the text: a ``text`` folder given as ``data_dir`` means its parent."""
    if data_dir is not None and _has_sources(Path(data_dir).expanduser()):
        data_dir = Path(data_dir).expanduser().parent
    return Sib200.resolve(data_dir)


def _folder_text(lang: Language, source: str, data_dir: str | os.PathLike | None) -> tuple[str, list[str]]:
    match = _find_file(_text_dir(data_dir) / source, lang)
    if match is None:
        have = available_sources(lang.code, data_dir)
        listing = ", ".join(f"{name} ({size / 1e3:.0f} kB)" for name, size in have.items()) or "none"
        raise XlpeftError(
            f"no {source} text for {lang.code} ({lang.name}); sources with {lang.code} text: {listing}; "
            f"or pass a text file or a hub dataset such as {WIKIPEDIA}"
        )
    path, lines = match
    return str(path), list(lines)


def _find_file(folder: Path, lang: Language) -> tuple[Path, tuple[str, ...]] | None:
    """The first candidate file (module docstring) with text in ``lang``'s script, and its lines."""
    for stem, script in _candidates(lang):
        path = folder / f"{stem}.txt"
        if path.is_file():
            stat = path.stat()
            lines = _file_lines(str(path), script, stat.st_mtime_ns, stat.st_size)
            if lines:
                return path, lines
    return None


def _candidates(lang: Language) -> list[tuple[str, str | None]]:
    """File stems to try, each with the script to filter it to (None: the name declares the script)."""
    stems = []
    for iso in (lang.iso639_3, *FILE_CODES.get(lang.iso639_3, ())):
        stems.append((f"{iso}_{lang.script}", None))
        if lang.script in _HAN_VARIANTS:
            stems.append((f"{iso}_Hani", lang.script))
        stems.append((iso, lang.script))
    return stems


@lru_cache(maxsize=32)
def _file_lines(path: str, script: str | None, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    """Non-empty stripped lines, filtered to ``script`` unless None.

    Cached on path, mtime and size: available_sources and load_text read the same files.
    """
    lines = _clean(Path(path).read_text(encoding="utf-8").splitlines())
    return tuple(lines if script is None else in_script(lines, script))


def in_script(lines: list[str], script: str) -> list[str]:
    """The lines written in ``script`` (ISO 15924), as the module docstring describes."""
    foreign = _foreign_letter(script)
    kept = lines
    if foreign.search("\n".join(lines)):
        kept = [line for line in lines if 2 * len(foreign.findall(line)) <= len(_LETTER.findall(line))]
    if script in _HAN_VARIANTS:
        kept = _han_variant(kept, script)
    return kept if len(kept) >= MIN_SCRIPT_SHARE * len(lines) else []


@lru_cache
def _foreign_letter(script: str) -> regex.Pattern:
    """A letter outside ``script`` (Unicode script extensions, so shared marks such as ー count as in)."""
    parts = _SCRIPT_PARTS.get(script, (script,))
    return regex.compile("[^\\P{L}" + "".join(f"\\p{{scx={p}}}" for p in parts) + "]")


def _han_variant(lines: list[str], script: str) -> list[str]:
    """Lines in simplified (Hans) or traditional (Hant) characters; unmarked lines follow the majority."""
    votes = [sum(c in _SIMPLIFIED for c in line) - sum(c in _TRADITIONAL for c in line) for line in lines]
    majority = "Hans" if sum(v > 0 for v in votes) >= sum(v < 0 for v in votes) else "Hant"
    sign = 1 if script == "Hans" else -1
    return [line for line, v in zip(lines, votes) if v * sign > 0 or (v == 0 and majority == script)]


def _clean(lines: Iterable[str]) -> list[str]:
    return [s for s in (line.strip() for line in lines) if s]


def _n_bytes(lines: Iterable[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _shuffle(lines: list[str], max_lines: int | None, seed: int) -> list[str]:
    order = np.random.default_rng(seed).permutation(len(lines))[:max_lines]
    return [lines[i] for i in order]


def _hub_text(lang: Language, source: str, max_lines: int | None, seed: int) -> TextCorpus:
    """Stream ``max_lines`` lines of a hub dataset, shuffled with ``seed`` through a buffer."""
    name, _, config = source.partition(":")
    config = config or (wikipedia_config(lang.code) if name == WIKIPEDIA else lang.code)
    if max_lines is None:
        raise XlpeftError(f"give max_lines for the hub dataset {name}: it is streamed, and may be very large")
    # datasets would retry for minutes without a network; offline mode may still answer from its cache
    if not offline_mode() and not hub_reachable():
        raise XlpeftError(
            f"the hub is unreachable, so {name} ({config}) cannot be streamed; if {source!r} was meant as a "
            f"file, it does not exist; use a local source ({', '.join(FOLDER_SOURCES)}, {SIB_TRAIN}) instead"
        )
    import datasets  # imported lazily: only hub users pay for it

    try:
        stream = datasets.load_dataset(name, config, split="train", streaming=True)
        records = stream.shuffle(seed=seed, buffer_size=HUB_SHUFFLE_BUFFER)
        lines = list(islice(_record_lines(records, lang.script), max_lines))
    except Exception as exc:  # network and missing-config errors come in many types; all mean the same here
        raise XlpeftError(
            f"could not stream {name} ({config}) from the hub ({type(exc).__name__}: {exc}); check the dataset "
            "and config names (give one as owner/name:config), or use a local source"
        ) from exc
    if not lines:
        raise XlpeftError(f"{name} ({config}) has no {lang.script}-script text for {lang.code}; try another source")
    return TextCorpus(lang.code, source, f"hub:{name}:{config}", lines)


def _record_lines(records: Iterable[dict], script: str) -> Iterator[str]:
    """Paragraphs of each record's ``text``, filtered to ``script`` record by record."""
    for record in records:
        yield from in_script(_clean(record["text"].splitlines()), script)
