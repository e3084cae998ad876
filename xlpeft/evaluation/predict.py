"""Label predictions for many runs over one language's sentences.

Which runs read cached text states and which linear heads read features computed once is decided where
training decides it (heads/text_cache.text_cache_exact, heads/classifier.head_alone), and every run reads
its own layout's text budget (heads/layout.py).
Suffix prompts on a frozen backbone share the text: each length-sorted chunk of sentences is encoded
once (text_cache.encode_texts) and every prompt runs only its L positions against it (runs with one text
prefix share a cache). Runs may differ in text budget (``max_length``, or for runs written before it
counted text only, what their prompt and special tokens leave); by causality the keys/values of a
truncated text are the prefix of those of the longer text, so one cache serves every budget by clipping
lengths and masks.
Linear heads trained alone on a frozen backbone read features that no prompt changes: runs that share
a backbone, text prefix and length limit share one feature pass per language.
Everything else (prefix placement, joint/full models, encoders, encoder-decoders, linear heads,
--no-text-cache) takes the ordinary path through the run's classifier (heads/classifier.py).
Method B runs take it too, with their modules attached (``modules_attached``): the task module from the
run, and the target language's module in place of the source language's. Text-to-text runs generate
(``predict_text``): greedy, length-sorted batches, as many new tokens as the run's training targets
needed (recorded at training) or ``--max-new-tokens``; never sized from the evaluated answers.
``text_counts`` counts what the text budget cut (and empty inputs) for each result row.
Every path tokenizes through the run's own layout, so a run's input template (``--template``) and its
fields (``fields``: the parts of each text by name) are applied where training applied them; cached runs
share a cache only with runs that read the same templated text.
NLI runs on encoder-decoders may answer by generating instead of ranking the label strings
(``--nli-output generate``, ``predict_generated``): the first word of the greedy answer names the label, and
an answer that names none is the task's ``unparsed_label`` (neutral), counted in ``n_unparsed``.
Label predictions are ``Labels``: the class ids, with the scores they are the argmax of, which
``--log-samples`` writes beside the table with each input as the run read it (``inputs_read``).
Multiple-choice runs score every choice by its log-likelihood after the input (``predict_choices``, heads/choice.py;
no text cache: the choices follow the prompt); their predictions are ``Choices``, the best choice's index with
every choice's scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from xlpeft import faults
from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError
from xlpeft.heads import classifier as heads
from xlpeft.heads.build import head_for
from xlpeft.heads.choice import ChoiceScorer, ChoiceScores
from xlpeft.heads.classifier import Classifier, LabelStringClassifier, VerbalizerClassifier
from xlpeft.heads.generation import Generated, TextToText
from xlpeft.heads.layout import max_length_counts
from xlpeft.heads.tagging import TokenTagger
from xlpeft.heads.text_cache import CachedBatch, encode_texts, prompt_hidden, text_cache_exact
from xlpeft.modular.configurations import Configuration
from xlpeft.modular.registry import LanguageModule
from xlpeft.modular.stack import ModuleStack
from xlpeft.objectives.label_strings import ParsedAnswers, parse_answers
from xlpeft.objectives.verbalizer import Verbalizer
from xlpeft.runs import Run
from xlpeft.tasks import ClassificationTask, Examples, TextTask, task_for

# Larger text batches were slower on CPU (cache locality): 8-16 sentences measured best for SmolLM2.
MAX_CHUNK = 16
MAX_PROMPTS = 8
NO_CLIP = 2**31 - 1  # a clip length beyond any text
ANSWER_MARGIN = 2  # generated NLI answers: tokens beyond the longest label string (its EOS included)


class Labels(list):
    """Predicted class ids: to every caller a plain list, the argmax of ``scores`` ([N, n_labels] float32 on the
    CPU; label-word logits for LM heads, logits for linear heads, decoder scores of label strings for
    encoder-decoders), which ``--log-samples`` records. The first maximum wins a tie, as before scores were kept."""

    def __init__(self, scores: torch.Tensor):
        self.scores = scores.detach().float().cpu()
        super().__init__(self.scores.argmax(-1).tolist() if len(self.scores) else [])


class Choices(list):
    """Predicted choice indices: to every caller a plain list, the best of each example's ``scores`` under ``kind``
    (``sum`` or ``per_char``, heads/choice.py); ``scores`` keeps the log-likelihoods, which ``--log-samples``
    records."""

    def __init__(self, scores: ChoiceScores, kind: str):
        self.scores = scores
        self.kind = kind
        super().__init__(scores.predictions(kind))


@dataclass(frozen=True)
class Plan:
    """Memory-bounded sizes: sentences per chunk and prompts per pass."""

    chunk_sentences: int
    prompts_per_pass: int


def label_logits(backbone: Backbone, hidden: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """LM-head logits of the label tokens only: [.., d] -> [.., n_labels] (the full vocabulary is not needed)."""
    head = backbone.lm_head
    weight = head.weight[token_ids]
    scores = hidden.to(weight.dtype) @ weight.T
    return scores + head.bias[token_ids] if getattr(head, "bias", None) is not None else scores


def uses_cache(backbone: Backbone, run: Run, text_cache: bool) -> bool:
    """Whether ``run`` is evaluated from cached text states: where they are exact (``text_cache_exact``, the rule
    training follows too), unless ``text_cache`` is off (``--no-text-cache``)."""
    return text_cache and text_cache_exact(run.train, classifier_for_run(backbone, run))


def head_alone(backbone: Backbone, run: Run) -> bool:
    """Whether ``run`` is a linear head trained alone (``heads.classifier.head_alone``, the rule training follows
    too): its inputs are the backbone's features, computed once for every such run."""
    return heads.head_alone(run.train, classifier_for_run(backbone, run))


