import pytest

from xlpeft.data.languages import NAMED_SETS, registry, resolve_languages
from xlpeft.errors import XlpeftError


def test_registry_maps_flores_iso_name_script():
    reg = registry()
    assert len(reg) == 205
    zho = reg["zho_Hans"]
    assert (zho.iso639_3, zho.script, zho.name) == ("zho", "Hans", "Chinese")
    assert reg["ajp_Arab"].name == "South Levantine Arabic"  # retired ISO code still named


def test_named_sets_have_the_papers_sizes():
    assert len(NAMED_SETS["xglm30"]) == 30 and len(NAMED_SETS["bloom38"]) == 38
    assert len(NAMED_SETS["paper52"]) == 52 and len(NAMED_SETS["all"]) == 205
    assert set(NAMED_SETS["paper52"]) <= set(registry())


def test_resolve_mixes_sets_codes_and_iso_without_duplicates():
    codes = resolve_languages("quick, yor_Latn, deu")
    assert codes[:10] == list(NAMED_SETS["quick"]) and codes.count("yor_Latn") == 1 and codes.count("deu_Latn") == 1


@pytest.mark.parametrize("bad, suggestion", [("eng_latn", "eng_Latn"), ("german", "deu_Latn"), ("yor_Latm", "yor_Latn")])
def test_unknown_language_suggests_closest(bad, suggestion):
    with pytest.raises(XlpeftError, match=suggestion):
        resolve_languages(bad)


def test_ambiguous_iso_code_lists_scripts():
    with pytest.raises(XlpeftError, match="zho_Hans, zho_Hant"):
        resolve_languages("zho")
