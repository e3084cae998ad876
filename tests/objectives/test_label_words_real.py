"""Every task's default label words against real tokenizers, and the word-start rule on stand-ins.

The shared tiny tokenizer has the label words fed into its training, so it cannot tell whether the
defaults really are single tokens. Here: the real tokenizers of the embedded models, when a copy is
cached on this machine (else skipped, saying so), and two SentencePiece-style Unigram stand-ins trained
in seconds on SIB-200 sentences only (no label words fed in), one with and one without a dummy prefix,
which check the rule itself: the verbalizer's form of each word tokenizes exactly as the word does after
other text.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from xlpeft.backbones.embedded import DEQUANTIZED_DIR, EMBEDDED_MODELS, _in_hub_cache
from xlpeft.files import cache_dir
from xlpeft.objectives.verbalizer import Verbalizer, following_text, label_words
from xlpeft.tasks import get_task

TASKS = ("sib200", "nusax", "americasnli")
CONTEXT = "The minister spoke about the results."


def default_words(task_name: str) -> list[tuple[str, str]]:
    """(model family, bare word) for every family-specific and default word of the task."""
    task = get_task(task_name)
    return [(family, w) for family, words in task.label_words_by_family.items() for w in words]


def cached_tokenizer(name: str):
    """The embedded model's real tokenizer from the hub cache or xlpeft's offline copy, without any network."""
    spec = EMBEDDED_MODELS[name]
    offline = cache_dir() / name / DEQUANTIZED_DIR
    if _in_hub_cache(spec.hub_id):
        return AutoTokenizer.from_pretrained(spec.hub_id, local_files_only=True)
    if (offline / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(offline, local_files_only=True)
    pytest.skip(f"{name} is not cached here (hub cache nor {offline}): load it once, e.g. "
                f"`xlpeft train --model {name} ...`, to run this test")


@pytest.mark.parametrize("name", sorted(EMBEDDED_MODELS))
def test_every_default_label_word_is_one_token_in_the_real_tokenizer(name):
    tokenizer = cached_tokenizer(name)
    family_of = {"smollm2-135m": "llama", "gemma-3-270m": "gemma3_text"}
    for task_name in TASKS:
        task = get_task(task_name)
        for family in {*task.label_words_by_family, family_of[name]} - {"default"}:
            words = label_words(task, family, tokenizer)
            verbalizer = Verbalizer.build(tokenizer, words)  # raises unless each is one distinct token
            pieces = tokenizer.convert_ids_to_tokens(list(verbalizer.token_ids))
            assert all(p[0] in "\u2581\u0120" for p in pieces), f"{name}/{task_name}: not word-start tokens {pieces}"


def _unigram_stand_in(sib_dir, prepend_scheme: str) -> PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram trained on SIB-200 sentences (text column only, no label words added).

    ``prepend_scheme="never"`` is Gemma's behaviour (a bare word gets no word-start marker), ``"always"``
    XGLM's dummy prefix.
    """
    rows = (sib_dir / "eng_Latn" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    lines = [row.split("\t")[2] for row in rows]
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=prepend_scheme)
    backend.decoder = decoders.Metaspace(prepend_scheme=prepend_scheme)
    trainer = trainers.UnigramTrainer(vocab_size=2000, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    backend.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module", params=["never", "always"])
def unigram_stand_in(request, sib_dir):
    return request.param, _unigram_stand_in(sib_dir, request.param)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("task_name", TASKS)
def test_label_words_tokenize_as_they_do_after_text(unigram_stand_in, tiny_tokenizer, task_name):
    _, stand_in = unigram_stand_in
    for tokenizer in (stand_in, tiny_tokenizer):
        for family, word in default_words(task_name):
            form = following_text(tokenizer, word)
            assert _ids(tokenizer, f"{CONTEXT} {word}") == _ids(tokenizer, CONTEXT) + _ids(tokenizer, form), (
                f"{word!r} written {form!r} does not tokenize as it does after text"
            )


def test_without_a_dummy_prefix_the_space_makes_the_word_start_token(unigram_stand_in):
    """Gemma's case: the bare word is a mid-word form, so the leading space is what makes it the right token."""
    scheme, tokenizer = unigram_stand_in
    assert following_text(tokenizer, "science") == ("science" if scheme == "always" else " science")
    if scheme == "never":
        assert _ids(tokenizer, "science") != _ids(tokenizer, " science")
        assert tokenizer.convert_ids_to_tokens(_ids(tokenizer, " science")) == ["\u2581science"]