def run_text_budget(backbone: Backbone, run: Run) -> int:
    """Text tokens ``run`` reads: its own layout's budget (heads/layout.py), as in training."""
    return classifier_for_run(backbone, run).layout.text_budget


def cache_key(run: Run) -> tuple:
    """Cached runs with one key read one text: the same text prefix, and the same template and budget (a
    templated text is cut inside its fields, so a shorter budget's text is not a prefix of a longer one's)."""
    return (run.train.text_prefix, run.train.template, run.train.max_length if run.train.template else None)


def cached_text_ids(backbone: Backbone, runs: list[Run], texts: list[str],
                    fields: dict[str, list[str]] | None = None) -> list[list[int]]:
    """``texts`` as cached runs that share one ``cache_key`` read them, cut to the longest of their budgets
    (``predict_cached`` clips each run to its own)."""
    layouts = [classifier_for_run(backbone, run).layout for run in runs]
    return max(layouts, key=lambda layout: layout.text_budget).tokenize(texts, fields)


def clip_length(backbone: Backbone, run: Run) -> int:
    """Where ``predict_cached`` clips a run's cached text: its text budget; a templated run's whole text (its
    group shares one template and budget, and the template's words come after the budget's tokens)."""
    return NO_CLIP if run.train.template else run_text_budget(backbone, run)


def kv_bytes_per_token(backbone: Backbone) -> int:
    """Bytes of keys/values one text token occupies over all layers, measured on a one-token text."""
    probe = encode_texts(backbone, [[backbone.eos_id]])
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in probe.layers)


