"""Text-to-text tasks with a soft prompt: teacher-forced training and greedy generation on any decoder.

NER rendered as ``"PER: X$$LOC: Y"`` and extractive QA answers are trained and predicted as text. The
input is the classification layout (layout.py) with the prompt spliced in; the answer is the target
string's tokens closed by EOS:

- causal LMs (Llama/SmolLM2, XGLM, BLOOM): ``[lead] [text/prompt per placement]`` with *no* closing EOS
  (``PromptLayout(with_tail=False)``), the target tokens following directly; the logit at the last input
  position predicts the first target token. ``max_length`` bounds the input text; prompt and answer come on top.
  Training pads on the right (positions from the attention mask); generation pads on the left so that
  every row's next token sits in the last column, and drives the model's KV cache by hand (one pass
  over the input, then one token at a time with position = previous + 1): HF ``generate`` is not relied
  on for causal models fed ``inputs_embeds``. The LM head runs only where a token is predicted, never
  over the whole T x V.
- encoder-decoders (mT5, mT0): the encoder reads the layout as for classification (its tail EOS kept);
  the decoder is trained on the target (labels shifted right by the model) and generates greedily,
  by the same hand-driven loop over its own cache.

Decoding is greedy and deterministic; a row stops at EOS (it stays in the batch, ignored) and the batch
stops when every row has stopped or after ``max_new_tokens``. Each output carries its score: the mean
log-probability of its generated tokens (EOS included when produced), comparable across inputs.
Log-softmax is computed in float32 even under bf16 autocast.

There is no default for ``max_new_tokens``: the reference code capped every prediction at 20 tokens,
silently truncating longer answers, so the caller sizes it from the run's *training* answers (recorded
at training as ``max_new_tokens``; never from the answers being evaluated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from xlpeft.backbones import Backbone
from xlpeft.errors import XlpeftError
from xlpeft.heads.layout import PromptLayout, run_base
from xlpeft.tasks.templates import Template

DECODER_NEEDED = "text-to-text tasks need a decoder: use a decoder-only or encoder-decoder backbone"


@dataclass(frozen=True)
class Generated:
    """One greedy output."""

    text: str  # decoded, special tokens skipped
    score: float  # mean log-probability per generated token (EOS included when produced)


class TextToText(nn.Module):
    """A layout plus a decoder: the training loss of target strings and greedy generation."""

    head_kind = "lm"

    def __init__(self, backbone: Backbone, layout: PromptLayout):
        super().__init__()
        if backbone.kind == "encoder":
            raise XlpeftError(DECODER_NEEDED)
        if backbone.kind == "causal" and layout.tail:
            raise ValueError("a causal text-to-text layout has no tail (the answer follows the input): "
                             "build it with build_text_to_text")
        self.backbone = backbone
        self.layout = layout

    def tokenize(self, texts: list[str], fields: dict[str, list[str]] | None = None) -> list[list[int]]:
        return self.layout.tokenize(texts, fields)

    def target_ids(self, targets: list[str]) -> list[list[int]]:
        """Each target's tokens (no special tokens) closed by EOS."""
        if not targets:
            return []
        encoded = self.backbone.tokenizer(list(targets), add_special_tokens=False)["input_ids"]
        return [ids + [self.backbone.eos_id] for ids in encoded]

    def describe(self) -> dict:
        return {"head_used": self.head_kind, "output": "text", **self.layout.describe()}

    # ------------------------------------------------------------------------------------------ training
    def loss(self, token_ids: list[list[int]], prompt: torch.Tensor | None,
             target_ids: list[list[int]]) -> torch.Tensor:
        """Teacher forcing: mean negative log-likelihood per target token over the whole batch."""
        return -self._token_logp(token_ids, prompt, target_ids).mean()

    def target_logp(self, token_ids: list[list[int]], prompt: torch.Tensor | None,
                    target_ids: list[list[int]]) -> torch.Tensor:
        """Each target's log-likelihood after its input, [N] float32: the sum of its tokens' log-probabilities
        under teacher forcing, the quantity ``loss`` averages (multiple choice scores choices with it)."""
        per_token = self._token_logp(token_ids, prompt, target_ids)
        return torch.stack([t.sum() for t in per_token.split([len(t) for t in target_ids])])

    def _token_logp(self, token_ids, prompt, target_ids) -> torch.Tensor:
        """The log-probability of every target token given its input and the target tokens before it, flat in
        row order: [sum of target lengths], float32."""
        if len(token_ids) != len(target_ids):
            raise ValueError(f"{len(token_ids)} inputs but {len(target_ids)} targets")
        if any(not t for t in target_ids):
            raise ValueError("every target needs at least one token (its EOS)")
        if self.backbone.kind == "causal":
            return self._causal_logp(token_ids, prompt, target_ids)
        return self._seq2seq_logp(token_ids, prompt, target_ids)

    def _causal_logp(self, token_ids, prompt, target_ids) -> torch.Tensor:
        backbone = self.backbone
        embed = backbone.model.get_input_embeddings()
        device = embed.weight.device
        batch = self.layout.build(token_ids, prompt, padding_side="right")
        lengths = batch.attention_mask.sum(-1).tolist()
        rows, predict_rows, predict_cols = [], [], []
        for i, (n, target) in enumerate(zip(lengths, target_ids)):
            fed = embed(torch.tensor(target[:-1], dtype=torch.long, device=device))  # the last token is only predicted
            rows.append(torch.cat([batch.embeds[i, :n], fed]))
            predict_rows += [i] * len(target)
            predict_cols += range(n - 1, n - 1 + len(target))
        embeds, mask = _pad_right(rows, embed(torch.tensor([backbone.pad_id], device=device)))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = run_base(backbone, embeds, mask, positions).last_hidden_state
        picked = hidden[torch.tensor(predict_rows, device=device), torch.tensor(predict_cols, device=device)]
        logp = F.log_softmax(backbone.lm_head(picked).float(), dim=-1)
        gold = torch.tensor([t for target in target_ids for t in target], device=device)
        return logp.gather(-1, gold[:, None]).squeeze(-1)

    def _seq2seq_logp(self, token_ids, prompt, target_ids) -> torch.Tensor:
        model = self.backbone.model
        batch = self.layout.build(token_ids, prompt)
        device = batch.embeds.device
        width = max(map(len, target_ids))
        labels = torch.full((len(target_ids), width), -100, dtype=torch.long, device=device)
        for i, target in enumerate(target_ids):
            labels[i, : len(target)] = torch.tensor(target, device=device)
        hidden = self.backbone.encoder_hidden(batch.embeds, batch.attention_mask)
        # the full forward applies the model's own head (T5 rescales tied heads); answers are short
        logits = model(encoder_outputs=(hidden,), attention_mask=batch.attention_mask,
                       decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels),
                       use_cache=False).logits
        valid = labels != -100
        logp = F.log_softmax(logits[valid].float(), dim=-1)
        return logp.gather(-1, labels[valid][:, None]).squeeze(-1)  # row by row: boolean indexing keeps row order

    # ---------------------------------------------------------------------------------------- generation
    @torch.inference_mode()
    def generate(self, token_ids: list[list[int]], prompt: torch.Tensor | None, max_new_tokens: int,
                 batch_size: int = 16) -> list[Generated]:
        """Greedy outputs for ``token_ids``, in input order; batches are formed from length-sorted inputs."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        results: list[Generated | None] = [None] * len(token_ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = [token_ids[i] for i in chunk]
            row_prompt = prompt[chunk] if prompt is not None and prompt.dim() == 3 else prompt
            run = self._causal_steps if self.backbone.kind == "causal" else self._seq2seq_steps
            first, step = run(rows, row_prompt)
            for i, out in zip(chunk, self._greedy(first, step, max_new_tokens)):
                results[i] = out
        return results  # type: ignore[return-value]

    def _causal_steps(self, rows, prompt):
        """The first next-token logits of a left-padded batch and a step function over the KV cache."""
        backbone = self.backbone
        embed = backbone.model.get_input_embeddings()
        batch = self.layout.build(rows, prompt, padding_side="left")
        state = {"mask": batch.attention_mask, "positions": batch.position_ids[:, -1:]}
        out = run_base(backbone, batch.embeds, state["mask"], batch.position_ids,
                       cache=DynamicCache(config=backbone.model.config), use_cache=True)
        state["past"] = out.cache

        def step(next_ids: torch.Tensor) -> torch.Tensor:
            state["mask"] = torch.cat([state["mask"], state["mask"].new_ones(len(next_ids), 1)], dim=1)
            state["positions"] = state["positions"] + 1
            out = run_base(backbone, embed(next_ids[:, None]), state["mask"], state["positions"],
                           cache=state["past"], use_cache=True)
            state["past"] = out.cache
            return backbone.lm_head(out.last_hidden_state[:, -1])

        return backbone.lm_head(out.last_hidden_state[:, -1]), step

    def _seq2seq_steps(self, rows, prompt):
        """The decoder's first logits after the start token and a step function over its cache."""
        model = self.backbone.model
        batch = self.layout.build(rows, prompt)
        encoded = (self.backbone.encoder_hidden(batch.embeds, batch.attention_mask),)
        start_id = model.config.decoder_start_token_id
        if start_id is None:
            raise XlpeftError(f"{self.backbone.name} has no decoder_start_token_id in its config; set it to generate")
        state = {"past": None}

        def step(next_ids: torch.Tensor) -> torch.Tensor:
            out = model(encoder_outputs=encoded, attention_mask=batch.attention_mask,
                        decoder_input_ids=next_ids[:, None], cache=state["past"], use_cache=True)
            state["past"] = out.cache
            return out.logits[:, -1]

        start = torch.full((len(rows),), start_id, dtype=torch.long, device=batch.embeds.device)
        return step(start), step

    def _greedy(self, logits: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor],
                max_new_tokens: int) -> list[Generated]:
        """Argmax decoding until every row has produced EOS or ``max_new_tokens`` tokens."""
        eos = self.backbone.eos_id
        n = logits.shape[0]
        done = torch.zeros(n, dtype=torch.bool, device=logits.device)
        total = torch.zeros(n, dtype=torch.float32, device=logits.device)
        counts = torch.zeros(n, dtype=torch.long, device=logits.device)
        tokens = []
        for position in range(max_new_tokens):
            logp = F.log_softmax(logits.float(), dim=-1)
            next_ids = logp.argmax(-1)
            active = ~done
            total += torch.where(active, logp.gather(-1, next_ids[:, None]).squeeze(-1), 0.0)
            counts += active.long()
            tokens.append(next_ids)
            done = done | (next_ids == eos)
            if position == max_new_tokens - 1 or bool(done.all()):
                break
            logits = step(next_ids)
        generated = torch.stack(tokens, dim=1).tolist()
        counts_list = counts.tolist()
        kept = [row[:c] for row, c in zip(generated, counts_list)]  # up to and including EOS
        texts = self.backbone.tokenizer.batch_decode(kept, skip_special_tokens=True)
        scores = (total / counts.clamp(min=1)).tolist()
        return [Generated(text, score) for text, score in zip(texts, scores)]


def build_text_to_text(backbone: Backbone, placement: str, prompt_length: int, max_length: int,
                       template: Template | None = None) -> TextToText:
    """The text-to-text model a run configuration describes (the same call at training and at evaluation).

    ``prompt_length`` rows of an unscaled L x d prompt go where ``placement`` says; ``max_length`` bounds
    the text (prompt, template and special tokens come on top), only the text being truncated.
    """
    if backbone.kind == "encoder":
        raise XlpeftError(DECODER_NEEDED)
    try:
        layout = PromptLayout(backbone, placement, prompt_length, max_length, with_tail=backbone.kind != "causal",
                              template=template)
    except ValueError as exc:
        raise XlpeftError(str(exc)) from exc
    return TextToText(backbone, layout)


def _pad_right(rows: list[torch.Tensor], pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of embeddings right-padded with the pad token's embedding, and their attention mask."""
    width = max(r.shape[0] for r in rows)
    embeds = torch.stack([torch.cat([r, pad.expand(width - r.shape[0], -1)]) for r in rows])
    lengths = torch.tensor([r.shape[0] for r in rows], device=pad.device)
    mask = (torch.arange(width, device=pad.device)[None] < lengths[:, None]).long()
    return embeds, mask
