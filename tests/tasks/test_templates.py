"""Input templates (tasks/templates.py): which template a task gives, how bad ones fail, how fields are cut, and
how generated NLI answers are read back (objectives/label_strings.parse_answers)."""

import pytest

from xlpeft.config import TrainConfig
from xlpeft.errors import XlpeftError
from xlpeft.objectives.label_strings import parse_answers
from xlpeft.tasks import Examples, get_task
from xlpeft.tasks.templates import Template, fit

# the authors' code of Vykopal et al. (kinit-sk/adapter-prompt-evaluation, src/tasks/tasks.py), copied by hand
THEIR_XNLI = '{premise} \n\nQuestion: Does this imply that "{hypothesis}"? Yes, no, or maybe?'


def resolve(task: str, template: str, source: str = "") -> None:
    TrainConfig(task=task, source=source, template=template).resolve(get_task(task))


def test_bad_templates_fail_at_configuration_naming_the_field_and_the_tasks_fields():
    with pytest.raises(XlpeftError, match=r"unknown field\(s\) 'hyp' for americasnli; its fields are "
                                          r"\{text\}, \{premise\}, \{hypothesis\}"):
        resolve("americasnli", "{premise} Question: {hyp}", source="quy")
    with pytest.raises(XlpeftError, match=r"'premise' for sib200; its fields are \{text\}$"):
        resolve("sib200", "{premise}")
    for bad, why in [("{premise", "not a format string"), ("{0} {premise}", "unknown field"),
                     ("{premise!r}", "without format specs or conversions"), ("{premise:>9}", "without format specs"),
                     ("no field at all", "names no field")]:
        with pytest.raises(XlpeftError, match=why):
            resolve("americasnli", bad, source="quy")
    resolve("americasnli", "{premise} Question: {hypothesis} {{literal braces}}", source="quy")
    resolve("sib200", "Topic of: {text}")


def test_paper_templates_are_the_authors_strings_with_yes_maybe_no_on_mt5():
    for name in ("americasnli", "xnli"):
        task = get_task(name)
        on_mt0, on_llama = task.template("paper", "mt5"), task.template("paper", "llama")
        assert on_mt0.text == on_llama.text == THEIR_XNLI
        assert on_mt0.answers == ("Yes", "Maybe", "No") and task.labels == ("entailment", "neutral", "contradiction")
        assert on_llama.answers == ()  # verbalizers keep the task's one-token words
    assert get_task("xquad").template("paper", "mt5").text == "question: {question} context: {context}"
    assert get_task("wikiann").template("paper", "mt5").text == get_task("masakhaner").template("paper", "x").text \
        == "tag: {text}"
    for name in ("sib200", "nusax"):  # their paper (methods.md A) used no template
        assert get_task(name).template("paper", "llama") is None
    assert get_task("sib200").template("", "mt5") is None


def test_examples_keep_their_fields_aligned_through_subsets():
    examples = Examples("x", "test", [0, 1, 2], ["a\nA", "b\nB", "c\nC"], labels=[0, 1, 2],
                        fields={"premise": ["a", "b", "c"], "hypothesis": ["A", "B", "C"]})
    picked = examples.subset([2, 0])
    assert picked.named_fields() == {"text": ["c\nC", "a\nA"], "premise": ["c", "a"], "hypothesis": ["C", "A"]}
    assert Examples("x", "test", [0], ["t"]).named_fields() == {"text": ["t"]}


@pytest.mark.parametrize("budget", [1, 2, 5, 6, 9, 12, 30])
def test_fields_are_cut_longest_first_as_the_tokenizer_cuts_pairs(tiny_tokenizer, budget):
    """``fit`` against the tokenizer's own ``longest_first`` truncation of (premise, hypothesis) pairs."""
    premise = "The delegation arrived in the capital on Monday after a long journey by train"
    for hypothesis in ("They came by train", "Nobody travelled anywhere at all during the whole of last year",
                       "Monday"):
        alone = [len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (premise, hypothesis)]
        pair = tiny_tokenizer(premise, hypothesis, add_special_tokens=False, truncation="longest_first",
                              max_length=budget, return_token_type_ids=True)
        kept = [pair["token_type_ids"].count(0), pair["token_type_ids"].count(1)]
        if sum(alone) <= budget:
            kept = alone
        assert list(fit({"premise": alone[0], "hypothesis": alone[1]}, budget).values()) == kept


def test_a_cut_field_ends_where_its_last_kept_token_ends(tiny_tokenizer):
    template = Template("P: {premise}\nH: {hypothesis}")
    premise, hypothesis = "The delegation arrived in the capital on Monday", "They came"
    premise_ids, hypothesis_ids = (tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in (premise, hypothesis))
    budget = len(hypothesis_ids) + 3  # both are cut (fit, checked against the tokenizer above)
    keep = fit({"premise": len(premise_ids), "hypothesis": len(hypothesis_ids)}, budget)
    assert keep["premise"] < len(premise_ids) and sum(keep.values()) == budget
    [encoded] = template.encode(tiny_tokenizer, {"premise": [premise], "hypothesis": [hypothesis]}, budget)
    kept = [tiny_tokenizer.decode(ids[: keep[name]])
            for name, ids in (("premise", premise_ids), ("hypothesis", hypothesis_ids))]
    assert encoded.ids == tiny_tokenizer(f"P: {kept[0]}\nH: {kept[1]}", add_special_tokens=False)["input_ids"]
    assert encoded.truncated and encoded.field_tokens == len(premise_ids) + len(hypothesis_ids)
    [whole] = template.encode(tiny_tokenizer, {"premise": [premise], "hypothesis": [hypothesis]}, 100)
    assert not whole.truncated and whole.ids == tiny_tokenizer(f"P: {premise}\nH: {hypothesis}",
                                                               add_special_tokens=False)["input_ids"]


def test_generated_nli_answers_are_read_by_their_first_word_and_unknown_ones_are_neutral():
    answers = ["Yes", " maybe ", "NO", "No way", "yes, surely", "Yes.", "", "perhaps", "Maybe yes", "Nope"]
    parsed = parse_answers(answers, ("Yes", "Maybe", "No"), fallback=1)
    assert parsed.labels == [0, 1, 2, 2, 1, 1, 1, 1, 1, 1]
    # "yes," "Yes." "" "perhaps" "Nope" name no label string: the neutral fallback, counted
    assert parsed.n_unparsed == 5
    multi = parse_answers(["not at all", "not sure", "Not"], ("sure", "not at all"), fallback=0)
    assert multi.labels == [1, 0, 0] and multi.n_unparsed == 2


def test_old_configs_have_no_template_and_keep_their_run_ids():
    old = TrainConfig.from_dict({"model": "smollm2-135m", "seed": 3})
    assert old.template == "" and "template" not in old.identity()
    assert TrainConfig(template="paper").identity()["template"] == "paper"
