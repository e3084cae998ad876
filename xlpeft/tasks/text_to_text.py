"""Text-to-text tasks: MasakhaNER as "PER: X$$LOC: Y" strings, XQuAD answers generated from question + context.

Both train by teacher forcing on the target string and predict by greedy generation
(``xlpeft.heads.generation``), on decoder-only and encoder-decoder backbones alike.

- MasakhaNER 2.0: English CoNLL-2003 train/dev as the source, the 20 African languages' test sets as
  targets; PER/ORG/LOC only on both sides (``xlpeft.data.tasks.masakhaner`` explains why DATE/MISC go);
  entity-level F1 over (type, text) pairs (``text_entity_scores``).
- XQuAD: there is no training split. ``--source-data hub`` trains on English SQuAD v1.1 (train; its
  validation set validates) and evaluates all 1,190 questions per language, the published protocol.
  Offline (``local``, the default) half of XQuAD's 48 articles are held out for evaluation in every
  language (article_split, fixed seed 0), English questions of 20 of the others train and of 4 validate:
  about 600 training questions, enough to compare modules, not to compare with published numbers.
  A context longer than the text budget is split into windows that all keep the question, put first
  ("question\\ncontext"), and the highest-scoring answer over a question's windows is its prediction
  (``chunk_examples`` / ``gather_answers``); training uses the windows that contain the answer.

Templates (``--template``): NER names the sentence ``{text}``; XQuAD names ``{question}`` and ``{context}`` (the
window). ``--template paper`` is Vykopal et al.'s: ``tag: {text}`` (their WikiANN input) and ``question: {question}
context: {context}``; their NER targets are the "PER: X$$LOC: Y" strings these tasks already generate.
"""

from __future__ import annotations

from typing import get_args

from xlpeft.data.task_names import SourceData
from xlpeft.data.tasks import masakhaner, xquad
from xlpeft.tasks.base import Examples, TextTask
from xlpeft.tasks.templates import TEXT_FIELD, VYKOPAL_CODE, Template

TAGS = ("O", *(f"{p}-{t}" for t in masakhaner.SHARED_TYPES for p in "BI"))  # the tagging head's classes
QA_HELD_OUT_ARTICLES = 24  # of XQuAD's 48, evaluated when training offline on the others
QA_VALIDATION_ARTICLES = 4  # of the remaining 24, validating the offline source data


