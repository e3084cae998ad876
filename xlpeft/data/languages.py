"""The language registry: FLORES-200 code <-> ISO 639-3 <-> name <-> script, and named language sets.

SIB-200 names its 205 languages by FLORES-200 codes (``<iso639-3>_<ISO 15924 script>``). The list is
fixed here, not read from a data directory, because users working from the hub have no directory to
list. Names come from ISO 639-3 / ISO 15924 via ``pycountry`` rather than a hand-written table.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

import pycountry

from xlpeft.errors import XlpeftError

SIB200_CODES: tuple[str, ...] = tuple(
    """
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn als_Latn amh_Ethi
    apc_Arab arb_Arab arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn
    azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab
    bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab
    crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn
    est_Latn eus_Latn ewe_Latn fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn
    gaz_Latn gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva
    hne_Deva hrv_Latn hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn
    jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor kaz_Cyrl kbp_Latn
    kea_Latn khk_Cyrl khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kmr_Latn knc_Arab knc_Latn
    kon_Latn kor_Hang lao_Laoo lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn
    lua_Latn lug_Latn luo_Latn lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab
    min_Latn mkd_Cyrl mlt_Latn mni_Beng mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn
    npi_Deva nqo_Nkoo nso_Latn nus_Latn nya_Latn oci_Latn ory_Orya pag_Latn pan_Guru pap_Latn
    pbt_Arab pes_Arab plt_Latn pol_Latn por_Latn prs_Arab quy_Latn ron_Latn run_Latn rus_Cyrl
    sag_Latn san_Deva sat_Olck scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn
    snd_Arab som_Latn sot_Latn spa_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn
    szl_Latn tam_Taml taq_Latn taq_Tfng tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi
    tpi_Latn tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl
    umb_Latn urd_Arab uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn
    yue_Hant zho_Hans zho_Hant zsm_Latn zul_Latn
    """.split()
)

# ISO 639-3 codes retired after FLORES-200 was published (ajp was merged into apc in 2023).
_RETIRED_NAMES = {"ajp": "South Levantine Arabic"}

# methods.md D: XGLM's 30 and BLOOM's 38 pretraining languages, as SIB-200 codes.
XGLM30: tuple[str, ...] = tuple(
    """
    eng_Latn rus_Cyrl zho_Hans deu_Latn spa_Latn fra_Latn jpn_Jpan ita_Latn por_Latn ell_Grek
    kor_Hang fin_Latn ind_Latn tur_Latn arb_Arab vie_Latn tha_Thai bul_Cyrl cat_Latn hin_Deva
    est_Latn ben_Beng tam_Taml urd_Arab swh_Latn tel_Telu eus_Latn mya_Mymr hat_Latn quy_Latn
    """.split()
)
BLOOM38: tuple[str, ...] = tuple(
    """
    eng_Latn zho_Hans spa_Latn fra_Latn por_Latn ind_Latn arb_Arab vie_Latn cat_Latn hin_Deva
    ben_Beng tam_Taml urd_Arab swh_Latn tel_Telu eus_Latn aka_Latn asm_Beng bam_Latn sna_Latn
    tum_Latn fon_Latn guj_Gujr ibo_Latn zul_Latn kan_Knda kik_Latn kin_Latn lin_Latn mal_Mlym
    mar_Deva npi_Deva nso_Latn ory_Orya twi_Latn wol_Latn xho_Latn yor_Latn
    """.split()
)
# A small spread of scripts and resource levels that a laptop CPU evaluates in a minute or two.
QUICK10: tuple[str, ...] = tuple(
    "eng_Latn fra_Latn deu_Latn spa_Latn rus_Cyrl zho_Hans arb_Arab hin_Deva swh_Latn yor_Latn".split()
)


def _union(*sets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(code for s in sets for code in s))


NAMED_SETS: dict[str, tuple[str, ...]] = {
    "quick": QUICK10,
    "xglm30": XGLM30,
    "bloom38": BLOOM38,
    "paper52": _union(XGLM30, BLOOM38),
    "all": SIB200_CODES,
}
NAMED_SET_HELP = {
    "quick": "10 languages, 7 scripts: the quickstart default (minutes on a laptop CPU)",
    "xglm30": "XGLM's 30 pretraining languages (methods.md D)",
    "bloom38": "BLOOM's 38 pretraining languages (methods.md D)",
    "paper52": "union of xglm30 and bloom38: the 52 languages of Philippy et al. (2024)",
    "all": "all 205 SIB-200 languages",
}


@dataclass(frozen=True)
class Language:
    """One SIB-200 language."""

    code: str  # FLORES-200, e.g. "zho_Hans"
    iso639_3: str  # "zho"
    script: str  # ISO 15924, "Hans"
    name: str  # "Chinese"


@cache
def registry() -> dict[str, Language]:
    """All 205 languages by FLORES code."""
    return {code: _make_language(code) for code in SIB200_CODES}


@cache
def codes_by_iso() -> dict[str, tuple[str, ...]]:
    """SIB-200's FLORES codes per ISO 639-3 code (several where a language has several scripts: zho)."""
    index: dict[str, tuple[str, ...]] = {}
    for code, lang in registry().items():
        index[lang.iso639_3] = (*index.get(lang.iso639_3, ()), code)
    return index


