"""Train a language module (language adapter or soft language prompt) on raw text, into the registry.

methods.md B, phase 1: the backbone is frozen; a language adapter (LA) or a soft language prompt (SLP)
learns the language through the backbone kind's language-modelling objective
(``objectives.language_modeling``: span corruption for mT5/mT0, causal LM for decoder-only models,
masked LM for encoders). The paper trains 100k steps of 32 x 256 tokens on Wikipedia; the defaults
here are sized for a CPU (see docs/method_b.md) and every knob is a flag.

Reproducibility: the text's line order, the held-out validation lines, the objective's random choices
(noise spans, masks), the adapter's or prompt's initial values and each epoch's document order all
come from ``seed``. Validation loss on held-out lines is measured every ``eval_every`` steps and the
best step's weights are the ones saved (the reference code did not reload its best prompt). An
interrupted run resumes from its last checkpoint and regenerates the batches it had consumed, so the
result equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from xlpeft import __version__, faults, files
from xlpeft import runs as rd
from xlpeft.adapters import (
    AdapterConfig,
    adapter_names,
    adapter_parameters,
    adapter_state_dict,
    add_adapter,
    load_adapter_state_dict,
    remove_adapter,
    set_active,
)
from xlpeft.adapters.adapterhub import save_adapterhub
from xlpeft.backbones import Backbone, load_backbone
from xlpeft.data.languages import resolve_languages
from xlpeft.data.text import available_sources, load_text, tokenize
from xlpeft.errors import XlpeftError
from xlpeft.modular.registry import (
    ADAPTER_DIR,
    KIND_NAMES,
    MODULE_JSON,
    ModuleRegistry,
    backbone_identity,
)
from xlpeft.modular.stack import LANGUAGE_ADAPTER, splice_lm_prompt
from xlpeft.objectives.language_modeling import LMObjective, objective_for
from xlpeft.prompts import SoftPrompt, initial_prompt
from xlpeft.prompts.peft_format import save_peft_prompt
from xlpeft.config import LanguageModuleConfig
from xlpeft.kernels.frozen import prepare_frozen_model
from xlpeft.runtime import autocast, fp32_cpu_matmul, resolve_device, resolve_precision, seed_everything
from xlpeft.training.budget import StepBudget
from xlpeft.training.optim import clip_gradients, make_optimizer

log = logging.getLogger("xlpeft")
MAX_VALIDATION_BATCHES = 16


class LanguageModuleTrainer:
    """Trains one language module and stores it at ``registry.path(model, language, kind)``."""

    def __init__(self, config: LanguageModuleConfig, modules_dir: str | Path, data_dir: str | None = None,
                 backbone: Backbone | None = None):
        [config.language] = resolve_languages(config.language)
        if config.kind not in KIND_NAMES:
            raise XlpeftError(f"unknown --kind {config.kind!r}: la (language adapter) or slp (soft language prompt)")
        if min(config.steps, config.batch_size, config.eval_every, config.validation_lines) < 1:
            raise XlpeftError("--steps, --batch-size, --eval-every and --validation-lines must be at least 1")
        if config.max_grad_norm is not None and not config.max_grad_norm > 0:
            raise XlpeftError(f"--max-grad-norm must be positive (got {config.max_grad_norm})")
        if config.kind == "slp" and config.prompt_length < 1:
            raise XlpeftError("a soft language prompt needs --prompt-length of at least 1")
        self.config = config
        self.data_dir = data_dir
        self.registry = ModuleRegistry(modules_dir)
        self.final = self.registry.path(config.model, config.language, config.kind)
        self.work = self.registry.partial_path(config.model, config.language, config.kind)
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self._backbone = backbone

    # ------------------------------------------------------------------ setup
    def _source(self) -> str:
        if self.config.text != "auto":
            return self.config.text
        sources = available_sources(self.config.language, self.data_dir)
        if not sources:
            raise XlpeftError(f"no local text for {self.config.language}: give --text FILE or a hub dataset "
                              "(e.g. wikimedia/wikipedia), or --data-dir with text/ and sib200/")
        return max(sources, key=sources.get)

    def _lines(self) -> tuple[dict, list[str], list[str]]:
        c = self.config
        corpus = load_text(c.language, self._source(), self.data_dir, c.max_lines, c.seed)
        n_val = min(c.validation_lines, corpus.n_lines // 10)
        if n_val < 1 or corpus.n_lines - n_val < 1:
            raise XlpeftError(f"{corpus.path} has {corpus.n_lines} line(s) of {c.language}: too few to hold out "
                              "validation lines; give more text")
        record = {"source": corpus.source, "path": corpus.path, "lines_train": corpus.n_lines - n_val,
                  "lines_validation": n_val}
        return record, corpus.lines[n_val:], corpus.lines[:n_val]

    def _objective(self, backbone: Backbone) -> LMObjective:
        c = self.config
        if backbone.kind == "seq2seq":
            return objective_for("seq2seq", backbone.tokenizer, input_length=c.block_length,
                                 noise_density=c.noise_density, mean_noise_span_length=c.mean_noise_span_length,
                                 decoder_start_token_id=backbone.model.config.decoder_start_token_id)
        if backbone.kind == "encoder" and not backbone.has_lm_head:
            raise XlpeftError(f"{backbone.name} has no masked-LM head to train a language module with; load the "
                              "model with its MLM head (e.g. the ...ForMaskedLM checkpoint)")
        lead = {"lead": backbone.lead_ids} if backbone.kind == "causal" else {}  # Gemma's blocks start with BOS
        return objective_for(backbone.kind, backbone.tokenizer, block_length=c.block_length, **lead)

    def _make_module(self, backbone: Backbone) -> tuple[SoftPrompt | None, list[torch.nn.Parameter]]:
        """The module being trained, initialised from the seed; returns (prompt or None, its parameters)."""
        c = self.config
        backbone.freeze()
        if self._backbone is None:  # before the module's own layers: those are trained
            # no bf16 weight storage: the adapter added next takes the dtype of the model's first parameter
            # (adapters.add_adapter), and language-module training was never measured with it
            prepare_frozen_model(backbone.model, self.device, self.precision, bf16_weights=False)
        generator = torch.Generator().manual_seed(c.seed)
        if c.kind == "slp":
            ids = backbone.tokenizer(c.init_text_used, add_special_tokens=False)["input_ids"]
            embeddings = backbone.model.get_input_embeddings().weight.detach().cpu()
            prompt = SoftPrompt(initial_prompt("text", c.prompt_length, embeddings, generator, ids)).to(self.device)
            return prompt, list(prompt.parameters())
        torch.manual_seed(c.seed)
        add_adapter(backbone.model, LANGUAGE_ADAPTER, AdapterConfig.for_model(backbone.family, c.reduction_factor))
        set_active(backbone.model, [LANGUAGE_ADAPTER])
        params = adapter_parameters(backbone.model, LANGUAGE_ADAPTER)
        for p in params:
            p.requires_grad_(True)
        return None, params

    def _batches(self, objective: LMObjective, streams: list[list[int]]) -> Iterator[dict[str, torch.Tensor]]:
        """Endless training batches: epoch 0 in the text's seeded order, later epochs reshuffled by document."""
        epoch = 0
        while True:
            order = range(len(streams)) if epoch == 0 else np.random.default_rng(
                [self.config.seed, epoch]).permutation(len(streams))
            yield from objective.batches((streams[i] for i in order), self.config.batch_size,
                                         seed=self.config.seed * 1000 + epoch)
            epoch += 1

    # ------------------------------------------------------------------ loop
    def run(self, progress: bool = True) -> dict:
        """Train (or resume), keep the step with the lowest validation loss, store the module; returns module.json."""
        c = self.config
        if (self.final / MODULE_JSON).is_file():
            return self._finished()
        files.ensure_writable(self.work, "--modules-dir")
        seed_everything(c.seed)
        backbone = self._backbone or load_backbone(c.model, device=self.device)
        objective = self._objective(backbone)
        text, train_lines, val_lines = self._lines()
        train_streams = list(tokenize(train_lines, backbone.tokenizer))
        val_batches = list(objective.batches(tokenize(val_lines, backbone.tokenizer), c.batch_size, seed=c.seed + 1))
        val_batches = val_batches[:MAX_VALIDATION_BATCHES]
        prompt, params = self._make_module(backbone)
        try:
            return self._train(backbone, objective, text, train_streams, val_batches, prompt, params, progress)
        finally:  # leave a shared backbone as it was given, also when interrupted
            if LANGUAGE_ADAPTER in adapter_names(backbone.model):
                remove_adapter(backbone.model, LANGUAGE_ADAPTER)

    def _train(self, backbone, objective, text, train_streams, val_batches, prompt, params, progress) -> dict:
        c = self.config
        budget = StepBudget.of_steps(c.steps, c.eval_every, c.warmup_ratio)
        optimizer = make_optimizer(c.optimizer, params, c.lr_used, c.weight_decay)
        scheduler = budget.schedule(optimizer)
        state = self._resume(backbone, prompt, optimizer, scheduler)
        if state["step"] == 0:
            state["val_loss_initial"] = self._val_loss(backbone, prompt, val_batches)
        batches = self._batches(objective, train_streams)
        for _ in range(state["step"]):  # the batches an interrupted run had consumed
            next(batches)
        bar = tqdm(total=c.steps, initial=state["step"], desc=f"{c.kind} {c.language}", disable=not progress,
                   unit="step")
        start, losses = time.perf_counter(), []
        backbone.model.train(False)  # frozen backbone: no dropout (adapter dropout is 0 by default)
        while state["step"] < c.steps:
            batch = next(batches)
            with autocast(self.precision, self.device):
                loss = backbone.model(**splice_lm_prompt(backbone, batch, None if prompt is None else prompt())).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(optimizer, c.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            state["step"] += 1
            state["tokens_seen"] += int(batch["attention_mask"].sum())
            bar.update(1)
            faults.crash_point(faults.LANGUAGE_MODULE_STEP)
            if budget.due(state["step"]):
                self._evaluate(state, backbone, prompt, val_batches, losses, time.perf_counter() - start)
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_loss=f"{state['last_val_loss']:.3f}")
                losses, start = [], time.perf_counter()
                self._checkpoint(state, backbone, prompt, optimizer, scheduler)
                faults.crash_point(faults.LANGUAGE_MODULE_CHECKPOINT)
        bar.close()
        return self._finish(state, backbone, prompt, text, type(objective).__name__)

    @torch.no_grad()
    def _val_loss(self, backbone: Backbone, prompt: SoftPrompt | None, batches: list[dict]) -> float:
        backbone.model.eval()
        total, weight = 0.0, 0
        for batch in batches:
            inputs = splice_lm_prompt(backbone, batch, None if prompt is None else prompt())
            n = int((inputs["labels"] != -100).sum())
            with autocast(self.precision, self.device):
                total += backbone.model(**inputs).loss.item() * n
            weight += n
        return total / max(weight, 1)

    def _evaluate(self, state: dict, backbone, prompt, val_batches, losses: list[float], seconds: float) -> None:
        val = self._val_loss(backbone, prompt, val_batches)
        state["last_val_loss"] = val
        if val < state["best"].get("val_loss", float("inf")):
            state["best"] = {"step": state["step"], "val_loss": val}
            state["best_weights"] = self._weights(backbone, prompt)
        files.append_jsonl(self.work / rd.LOG, {"step": state["step"], "train_loss": float(np.mean(losses)),
                                          "val_loss": val, "tokens_seen": state["tokens_seen"],
                                          "seconds": round(seconds, 3)})

    # ------------------------------------------------------------------ state
    def _weights(self, backbone: Backbone, prompt: SoftPrompt | None) -> dict[str, torch.Tensor]:
        if prompt is not None:
            return {k: v.detach().clone() for k, v in prompt.state_dict().items()}
        return adapter_state_dict(backbone.model, LANGUAGE_ADAPTER)

    def _load_weights(self, backbone: Backbone, prompt: SoftPrompt | None, weights: dict) -> None:
        if prompt is not None:
            prompt.load_state_dict(weights)
        else:
            load_adapter_state_dict(backbone.model, LANGUAGE_ADAPTER, weights)

    def _checkpoint(self, state: dict, backbone, prompt, optimizer, scheduler) -> None:
        rd.save_torch(self.work / rd.CHECKPOINT, {
            "state": {k: v for k, v in state.items() if k != "best_weights"}, "best_weights": state["best_weights"],
            "weights": self._weights(backbone, prompt), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "config": self.config.to_dict(),
        })

    def _resume(self, backbone, prompt, optimizer, scheduler) -> dict:
        path = self.work / rd.CHECKPOINT
        fresh = {"step": 0, "tokens_seen": 0, "best": {}, "best_weights": None, "last_val_loss": float("nan")}
        if not path.exists():
            (self.work / rd.LOG).unlink(missing_ok=True)
            return fresh
        saved = torch.load(path, map_location=self.device, weights_only=False)
        if LanguageModuleConfig.from_dict(saved["config"]).to_dict() != self.config.to_dict():
            raise XlpeftError(f"{self.work} holds an interrupted {self.config.kind} run with other settings; delete "
                              "it to start over, or rerun with the same settings to resume")
        self._load_weights(backbone, prompt, saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        lines = (self.work / rd.LOG).read_text().splitlines(keepends=True) if (self.work / rd.LOG).exists() else []
        kept = [line for line in lines if json.loads(line)["step"] <= saved["state"]["step"]]
        files.atomic_write(self.work / rd.LOG, lambda tmp: tmp.write_text("".join(kept)))
        log.info("resuming %s at step %d", self.work, saved["state"]["step"])
        return {**saved["state"], "best_weights": saved["best_weights"]}

    def _finish(self, state: dict, backbone: Backbone, prompt: SoftPrompt | None, text: dict, objective: str) -> dict:
        """Best weights into the partial folder, module.json last, then one rename publishes the module."""
        c = self.config
        self._load_weights(backbone, prompt, state["best_weights"])
        if prompt is not None:
            save_peft_prompt(self.work, prompt.fold().weight, backbone, c.model)
            module = {"prompt_length": c.prompt_length, "init_text": c.init_text_used,
                      "parameters": prompt.weight.numel()}
        else:
            files.atomic_dir(self.work / ADAPTER_DIR, lambda tmp: save_adapterhub(backbone.model, LANGUAGE_ADAPTER, tmp))
            module = {"adapter": AdapterConfig.for_model(backbone.family, c.reduction_factor).to_dict(),
                      "parameters": sum(p.numel() for p in adapter_parameters(backbone.model, LANGUAGE_ADAPTER))}
        meta = {
            "kind": c.kind, "language": c.language, "backbone": backbone_identity(backbone),
            "backbone_kind": backbone.kind, "train": c.to_dict(), "lr_used": c.lr_used, "text": text,
            "objective": objective, "tokens_seen": state["tokens_seen"],
            "best_step": state["best"]["step"], "val_loss_best": state["best"]["val_loss"],
            "val_loss_initial": state["val_loss_initial"], "precision": self.precision, "device": self.device,
            "cpu_matmul": fp32_cpu_matmul(self.device, self.precision),
            "xlpeft_version": __version__, "torch_version": torch.__version__, **module,
        }
        files.write_json(self.work / MODULE_JSON, meta)
        (self.work / rd.CHECKPOINT).unlink(missing_ok=True)
        if self.final.exists():  # an unfinished leftover without module.json
            shutil.rmtree(self.final)
        self.work.rename(self.final)
        return meta

    def _finished(self) -> dict:
        meta = json.loads((self.final / MODULE_JSON).read_text())
        if LanguageModuleConfig.from_dict(meta["train"]).to_dict() != self.config.to_dict():
            raise XlpeftError(f"{self.final} already holds a {self.config.kind} module trained with other settings; "
                              "delete it or use another --modules-dir")
        log.info("%s is already trained; nothing to do", self.final)
        return meta