def plan_memory(per_token: int, n_prompts: int, max_tokens: int, budget_bytes: int) -> Plan:
    """Size chunks so that the text cache of one pass, repeated per prompt, stays within ``budget_bytes``.

    A pass holds the chunk's cache once plus two copies per prompt (the repeat, and the concatenation
    with the prompt's own keys/values inside the model's cache). Prompt passes reuse the chunk's text
    cache, so splitting prompts into passes of at most MAX_PROMPTS costs no text computation.
    """
    pair_bytes = per_token * max_tokens
    prompts = max(1, min(n_prompts, MAX_PROMPTS))
    while prompts > 1 and budget_bytes < pair_bytes * (1 + 2 * prompts) * 8:  # keep >= 8 sentences per chunk
        prompts //= 2
    sentences = max(1, min(MAX_CHUNK, budget_bytes // (pair_bytes * (1 + 2 * prompts))))
    return Plan(int(sentences), int(prompts))


@torch.inference_mode()
def predict_cached(backbone: Backbone, runs: list[Run], token_ids: list[list[int]], plan: Plan) -> dict[str, Labels]:
    """Predictions of every (suffix, frozen) run; ``token_ids`` truncated to the largest text budget."""
    budgets = {run.name: clip_length(backbone, run) for run in runs}
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    all_scores = {run.name: torch.zeros(len(token_ids), len(run.config["label_token_ids"])) for run in runs}
    for start in range(0, len(order), plan.chunk_sentences):
        chunk = order[start : start + plan.chunk_sentences]
        cached = encode_texts(backbone, [token_ids[i] for i in chunk])
        for group in _by_prompt_length(runs):
            for offset in range(0, len(group), plan.prompts_per_pass):
                part = group[offset : offset + plan.prompts_per_pass]
                scores = _score_prompts(backbone, cached, part, [budgets[run.name] for run in part])  # [B, N, labels]
                for j, run in enumerate(part):
                    all_scores[run.name][chunk] = scores[:, j].cpu()
        faults.crash_point(faults.EVALUATE_CHUNK)
    return {name: Labels(scores) for name, scores in all_scores.items()}


def _by_prompt_length(runs: list[Run]) -> list[list[Run]]:
    groups: dict[int, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.prompt_length, []).append(run)
    return list(groups.values())


def _score_prompts(backbone: Backbone, cached: CachedBatch, runs: list[Run], text_budgets: list[int]) -> torch.Tensor:
    """Run N same-length prompts against B cached texts at once: B*N rows, L positions each, each run's rows
    clipped to its text budget (after the backbone's lead tokens, which the cache holds before the text)."""
    n, batch = len(runs), cached.lengths.shape[0]
    device = cached.lengths.device
    prompts = torch.stack([run.prompt_for(backbone) for run in runs]).to(device)  # [N, L, d]
    budgets = torch.tensor(text_budgets, device=device) + len(backbone.lead_ids)
    rep = cached.repeat(n)
    limit = budgets.repeat(batch)  # row b*n + j belongs to prompt j
    lengths = torch.minimum(rep.lengths, limit)
    mask = rep.attention_mask * (torch.arange(rep.attention_mask.shape[1], device=device)[None] < limit[:, None])
    clipped = CachedBatch(rep.layers, mask, lengths)
    hidden = prompt_hidden(backbone, clipped, prompts.repeat(batch, 1, 1))
    scores = torch.stack([
        label_logits(backbone, hidden.view(batch, n, -1)[:, j], run.config["label_token_ids"]) for j, run in enumerate(runs)
    ], dim=1)
    return scores.float()


@dataclass(frozen=True)
class TextCounts:
    """What a result row records about its inputs and the text budget."""

    max_length: int  # the text budget in text tokens
    n_truncated: int  # inputs cut to the budget
    n_empty: int  # inputs that tokenized to nothing (a placeholder token stood in)
    n_words_cut: int | None = None  # tagging: words beyond the budget (tagged O without being read)

    def as_row(self) -> dict:
        row = {"max_length": self.max_length, "n_truncated": self.n_truncated, "n_empty": self.n_empty}
        return row if self.n_words_cut is None else {**row, "n_words_cut": self.n_words_cut}


def text_counts(backbone: Backbone, run: Run, task, examples: Examples, language_rows: int = 0) -> TextCounts:
    """How the run's text budget treats ``examples``: the inputs it reads as the run's own classifier builds
    them (text-to-text: the task's model inputs, e.g. XQuAD windows; tagging: words)."""
    model = classifier_for_run(backbone, run, language_rows)
    layout = model.layout
    if isinstance(model, TokenTagger):
        sentences = [list(sentence.tokens) for sentence in examples.items]
        kept = [len(t.word_starts) for t in model.tokenize_words(sentences)]
        cut = [len(words) - n for words, n in zip(sentences, kept)]
        empty = sum(not words for words in sentences)
        return TextCounts(layout.text_budget, sum(c > 0 for c in cut), empty, sum(cut))
    if isinstance(model, TextToText):
        examples = task.model_inputs(examples, backbone.tokenizer, layout.text_budget, training=False)
    return TextCounts(layout.text_budget, *layout.truncation(examples.texts, examples.fields))


@torch.inference_mode()
def predict_uncached(backbone: Backbone, run: Run, texts: list[str], batch_size: int,
                     stack: ModuleStack | None = None, fields: dict[str, list[str]] | None = None) -> Labels:
    """Predictions of one run through its classifier on the full sequence, length-sorted, dynamically padded.

    With a method B ``stack`` attached, the prompt is [language prompt, task prompt] (either may be absent).
    ``fields``: the parts of each text by name, for the run's input template.
    """
    language_rows = 0 if stack is None else stack.language_prompt_length
    classifier = classifier_for_run(backbone, run, language_rows)
    if run.head is not None:
        classifier.load_state_dict(run.head)
    classifier.eval()
    token_ids = classifier.tokenize(texts, fields)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    prompt = run.prompt_for(backbone) if stack is None else stack.compose(run.prompt_for(backbone))
    batches = [classifier.scores(classifier.outputs([token_ids[i] for i in order[start : start + batch_size]], prompt))
               .float().cpu() for start in range(0, len(order), batch_size)]
    if not batches:
        return Labels(torch.zeros(0, 0))
    scores = torch.empty(len(texts), batches[0].shape[-1])
    scores[order] = torch.cat(batches)
    return Labels(scores)


@contextmanager
def modules_attached(backbone: Backbone, run: Run, language_module: LanguageModule | None) -> Iterator[ModuleStack]:
    """A method B run's modules on ``backbone``: ``language_module`` in the language slot (the target's, or a
    borrowed one) and the run's task module; the backbone is left as it was afterwards."""
    stack = ModuleStack(backbone, Configuration(run.configuration))
    try:
        if language_module is not None:
            stack.use_language(language_module)
        if stack.configuration.task == "ta":
            stack.load_task_adapter(run.task_adapter_dir)
        yield stack
    finally:
        stack.detach()


def predict_modular(backbone: Backbone, run: Run, texts: list[str], batch_size: int,
                    language_module: LanguageModule | None, fields: dict[str, list[str]] | None = None,
                    answer_task: ClassificationTask | None = None) -> Labels | ParsedAnswers:
    """A method B classification run's predictions with its modules attached (see ``modules_attached``);
    with ``answer_task``, its generated answers parsed (``predict_generated``)."""
    with modules_attached(backbone, run, language_module) as stack:
        if answer_task is not None:
            return predict_generated(backbone, run, answer_task, texts, batch_size, stack, fields)
        return predict_uncached(backbone, run, texts, batch_size, stack, fields)


def generates_answers(backbone: Backbone, run: Run, task, nli_output: str) -> bool:
    """Whether ``run`` answers by generation: ``--nli-output generate`` on a task whose unparsed answers have a
    label (NLI). Only encoder-decoders generate label strings; another backbone is an error, not a silent rank."""
    if nli_output != "generate" or getattr(task, "unparsed_label", None) is None:
        return False
    if backbone.kind != "seq2seq":
        raise XlpeftError(f"--nli-output generate reads answers that an encoder-decoder (mT5, mT0) generates; {run.name} "
                          f"is on a {backbone.kind} backbone, which ranks its label words: use --nli-output rank")
    return True


@torch.inference_mode()
def predict_generated(backbone: Backbone, run: Run, task: ClassificationTask, texts: list[str], batch_size: int,
                      stack: ModuleStack | None = None, fields: dict[str, list[str]] | None = None) -> ParsedAnswers:
    """An encoder-decoder classification run's labels read from its greedy answers (the method B paper's NLI):
    its own input layout and prompt, at most ``ANSWER_MARGIN`` tokens more than its longest label string;
    an answer naming no label string is the task's ``unparsed_label``."""
    language_rows = 0 if stack is None else stack.language_prompt_length
    classifier = classifier_for_run(backbone, run, language_rows)
    assert isinstance(classifier, LabelStringClassifier)
    prompt = run.prompt_for(backbone) if stack is None else stack.compose(run.prompt_for(backbone))
    length = int(classifier.strings.lengths.max()) + ANSWER_MARGIN
    outputs = TextToText(backbone, classifier.layout).generate(classifier.tokenize(texts, fields), prompt, length,
                                                               batch_size)
    return parse_answers([o.text for o in outputs], classifier.strings.words, task.labels.index(task.unparsed_label))


@torch.inference_mode()
def predict_text(backbone: Backbone, run: Run, task: TextTask, examples: Examples, batch_size: int,
                 max_new_tokens: int | None = None, stack: ModuleStack | None = None) -> tuple[Examples, list[Generated]]:
    """A text-to-text run's greedy outputs for ``examples``: (the inputs the model read, one output each).

    The inputs are the task's (XQuAD: a question's context windows); generation runs for ``max_new_tokens``
    (default: what the run's training targets needed, recorded at training), never the evaluated answers.
    A tagging encoder's outputs are IOB2 tags per word instead.
    """
    language_rows = 0 if stack is None else stack.language_prompt_length
    generator = classifier_for_run(backbone, run, language_rows)
    prompt = run.prompt_for(backbone) if stack is None else stack.compose(run.prompt_for(backbone))
    if isinstance(generator, TokenTagger):
        return examples, _predict_tags(generator, run, task, examples, prompt, batch_size)
    inputs = task.model_inputs(examples, backbone.tokenizer, generator.layout.text_budget, training=False)
    token_ids = generator.tokenize(inputs.texts, inputs.fields)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    max_new_tokens = max_new_tokens or run.config.get("max_new_tokens")
    if max_new_tokens is None:
        raise XlpeftError(f"{run.name} records no generation length (trained before xlpeft recorded one): give "
                          "--max-new-tokens N (e.g. the longest training answer in tokens plus a few)")
    outputs = generator.generate([token_ids[i] for i in order], prompt, max_new_tokens, batch_size)
    generated: list[Generated] = [None] * len(order)  # type: ignore[list-item]
    for position, index in enumerate(order):
        generated[index] = outputs[position]
    return inputs, generated


@torch.inference_mode()
def predict_choices(backbone: Backbone, run: Run, examples: Examples, batch_size: int, kind: str,
                    stack: ModuleStack | None = None) -> Choices:
    """A multiple-choice run's choice for each of ``examples``: every choice scored after the input as the run
    reads it (its layout, prompt and, with a method B ``stack``, its modules), the best under ``kind``."""
    language_rows = 0 if stack is None else stack.language_prompt_length
    scorer = classifier_for_run(backbone, run, language_rows)
    assert isinstance(scorer, ChoiceScorer)
    prompt = run.prompt_for(backbone) if stack is None else stack.compose(run.prompt_for(backbone))
    token_ids = scorer.tokenize(examples.texts, examples.fields)
    return Choices(scorer.score(token_ids, prompt, examples.choices, batch_size), kind)


def _predict_tags(tagger: TokenTagger, run: Run, task: TextTask, examples: Examples, prompt: torch.Tensor | None,
                  batch_size: int) -> list[list[str]]:
    """IOB2 tags per word from a tagging encoder; words cut by the length limit are tagged ``O``."""
    if run.head is not None:
        tagger.load_state_dict(run.head)
    tagger.eval()
    sentences = [list(sentence.tokens) for sentence in examples.items]
    predicted = tagger.predict(tagger.tokenize_words(sentences), prompt, batch_size)
    return [[task.tags[t] for t in ids] + ["O"] * (len(words) - len(ids)) for ids, words in zip(predicted, sentences)]


@torch.inference_mode()
def predict_heads_alone(backbone: Backbone, runs: list[Run], texts: list[str], batch_size: int,
                        fields: dict[str, list[str]] | None = None) -> dict[str, Labels]:
    """Predictions of head-alone runs: one feature pass per (text prefix, max length, template), every head on it."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.train.text_prefix, run.train.max_length, run.train.template), []).append(run)
    preds = {}
    for group in groups.values():
        classifier = classifier_for_run(backbone, group[0])
        features = classifier.all_features(classifier.tokenize(texts, fields), batch_size)
        for run in group:
            classifier.load_state_dict(run.head)
            preds[run.name] = Labels(classifier.head(features))
    return preds


def inputs_read(backbone: Backbone, run: Run, inputs: Examples, language_rows: int = 0) -> list[str]:
    """Each of ``inputs`` as ``run`` reads it: its token ids after the text budget cut them (text prefix
    included; no prompt, no special tokens around the text), decoded. Text-to-text ``inputs`` are the task's
    model inputs (XQuAD: context windows); a tagging encoder reads the words that fit."""
    model = classifier_for_run(backbone, run, language_rows)
    if isinstance(model, TokenTagger):
        token_ids = [tagged.token_ids for tagged in model.tokenize_words([list(s.tokens) for s in inputs.items])]
    else:
        token_ids = model.tokenize(inputs.texts, inputs.fields)  # the run's template applied, as it was read
    return backbone.tokenizer.batch_decode(token_ids)


def classifier_for_run(backbone: Backbone, run: Run, language_rows: int = 0) -> Classifier:
    """The classifier a finished run was trained with (``head_for`` its TrainConfig), with the label tokens it
    recorded; ``language_rows``: the length of the language prompt placed before the task's."""
    classifier = head_for(backbone, run.train, task_for(run.train), language_rows)
    if isinstance(classifier, VerbalizerClassifier) and "label_token_ids" in run.config:
        classifier.verbalizer = Verbalizer(tuple(run.config["label_words"]), tuple(run.config["label_token_ids"]))
    classifier.layout.counts = max_length_counts(run.config)  # runs written before max_length counted text only
    return classifier
