"""numerics.assert_close_scaled passes float32 rounding and catches real errors (issue 18, item 9)."""

import pytest
import torch
from conftest import make_backbone
from numerics import assert_close_scaled

from xlpeft.heads.layout import PromptLayout
from xlpeft.heads.text_cache import TextCache, prompt_hidden

TEXTS = ["The minister spoke about the election results in the capital city today.", "Rain.",
         "Scientists found water on a distant planet using a new telescope."]


def test_float32_rounding_of_long_sums_passes():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 4096, generator=generator), torch.randn(4096, 64, generator=generator)
    assert_close_scaled(a @ b, (a.double() @ b.double()).float())
    assert_close_scaled((a @ b).sum(0), (a.double() @ b.double()).sum(0))  # cancelling sums too


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_one_weight_off_by_a_thousandth_fails(tiny_tokenizer, family):
    """The cached step's prompt gradient with one layer's gate_proj scaled by 1.001 is a broken
    feature (not o_proj: Gemma normalises the attention output, so its scale would not matter)."""
    backbone = make_backbone(family, tiny_tokenizer)
    backbone.freeze()
    batch = TextCache(backbone, PromptLayout(backbone, "suffix", 4).tokenize(TEXTS)).batch([0, 1, 2])
    prompt = (torch.rand(4, 32, generator=torch.Generator().manual_seed(0)) - 0.5).requires_grad_()

    def grad():
        return torch.autograd.grad(backbone.lm_head(prompt_hidden(backbone, batch, prompt)).logsumexp(-1).sum(),
                                   prompt)[0]

    exact = grad()
    assert_close_scaled(grad(), exact)
    with torch.no_grad():
        backbone.model.model.layers[1].mlp.gate_proj.weight.mul_(1.001)
    with pytest.raises(AssertionError, match="exceeds"):
        assert_close_scaled(grad(), exact)
