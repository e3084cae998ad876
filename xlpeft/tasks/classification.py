"""Classification tasks written in code: SIB-200 topics, AmericasNLI inference (NusaX and XNLI are definitions).

Each reads its files through ``xlpeft.data`` and says where its source-language training data come from:
- SIB-200: the source language's train/dev splits (any of the 205 languages).
- AmericasNLI: the files have no English side. ``--source en --source-data hub`` trains on English XNLI
  (MultiNLI's training pairs, XNLI's English validation) from the hub, the published protocol. Offline,
  the documented fallback is ``--source <an AmericasNLI language>``: that language's *dev* pairs train
  and validate (disjoint, seeded), every language's *test* pairs are evaluated. That is transfer between
  Indigenous languages (in-language for the source itself), not the English zero-shot setting; the run
  records which it was.
NLI pairs are one text, premise and hypothesis on two lines; the verbalizer words are yes / maybe / no.
A template (``--template``) may name the two as ``{premise}`` and ``{hypothesis}``; ``--template paper`` is
Vykopal et al.'s XNLI template, with the answers ``Yes`` / ``Maybe`` / ``No`` on encoder-decoders (mT0).
"""

from __future__ import annotations

import functools
from typing import get_args

import numpy as np

from xlpeft.data import sib200
from xlpeft.data.languages import SIB200_CODES, resolve_languages
from xlpeft.data.task_names import SourceData
from xlpeft.data.tasks import americasnli
from xlpeft.errors import XlpeftError
from xlpeft.tasks.base import ClassificationTask, Examples
from xlpeft.tasks.templates import TEXT_FIELD, VYKOPAL_CODE, Template

# Vykopal et al.'s XNLI input (their code's class XNLI) and the label strings it generates, in XNLI's label order
PAPER_NLI_TEMPLATE = '{premise} \n\nQuestion: Does this imply that "{hypothesis}"? Yes, no, or maybe?'
PAPER_NLI_ANSWERS = ("Yes", "Maybe", "No")


class Sib200Task(ClassificationTask):
    """SIB-200 topic classification: 205 languages, FLORES-200 codes, named language sets."""

    name = "sib200"
    labels = sib200.LABELS
    default_source = "eng_Latn"
    default_targets = SIB200_CODES
    # methods.md A: the published words
    label_words_by_family = {
        "default": ("science", "travel", "politics", "sports", "health", "entertainment", "earth"),
        "bloom": ("science", "travel", "government", "play", "health", "fun", "earth"),
    }

    @functools.cached_property
    def data(self) -> sib200.Sib200:
        return sib200.Sib200.resolve(self.data_dir)

    @property
    def languages(self) -> tuple[str, ...]:
        return SIB200_CODES

    def resolve_languages(self, spec: str) -> list[str]:
        return resolve_languages(spec)

    def module_language(self, language: str) -> str:
        return language

    def source_splits(self, source, source_data):
        return self.load(source, "train"), self.load(source, "dev")

    def load(self, language, split, source_data="local"):
        data = self.data.load(language, split)
        return Examples(language, split, data.index_ids, data.texts, labels=data.labels)

    def describe(self):
        return {**super().describe(), "data_source": self.data.describe()}


class AmericasNliTask(ClassificationTask):
    """AmericasNLI: 10 Indigenous languages of the Americas; English XNLI (hub) or a target's dev (offline)."""

    name = "americasnli"
    labels = americasnli.LABELS
    default_source = americasnli.SOURCE
    default_targets = americasnli.LANGUAGES
    flores = {**americasnli.FLORES, "en": "eng_Latn"}
    label_words_by_family = {"default": ("yes", "maybe", "no")}
    source_data_choices = get_args(SourceData)
    fields = (TEXT_FIELD, "premise", "hypothesis")
    # the answer strings are the paper's on text-to-text models (mT5/mT0); verbalizers keep one-token words
    paper_templates = {"default": Template(PAPER_NLI_TEMPLATE, origin=VYKOPAL_CODE),
                       "mt5": Template(PAPER_NLI_TEMPLATE, PAPER_NLI_ANSWERS, VYKOPAL_CODE)}
    unparsed_label = "neutral"  # a generated answer that is none of the label strings (the paper's rule)

    @property
    def languages(self):
        return (americasnli.SOURCE, *americasnli.LANGUAGES)

    def check_source_data(self, source, source_data):
        super().check_source_data(source, source_data)
        if source == americasnli.SOURCE and source_data != "hub":
            raise XlpeftError(
                "AmericasNLI has no English side offline: train on English XNLI with --source-data hub (online), "
                f"or offline on one AmericasNLI language's dev pairs with --source one of {', '.join(americasnli.LANGUAGES)}"
            )
        if source != americasnli.SOURCE and source_data == "hub":
            raise XlpeftError(f"--source-data hub means English XNLI: use --source {americasnli.SOURCE} with it")

    def source_splits(self, source, source_data):
        if source == americasnli.SOURCE:
            return (self._examples(americasnli.load_xnli_english("train")),
                    self._examples(americasnli.load_xnli_english("validation")))
        dev = self._examples(americasnli.load(source, "dev", self.data_dir))
        # the dev pairs both train and validate: a fixed quarter validates (seed-independent, so every seed's
        # validation pairs are disjoint from every seed's training pairs)
        order = np.random.default_rng(0).permutation(len(dev))
        held = set(order[: len(dev) // 4].tolist())
        return (dev.subset([i for i in range(len(dev)) if i not in held]),
                dev.subset(sorted(held)))

    def load(self, language, split, source_data="local"):
        if language == americasnli.SOURCE:
            raise XlpeftError("AmericasNLI evaluates its 10 languages; English is only a training source")
        return self._examples(americasnli.load(language, split, self.data_dir))

    @staticmethod
    def _examples(data: americasnli.NliSplit) -> Examples:
        return nli_examples(data.language, data.name, data.ids, list(data.premises), list(data.hypotheses), data.labels)


def nli_examples(language: str, split: str, ids: list, premises: list[str], hypotheses: list[str],
                 labels: list[int]) -> Examples:
    """NLI pairs as one text each (premise and hypothesis on two lines), the two kept as template fields."""
    texts = [f"{p}\n{h}" for p, h in zip(premises, hypotheses)]
    return Examples(language, split, ids, texts, labels=list(labels),
                    fields={"premise": premises, "hypothesis": hypotheses})