class MasakhanerTask(TextTask):
    name = "masakhaner"
    default_source = masakhaner.SOURCE
    default_targets = masakhaner.LANGUAGES
    flores = masakhaner.FLORES
    metric_columns = ("f1", "precision", "recall", "n")
    tags = TAGS  # encoders tag tokens instead of generating (heads/tagging.py)
    paper_templates = {"default": Template("tag: {text}", origin=VYKOPAL_CODE)}  # their WikiANN input

    @property
    def languages(self):
        return masakhaner.LANGUAGES

    def source_splits(self, source, source_data):
        return self.load(source, "train"), self.load(source, "dev")

    def load(self, language, split, source_data="local"):
        return ner_examples(language, split, masakhaner.load(language, split, self.data_dir).sentences)

    def tag_ids(self, examples: Examples) -> list[list[int]]:
        """Each sentence's IOB2 tags as ids into :data:`TAGS` (the types outside it are already ``O``)."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        return [[index[tag] for tag in sentence.tags] for sentence in examples.items]

    def score(self, examples, inputs, predictions):
        """Generated "PER: X$$LOC: Y" strings, scored as (type, text) pairs; or, from a tagging encoder, tag
        sequences scored by seqeval-style span F1 (the two agree when no pair repeats within a sentence)."""
        from xlpeft.metrics.entities import entity_scores, text_entity_scores

        if predictions and isinstance(predictions[0], list):
            scores = entity_scores([s.tags for s in examples.items], predictions)
        else:
            gold = [masakhaner.parse_target(t) for t in examples.targets]
            scores = text_entity_scores(gold, [masakhaner.parse_target(p.text) for p in predictions])
        return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"], "n": len(examples)}


def ner_examples(language: str, split: str, sentences: list[masakhaner.NerSentence]) -> Examples:
    """Sentences as text-to-text examples (tokens joined by spaces, "PER: X$$LOC: Y" targets), the sentences
    themselves kept for tagging."""
    return Examples(language, split, list(range(len(sentences))), [" ".join(s.tokens) for s in sentences],
                    targets=[masakhaner.render_target(s) for s in sentences], items=sentences)


class XquadTask(TextTask):
    name = "xquad"
    default_source = xquad.SOURCE
    default_targets = xquad.LANGUAGES
    flores = xquad.FLORES
    metric_columns = ("f1", "exact_match", "n")
    source_data_choices = get_args(SourceData)
    overlap = 32  # tokens shared by consecutive windows: answers up to this long are never cut
    fields = (TEXT_FIELD, "question", "context")  # the context: one window of it
    paper_templates = {"default": Template("question: {question} context: {context}", origin=VYKOPAL_CODE)}

    @property
    def languages(self):
        return xquad.LANGUAGES

    def missing_data(self, language, role, source_data="local"):
        """Online, every run trains on English SQuAD v1.1 (XQuAD has no training split): another source language
        would be a label on English training data."""
        if role == "source" and source_data == "hub" and language != xquad.SOURCE:
            return f"{self.name}'s hub training data are English SQuAD v1.1 only (XQuAD has no training split)"
        return super().missing_data(language, role, source_data)

    def source_splits(self, source, source_data):
        if source_data == "hub":
            return self._examples(xquad.load_squad("train")), self._examples(xquad.load_squad("validation"))
        train, _ = xquad.article_split(xquad.load(source, "test", self.data_dir), QA_HELD_OUT_ARTICLES)
        train, validation = xquad.article_split(train, QA_VALIDATION_ARTICLES, seed=1)
        return self._examples(train), self._examples(validation)

    def load(self, language, split, source_data="local"):
        data = xquad.load(language, split, self.data_dir)
        if source_data == "local":
            data = xquad.article_split(data, QA_HELD_OUT_ARTICLES)[1]
        return self._examples(data)

    @staticmethod
    def _examples(data: xquad.QaSplit) -> Examples:
        items = data.examples
        return Examples(data.language, data.name, [e.id for e in items], [e.question for e in items],
                        targets=[e.answers[0].text for e in items], items=items)

    def model_inputs(self, examples, tokenizer, text_budget, training):
        """One input per context window, "question\\nwindow"; training keeps the windows holding an answer."""
        newline = len(tokenizer("\n", add_special_tokens=False)["input_ids"])
        chunks = xquad.chunk_examples(examples.items, tokenizer, text_budget, min(self.overlap, text_budget // 4),
                                      reserved=newline + 2, fix=f"raise --max-length ({examples.language})")
        if training:
            chunks = [c for c in chunks if c.answer_text is not None]
        return Examples(examples.language, examples.split, [c.id for c in chunks],
                        [f"{c.question}\n{c.context}" for c in chunks],
                        targets=[c.answer_text or examples.items[c.example].answers[0].text for c in chunks],
                        groups=[c.id for c in chunks], items=chunks,
                        fields={"question": [c.question for c in chunks], "context": [c.context for c in chunks]})

    def score(self, examples, inputs, predictions):
        from xlpeft.metrics.squad import squad_scores

        gathered = xquad.gather_answers(inputs.items, [xquad.ChunkAnswer(i, p.text, p.score)
                                                      for i, p in enumerate(predictions)])
        answers = {e.id: [a.text for a in e.answers] for e in examples.items}
        scores = squad_scores(answers, {qid: g.text for qid, g in gathered.items()})
        return {"f1": scores["f1"], "exact_match": scores["exact_match"], "n": scores["n"]}
