"""Shared fixtures: the SIB-200 directory, a tokenizer trained in seconds on its text, tiny models.

No test downloads anything. The tokenizer is a byte-level BPE trained on a few SIB-200 languages; the
SIB label words are fed in so that they become single tokens, as they are in real tokenizers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    BertConfig,
    BloomConfig,
    Gemma3TextConfig,
    LlamaConfig,
    MistralConfig,
    MT5Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
    XGLMConfig,
    XLMRobertaConfig,
)

from xlpeft.backbones import Backbone

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("xglm", "bloom", "llama")
LABEL_WORDS = ("science travel politics sports health entertainment earth government play fun "
               "negative neutral positive yes maybe no").split()  # every task's default words


def _data_dir() -> Path:
    given = os.environ.get("XLPEFT_DATA_DIR")
    path = Path(given) if given else REPO.parent / "shared" / "data" / "sib200"
    if not (path / "eng_Latn" / "train.tsv").is_file():
        pytest.exit(f"SIB-200 not found at {path}: set XLPEFT_DATA_DIR to the sib200 folder", returncode=2)
    return path


@pytest.fixture(scope="session")
def sib_dir() -> Path:
    return _data_dir()


@pytest.fixture(scope="session")
def tiny_tokenizer(sib_dir) -> PreTrainedTokenizerFast:
    """Byte-level BPE, ~1k tokens, trained on SIB-200 train text of a few languages."""
    lines = []
    for lang in ("eng_Latn", "fra_Latn", "deu_Latn", "zho_Hans", "arb_Arab"):
        lines += (sib_dir / lang / "train.tsv").read_text(encoding="utf-8").splitlines()[1:200]
    lines += [f" {w}" for w in LABEL_WORDS] * 200
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=["<pad>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>")


def tiny_config(family: str, vocab: int, pad_id: int, eos_id: int):
    # initializer_range 0.2 (not 0.02): a random tiny model whose predictions depend on its input
    common = dict(vocab_size=vocab, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id, initializer_range=0.2)
    if family == "xglm":
        return XGLMConfig(d_model=32, num_layers=2, attention_heads=4, ffn_dim=64, max_position_embeddings=256, **common)
    if family == "bloom":
        return BloomConfig(hidden_size=32, n_layer=2, n_head=4, **common)
    llama_like = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, **common)
    if family == "llama":
        return LlamaConfig(**llama_like)
    if family == "qwen2":  # Llama's architecture with q/k/v biases
        return Qwen2Config(**llama_like)
    if family == "mistral":  # Llama's architecture with a sliding window (here covering the whole context)
        return MistralConfig(sliding_window=256, **llama_like)
    if family == "gemma3":  # q/k norms, GeGLU, pre/post norms; sliding layers (window >= any test's width) around
        # a global one, each type with its own RoPE base; head_dim and query_pre_attn_scalar set apart
        return Gemma3TextConfig(**{**llama_like, "num_hidden_layers": 3}, head_dim=16, query_pre_attn_scalar=12,
                                sliding_window=128, layer_types=["sliding_attention", "full_attention",
                                                                 "sliding_attention"])
    raise ValueError(family)


def make_backbone(family: str, tokenizer, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    config = tiny_config(family, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    model = AutoModelForCausalLM.from_config(config).eval()
    return Backbone(name=f"tiny-{family}", model=model, tokenizer=tokenizer)


@pytest.fixture(params=FAMILIES)
def tiny_backbone(request, tiny_tokenizer) -> Backbone:
    return make_backbone(request.param, tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny Llama saved as a local model directory, for CLI tests."""
    path = tmp_path_factory.mktemp("tiny-llama")
    backbone = make_backbone("llama", tiny_tokenizer)
    backbone.model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def special_tokenizer(tiny_tokenizer) -> PreTrainedTokenizerFast:
    """The same BPE plus XLM-R's specials (<s> as CLS, </s> as SEP, <mask>), for encoders and mT5."""
    tok = PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="</s>", pad_token="<pad>")
    tok.add_special_tokens({"cls_token": "<s>", "bos_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"})
    return tok


def make_encoder(tokenizer, family: str = "xlm-roberta", mlm: bool = True, seed: int = 0) -> Backbone:
    """A tiny XLM-R (absolute positions offset by the pad id) or BERT, with or without its masked-LM head."""
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, pad_token_id=tokenizer.pad_token_id, initializer_range=0.2,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config = (XLMRobertaConfig(max_position_embeddings=300, **common) if family == "xlm-roberta"
              else BertConfig(max_position_embeddings=256, **common))
    model = (AutoModelForMaskedLM if mlm else AutoModel).from_config(config).eval()
    return Backbone(name=f"tiny-{family}", model=model, tokenizer=tokenizer)


def make_seq2seq(tokenizer, seed: int = 0) -> Backbone:
    """A tiny mT5 (relative positions, untied head as in mT5)."""
    torch.manual_seed(seed)
    config = MT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.0, initializer_factor=1.0)
    model = AutoModelForSeq2SeqLM.from_config(config).eval()
    return Backbone(name="tiny-mt5", model=model, tokenizer=tokenizer)


def with_template(tiny_tokenizer, first: str) -> PreTrainedTokenizerFast:
    """The tiny BPE whose own encoding starts with ``first``, with ``<bos>`` as its BOS token."""
    backend = tiny_tokenizer.backend_tokenizer.__class__.from_str(tiny_tokenizer.backend_tokenizer.to_str())
    backend.add_special_tokens(["<bos>"])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{first} $A", special_tokens=[(first, backend.token_to_id(first))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="</s>", pad_token="<pad>")
