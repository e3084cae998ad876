"""The training loop for the three regimes (prompt / joint / full), cached or not, and for method B's
task modules (a task prompt or task adapter, alone or on a frozen language module; modular/stack.py),
on any task of ``xlpeft.tasks``: classification (verbalizer, label strings or a linear head),
text-to-text (teacher forcing on the target string, or on an encoder a tag per word; the epoch kept is
the one with the lowest validation loss) or multiple choice (as text-to-text, on the gold choice).
Classification keeps the epoch with the lowest validation loss or, with ``select="val_accuracy"``, the highest
validation accuracy (ties broken by the lower loss).

The budget is ``epochs`` passes over the data, validated at each epoch's end, or with ``max_steps`` a number
of optimizer steps (the data cycled in the same seeded epochs), and with ``eval_every`` a validation every
that many steps; the evaluation kept is chosen as an epoch is (training/budget.py).

Several source languages (``--source eng_Latn,fra_Latn``): each language's sample is drawn on its own
(tasks/sources.py) and the run trains on their union, in the same seeded order as one language's. The evaluation
kept is selected on the pooled validation set: its loss is the mean of the languages' losses weighted by their
examples (balanced samples give every language as many, unless one's validation split is smaller, so it is the
mean over languages), and each language's
loss (and accuracy, macro-F1) is recorded with every evaluation (``val_by_language``) and in metrics.json.

Reproducibility: the sample, the prompt's initial values and each epoch's data order and dropout are
derived from the seed alone (epoch e shuffles with seed*10007+e). A checkpoint is written at every
evaluation, with the random generators' state, so a run interrupted anywhere resumes from its last
evaluation (inside an epoch with ``eval_every``) and produces the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch
from tqdm.auto import tqdm

from xlpeft import __version__, faults, files
from xlpeft import runs as rd
from xlpeft.adapters import AdapterConfig, adapter_names, adapter_parameters
from xlpeft.backbones import Backbone, load_backbone
from xlpeft.config import Select, TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.heads.build import head_for
from xlpeft.heads.classifier import Classifier, head_alone
from xlpeft.heads.layout import TEXT_ONLY
from xlpeft.heads.tagging import TokenTagger
from xlpeft.heads.text_cache import TextCache, prompt_hidden, text_cache_exact
from xlpeft.kernels.frozen import prepare_frozen_model
from xlpeft.metrics.classification import classification_metrics
from xlpeft.modular.configurations import Configuration
from xlpeft.modular.registry import LanguageModule, ModuleRegistry
from xlpeft.modular.stack import TASK_ADAPTER, ModuleStack
from xlpeft.prompts import SoftPrompt, initial_prompt
from xlpeft.runtime import autocast, fp32_cpu_matmul, resolve_device, resolve_precision, seed_everything
from xlpeft.tasks import Examples, TextTask, task_for
from xlpeft.tasks.sources import SourceSample, sample_sources, union
from xlpeft.training.budget import StepBudget
from xlpeft.training.optim import clip_gradients, make_optimizer
from xlpeft.training.parts import HeadPart, ModelPart, Part, PromptPart, TaskAdapterPart

log = logging.getLogger("xlpeft")


def improves(record: dict, best: dict, select: str = "val_loss") -> bool:
    """Whether an epoch's validation ``record`` beats the ``best`` so far ({} before the first epoch).
    ``val_loss``: strictly lower loss. ``val_accuracy``: strictly higher accuracy, or equal accuracy and a
    strictly lower loss (a few dozen validation sentences give many ties); records without an accuracy
    (text-to-text tasks) fall back to the loss."""
    if not best:
        return True
    if select == "val_accuracy" and record.get("val_accuracy") is not None and best.get("val_accuracy") is not None:
        if record["val_accuracy"] != best["val_accuracy"]:
            return record["val_accuracy"] > best["val_accuracy"]
    elif select not in get_args(Select):
        raise ValueError(f"unknown epoch selection {select!r}: val_loss or val_accuracy")
    return record["val_loss"] < best["val_loss"]


@dataclass
class Inputs:
    """One split ready for the model: token ids, labels or target token ids, and (when cached) the text
    states or features."""

    token_ids: list  # token ids per input (a tagger's: Tagged, with word starts)
    labels: torch.Tensor | None
    cache: TextCache | None
    features: torch.Tensor | None = None  # a head trained alone on a frozen model: its inputs, computed once
    targets: list[list[int]] | None = None  # text-to-text tasks: target string ids (EOS closed) or tag ids
    segments: dict[str, range] | None = None  # several source languages: each one's inputs; None: one language


@dataclass
class Loop:
    """What each stretch of training between two evaluations works with."""

    steps_per_epoch: int
    batches: Iterator[list[int]]  # the training batches from the loop's step on (Trainer._batches)
    train: Inputs
    val: Inputs
    prompt: SoftPrompt | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    bar: tqdm


class Trainer:
    """Trains one soft prompt (or model, or method B task module) and writes a run directory."""

    def __init__(self, config: TrainConfig, out_dir: Path, data_dir: str | None = None, backbone: Backbone | None = None):
        self.config = config
        self.out = files.ensure_writable(Path(out_dir))
        self.task = task_for(config, data_dir)
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self._validate()
        self._own_backbone = backbone is None  # only a backbone loaded here may be stored in bf16
        self.backbone = backbone or load_backbone(config.model, device=self.device)
        self.weights = {"fingerprint": self.backbone.fingerprint, "source": self.backbone.source}  # before bf16 storage
        self.configuration = Configuration(config.configuration) if config.configuration else None
        self.language_module = self._language_module()
        language_rows = 0 if self.language_module is None else self.language_module.meta.get("prompt_length", 0)
        self.classifier: Classifier = head_for(self.backbone, config, self.task, language_rows)
        # text-to-text and multiple choice train by teacher forcing on a target string (multiple choice: the gold one)
        self.text = isinstance(self.task, TextTask) or self.task.kind == "choice"
        self.stack: ModuleStack | None = None  # attached while run() trains
        self._validate_for_backbone()
        self.cached = config.text_cache and text_cache_exact(config, self.classifier, dropout=config.frozen_dropout)

    def _validate(self) -> None:
        c = self.config
        c.resolve(self.task)
        if c.regime != "full" and c.prompt_length < 0:
            raise XlpeftError(f"--prompt-length must not be negative (got {c.prompt_length})")
        if c.epochs < 1 or c.batch_size < 1:
            raise XlpeftError("--epochs and --batch-size must be at least 1")
        if c.max_steps is not None and c.max_steps < 1:
            raise XlpeftError(f"--max-steps must be at least 1 (got {c.max_steps}): give the optimizer steps to train, "
                              "or leave it out to train --epochs epochs")
        if c.eval_every is not None and c.eval_every < 1:
            raise XlpeftError(f"--eval-every must be at least 1 (got {c.eval_every}): give the optimizer steps between "
                              "validations, or leave it out to validate at each epoch's end")
        if c.select not in get_args(Select):
            raise XlpeftError(f"--select must be val_loss or val_accuracy (got {c.select!r})")
        if c.max_grad_norm is not None and not c.max_grad_norm > 0:
            raise XlpeftError(f"--max-grad-norm must be positive (got {c.max_grad_norm})")
        if c.init == "text" and not c.init_text:
            raise XlpeftError("--init text needs --init-text 'some words' to take the embeddings from")
        if c.configuration:
            self._validate_configuration()

    def _validate_configuration(self) -> None:
        c = self.config
        configuration = Configuration(c.configuration)
        if c.regime != "prompt":
            raise XlpeftError(f"configuration {c.configuration!r} trains a module on a frozen model: use --regime prompt")
        if configuration.language and not c.modules_dir:
            raise XlpeftError(f"configuration {c.configuration!r} stacks on a language module: give --modules-dir, the "
                              "registry 'xlpeft language-module train' wrote")
        if configuration.language == "slp" and c.placement == "suffix":
            raise XlpeftError(f"configuration {c.configuration!r} puts the language prompt before the text, as it was "
                              "trained: use --placement prefix")
        if configuration.name == "zero-shot" and c.head == "linear":
            raise XlpeftError("zero-shot trains nothing, so an untrained linear head would guess: use --head lm")
        if c.frozen_dropout:
            raise XlpeftError("--frozen-dropout is a method A option; method B configurations keep the model frozen "
                              "without dropout")

    def _language_module(self) -> LanguageModule | None:
        """The source language's module from the registry (checked against this backbone), registered under the
        language's FLORES-200 code where SIB-200 has it (NusaX 'eng' -> eng_Latn)."""
        if self.configuration is None or self.configuration.language is None:
            return None
        registry = ModuleRegistry(self.config.modules_dir)
        return registry.load(self.backbone, self.task.module_language(self.config.source), self.configuration.language)

    def _validate_for_backbone(self) -> None:
        c = self.config
        if (c.regime != "full" and c.prompt_length == 0 and self.classifier.head_kind != "linear"
                and not c.configuration):
            raise XlpeftError(f"--prompt-length 0 leaves nothing to train in regime {c.regime!r}; give a prompt length "
                              "or train a head alone with --head linear")
        if c.placement == "start" and self.backbone.kind != "encoder" and c.regime != "full":
            log.info("placement 'start' equals 'prefix' on a %s backbone", self.backbone.kind)

    # ------------------------------------------------------------------ setup
    def _sample(self) -> SourceSample:
        """Each source language's sample (tasks/sources.py); one language is drawn exactly as before."""
        c = self.config
        return sample_sources(self.task, c.source, c.source_data, c.shots, c.seed)

    def _inputs(self, examples: Examples | list[Examples]) -> Inputs:
        """One split ready for the model: ``examples``, or each source language's (one part per language, in
        order), whose inputs then record where each language's are (``segments``)."""
        parts = [examples] if isinstance(examples, Examples) else examples
        parts = [self.task.model_inputs(part, self.backbone.tokenizer, self.classifier.layout.text_budget,
                                        training=True) for part in parts]
        inputs = self._model_inputs(union(parts, self.config.source))
        if len(parts) > 1:
            ends = itertools.accumulate(len(part) for part in parts)
            inputs.segments = {part.language: range(end - len(part), end) for part, end in zip(parts, ends)}
        return inputs

    def _model_inputs(self, examples: Examples) -> Inputs:
        if isinstance(self.classifier, TokenTagger):
            words = [list(sentence.tokens) for sentence in examples.items]
            return Inputs(self.classifier.tokenize_words(words), None, None, targets=self.task.tag_ids(examples))
        ids = self.classifier.tokenize(examples.texts, examples.fields)
        if self.text:
            return Inputs(ids, None, None, targets=self.classifier.target_ids(examples.targets))
        labels = torch.tensor(examples.labels, device=self.device)
        with autocast(self.precision, self.device):
            if self.cached:
                return Inputs(ids, labels, TextCache(self.backbone, ids))
            if self._head_alone:
                return Inputs(ids, labels, None, self.classifier.all_features(ids))
        return Inputs(ids, labels, None)

    @property
    def _head_alone(self) -> bool:
        return head_alone(self.config, self.classifier, dropout=self.config.frozen_dropout)

    def _make_prompt(self) -> SoftPrompt | None:
        """The trained prompt (method B: the task prompt), None when the run trains none."""
        c = self.config
        if c.placement_used == "none" or c.prompt_length == 0:
            return None
        embeddings = self.backbone.model.get_input_embeddings().weight.detach()
        generator = torch.Generator().manual_seed(c.seed)
        text_ids = self.backbone.tokenizer(c.init_text, add_special_tokens=False)["input_ids"] if c.init == "text" else None
        weight = initial_prompt(c.init, c.prompt_length, embeddings.cpu(), generator, text_ids)
        return SoftPrompt(weight, c.reparam, c.reparam_hidden, affine=c.reparam_affine == "on").to(self.device)

    def _parts(self, prompt: SoftPrompt | None) -> list[Part]:
        """What this run trains (training/parts.py), in the order of its optimizer groups and checkpoint entries:
        the prompt if any, the head, the whole model (joint / full), method B's task adapter."""
        c = self.config
        parts: list[Part] = [] if prompt is None else [PromptPart(prompt, self.backbone, c.model, c.lr)]
        parts.append(HeadPart(self.classifier, c.lr))
        if c.regime != "prompt":
            parts.append(ModelPart(self.backbone, c.lr_model or c.lr))
        if self._task_adapter:
            parts.append(TaskAdapterPart(self.backbone.model, c.lr))
        return parts

    def _set_trainable(self, prompt: SoftPrompt | None) -> list[dict]:
        """Freeze the backbone, then make the trained parts trainable; returns the optimizer's parameter groups
        (a part without parameters, such as an LM-head verbalizer, has none)."""
        for p in self.backbone.model.parameters():
            p.requires_grad_(False)
        groups = []
        for part in self._parts(prompt):
            params = part.parameters()
            for p in params:
                p.requires_grad_(True)
            if params:
                groups.append({"params": params, "lr": part.lr})
        return groups

    def _fast_frozen(self) -> None:
        """Faster products on a frozen model this trainer loaded (kernels/frozen.py; a shared backbone is left
        as it was given)."""
        if self._own_backbone and self.config.regime == "prompt":
            prepare_frozen_model(self.backbone.model, self.device, self.precision, cached_backward=self.cached)

    @property
    def _task_adapter(self) -> bool:
        return self.configuration is not None and self.configuration.task == "ta"

    def _attach(self) -> None:
        """Method B: the source language module and a new, seeded task adapter on the backbone."""
        if self.configuration is None:
            return
        self.stack = ModuleStack(self.backbone, self.configuration)
        if self.language_module is not None:
            self.stack.use_language(self.language_module)
        if self._task_adapter:
            self.stack.add_task_adapter(AdapterConfig.for_model(self.backbone.family,
                                                                self.config.adapter_reduction_factor), self.config.seed)

    def _detach(self) -> None:
        """Leave the backbone as it was given (a grid shares it between runs)."""
        if self.stack is not None:
            self.stack.detach()
            self.stack = None

    def _prompt_matrix(self, prompt: SoftPrompt | None) -> torch.Tensor | None:
        """What goes before (or after) the text: the trained prompt, behind the language prompt in method B."""
        matrix = None if prompt is None else prompt()
        return matrix if self.stack is None else self.stack.compose(matrix)

    # ------------------------------------------------------------------ forward
    def _loss(self, data: Inputs, idx: list[int], prompt: SoftPrompt | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's loss and (classification) its outputs."""
        if self.text:
            matrix = self._prompt_matrix(prompt)
            loss = self.classifier.loss([data.token_ids[i] for i in idx], matrix, [data.targets[i] for i in idx])
            return loss, None
        outputs = self._outputs(data, idx, prompt)
        return self.classifier.loss(outputs, data.labels[idx]), outputs

    def _outputs(self, data: Inputs, idx: list[int], prompt: SoftPrompt | None) -> torch.Tensor:
        if data.features is not None:
            return self.classifier.head(data.features[idx])
        matrix = self._prompt_matrix(prompt)
        if data.cache is not None:
            return self.classifier.vocab_logits(prompt_hidden(self.backbone, data.cache.batch(idx), matrix))
        return self.classifier.outputs([data.token_ids[i] for i in idx], matrix)

    @torch.no_grad()
    def _validate_epoch(self, data: Inputs, prompt: SoftPrompt | None) -> dict:
        """The validation metrics the epoch is selected by, over the pooled validation set of every source
        language; with several languages also each one's (``val_by_language``), its batches never mixing
        languages, so that the pooled loss is the mean of the languages' losses weighted by their examples."""
        self.backbone.model.eval()
        self.classifier.eval()
        segments = data.segments or {self.config.source: range(len(data.token_ids))}
        losses, preds, by_language = [], [], {}
        for language, segment in segments.items():
            first_loss, first_pred = len(losses), len(preds)
            for start in range(segment.start, segment.stop, self.config.batch_size):
                idx = list(range(start, min(start + self.config.batch_size, segment.stop)))
                with autocast(self.precision, self.device):
                    loss, outputs = self._loss(data, idx, prompt)
                losses.append(loss.item() * len(idx))
                if outputs is not None:
                    preds.extend(self.classifier.scores(outputs).argmax(-1).tolist())
            by_language[language] = self._validation_scores(data, segment, losses[first_loss:], preds[first_pred:])
        record = self._validation_scores(data, range(len(data.token_ids)), losses, preds)
        if data.segments:
            record["val_by_language"] = by_language
        return record

    def _validation_scores(self, data: Inputs, segment: range, losses: list[float], preds: list[int]) -> dict:
        """Loss (mean over ``segment``'s inputs) and, for classification, accuracy and macro-F1 of ``preds``."""
        record = {"val_loss": sum(losses) / len(segment), "val_accuracy": None, "val_macro_f1": None}
        if not self.text:  # text-to-text tasks select the epoch by validation loss alone (no generation here)
            labels = data.labels[segment.start:segment.stop].tolist()
            scores = classification_metrics(labels, preds, len(self.task.labels))
            record.update(val_accuracy=scores["accuracy"], val_macro_f1=scores["macro_f1"])
        return record

    def _set_mode(self, training: bool) -> None:
        frozen = self.config.regime == "prompt"
        self.backbone.model.train(training and (not frozen or self.config.frozen_dropout))
        self.classifier.train(training)

    # ------------------------------------------------------------------ loop
    def run(self, progress: bool = True) -> dict:
        """Train, keep the best epoch on the source validation set (``select``), write the run directory."""
        c = self.config
        if (self.out / rd.METRICS).exists():
            return self._finished()
        seed_everything(c.seed)
        self._attach()
        try:
            return self._train(progress)
        finally:
            self._detach()

    def _train(self, progress: bool) -> dict:
        c = self.config
        sample = self._sample()
        prompt = self._make_prompt()
        groups = self._set_trainable(prompt)
        self._fast_frozen()
        counts = self._parameter_counts(prompt)
        self._write_setup(sample, counts)
        train, val = self._inputs(sample.train_parts()), self._inputs(sample.validation_parts())
        if self.configuration is not None and self.configuration.name == "zero-shot":
            record = {"epoch": 0, "train_loss": None, **self._validate_epoch(val, None)}
            return self._finish({"best": record, "best_weights": {}})
        steps_per_epoch = math.ceil(len(train.token_ids) / c.batch_size)
        budget = self._budget(steps_per_epoch)
        optimizer = make_optimizer(c.optimizer, groups, c.lr, c.weight_decay)
        scheduler = budget.schedule(optimizer)
        state = self._resume(prompt, optimizer, scheduler, steps_per_epoch)
        loop = Loop(steps_per_epoch, self._batches(len(train.token_ids), state["step"]), train, val, prompt,
                    optimizer, scheduler, self._progress_bar(state["step"], budget, steps_per_epoch, progress))
        while state["step"] < budget.total:
            end = budget.next_evaluation(state["step"])
            record = self._train_interval(state["step"], end, loop)
            if improves(record, state["best"], c.select):
                state["best"] = {**record}
                state["best_weights"] = self._snapshot(prompt)
            files.append_jsonl(self.out / rd.LOG, record)
            state["step"], state["evaluations"] = end, state["evaluations"] + 1
            self._checkpoint(state, prompt, optimizer, scheduler)
            faults.crash_point(faults.TRAIN_EPOCH_END)
            if not self._in_steps:  # a bar in steps moves with each step
                loop.bar.update()
            loop.bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_loss=f"{record['val_loss']:.3f}",
                                 **({} if self.text else {"val_acc": f"{record['val_accuracy']:.3f}"}))
        loop.bar.close()
        return self._finish(state)

    @property
    def _in_steps(self) -> bool:
        """Whether the budget or the validations are given in steps (else: epochs, validated at their ends)."""
        return self.config.max_steps is not None or self.config.eval_every is not None

    def _budget(self, steps_per_epoch: int) -> StepBudget:
        c = self.config
        if c.max_steps is None:
            return StepBudget.of_epochs(c.epochs, steps_per_epoch, c.warmup_ratio, c.eval_every)
        return StepBudget.of_steps(c.max_steps, c.eval_every or steps_per_epoch, c.warmup_ratio)

    def _progress_bar(self, step: int, budget: StepBudget, steps_per_epoch: int, progress: bool) -> tqdm:
        desc = f"train {self.config.source}"
        if self._in_steps:
            return tqdm(total=budget.total, initial=step, desc=desc, disable=not progress, unit="step")
        return tqdm(total=self.config.epochs, initial=step // steps_per_epoch, desc=desc, disable=not progress,
                    unit="epoch")

    def _batches(self, n: int, step: int) -> Iterator[list[int]]:
        """The training batches from optimizer step ``step`` on, epoch after epoch: epoch e in the order drawn
        with seed*10007+e, and the global generator (dropout of joint/full runs) seeded the same at the epoch's
        first batch. A run resumed inside an epoch has its generators restored from the checkpoint instead."""
        c = self.config
        epoch, start = divmod(step, math.ceil(n / c.batch_size))
        while True:
            if start == 0:
                torch.manual_seed(c.seed * 10007 + epoch)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(c.seed * 10007 + epoch))
            for first in range(start * c.batch_size, n, c.batch_size):
                yield order[first : first + c.batch_size].tolist()
            epoch, start = epoch + 1, 0

    def _train_interval(self, step: int, end: int, loop: Loop) -> dict:
        """Train from optimizer step ``step`` to step ``end`` (the epoch's end, or the next ``eval_every``
        multiple), then validate; returns the evaluation's log record."""
        c = self.config
        start_time, total, seen = time.perf_counter(), 0.0, 0
        self._set_mode(True)
        for _ in range(step, end):
            idx = next(loop.batches)
            with autocast(self.precision, self.device):
                loss, _ = self._loss(loop.train, idx, loop.prompt)
            loop.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(loop.optimizer, c.max_grad_norm)
            loop.optimizer.step()
            loop.scheduler.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if self._in_steps:
                loop.bar.update()
            faults.crash_point(faults.TRAIN_BATCH)
        seconds = time.perf_counter() - start_time
        metrics = self._validate_epoch(loop.val, loop.prompt)
        where = ({"step": end, "epoch": round(end / loop.steps_per_epoch, 3)} if self._in_steps
                 else {"epoch": end // loop.steps_per_epoch})
        return {**where, "train_loss": total / seen, "train_seconds": round(seconds, 3), **metrics}

    # ------------------------------------------------------------------ state
    def _trainable_state(self, prompt: SoftPrompt | None) -> dict:
        return {f"{part.key}.{k}": v for part in self._parts(prompt) for k, v in part.state_dict().items()}

    def _snapshot(self, prompt: SoftPrompt | None) -> dict:
        return {k: v.detach().clone() for k, v in self._trainable_state(prompt).items()}

    def _load_trainable(self, state: dict, prompt: SoftPrompt | None) -> list[Part]:
        """Load ``state`` (``_trainable_state``'s keys) into the trained parts; returns them."""
        parts = self._parts(prompt)
        for part in parts:
            prefix = f"{part.key}."
            part.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return parts

    def _checkpoint(self, state, prompt, optimizer, scheduler) -> None:
        rd.save_torch(self.out / rd.CHECKPOINT, {
            "step": state["step"], "evaluations": state["evaluations"], "best": state["best"],
            "best_weights": state["best_weights"], "weights": self._trainable_state(prompt),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": self._rng_state(),
            "config": self.config.to_dict(), "backbone": self.weights,
        })

    def _rng_state(self) -> dict:
        """The global generators (dropout draws from them), so that a run resumed inside an epoch draws what
        the uninterrupted run drew after this point."""
        state = {"cpu": torch.get_rng_state()}
        if self.device.startswith("cuda"):
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["cpu"].cpu())  # the checkpoint was loaded onto the run's device
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"].cpu(), self.device)

    def _resume(self, prompt, optimizer, scheduler, steps_per_epoch: int) -> dict:
        path = self.out / rd.CHECKPOINT
        if not path.exists():
            (self.out / rd.LOG).unlink(missing_ok=True)
            return {"step": 0, "evaluations": 0, "best": {}, "best_weights": None}
        saved = torch.load(path, map_location=self.device, weights_only=False)
        if TrainConfig.from_dict(saved["config"]).to_dict() != self.config.to_dict():
            raise XlpeftError(
                f"{self.out} holds an interrupted run with a different configuration; use another --out directory "
                "or delete it to start over"
            )
        if saved.get("backbone", self.weights)["fingerprint"] != self.weights["fingerprint"]:
            raise XlpeftError(
                f"{self.out} holds a run interrupted on {self.config.model} weights {saved['backbone']['fingerprint']} "
                f"({saved['backbone']['source']}), but these are {self.weights['fingerprint']} "
                f"({self.weights['source']}): resume where the same weights load, or delete the directory to start over")
        self._load_trainable(saved["weights"], prompt)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if "rng" in saved:  # checkpoints written before step budgets end at an epoch's end, which reseeds
            self._set_rng_state(saved["rng"])
        step, evaluations = ((saved["step"], saved["evaluations"]) if "step" in saved
                             else (saved["epoch"] * steps_per_epoch, saved["epoch"]))
        self._truncate_log(evaluations)
        log.info("resuming %s after step %d (%d evaluations)", self.out, step, evaluations)
        return {"step": step, "evaluations": evaluations, "best": saved["best"], "best_weights": saved["best_weights"]}

    def _truncate_log(self, evaluations: int) -> None:
        """Drop log lines of an evaluation that came after the last checkpoint (no duplicates on resume)."""
        path = self.out / rd.LOG
        lines = path.read_text().splitlines(keepends=True)[:evaluations] if path.exists() else []
        files.atomic_write(path, lambda tmp: tmp.write_text("".join(lines)))

    def _parameter_counts(self, prompt: SoftPrompt | None) -> dict:
        model = self.backbone.model
        adapters = {name: sum(p.numel() for p in adapter_parameters(model, name)) for name in adapter_names(model)}
        model_params = sum(p.numel() for p in model.parameters()) - sum(adapters.values())
        prompt_params = 0 if prompt is None else prompt.weight.numel()
        # the reparameterization's parameters (MLP or LSTM), under the key "reparam_mlp" that stored runs have
        mlp_params = 0 if prompt is None or prompt.encoder is None else sum(p.numel() for p in prompt.encoder.parameters())
        head_params = sum(p.numel() for p in self.classifier.parameters())
        task_adapter = adapters.get(TASK_ADAPTER, 0)
        language = 0 if self.language_module is None else self.language_module.meta["parameters"]
        trainable = sum(p.numel() for part in self._parts(prompt) for p in part.parameters())
        return {"model": model_params, "prompt": prompt_params, "reparam_mlp": mlp_params, "head": head_params,
                "task_adapter": task_adapter, "language_module": language, "trainable": trainable}

    def _write_setup(self, sample: SourceSample, counts: dict) -> None:
        files.write_json(self.out / rd.CONFIG, {
            "train": self.config.to_dict(),
            "max_length_counts": TEXT_ONLY,  # max_length is text tokens; runs without this key counted everything
            "backbone": self.weights,
            **self._generation_length(sample),
            "xlpeft_version": __version__,
            "torch_version": torch.__version__,
            **self.task.describe(),
            "model_family": self.backbone.family,
            "backbone_kind": self.backbone.kind,
            "hidden_size": self.backbone.hidden_size,
            **self.classifier.describe(),
            "device": self.device,
            "precision": self.precision,
            "cpu_matmul": fp32_cpu_matmul(self.device, self.precision),
            "text_cache_used": self.cached,
            "feature_cache_used": self._head_alone,
            "parameters": counts,
            **self._module_record(),
        })
        files.write_json(self.out / rd.SAMPLE, {"task": self.task.name, "source": self.config.source,
                                             "source_data": self.config.source_data, "seed": self.config.seed,
                                             **sample.record(self.task.labels)})

    def _generation_length(self, sample: SourceSample) -> dict:
        """Text-to-text runs: how many new tokens evaluation generates, sized from the *training* targets
        (the longest train or validation answer, plus EOS and a margin), never from the evaluated answers."""
        if not isinstance(self.task, TextTask) or isinstance(self.classifier, TokenTagger):
            return {}  # classification and multiple choice generate nothing
        budget = self.classifier.layout.text_budget
        splits = [self.task.model_inputs(split, self.backbone.tokenizer, budget, training=True)
                  for split in (*sample.train_parts(), *sample.validation_parts())]
        return {"max_new_tokens": max(self.task.answer_tokens(split, self.backbone.tokenizer)
                                      for split in splits if split.targets)}

    def _module_record(self) -> dict:
        """Method B: the configuration and the language module the task module was trained on top of."""
        if self.configuration is None:
            return {}
        module = self.language_module
        record = None if module is None else {
            "language": module.language, "kind": module.kind, "path": str(module.path.resolve()),
            "prompt_length": module.meta.get("prompt_length", 0), "tokens_seen": module.meta["tokens_seen"],
            "val_loss_best": module.meta["val_loss_best"],
        }
        return {"configuration": self.configuration.name, "language_module": record}

    def _finish(self, state: dict) -> dict:
        """Restore the best evaluation, save each trained part (the prompt folded); metrics.json last marks the run
        done. A step-budget run also names the best evaluation's step (its epoch is then a fraction)."""
        for part in self._load_trainable(state["best_weights"], self._make_prompt()):
            part.save(self.out)
        best = state["best"]
        metrics = {"best_epoch": best["epoch"], **({"best_step": best["step"]} if "step" in best else {}),
                   **{k: best[k] for k in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1")},
                   **({"val_by_language": best["val_by_language"]} if "val_by_language" in best else {})}
        files.write_json(self.out / rd.METRICS, metrics)
        (self.out / rd.CHECKPOINT).unlink(missing_ok=True)
        return metrics

    def _finished(self) -> dict:
        saved = json.loads((self.out / rd.CONFIG).read_text())["train"]
        if TrainConfig.from_dict(saved).to_dict() != self.config.to_dict():
            raise XlpeftError(f"{self.out} already holds a finished run with another configuration; choose another --out")
        log.info("%s is already trained; nothing to do", self.out)
        return json.loads((self.out / rd.METRICS).read_text())
