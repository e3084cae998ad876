"""Input templates: a task's named fields written into one input text, and the answers the template asks for.

A template is a format string over the task's fields (``{premise}``, ``{hypothesis}``; every task has
``{text}``, its plain input as xlpeft writes it without a template). ``--template paper`` takes the task's
template from the paper that used the task (Vykopal et al.'s code, for the method B tasks), per backbone
family where it differs; tasks whose paper used no template (SIB-200, methods.md A) have none.

The text budget (``max_length``) counts the fields' tokens, each field tokenized alone; the template's own
words come on top, like the prompt and special tokens, so a template never shortens what is read of the
text and never is itself cut. A text over budget has its longest field cut first, token by token, as fast tokenizers
cut pairs (at the character where its last kept token ends), and the whole rendered string is then tokenized at once, as the
reference code tokenized its formatted inputs: the model reads the same ids it would for that string.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from xlpeft.errors import XlpeftError

PAPER = "paper"  # TrainConfig.template: the task's paper template for the backbone family
TEXT_FIELD = "text"  # every task's plain input, as it reads without a template
# where the method B tasks' paper templates come from (the paper itself does not print them)
VYKOPAL_CODE = "Vykopal et al. 2025, the authors' code: github.com/kinit-sk/adapter-prompt-evaluation, src/tasks/tasks.py"


@dataclass(frozen=True)
class Template:
    """An input format and the answers it asks for.

    ``answers``: for classification, the label strings in label order that the template's question asks for
    (the paper's ``Yes``/``Maybe``/``No``), replacing the task's default words; empty: the task's words.
    ``origin``: where the strings come from, for the record.
    """

    text: str
    answers: tuple[str, ...] = ()
    origin: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the template names, in order of first appearance."""
        names = [name for _, name, _, _ in string.Formatter().parse(self.text) if name is not None]
        return tuple(dict.fromkeys(names))

    def check(self, available: tuple[str, ...], task: str) -> None:
        """A clear error for a template the task cannot fill: a malformed format string, an unknown field, or
        a positional or formatted field (only plain ``{name}`` fields are filled)."""
        try:
            parsed = list(string.Formatter().parse(self.text))
        except ValueError as exc:
            raise XlpeftError(f"--template {self.text!r} is not a format string ({exc}); write fields as {{name}} "
                              "and literal braces as {{ and }}") from exc
        named = [(name, spec, conv) for _, name, spec, conv in parsed if name is not None]
        unknown = [name for name, _, _ in named if name not in available]
        if unknown:
            raise XlpeftError(f"--template {self.text!r}: unknown field(s) {', '.join(map(repr, unknown))} "
                              f"for {task}; its fields are {', '.join('{' + f + '}' for f in available)}")
        if any(spec or conv for _, spec, conv in named):
            raise XlpeftError(f"--template {self.text!r}: write fields as plain {{name}}, without format specs or "
                              "conversions")
        if not named:
            raise XlpeftError(f"--template {self.text!r} names no field, so the model would never read the text; "
                              f"use some of {', '.join('{' + f + '}' for f in available)}")

    def render(self, values: dict[str, str]) -> str:
        return self.text.format_map(values)

    def encode(self, tokenizer, fields: dict[str, list[str]], budget: int, prefix: str = "") -> list[Encoded]:
        """Each input's token ids (``prefix`` + the rendered template, tokenized at once, no special tokens),
        its fields first cut to ``budget`` tokens together (see the module docstring)."""
        names = self.fields
        n = len(fields[names[0]])
        counted = {name: tokenizer(fields[name], add_special_tokens=False, return_offsets_mapping=True)
                   for name in names}
        rendered, lengths, cut = [], [], []
        for i in range(n):
            tokens = {name: len(counted[name]["input_ids"][i]) for name in names}
            keep = fit(tokens, budget)
            values = {name: _cut(fields[name][i], counted[name]["offset_mapping"][i], keep[name]) for name in names}
            rendered.append(prefix + self.render(values))
            lengths.append(sum(tokens.values()))
            cut.append(keep != tokens)
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"] if rendered else []
        return [Encoded(*entry) for entry in zip(ids, lengths, cut)]


@dataclass(frozen=True)
class Encoded:
    """One templated input: its token ids, its fields' tokens before cutting, and whether they were cut."""

    ids: list[int]
    field_tokens: int
    truncated: bool


def fit(lengths: dict[str, int], budget: int) -> dict[str, int]:
    """Tokens each field keeps so that together they fit ``budget``: the longest field loses a token at a
    time; at a tie the field that was shorter to begin with (then the earlier one) loses it. For two fields
    this is the fast tokenizers' ``longest_first`` truncation of a pair."""
    keep = dict(lengths)
    order = {name: (-lengths[name], -i) for i, name in enumerate(lengths)}
    over = sum(keep.values()) - budget
    while over > 0:
        longest = max(keep, key=lambda name: (keep[name], *order[name]))
        runner_up = max((v for name, v in keep.items() if name != longest), default=0)
        cut = min(over, keep[longest] - runner_up) or 1
        keep[longest] -= cut
        over -= cut
    return keep


def _cut(value: str, offsets: list[tuple[int, int]], tokens: int) -> str:
    """``value`` up to the character where its ``tokens``-th token ends (all of it when nothing is cut)."""
    if tokens >= len(offsets):
        return value
    return value[: offsets[tokens - 1][1]] if tokens > 0 else ""


def resolve(spec: str, paper: dict[str, Template], family: str) -> Template | None:
    """The template ``--template spec`` means for a backbone ``family``: None for "" (no template: today's
    inputs, bit for bit), the task's paper template for "paper" (None where the paper used none), else
    ``spec`` itself as a format string."""
    if not spec:
        return None
    if spec == PAPER:
        return paper.get(family, paper.get("default"))
    return Template(spec)
