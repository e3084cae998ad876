"""Tasks read from the hub by name, for users who are online: WikiANN (Vykopal et al.'s NER; their NLI task, XNLI,
is a definition: ``definitions/xnli.yaml``).

- ``wikiann``: ``unimelb-nlp/wikiann``, 176 languages by their WikiANN codes (mostly ISO 639-1: ``en``,
  ``sw``, ``yo``), tokens and IOB2 tags over PER/ORG/LOC, as text-to-text NER with MasakhaNER's target
  form and entity F1. Any code is accepted; the hub says whether it exists.
It needs ``--source-data hub`` (it has no local copy); ``datasets`` caches it, so a machine that
has read it once can run offline (``HF_DATASETS_OFFLINE=1``).
"""

from __future__ import annotations

import functools

from xlpeft.data.languages import codes_by_iso, registry
from xlpeft.data.tasks.common import load_hub
from xlpeft.data.tasks.masakhaner import NerSentence
from xlpeft.errors import XlpeftError
from xlpeft.tasks.text_to_text import MasakhanerTask, ner_examples

WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # the hub's ner_tags ids
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


class _HubOnly:
    """Mixin: the task has no local copy, so it needs ``--source-data hub``."""

    name = ""
    source_data_choices = ("hub",)

    def check_source_data(self, source, source_data):
        if source_data != "hub":
            raise XlpeftError(f"{self.name} is read from the hub (it has no local copy): pass --source-data hub")


class WikiannTask(_HubOnly, MasakhanerTask):
    name = "wikiann"
    hub = "unimelb-nlp/wikiann"
    default_source = "en"
    default_targets = ()
    flores = {}

    @property
    def languages(self):
        return ()

    def resolve_languages(self, spec):
        codes = [item.strip() for item in spec.split(",") if item.strip()]
        if not codes or spec in ("all", "targets"):
            raise XlpeftError("wikiann has 176 languages: name the ones to use, e.g. --languages sw,yo,ig")
        return codes

    def module_language(self, language):
        return _flores_of(language)

    def load(self, language, split, source_data="hub"):
        rows = load_hub(self.hub, language, HUB_SPLITS[split], f"WikiANN {language}/{split}")
        sentences = [NerSentence(tuple(tokens), tuple(WIKIANN_TAGS[t] for t in tags))
                     for tokens, tags in zip(rows["tokens"], rows["ner_tags"])]
        return ner_examples(language, split, sentences)


@functools.cache
def _flores_of(code: str) -> str:
    """A WikiANN code's FLORES-200 code where SIB-200 has its ISO 639-3 code in one script (``yo`` -> yor_Latn);
    for a macrolanguage SIB-200 lacks, its only member in SIB-200 (``sw`` = swa -> swh_Latn); else the code
    itself (``ar``: nine Arabic varieties, none is picked; ``zh``: zho in two scripts, not its member yue)."""
    import pycountry

    language = pycountry.languages.get(alpha_2=code) if len(code) == 2 else None
    iso = getattr(language, "alpha_3", code)
    own = codes_by_iso().get(iso)  # its own code: one script, or ambiguous (zh)
    members = own or [flores for flores, lang in registry().items() if _macrolanguage(lang.iso639_3) == iso]
    return members[0] if len(members) == 1 else code


def _macrolanguage(iso: str) -> str | None:
    """The ISO 639-3 macrolanguage an individual language belongs to (swh -> swa), from python-iso639."""
    from iso639 import Language, LanguageNotFoundError

    try:
        return Language.from_part3(iso).macrolanguage
    except LanguageNotFoundError:
        return None
