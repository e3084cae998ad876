"""XQuAD extractive QA (12 languages), the English SQuAD v1.1 source, and a chunker for long contexts.

Source: GitHub ``deepmind/xquad`` (CC-BY-SA-4.0), ``xquad.<lang>.json`` in SQuAD v1.1 format: 48
articles, 240 paragraphs, 1,190 questions per language with one gold answer each, sentence-parallel
(the same question ids and article order in every language). Hub copy: ``google/xquad`` (configs
``xquad.<lang>``, split ``validation``, without article titles); only the local files are read here.

Source training data. XQuAD has no training split: it is 1,190 SQuAD v1.1 *dev* questions, translated.
- Online (the standard protocol, and what published XQuAD numbers use): train on English SQuAD v1.1
  train, 87,599 questions, read by :func:`load_squad` from the hub (``rajpurkar/squad``), and
  evaluate zero-shot on every XQuAD language.
- Offline fallback (no SQuAD here): :func:`article_split` holds out whole articles; train on the
  English questions of the other articles and evaluate every language on the held-out articles only.
  XQuAD is parallel, so a question trained on in English must never be scored in any language, and
  paragraphs of one article share topic and names, hence the split by article. With the default half
  (24 articles) training has about 600 questions: enough to test the pipeline and compare modules
  with each other, not to compare with published XQuAD results.

Long contexts. The reference code (methods.md B) predicted chunks of a long context without the
question. :func:`chunk_examples` windows the context by tokens with overlap, keeps the full question
in every chunk, and records each window's character offsets; :func:`gather_answers` maps answers back
to the whole context and keeps the best-scoring one per question. Answers may be long (the reference
code capped predictions at 20 tokens); ``xlpeft.tasks.base.TextTask.answer_tokens`` sizes generation
from the training data instead.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xlpeft.data.tasks.common import check_choice, find_task_dir, load_hub, require_dir, require_file
from xlpeft.errors import XlpeftError

TASK = "xquad"
ORIGIN = "github.com/deepmind/xquad"
SQUAD_HUB = "rajpurkar/squad"
LANGUAGES: tuple[str, ...] = tuple("ar de el en es hi ro ru th tr vi zh".split())
SOURCE = "en"
FLORES: dict[str, str] = {
    "ar": "arb_Arab", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "hi": "hin_Deva",
    "ro": "ron_Latn", "ru": "rus_Cyrl", "th": "tha_Thai", "tr": "tur_Latn", "vi": "vie_Latn", "zh": "zho_Hans",
}
SPLITS: tuple[str, ...] = ("test",)


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text and the character offset where it starts in the context."""

    text: str
    start: int


@dataclass(frozen=True)
class QaExample:
    """One question with its context; ``article`` is the article's position in the file (parallel)."""

    id: str
    article: int
    context: str
    question: str
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class QaSplit:
    language: str
    name: str
    examples: list[QaExample]

    def __len__(self) -> int:
        return len(self.examples)


def load(language: str, split: str = "test", data_dir: str | os.PathLike | None = None) -> QaSplit:
    """Read XQuAD ``language`` (its only split is ``test``) from the local copy."""
    check_choice("XQuAD language", language, LANGUAGES)
    check_choice("XQuAD split (it has no train or dev split; see load_squad)", split, SPLITS)
    root = require_dir(TASK, find_task_dir(TASK, "xquad.en.json", data_dir), ORIGIN)
    present = [code for code in LANGUAGES if (root / f"xquad.{code}.json").is_file()]
    path = require_file(root / f"xquad.{language}.json", f"XQuAD {language}", present)
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    return QaSplit(language, split, flatten_squad(articles, str(path)))


def flatten_squad(articles: list[dict], source: str) -> list[QaExample]:
    """SQuAD v1.1 JSON ``data`` (articles > paragraphs > qas) as one example per question."""
    examples = []
    for index, article in enumerate(articles):
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = tuple(Answer(a["text"], int(a["answer_start"])) for a in qa["answers"])
                examples.append(_checked(QaExample(qa["id"], index, context, qa["question"], answers), source))
    return examples


def _checked(example: QaExample, source: str) -> QaExample:
    """The example, if every answer is where its offset says: chunking and scoring rely on the offsets."""
    for answer in example.answers:
        if example.context[answer.start:answer.start + len(answer.text)] != answer.text:
            raise XlpeftError(f"answer {answer.text!r} of question {example.id} is not at offset {answer.start} "
                              f"of its context in {source}; the data are corrupt, re-copy them")
    return example


