"""Free generation with a soft prompt before the encoder input: text-to-text tasks on encoder-decoders.

The caller gives ``max_new_tokens`` explicitly, sized to the task's answers: there is no default, so no
silent cap truncates long answers (the reference code cut every prediction at 20 tokens). Decoding is
greedy, so the output is a deterministic function of the prompt and the text.
"""

from __future__ import annotations

import torch

from xlpeft.composition.layout import PromptLayout


@torch.inference_mode()
def generate(layout: PromptLayout, prompt: torch.Tensor | None, texts: list[str], max_new_tokens: int,
             batch_size: int = 16) -> list[str]:
    """The decoder's greedy outputs for ``texts``, in order."""
    backbone = layout.backbone
    if backbone.kind != "seq2seq":
        raise ValueError(f"free generation needs an encoder-decoder (mT5, mT0), not a {backbone.kind} model")
    token_ids = layout.tokenize(texts)
    outputs: list[str] = []
    for start in range(0, len(token_ids), batch_size):
        batch = layout.build(token_ids[start : start + batch_size], prompt)
        generated = backbone.model.generate(
            inputs_embeds=batch.embeds, attention_mask=batch.attention_mask, max_new_tokens=max_new_tokens,
            do_sample=False, num_beams=1, pad_token_id=backbone.pad_id, eos_token_id=backbone.eos_id,
        )
        outputs += backbone.tokenizer.batch_decode(generated, skip_special_tokens=True)
    return outputs
