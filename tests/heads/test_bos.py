"""Causal LMs that read a BOS token first (Gemma, Llama 3) get it before the text on every path; the others
(XGLM, BLOOM, SmolLM2) keep the published layout without one (methods.md A)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_backbone, with_template
from numerics import assert_close_scaled

from xlpeft.heads.layout import PromptLayout, prediction_hidden
from xlpeft.heads.text_cache import TextCache, prompt_hidden

TEXTS = ["The minister spoke about the election results today.", "Football season starts.", "Rain.",
         "Scientists found water on a distant planet using a new telescope."]


@pytest.fixture
def bos_tokenizer(tiny_tokenizer):
    return with_template(tiny_tokenizer, "<bos>")


def test_lead_is_bos_only_where_the_tokenizer_puts_its_bos_first(tiny_tokenizer, bos_tokenizer):
    assert make_backbone("llama", tiny_tokenizer).lead_ids == ()  # no template: SmolLM2, BLOOM
    with_bos = make_backbone("gemma3", bos_tokenizer)
    assert with_bos.bos_first and with_bos.lead_ids == (bos_tokenizer.bos_token_id,)
    xglm_like = with_template(tiny_tokenizer, "</s>")  # XGLM's tokenizer starts with </s>, not its BOS
    assert make_backbone("llama", xglm_like).lead_ids == ()


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_bos_leads_the_input_and_the_cached_path_reads_it_too(bos_tokenizer, family):
    backbone = make_backbone(family, bos_tokenizer)
    backbone.freeze()
    layout = PromptLayout(backbone, "suffix", prompt_length=4)
    ids = layout.tokenize(TEXTS)
    torch.manual_seed(0)
    prompt = (torch.rand(4, 32) - 0.5).requires_grad_()
    batch = layout.build(ids, prompt)
    bos_embedding = backbone.model.get_input_embeddings()(torch.tensor([bos_tokenizer.bos_token_id]))[0]
    assert torch.equal(batch.embeds[:, 0], bos_embedding.expand(len(TEXTS), -1))
    assert layout.text_budget == 128  # the BOS comes on top of the text budget

    head = backbone.lm_head
    full = head(prediction_hidden(backbone, batch))
    cached = head(prompt_hidden(backbone, TextCache(backbone, ids, chunk_size=2).batch([0, 1, 2, 3]), prompt))
    assert_close_scaled(cached, full)
    grad_full = torch.autograd.grad(full.logsumexp(-1).sum(), prompt)[0]
    grad_cached = torch.autograd.grad(cached.logsumexp(-1).sum(), prompt)[0]
    assert_close_scaled(grad_cached, grad_full)

    without = PromptLayout(make_backbone(family, bos_tokenizer), "suffix", prompt_length=4)
    without.lead = ()  # the same model without the BOS reads differently: the test would see a dropped BOS
    assert not torch.allclose(head(prediction_hidden(backbone, without.build(ids, prompt))), full, atol=1e-3)



@pytest.mark.parametrize("counts", ["text", "all"])
def test_cached_evaluation_reads_each_runs_text_budget_after_the_bos(bos_tokenizer, sib_dir, counts):
    """Cached evaluation clips each run's texts to the budget its own layout gives (heads/layout.py), the BOS
    coming on top: max_length text tokens, or for a run written before that rule ("all") what is left once the
    prompt, the BOS and EOS are placed. Its own copy of the rule left the BOS out: runs counting text tokens lost
    their last text token to the clip, older runs were right only because both mistakes cancelled."""
    from pathlib import Path

    import pandas as pd

    from xlpeft.evaluation.predict import Plan, cached_text_ids, predict_cached, predict_uncached, run_text_budget
    from xlpeft.runs import Run

    backbone = make_backbone("llama", bos_tokenizer)
    backbone.freeze()
    texts = list(pd.read_csv(sib_dir / "deu_Latn" / "test.tsv", sep="\t")["text"][:60])
    label_ids = list(range(10, 17))
    torch.manual_seed(0)
    for i in range(4):
        prompt = torch.randn(4, 32)
        config = {"train": {"regime": "prompt", "placement": "suffix", "prompt_length": 4, "head": "lm",
                            "max_length": 4 + 1 + 1 + 3}, "head_used": "lm", "label_token_ids": label_ids,
                  "label_words": [str(t) for t in label_ids], **({"max_length_counts": "text"} if counts == "text" else {})}
        run = Run(Path(f"r{i}"), config, prompt * backbone.embed_scale, None)
        budget = 9 if counts == "text" else 3  # "all": 9 - (4 prompt rows + BOS + EOS)
        assert run_text_budget(backbone, run) == budget
        ids = cached_text_ids(backbone, [run], texts)
        assert max(map(len, ids)) == budget
        cached = predict_cached(backbone, [run], ids, Plan(chunk_sentences=8, prompts_per_pass=1))
        assert cached[run.name] == predict_uncached(backbone, run, texts, batch_size=8)
