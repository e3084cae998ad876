"""Input templates reach the model: the ids a run's layout feeds the embedding module are the rendered template
tokenized at once (its words in order, its fields cut to the text budget), and no template leaves them as they were."""

import pytest
import torch
from conftest import make_backbone, make_encoder, make_seq2seq

from xlpeft.data.tasks.xquad import Answer, QaExample
from xlpeft.errors import XlpeftError
from xlpeft.heads.build import build_head
from xlpeft.tasks import Examples, get_task

NLI = "Premise: {premise}\nQuestion: {hypothesis}\nAnswer:"
WORDS = ["Premise", ":", "\n", "Question", ":", "\n", "Answer", ":"]  # the template's own words, in order
PAIRS = [("The delegation arrived in the capital on Monday after a long journey", "They came by train"),
         ("Nobody knows", "Somebody knows it")]
THEIR_XNLI = '{} \n\nQuestion: Does this imply that "{}"? Yes, no, or maybe?'  # Vykopal et al.'s code, by hand


def nli_inputs() -> tuple[list[str], dict[str, list[str]]]:
    """The texts as xlpeft writes NLI pairs (two lines) and the pairs' fields."""
    return [f"{p}\n{h}" for p, h in PAIRS], {"premise": [p for p, _ in PAIRS], "hypothesis": [h for _, h in PAIRS]}


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def in_order(needles: list[list[int]], row: list[int]) -> bool:
    """Every needle occurs in ``row`` as a contiguous run, each after the previous one."""
    start = 0
    for needle in needles:
        found = next((i for i in range(start, len(row) - len(needle) + 1) if row[i : i + len(needle)] == needle), None)
        if found is None:
            return False
        start = found + len(needle)
    return True


def embedded(backbone, run) -> list[list[int]]:
    """Every id sequence the model's embedding module embeds while ``run()`` runs."""
    seen = []
    hook = backbone.model.get_input_embeddings().register_forward_hook(lambda m, a, o: seen.append(a[0].tolist()))
    try:
        run()
    finally:
        hook.remove()
    return seen


@pytest.fixture(params=["llama", "mt5"])
def backbone(request, tiny_tokenizer, special_tokenizer):
    return make_seq2seq(special_tokenizer) if request.param == "mt5" else make_backbone("llama", tiny_tokenizer)


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_a_template_reaches_the_models_input_ids(backbone, placement):
    classifier = build_head(backbone, placement, 3, 64, task=get_task("americasnli"), template=NLI)
    texts, fields = nli_inputs()
    ids = classifier.tokenize(texts, fields)
    tokenizer = backbone.tokenizer
    assert ids == [ids_of(tokenizer, f"Premise: {p}\nQuestion: {h}\nAnswer:") for p, h in PAIRS]
    for row, (premise, hypothesis) in zip(ids, PAIRS):
        words = [ids_of(tokenizer, w) for w in WORDS]
        assert in_order([*words[:2], ids_of(tokenizer, " " + premise), *words[2:5], ids_of(tokenizer, " " + hypothesis),
                         *words[5:]], row)
    prompt = torch.randn(3, backbone.hidden_size)
    seen = embedded(backbone, lambda: classifier.outputs(ids, prompt))
    assert all(row in seen for row in ids)  # what the embedding module was given, token for token


def test_no_template_leaves_the_inputs_as_they_were(backbone):
    """``--template ''`` (and ``paper`` where the paper used none) is the old tokenization, fields or not."""
    texts, fields = nli_inputs()
    tokenizer = backbone.tokenizer
    nli = build_head(backbone, "prefix", 3, 8, task=get_task("americasnli"))
    old = [ids_of(tokenizer, t)[:8] for t in texts]
    assert nli.layout.template is None and nli.tokenize(texts, fields) == nli.tokenize(texts) == old
    assert nli.layout.truncation(texts, fields) == (sum(len(ids_of(tokenizer, t)) > 8 for t in texts), 0)
    for template in ("", "paper"):
        sib = build_head(backbone, "prefix", 3, 8, task=get_task("sib200"), template=template)
        assert sib.layout.template is None and sib.tokenize(texts) == old


def test_the_budget_counts_the_fields_and_the_template_comes_on_top(backbone):
    texts, fields = nli_inputs()
    tokenizer = backbone.tokenizer
    lengths = [len(ids_of(tokenizer, p)) + len(ids_of(tokenizer, h)) for p, h in PAIRS]
    budget = min(lengths) + 1  # the first pair is cut, the second is not
    assert lengths[0] > budget >= lengths[1]
    classifier = build_head(backbone, "prefix", 3, budget, task=get_task("americasnli"), template=NLI)
    assert classifier.layout.text_budget == budget
    assert classifier.layout.truncation(texts, fields) == (1, 0)
    ids = classifier.tokenize(texts, fields)
    words = [ids_of(tokenizer, w) for w in WORDS]
    assert all(in_order(words, row) for row in ids)  # the template itself is never cut
    assert ids[1] == ids_of(tokenizer, NLI.format(premise=PAIRS[1][0], hypothesis=PAIRS[1][1]))
    assert len(ids[0]) <= budget + classifier.layout.template_tokens + 2  # boundary merges aside


def test_the_paper_template_on_mt5_asks_for_yes_maybe_no(tiny_tokenizer, special_tokenizer):
    texts, fields = nli_inputs()
    mt5 = build_head(make_seq2seq(special_tokenizer), "prefix", 3, 64, task=get_task("xnli"), template="paper")
    assert mt5.strings.words == ("Yes", "Maybe", "No")
    assert mt5.tokenize(texts, fields) == [ids_of(special_tokenizer, THEIR_XNLI.format(p, h)) for p, h in PAIRS]
    llama = build_head(make_backbone("llama", tiny_tokenizer), "suffix", 3, 64, task=get_task("xnli"), template="paper")
    assert llama.verbalizer.words == (" yes", " maybe", " no")  # one-token words where a verbalizer reads one token


def test_text_to_text_inputs_are_templated_after_their_windows(tiny_tokenizer):
    task = get_task("xquad")
    context = " ".join(f"word{i}" for i in range(60)) + " The answer is Paris."
    example = QaExample("q1", 0, context, "Where?", (Answer("Paris", context.index("Paris")),))
    examples = Examples("en", "test", ["q1"], ["Where?"], targets=["Paris"], items=[example])
    generator = build_head(make_backbone("llama", tiny_tokenizer), "prefix", 3, 48, task=task, template="paper")
    windows = task.model_inputs(examples, tiny_tokenizer, generator.layout.text_budget, training=False)
    assert len(windows) > 1
    ids = generator.tokenize(windows.texts, windows.fields)
    assert ids == [ids_of(tiny_tokenizer, f"question: Where? context: {c.context}") for c in windows.items]
    assert generator.layout.truncation(windows.texts, windows.fields) == (0, 0)  # windows fit the budget


def test_a_tagging_encoder_refuses_a_template(special_tokenizer):
    with pytest.raises(XlpeftError, match="tags words"):
        build_head(make_encoder(special_tokenizer), "prefix", 3, 64, task=get_task("masakhaner"), template="paper")
    build_head(make_encoder(special_tokenizer), "prefix", 3, 64, task=get_task("masakhaner"), template="")
