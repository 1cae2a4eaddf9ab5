"""Rendering the prompt templates (``prompts/*.j2``, installed as ``llm_extract.prompts``).

The letter is always a template *variable*, never template source: a letter containing
``{{ }}`` or ``{% %}`` renders as those characters. It is fenced between markers derived from
the letter's hash, and any marker-like text inside the letter is defused, so a letter cannot
close the fence early and speak as the instructions.

Everything that is the same for every item and letter — the instructions and the few-shot
examples — is in the system prompt, so the server evaluates it once and reuses its KV state;
the user prompt carries only the letter's data.

**Few-shot examples** (``prompts/examples.json``) are real items of gold letters: the heading and
the rationale's sentences as the item prompt shows them, and the answer. Like google/langextract's
prompt validation, each example is checked against its own text when it is loaded (the decision
word is in the heading and means the decision, the sentence numbers point into the rationale and
the conclusion states the decision); ``tests/test_llm.py`` checks that the text is verbatim in the
letter it names and that the answer agrees with that letter's gold labels. Each also carries the
letter's header, credentials and patient sentence with the case, reviewer and patient answer (as
the whole-letter views ask for them: dates as written), so a whole-letter example shows a whole
answer; every value of it must be in that text.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from pydantic import BaseModel

from .. import rules
from ..normalize import collapse
from ..prompts import PROMPT_VERSION
from .views import DATE_FIELDS, MAX_QUOTES, PER_ITEM_VIEWS, SUMMARY_MAX_CHARS, decision_of_word, written_date

TEMPLATES = ("system.j2", "letter.j2", "item.j2")
EXAMPLES = "examples.json"
_FENCE_LIKE = re.compile(r"<<<|>>>")


class ExampleError(ValueError):
    """A few-shot example that does not hold in its own text (a packaging bug, caught at load)."""


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    files = importlib.resources.files("llm_extract.prompts")
    sources = {name: files.joinpath(name).read_text(encoding="utf-8") for name in TEMPLATES}
    return jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=1)
def template_hash() -> str:
    """Hash of the template sources and examples: part of the cache key, with PROMPT_VERSION."""
    files = importlib.resources.files("llm_extract.prompts")
    digest = hashlib.sha256()
    for name in (*TEMPLATES, EXAMPLES):
        digest.update(name.encode() + b"\0" + files.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def prompt_id() -> str:
    return f"{PROMPT_VERSION}+{template_hash()}"


def _fences(sha256: str) -> dict[str, str]:
    return _fence_pair(f"LETTER-{sha256[:12]}")


def _fence_pair(tag: str) -> dict[str, str]:
    return {"fence_open": f"<<<BEGIN {tag}>>>", "fence_close": f"<<<END {tag}>>>"}


def _defuse(text: str) -> str:
    """Letter text with fence-like markers broken up; the model still sees the words."""
    return _FENCE_LIKE.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)


# --------------------------------------------------------------------------- few-shot examples


@dataclass(frozen=True)
class Example:
    letter: str  # path under evals/letters/, for the test that checks the text is verbatim there
    sha256: str
    item: str
    header: tuple[str, ...]  # the header block, the credentials and the patient's sentence, as written
    preamble: str  # what precedes the heading in the letter (a partial authorisation's history)
    heading: str  # the item's name and its decision, as written
    rationale: tuple[str, ...]
    answer: dict[str, Any]
    people: dict[str, dict[str, Any]]  # the whole-letter views' case, reviewer and patient answer

    def value(self, field: str) -> Any:
        """The answer for one view field (``conclusion`` is the numbered sentence, copied)."""
        if field == "conclusion":
            return self.rationale[self.answer["conclusion_sentence"] - 1]
        if field == "item":
            return self.item
        return self.answer.get(field, ...)


def example_problems(example: Example) -> list[str]:
    """How an example fails to hold in its own text (empty when it is sound)."""
    answer, where = example.answer, f"example {example.item!r}"
    problems = []
    if not example.heading.startswith(example.item):
        problems.append(f"{where}: the heading does not start with the item")
    word = answer.get("decision_word", "")
    if not word or word not in example.heading:
        problems.append(f"{where}: decision_word {word!r} is not in the heading")
    if decision_of_word(word) != answer.get("decision"):
        problems.append(f"{where}: decision_word {word!r} does not mean {answer.get('decision')!r}")
    for field in ("conclusion_sentence", "reason_sentence"):
        if not 1 <= answer.get(field, 0) <= len(example.rationale):
            problems.append(f"{where}: {field} is not a sentence number")
    if not problems and rules.stance(example.value("conclusion")) != answer["decision"]:
        problems.append(f"{where}: the conclusion sentence does not state {answer['decision']!r}")
    problems += _people_problems(example, where)
    for part in (example.item, *example.header, example.preamble, example.heading, *example.rationale):
        if collapse(part) != part or _FENCE_LIKE.search(part):
            problems.append(f"{where}: text must be whitespace-collapsed and free of fence markers")
    return problems


def _people_problems(example: Example, where: str) -> list[str]:
    """Every case, reviewer and patient value of the example must be written in its header text."""
    header = " ".join(example.header)
    problems = []
    for group, values in example.people.items():
        for name, value in values.items():
            for one in value if isinstance(value, list) else [value]:
                if one is None:
                    continue
                if str(one) not in header:
                    problems.append(f"{where}: {group}.{name} {one!r} is not in the example's header text")
                if name in DATE_FIELDS and written_date(one) is None:
                    problems.append(f"{where}: {group}.{name} {one!r} is not a date as written")
    return problems


@lru_cache(maxsize=1)
def examples() -> tuple[Example, ...]:
    """The few-shot examples, validated against their own text; an unsound one is refused."""
    raw = json.loads(importlib.resources.files("llm_extract.prompts").joinpath(EXAMPLES).read_text("utf-8"))
    loaded = tuple(
        Example(
            letter=e["letter"],
            sha256=e["sha256"],
            item=e["item"],
            header=tuple(e["header"]),
            preamble=e["preamble"],
            heading=e["heading"],
            rationale=tuple(e["rationale"]),
            answer=e["answer"],
            people=e["people"],
        )
        for e in raw
    )
    problems = [p for example in loaded for p in example_problems(example)]
    if problems:
        raise ExampleError("few-shot examples do not hold in their own text: " + "; ".join(problems))
    return loaded


def _item_fields(view: type[BaseModel]) -> list[str]:
    """The fields one item's answer has in ``view`` (a letter view: its items' fields)."""
    if view in PER_ITEM_VIEWS:
        return list(view.model_fields)
    item_view = view.model_fields["items"].annotation.__args__[0]  # type: ignore[union-attr]
    return list(item_view.model_fields)


def _rendered_examples(view: type[BaseModel]) -> tuple[list[dict[str, str]], str]:
    fields = _item_fields(view)
    per_item = view in PER_ITEM_VIEWS
    rendered, omitted = [], []
    for n, example in enumerate(examples(), 1):
        answer = {}
        for field in fields:
            value = example.value(field)
            if value is ...:
                omitted.append(field)
            else:
                answer[field] = value
        if per_item:
            prompt = _item_text(example.heading, example.rationale, True, None, _fence_pair(f"EXAMPLE-{n}"))
        else:
            heading = f"{example.preamble} {example.heading}".strip()
            body = "\n".join((*example.header, heading, f"Decision rationale: {' '.join(example.rationale)}"))
            prompt = _environment().get_template("letter.j2").render(letter=body, **_fence_pair(f"EXAMPLE-{n}"))
            # the whole answer, in the view's field order: case, reviewer, patient, then the items
            answer = {f: [answer] if f == "items" else example.people[f] for f in view.model_fields}
        rendered.append({"prompt": prompt, "answer": json.dumps(answer, ensure_ascii=False)})
    return rendered, ", ".join(dict.fromkeys(omitted))


# --------------------------------------------------------------------------- prompts


@lru_cache(maxsize=16)
def system_prompt(view: type[BaseModel]) -> str:
    """Instructions and examples for one view: the same for every item and letter it is used on,
    so llama.cpp evaluates this prefix once and reuses its KV state."""
    fields = set(_item_fields(view))
    shown, omitted = _rendered_examples(view)
    return (
        _environment()
        .get_template("system.j2")
        .render(
            kind="item" if view in PER_ITEM_VIEWS else "letter",
            citations="claims_administrator_guideline" in fields,
            summary="rationale_summary" in fields,
            quotes="quotes" in fields,
            summary_max_chars=SUMMARY_MAX_CHARS,
            max_quotes=MAX_QUOTES,
            examples=shown,
            omitted=omitted,
        )
    )


def letter_prompt(text: str, sha256: str) -> str:
    return _environment().get_template("letter.j2").render(letter=_defuse(text), **_fences(sha256))


def item_prompt(
    heading: str,
    sentences: list[str],
    sha256: str,
    *,
    worded: bool = True,
    citations: tuple[str, str] | None = None,
) -> str:
    """One item: the rationale's sentences numbered from 1, then its heading as written (the item's
    name and its decision word, nearest the answer, where a small model copies it best), and the
    claims administrator's and the reviewer's guideline text when the model fills the citations.
    ``worded=False``: the layout's headings state no decision word, and the prompt says so."""
    return _item_text(heading, sentences, worded, citations, _fences(sha256))


def _item_text(
    heading: str, sentences: Any, worded: bool, citations: tuple[str, str] | None, fences: dict[str, str]
) -> str:
    ca, mx = citations or ("", "")
    return (
        _environment()
        .get_template("item.j2")
        .render(
            heading=_defuse(heading),
            sentences=[_defuse(s) for s in sentences],
            worded=worded,
            citations=citations is not None,
            ca=_defuse(ca),
            mx=_defuse(mx),
            **fences,
        )
    )