def load_squad(split: str = "train") -> QaSplit:
    """English SQuAD v1.1 (``train``: 87,599 questions; ``validation``: 10,570) from the hub."""
    rows = load_hub(SQUAD_HUB, "plain_text", split, "English SQuAD, the XQuAD source training data")
    article_index: dict[str, int] = {}
    examples = []
    for row in rows:
        index = article_index.setdefault(row["title"], len(article_index))
        answers = tuple(Answer(t, int(s)) for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"]))
        examples.append(_checked(QaExample(row["id"], index, row["context"], row["question"], answers), SQUAD_HUB))
    return QaSplit("en", split, examples)


def article_split(split: QaSplit, eval_articles: int = 24, seed: int = 0) -> tuple[QaSplit, QaSplit]:
    """(train part, evaluation part) of ``split``, holding out ``eval_articles`` whole articles.

    The held-out articles depend only on the article count and ``seed``, so every XQuAD language gets the
    same ones: train on the English train part, evaluate each language on its evaluation part.
    """
    articles = sorted({e.article for e in split.examples})
    if not 0 < eval_articles < len(articles):
        raise XlpeftError(f"eval_articles must be between 1 and {len(articles) - 1}, got {eval_articles}")
    held_out = set(random.Random(seed).sample(articles, eval_articles))
    train = [e for e in split.examples if e.article not in held_out]
    evaluation = [e for e in split.examples if e.article in held_out]
    return (QaSplit(split.language, f"{split.name}-train", train),
            QaSplit(split.language, f"{split.name}-eval", evaluation))


# ---------------------------------------------------------------------------------------------------
# Long contexts: windows that keep the question, and answers gathered back over windows


@dataclass(frozen=True)
class QaChunk:
    """A window of one example's context, always paired with the example's full question.

    ``context == full_context[start:end]``, so an offset ``k`` inside the window is ``start + k`` in the
    full context. ``answer_start`` is the window-relative offset of the first gold answer lying wholly
    inside the window (a training target), None when no gold answer fits.
    """

    example: int  # index into the examples that were chunked
    id: str
    question: str
    context: str
    start: int
    end: int
    answer_start: int | None
    answer_text: str | None


def chunk_examples(examples: Sequence[QaExample], tokenizer, max_tokens: int, overlap: int,
                   reserved: int = 0, fix: str = "raise max_tokens or lower overlap") -> list[QaChunk]:
    """Split each context into token windows that fit ``max_tokens`` together with the full question.

    ``tokenizer`` is a fast Hugging Face tokenizer (it must return offset mappings). A window has at most
    ``max_tokens - len(question tokens) - reserved`` context tokens; ``reserved`` is for the prompt
    template and special tokens. Consecutive windows share ``overlap`` tokens, so an answer cut by one
    window's edge lies whole in the next as long as it is at most ``overlap`` tokens long. A window's
    text re-tokenised inside a prompt can differ from its token count by a token at the edges; keep a
    token of slack in ``reserved``, or put the question first so that truncation only trims context.
    """
    if overlap < 0:
        raise XlpeftError(f"overlap must be 0 or more tokens, got {overlap}")
    chunks = []
    for index, example in enumerate(examples):
        question_tokens = len(tokenizer(example.question, add_special_tokens=False)["input_ids"])
        budget = max_tokens - question_tokens - reserved
        if budget <= overlap:
            raise XlpeftError(
                f"question {example.id} takes {question_tokens} tokens: with max_tokens={max_tokens}, "
                f"reserved={reserved} and overlap={overlap} no context fits; {fix}"
            )
        offsets = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for start, end in _windows(offsets, len(example.context), budget, overlap):
            chunks.append(_chunk(index, example, start, end))
    return chunks


def _windows(offsets: Sequence[tuple[int, int]], length: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of token windows; the first starts at 0 and the last ends at ``length``."""
    windows = []
    first = 0
    while True:
        last = min(first + budget, len(offsets))  # tokens [first, last)
        start = offsets[first][0] if first else 0
        end = offsets[last - 1][1] if last < len(offsets) else length
        windows.append((start, end))
        if last == len(offsets):
            return windows
        first = last - overlap


def _chunk(index: int, example: QaExample, start: int, end: int) -> QaChunk:
    inside = [a for a in example.answers if start <= a.start and a.start + len(a.text) <= end]
    return QaChunk(
        example=index,
        id=example.id,
        question=example.question,
        context=example.context[start:end],
        start=start,
        end=end,
        answer_start=inside[0].start - start if inside else None,
        answer_text=inside[0].text if inside else None,
    )


@dataclass(frozen=True)
class ChunkAnswer:
    """A model's answer for one chunk; ``start`` is window-relative when the model points at a span."""

    chunk: int  # index into the chunk list
    text: str
    score: float  # higher is better, comparable across chunks (e.g. a log-probability)
    start: int | None = None


@dataclass(frozen=True)
class GatheredAnswer:
    """The best answer of a question over its chunks; ``start`` is an offset in the full context."""

    id: str
    text: str
    score: float
    start: int | None


def gather_answers(chunks: Sequence[QaChunk], answers: Iterable[ChunkAnswer]) -> dict[str, GatheredAnswer]:
    """Per question id, the highest-scoring answer over all its chunks (the first one on a tie)."""
    best: dict[str, GatheredAnswer] = {}
    for answer in answers:
        chunk = chunks[answer.chunk]
        if chunk.id in best and answer.score <= best[chunk.id].score:
            continue
        start = None if answer.start is None else chunk.start + answer.start
        best[chunk.id] = GatheredAnswer(chunk.id, answer.text, answer.score, start)
    return best
