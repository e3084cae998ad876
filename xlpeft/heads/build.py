"""The one function that builds a run's head from its configuration, at training and at evaluation alike:
a classifier (LM-head verbalizer, label strings, linear head), a text-to-text generator, an encoder's
word tagger, or a multiple-choice scorer. Every other module gets its head from here, so the choice is made in one place."""

from __future__ import annotations

from xlpeft.backbones import Backbone
from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.heads.choice import build_choice_scorer
from xlpeft.heads.classifier import (
    Head,
    LabelStringClassifier,
    LinearHeadClassifier,
    VerbalizerClassifier,
    resolve_head,
)
from xlpeft.heads.generation import build_text_to_text
from xlpeft.heads.layout import PromptLayout
from xlpeft.heads.tagging import build_tagger
from xlpeft.objectives.label_strings import LabelStrings
from xlpeft.objectives.verbalizer import Verbalizer, label_words
from xlpeft.tasks import ClassificationTask, Task, TextTask
from xlpeft.tasks.classification import Sib200Task


def build_head(backbone: Backbone, placement: str, prompt_length: int, max_length: int, head: Head = "auto",
                     label_words_spec: str = "", seed: int = 0, text_prefix: str = "", task: Task | None = None,
                     template: str = ""):
    """The classifier (for a text-to-text ``task`` the generator, or on an encoder the token tagger; for a
    multiple-choice one the choice scorer) a run configuration describes: the same call at training and at
    evaluation. ``task`` defaults to SIB-200; ``template`` is ``--template`` (the task's template for this
    backbone's family, and the answers it asks for)."""
    task = task or Sib200Task()
    chosen = task.template(template, backbone.family)
    if isinstance(task, TextTask) and backbone.kind == "encoder" and task.tags:
        if chosen is not None:
            raise XlpeftError(f"{task.name} on an encoder tags words, which an input template cannot be written into; "
                              "leave --template empty, or use a decoder (text-to-text NER)")
        return build_tagger(backbone, placement, prompt_length, max_length, len(task.tags), seed)
    if task.kind == "choice":
        if head == "linear":
            raise XlpeftError(f"{task.name} is a multiple-choice task: it scores choices with the LM head; use --head auto")
        return build_choice_scorer(backbone, placement, prompt_length, max_length, chosen)
    if isinstance(task, TextTask):
        if head == "linear":
            raise XlpeftError(f"{task.name} is a text-to-text task: it generates with the LM head; use --head auto")
        return build_text_to_text(backbone, placement, prompt_length, max_length, chosen)
    assert isinstance(task, ClassificationTask)
    head = resolve_head(backbone, head)
    mask_slot = head == "lm" and backbone.kind == "encoder"
    try:
        layout = PromptLayout(backbone, placement, prompt_length, max_length, mask_slot=mask_slot,
                              text_prefix=text_prefix, template=chosen)
    except ValueError as exc:
        raise XlpeftError(str(exc)) from exc
    if head == "linear":
        return LinearHeadClassifier(backbone, layout, len(task.labels), seed)
    answers = chosen.answers if chosen is not None else ()
    words = label_words(task, backbone.family, backbone.tokenizer, label_words_spec, answers)
    if backbone.kind == "seq2seq":
        return LabelStringClassifier(backbone, layout, LabelStrings.build(backbone.tokenizer, words))
    return VerbalizerClassifier(backbone, layout, Verbalizer.build(backbone.tokenizer, words))


def head_for(backbone: Backbone, config: TrainConfig, task: Task, language_rows: int = 0):
    """The head a run with ``config`` trains and is evaluated with (``build_head`` on the config's own placement
    rules); ``language_rows``: the length of a method B language prompt placed before the task's."""
    return build_head(backbone, config.placement_used, config.prompt_length + language_rows, config.max_length,
                      config.head, config.label_words, config.seed, config.text_prefix, task, config.template)
