"""URIEL linguistic distances and language coordinates, offline, from the data shipped with ``urielplus``.

**Data.** URIEL (Littell et al., 2017) as shipped in the ``urielplus`` wheel (``database/original_uriel``):
feature vectors for 7,970 languages named by ISO 639-3, which is what SIB-200's FLORES codes carry, so
every SIB-200 language is found under its own code (macrolanguages such as ``zho`` included) and no
code mapping is needed. We do not run urielplus's database integration (Grambank, SAPHON, BDPROTO,
Glottolog): it would give syntactic features to 8 more SIB-200 languages, but it takes ~45 s, renames
every language to a Glottocode and so drops, from every kind, the five SIB-200 macrolanguages that
have none (``zho``, ``est``, ``grn``, ``kon``, ``srd``: 6 SIB-200 codes). Nothing is imputed.

**Distances.** Six kinds, as ``URIELPlus().new_distance(kind, [source, target])`` computes them with its
defaults (union aggregation over sources, angular metric): each language's feature values (a
feature's value is the maximum over the sources that know it), restricted to the features *both*
languages have, then ``2 * arccos(cos(u, v)) / pi`` rounded to 4 decimals. 0 is identical, 1 opposite.

**Why not call urielplus.** Its batch call builds every pair of the languages given (quadratic) and
its pair call loops over features in Python: ~30 s for one source x 205 targets x 6 kinds, mostly the
3,718 genetic features, against ~1 s here. Here the per-feature work is vectorised with numpy on urielplus's own
arrays and each pair repeats urielplus's arithmetic step by step (same shared-feature order, same
dtypes), so the values are the same, not merely close: ``tests/data/test_distances.py`` checks a handful
of pairs against urielplus for all six kinds, and all 205 targets x 6 kinds from eng, zho, yor, fra
and hin (6,150 values) were checked once: no difference.
Loading the arrays directly also avoids ``URIELPlus()``'s side effects: it copies its data into its
own install directory and calls ``logging.basicConfig(level=INFO)`` on import.

**Missing values** are NaN, and a ``missing_<kind>`` column names the reason (see
:data:`MISSING_REASONS`); for example 110 of the 205 SIB-200 languages have no phonological features.

**Cache.** Results are cached per source language under ``cache_dir()/uriel/<key>/``, where the key
hashes the urielplus version, its data files and this module's method version, so a new urielplus
or a change here never reuses stale values.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from xlpeft.data.languages import codes_by_iso, registry, resolve_languages
from xlpeft.errors import XlpeftError
from xlpeft.files import cache_dir, write_json

log = logging.getLogger(__name__)

ALL_KINDS: tuple[str, ...] = ("syntactic", "geographic", "inventory", "genetic", "phonological", "featural")

# Which urielplus file holds each kind and which feature-name prefix selects it (urielplus's own mapping
# in ``map_new_distance_to_loaded_features`` and ``new_distance``); None keeps every feature of the file.
_KIND_SOURCE: dict[str, tuple[str, str | None]] = {
    "syntactic": ("features.npz", "S_"),
    "phonological": ("features.npz", "P_"),
    "inventory": ("features.npz", "INV_"),
    "featural": ("features.npz", None),
    "genetic": ("family_features.npz", None),
    "geographic": ("geocoord_features.npz", None),
}
_DATA_FILES = ("features.npz", "family_features.npz", "geocoord_features.npz")
METHOD_VERSION = 1  # bump when the computation here changes, so that old cache entries are not reused

MISSING_REASONS: dict[str, str] = {
    "source_not_in_uriel": "URIEL does not know the source language's ISO 639-3 code",
    "target_not_in_uriel": "URIEL does not know the target language's ISO 639-3 code",
    "both_not_in_uriel": "URIEL knows neither language's ISO 639-3 code",
    "source_without_kind": "URIEL has no feature of this kind for the source language",
    "target_without_kind": "URIEL has no feature of this kind for the target language",
    "both_without_kind": "URIEL has no feature of this kind for either language",
    "no_shared_features": "both languages have features of this kind, but no feature known for both",
    "no_iso_code": "the task gives no ISO 639-3 code (URIEL's key) for the language or its source",
}
COORDINATE_SOURCES: dict[str, str] = {
    "glottolog": "Glottolog's point, from urielplus's lang_fam_geo.csv (via its ISO-to-Glottocode map)",
    "uriel_geographic": "recovered by least squares from URIEL's distances to 299 fixed points (no Glottolog point)",
}


def distances(sources: list[str], targets: list[str], kinds: tuple[str, ...] = ALL_KINDS,
              iso: Callable[[str], str | None] | None = None) -> pd.DataFrame:
    """URIEL distances from each source to each target: one row per pair, one float column per kind.

    Codes are SIB-200 codes (anything :func:`resolve_languages` accepts), or with ``iso`` a task's own codes,
    kept as given and looked up in URIEL under ``iso(code)`` (``Task.iso_code``: NusaX's ISO 639-3, XQuAD's
    ISO 639-1); a code it maps to None has no distance (``no_iso_code``). Beside each kind's column,
    ``missing_<kind>`` holds a :data:`MISSING_REASONS` key where the value is NaN, else None.
    """
    kinds = tuple(dict.fromkeys(kinds))
    _check_kinds(kinds)
    source_codes, target_codes = (_codes(sources), _codes(targets)) if iso is None else (list(sources), list(targets))
    key = _iso if iso is None else iso
    rows = []
    for source in source_codes:
        by_target = (_cached_source(key(source), [key(t) for t in target_codes if key(t)], kinds) if key(source)
                     else {})
        for target in target_codes:
            cells = by_target.get(key(target)) or {kind: [None, "no_iso_code"] for kind in kinds}
            row: dict = {"source": source, "target": target}
            row.update({kind: np.nan if cells[kind][0] is None else cells[kind][0] for kind in kinds})
            row.update({f"missing_{kind}": cells[kind][1] for kind in kinds})
            rows.append(row)
    columns = ["source", "target", *kinds, *(f"missing_{kind}" for kind in kinds)]
    # dtype=object keeps None in the reason columns under pandas 2 and 3 alike (3 would infer str and NaN)
    return pd.DataFrame(rows, columns=columns, dtype=object).astype({kind: float for kind in kinds})


def coordinates(codes: list[str], iso: Callable[[str], str | None] | None = None) -> pd.DataFrame:
    """Latitude and longitude (degrees) of each language, with where they come from.

    ``coord_source`` is a :data:`COORDINATE_SOURCES` key. Glottolog's point is used where urielplus maps
    the ISO code to a Glottocode that has one; otherwise (macrolanguages such as ``zho``, and ``nqo``)
    the point is recovered from URIEL's geographic features, which are great-circle distances to 299
    fixed points: the point whose distances fit best. Where both exist they agree to a median 3 km;
    the largest gaps (rus 1,500 km, kaz 1,100 km) are places where URIEL's point differs from
    Glottolog's. A language with neither gets NaN and ``missing`` = ``no_point``. ``iso``: as in :func:`distances`.
    """
    points = _glottolog_points()
    rows = []
    for code in (_codes(codes) if iso is None else codes):
        key = _iso(code) if iso is None else iso(code)
        row = {"language": code, "latitude": np.nan, "longitude": np.nan, "coord_source": None, "missing": None}
        if key in points:
            row.update(latitude=points[key][0], longitude=points[key][1], coord_source="glottolog")
        elif key and (point := _uriel_point(key)) is not None:
            row.update(latitude=point[0], longitude=point[1], coord_source="uriel_geographic")
        else:
            row["missing"] = "no_point"
        rows.append(row)
    columns = ["language", "latitude", "longitude", "coord_source", "missing"]
    return pd.DataFrame(rows, columns=columns, dtype=object).astype({"latitude": float, "longitude": float})


def _check_kinds(kinds: tuple[str, ...]) -> None:
    unknown = [kind for kind in kinds if kind not in _KIND_SOURCE]
    if unknown or not kinds:
        raise XlpeftError(f"unknown distance kind(s) {unknown or '(none given)'}: choose from {', '.join(ALL_KINDS)}")


def _codes(codes: list[str]) -> list[str]:
    """SIB-200 codes, resolved; an ISO 639-3 code of a language outside SIB-200 (a task's language such as
    NusaX's Toba Batak, ``bbc``) is kept as it is, so that URIEL can still be asked about it."""
    if not codes:
        raise XlpeftError("no languages given: pass SIB-200 codes such as eng_Latn")
    return [code if _outside_sib200(code) else resolve_languages(code)[0] for code in codes]


def _outside_sib200(code: str) -> bool:
    import pycountry

    return (len(code) == 3 and code.islower() and code not in codes_by_iso()
            and pycountry.languages.get(alpha_3=code) is not None)


def _iso(code: str) -> str:
    language = registry().get(code)
    return language.iso639_3 if language else code


# --- cache -------------------------------------------------------------------------------------------

def _cached_source(source: str, targets: list[str], kinds: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """``{target: {kind: [value or None, reason or None]}}`` for one source ISO code, from the cache or
    computed for the cells the cache lacks (then written back)."""
    path = cache_dir() / "uriel" / _cache_key() / f"{source}.json"
    cached: dict[str, dict[str, list]] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [t for t in dict.fromkeys(targets) if any(kind not in cached.get(t, {}) for kind in kinds)]
    if todo:
        log.info("URIEL distances: computing %d target(s) from %s (cache: %s)", len(todo), source, path.parent)
        for target, cells in _compute(source, todo, kinds).items():
            cached.setdefault(target, {}).update(cells)
        write_json(path, cached)
    return cached


@cache
def _cache_key() -> str:
    """A hash of what the values depend on: urielplus's version and data files, and this module's method."""
    paths = [_data_path(name) for name in _DATA_FILES]  # first, so that a missing urielplus says how to fix it
    digest = hashlib.sha256(f"urielplus {importlib.metadata.version('urielplus')} method {METHOD_VERSION}".encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _package_dir() -> Path:
    spec = importlib.util.find_spec("urielplus")  # finds the package without running its logging setup
    if spec is None or not spec.submodule_search_locations:
        raise XlpeftError("urielplus is not installed: pip install urielplus (it provides URIEL's data offline)")
    return Path(next(iter(spec.submodule_search_locations)))


def _data_path(name: str) -> Path:
    return _package_dir() / "database" / "original_uriel" / name


# --- computation -------------------------------------------------------------------------------------

def _compute(source: str, targets: list[str], kinds: tuple[str, ...]) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = {target: {} for target in targets}
    for kind in sorted(kinds, key=lambda kind: _KIND_SOURCE[kind][0]):  # each file is loaded once
        values, known, index = _kind_arrays(kind, (source, *targets))
        for target in targets:
            out[target][kind] = _pair(values, known, index, source, target)
    return out


def _kind_arrays(kind: str, isos: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Feature values and "known" flags of one kind, one row per ISO code that URIEL has.

    As in urielplus's ``_process_language``: a feature is known when some source gives a value other
    than -1; a single-source file keeps its stored value (and float32 dtype); several sources are
    combined by their maximum in float64 (union aggregation).

    Columns stay those of the whole file (features of other kinds are never known) because urielplus
    indexes features that way, and the indices' order decides the order of the dot product's terms.
    """
    filename, prefix = _KIND_SOURCE[kind]
    langs, feats, data = _load(filename)
    rows = {iso: langs[iso] for iso in dict.fromkeys(isos) if iso in langs}
    block = data[list(rows.values())]
    known = (block != -1.0).any(axis=2)
    if prefix is not None:
        known &= np.char.startswith(feats, prefix)
    if block.shape[2] == 1:
        values = block[:, :, 0]
    else:
        usable = (block != -1.0) & np.isfinite(block)
        values = np.where(usable, block.astype(np.float64), -np.inf).max(axis=2)
    return values, known, {iso: i for i, iso in enumerate(rows)}


@lru_cache(maxsize=1)  # the genetic array alone is 118 MB: keep one file in memory, not all three
def _load(filename: str) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """urielplus's arrays for one file: ``({iso: row}, feature names, data[lang, feature, source])``."""
    with np.load(_data_path(filename), allow_pickle=False) as archive:
        langs = {str(iso): row for row, iso in enumerate(archive["langs"])}
        return langs, archive["feats"].astype(str), archive["data"]


def _pair(values: np.ndarray, known: np.ndarray, index: dict[str, int], source: str, target: str) -> list:
    """``[distance, None]`` or ``[None, reason]`` for one pair of ISO codes and one kind."""
    absent = [source not in index, target not in index]
    if any(absent):
        return [None, _reason(absent, "not_in_uriel")]
    s_known, t_known = np.flatnonzero(known[index[source]]).tolist(), np.flatnonzero(known[index[target]]).tolist()
    if not s_known or not t_known:
        return [None, _reason([not s_known, not t_known], "without_kind")]
    # urielplus's own expression: the order of the shared features decides the float rounding of the dot
    shared = list(set(s_known).intersection(t_known))
    if not shared:
        return [None, "no_shared_features"]
    return [_angular(values[index[source], shared], values[index[target], shared]), None]


def _reason(absent: list[bool], what: str) -> str:
    """``source_<what>``, ``target_<what>`` or ``both_<what>``: a :data:`MISSING_REASONS` key."""
    return f"both_{what}" if all(absent) else f"{'source' if absent[0] else 'target'}_{what}"


def _angular(u: np.ndarray, v: np.ndarray) -> float:
    """urielplus's ``_angular_distance`` (angular metric), operation for operation, rounded to 4 decimals."""
    if np.linalg.norm(u) == 0:
        u = np.ones(u.shape[0]) * 1e-10
    if np.linalg.norm(v) == 0:
        v = np.ones(v.shape[0]) * 1e-10
    cos_theta = np.clip(np.dot(u / np.linalg.norm(u), v / np.linalg.norm(v)), -1.0, 1.0)
    angular = 2 * np.arccos(cos_theta)
    angular /= np.pi
    # float(np.float32(0.9687)) is 0.96870000362...: round again in float64 to store urielplus's 4 decimals
    return round(float(np.round(angular, 4)), 4)


# --- coordinates -------------------------------------------------------------------------------------

@cache
def _glottolog_points() -> dict[str, tuple[float, float]]:
    """``{iso: (latitude, longitude)}`` from urielplus's Glottolog table, through its ISO-to-Glottocode map."""
    csvs = _package_dir() / "database" / "urielplus_csvs"
    # keep_default_na=False: the ISO code "nan" (Min Nan Chinese) must stay a string
    iso_map = pd.read_csv(csvs / "uriel_glottocode_map.csv", dtype=str, keep_default_na=False)
    geo = pd.read_csv(csvs / "lang_fam_geo.csv", dtype={"language_id": str}, keep_default_na=False)
    geo = geo.assign(latitude=pd.to_numeric(geo["latitude"], errors="coerce"),
                     longitude=pd.to_numeric(geo["longitude"], errors="coerce")).dropna(subset=["latitude", "longitude"])
    points = geo.drop_duplicates("language_id").set_index("language_id")[["latitude", "longitude"]]
    iso_map = iso_map[iso_map["glottocode"].str.strip().isin(points.index)]
    return {iso.strip(): tuple(points.loc[glotto.strip()].astype(float))
            for iso, glotto in zip(iso_map["iso_code"], iso_map["glottocode"])}


def _uriel_point(iso: str) -> tuple[float, float] | None:
    """The point whose great-circle distances to URIEL's 299 reference points (``GC_<lat>_<lon>``,
    divided by half the Earth's circumference) best fit the language's geographic features."""
    langs, feats, data = _load("geocoord_features.npz")
    if iso not in langs:
        return None
    observed = data[langs[iso], :, 0].astype(np.float64)
    known = observed != -1.0
    if not known.any():
        return None
    observed = observed[known]
    anchors = np.radians([[float(part) for part in name.split("_")[1:]] for name in feats[known]])

    def residuals(point: np.ndarray) -> np.ndarray:
        return _great_circle(point, anchors) / np.pi - observed

    fit = least_squares(residuals, anchors[np.argmin(observed)], bounds=([-np.pi / 2, -np.inf], [np.pi / 2, np.inf]))
    latitude, longitude = np.degrees(fit.x)
    return float(latitude), float((longitude + 180.0) % 360.0 - 180.0)


def _great_circle(point: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Central angles (radians) between ``point`` and each row of ``anchors``, all as (lat, lon) radians."""
    lat, lon = point
    half = (np.sin((anchors[:, 0] - lat) / 2) ** 2
            + np.cos(lat) * np.cos(anchors[:, 0]) * np.sin((anchors[:, 1] - lon) / 2) ** 2)
    return 2 * np.arcsin(np.sqrt(np.clip(half, 0.0, 1.0)))
