"""Cross-lingual task datasets beyond SIB-200, read from ``<DATA>/tasks/<name>/`` (see ``common``).

``TASKS`` names, per task, its reader (``load(language, split, data_dir=None)``), its languages (in the
dataset's own codes), the language transfer starts from, its splits, the metric in
``xlpeft.metrics.text.METRICS`` it is scored with, where online users find it, and the
SIB-200 codes of the languages SIB-200 also covers. Each module's docstring says where its English
source training data come from when the local copy has none (XQuAD, AmericasNLI, XCOPA).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xlpeft.data.tasks import americasnli, masakhaner, nusax, xcopa, xquad


@dataclass(frozen=True)
class TaskSpec:
    name: str
    load: Callable
    languages: tuple[str, ...]  # every language the reader accepts
    source: str  # the transfer source; "en" outside ``languages`` means English data from the hub
    splits: tuple[str, ...]
    metric: str  # a key of xlpeft.metrics.text.METRICS
    origin: str  # where the files come from
    hub: str  # the dataset's hub name, for users who are online
    flores: Mapping[str, str]  # language -> SIB-200 (FLORES-200) code, where SIB-200 has the language


TASKS: dict[str, TaskSpec] = {
    "nusax": TaskSpec("nusax", nusax.load, nusax.LANGUAGES, nusax.SOURCE, tuple(nusax.SPLITS), "macro_f1",
                      nusax.ORIGIN, nusax.HUB, nusax.FLORES),
    "masakhaner": TaskSpec("masakhaner", masakhaner.load, masakhaner.LANGUAGES, masakhaner.SOURCE,
                           masakhaner.SPLITS, "entity_f1", masakhaner.ORIGIN, masakhaner.HUB, masakhaner.FLORES),
    "xquad": TaskSpec("xquad", xquad.load, xquad.LANGUAGES, xquad.SOURCE, xquad.SPLITS, "squad",
                      xquad.ORIGIN, xquad.HUB, xquad.FLORES),
    "americasnli": TaskSpec("americasnli", americasnli.load, americasnli.LANGUAGES, americasnli.SOURCE,
                            americasnli.SPLITS, "accuracy", americasnli.ORIGIN, americasnli.HUB, americasnli.FLORES),
    "xcopa": TaskSpec("xcopa", xcopa.load, xcopa.LANGUAGES, xcopa.SOURCE, tuple(xcopa.SPLITS), "accuracy",
                      xcopa.ORIGIN, xcopa.HUB, xcopa.FLORES),
}