def language_name(code: str) -> str | None:
    """The English name of a language code in any of the tasks' code systems (FLORES ``ces_Latn``, ISO 639-3
    ``ces``, ISO 639-1 ``cs``), or None when the code names no language (a typo): what lets a grid say
    "xnli has no Czech test set" for a real language a task lacks, and still reject ``xx``."""
    if code in registry():
        return registry()[code].name
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    return None if lang is None else lang.name


def iso639_3_of(code: str) -> str | None:
    """The ISO 639-3 code of a language code in any of the tasks' code systems (FLORES ``ces_Latn``, ISO 639-3
    ``ces``, ISO 639-1 ``cs``), or None when the code names no language: how URIEL (keyed by ISO 639-3) finds a
    task's languages whatever codes its dataset uses."""
    if code in registry():
        return registry()[code].iso639_3
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    return None if lang is None else lang.alpha_3


def _make_language(code: str) -> Language:
    iso, script = code.split("_")
    lang = pycountry.languages.get(alpha_3=iso)
    name = lang.name if lang is not None else _RETIRED_NAMES[iso]
    return Language(code, iso, script, name)


def resolve_languages(spec: str) -> list[str]:
    """Turn a named set (``paper52``), a comma list, or a mix (``quick,yor_Latn``) into FLORES codes.

    Items may also be ISO 639-3 codes with a single script in SIB-200 (``deu`` -> ``deu_Latn``).
    Unknown items raise an error that suggests the closest valid codes.
    """
    codes: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        codes.extend(NAMED_SETS.get(item) or [_resolve_code(item)])
    if not codes:
        raise XlpeftError(f"no languages in {spec!r}: give a named set ({', '.join(NAMED_SETS)}) or codes such as eng_Latn")
    return list(dict.fromkeys(codes))


def _resolve_code(item: str) -> str:
    reg = registry()
    if item in reg:
        return item
    by_iso = codes_by_iso().get(item, ())
    if len(by_iso) == 1:
        return by_iso[0]
    if by_iso:
        raise XlpeftError(f"language {item!r} has several scripts in SIB-200: use one of {', '.join(by_iso)}")
    raise XlpeftError(f"unknown language {item!r}: {_suggest(item)} (run 'xlpeft languages' for the full list)")


def _suggest(item: str) -> str:
    reg = registry()
    by_name = [c for c, lang in reg.items() if item.lower() in lang.name.lower()]
    close = by_name or difflib.get_close_matches(item, list(reg), n=3, cutoff=0.5)
    if not close:
        return "no similar code; codes look like eng_Latn, zho_Hans"
    return "did you mean " + " or ".join(f"{c} ({reg[c].name})" for c in close[:3]) + "?"
