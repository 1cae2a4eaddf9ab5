"""Model-facing schemas, generated from the output models, and the validators that verify them.

The model fills a *view* of :mod:`llm_extract.schema`: the same fields, descriptions and types,
minus what only the verifier or the parser may set (offsets, pages, match tiers, scores, derived
fields). The views are built with ``pydantic.create_model`` from the output models' own
``FieldInfo``, so the two can never drift apart; the field descriptions are the prompt.

**Evidence before judgement.** A small model copies well and maps badly: asked for the ``decision``
enum first, Qwen2.5-Coder-1.5B answered "overturned" under an "Upheld" heading on most items; asked
first to copy the word after the item's name, then to normalise it, it got them right
(``benchmarks/probe_views.py``). So every view asks for the evidence first — the heading's
decision word copied exactly, and the conclusion (a sentence number into the rationale's numbered
sentences, or a short verbatim copy in whole-letter views) — and the normalised value after.
The decision stays the model's own answer; the copied evidence is verified like a quote, and a
disagreement with the letter or the layout parser is a re-ask reason, then a flag.

Each view carries a validator that runs when instructor hands it a validation context (the letter,
its layout parse, the verifier): fabricated or paraphrased quotes, a decision word that is not in
the item's heading, a sentence number out of range, citation pages the letter does not contain,
items that are not in the letter, decisions that contradict the letter's heading and summaries
whose stance contradicts the decision raise, and instructor re-asks the model with those reasons.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .. import fields, rules
from ..compare import item_pairs, page_in_letter
from ..layouts.grammar import DECISION, DECISION_WORD, decision_value
from ..normalize import collapse, fold_needle, sentences
from ..schema import CITATION_FIELDS, Case, Citation, Decision, Item, Patient, Quote, Reviewer

#: Fields only the verifier sets.
VERIFIER_FIELDS = {"start", "end", "page", "match", "score"}
#: Item fields the layout parser owns in the per-item strategies (the model never fills them).
PARSER_FIELDS = {"item", "heading", "rationale", "sections", "original_request", "authorized"}
#: Filled by the enrichment stage (``classify.py``) for every backend, so the model never writes them.
ENRICHED_FIELDS = {"category", "subcategory", "drug"}
#: Filled by the backend from the model's evidence fields (the conclusion sentence it numbered or
#: copied), never asked for as an output value.
ANSWER_FIELDS = {"conclusion"}
#: Quotes must be found at least this well to pass (fuzzy matches are re-asked).
ACCEPTED_TIERS = {"exact", "normalized"}
#: Problems listed in one re-ask message.
MAX_PROBLEMS = 12
#: Bounded output: these limits are in the JSON Schema the model fills, so a grammar-constrained
#: local model cannot run on (generation is the slow part on CPU: ~9 tokens/s on 2 cores), and a
#: hosted model that exceeds them is re-asked. The summary limit is the rules backend's, so a
#: summary is bounded the same whoever writes it.
SUMMARY_MAX_CHARS = rules.SUMMARY_MAX_CHARS
MAX_QUOTES = 2
#: Whole-letter views: a decision word counts as the item's when it follows one of the item
#: name's occurrences within this many characters (a heading, or a decision line below it).
DECISION_WORD_REACH = 600
_DECISION_WORD = re.compile(DECISION_WORD + r"\Z", re.IGNORECASE)


def decision_of_word(word: str) -> str | None:
    """The decision a copied decision word states ("Upheld" -> upheld), or None if it is none."""
    plain = collapse(word).strip(" :.").strip()
    return decision_value(plain) if _DECISION_WORD.match(plain) else None


# --------------------------------------------------------------------------- evidence fields
# Model-facing only: they are the model's working, verified and then turned into output values
# (the decision's evidence, the quotes, the summary) by the backend.
DECISION_WORD_FIELD = Field(
    description=(
        "The decision as the letter writes it for this item: the word(s) right after the item's name in "
        'its heading (or on its decision line), copied exactly, e.g. "Upheld", "Overturned"; "" if the '
        "heading states none."
    )
)
CONCLUSION_SENTENCE_FIELD = Field(
    ge=1,
    description=(
        "Number of the rationale sentence that states the conclusion: whether the request is (or is not) "
        "medically necessary. Usually the last sentence."
    ),
)
REASON_SENTENCE_FIELD = Field(
    ge=1,
    description=(
        "Number of the rationale sentence that gives the main reason for the decision (a finding in the "
        "records or the guideline's criterion), not the conclusion."
    ),
)
CONCLUSION_TEXT_FIELD = Field(
    description=(
        "The rationale's sentence that states the conclusion (whether the request is medically "
        "necessary), copied exactly from the letter."
    )
)


class ModelFacing(BaseModel):
    """Base of every view: strict, and verified against the letter when a context is given."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _verify_against_letter(self, info: ValidationInfo) -> ModelFacing:
        context = info.context
        if not context or "verifier" not in context:
            return self  # parsing without a letter (e.g. re-reading a cached or final answer)
        problems = problems_of(self, context)
        if problems:
            shown = problems[:MAX_PROBLEMS]
            more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
            raise ValueError("the answer does not match the letter: " + "; ".join(shown) + more)
        return self


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _required(info: FieldInfo) -> FieldInfo:
    """The same field without its default: a grammar then makes the model write it, in order."""
    info = copy.copy(info)
    info.default = PydanticUndefined
    info.default_factory = None
    # a merged FieldInfo remembers the default it was given, and create_model would restore it
    info._attributes_set = {k: v for k, v in info._attributes_set.items() if k not in ("default", "default_factory")}
    return info


def view(
    model: type[BaseModel],
    name: str,
    *,
    drop: set[str] = frozenset(),
    keep: set[str] | None = None,
    retype: dict[str, Any] | None = None,
    bound: dict[str, dict[str, int]] | None = None,
    before: dict[str, dict[str, tuple[Any, FieldInfo]]] | None = None,
    after: dict[str, tuple[Any, FieldInfo]] | None = None,
    notes: dict[str, str] | None = None,
    required: bool = False,
    top: bool = False,
) -> type[BaseModel]:
    """A model-facing copy of ``model``: same fields and descriptions, minus ``drop`` (or only ``keep``).

    ``bound`` adds length limits (``max_length``) to fields, on top of their own ``FieldInfo``;
    ``before`` inserts evidence fields ahead of a field (``{"decision": {"decision_word": ...}}``)
    and ``after`` appends fields at the end; ``notes`` appends model-facing words to a field's own
    description (how to write it); ``required`` drops defaults, so a grammar-constrained model
    writes every field in this order.
    """
    retype, bound, before, after, notes = retype or {}, bound or {}, before or {}, after or {}, notes or {}
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in drop or (keep is not None and field_name not in keep):
            continue
        fields.update(before.get(field_name, {}))
        annotation = retype.get(field_name, info.annotation)
        if field_name in bound:
            info = FieldInfo.merge_field_infos(info, Field(**bound[field_name]))
        if field_name in notes:
            described = f"{info.description or ''} {notes[field_name]}".strip()
            info = FieldInfo.merge_field_infos(info, Field(description=described))
        fields[field_name] = (annotation, info)
    fields.update(after)
    if required:
        fields = {k: (annotation, _required(info)) for k, (annotation, info) in fields.items()}
    base = ModelFacing if top else _Part
    return create_model(name, __base__=base, __doc__=model.__doc__, **fields)  # type: ignore[call-overload]


CitationDraft = view(Citation, "CitationDraft", drop=VERIFIER_FIELDS)
QuoteDraft = view(Quote, "QuoteDraft", drop=VERIFIER_FIELDS)
_NESTED = {
    "decision": Decision,  # the model must decide: no null
    **dict.fromkeys(CITATION_FIELDS, list[CitationDraft]),  # type: ignore[valid-type]
    "quotes": list[QuoteDraft],  # type: ignore[valid-type]
}
_BOUNDS = {"rationale_summary": {"max_length": SUMMARY_MAX_CHARS}, "quotes": {"max_length": MAX_QUOTES}}
#: Per-item views: the heading's word and the conclusion's number before the decision, the main
#: reason's number after it (quotes are those sentences, copied by code: exact by construction).
_BY_NUMBER = {"decision": {"decision_word": (str, DECISION_WORD_FIELD), "conclusion_sentence": (int, CONCLUSION_SENTENCE_FIELD)}}
_REASON = {"reason_sentence": (int, REASON_SENTENCE_FIELD)}
#: Per-item strategy: the layout parser names the item; the model fills decision, citations and a
#: summary in its own words.
ItemFill = view(
    Item,
    "ItemFill",
    drop=PARSER_FIELDS | ENRICHED_FIELDS | ANSWER_FIELDS | {"quotes"},
    retype=_NESTED,
    bound=_BOUNDS,
    before={"decision": _BY_NUMBER["decision"], CITATION_FIELDS[0]: _REASON},
    required=True,
    top=True,
)
#: Per-item-brief strategy (the local default): the parser also supplies the citations (its
#: deterministic citation grammar); the model copies the decision word, decides, and numbers the
#: conclusion and the main reason, from which code builds the quotes and a whole-sentence summary.
#: About 25 output tokens per item, which is what a 1.5B model on 2 cores can afford.
ItemBrief = view(
    Item, "ItemBrief", keep={"decision"}, retype=_NESTED, before=_BY_NUMBER, after=_REASON, required=True, top=True
)
#: Whole-letter strategy: the model finds the items too, and copies its evidence verbatim (there is
#: no numbered list of sentences for a whole letter).
_BY_COPY = {"decision": {"decision_word": (str, DECISION_WORD_FIELD), "conclusion": (str, CONCLUSION_TEXT_FIELD)}}
ItemDraft = view(
    Item,
    "ItemDraft",
    drop={"heading", "rationale", "sections"} | ENRICHED_FIELDS | ANSWER_FIELDS,
    retype=_NESTED,
    bound=_BOUNDS,
    before=_BY_COPY,
)
#: Whole-letter-brief (the local model on layouts the parser does not know): items, their
#: evidence and decisions, and the partial-authorisation parts; no citations, no free text.
ItemDraftBrief = view(
    Item,
    "ItemDraftBrief",
    keep={"item", "decision", "original_request", "authorized"},
    retype=_NESTED,
    before=_BY_COPY,
)


#: Whole-letter views: the header, reviewer and patient, every field required (a grammar then makes
#: a small model write each one, null only where the letter states none: with optional groups
#: Qwen2.5-Coder-1.5B skipped all three on every unknown-layout letter), and the header's dates as
#: the letter writes them ("10/20/2016"): a small model copies a date well and converts it badly,
#: so code parses the copy (:func:`written_date`) and the evidence is where the letter states it.
DATE_FIELDS = tuple(
    name for name, info in Case.model_fields.items() if dt.date in getattr(info.annotation, "__args__", ())
)
CaseDraft = view(
    Case,
    "CaseDraft",
    retype=dict.fromkeys(DATE_FIELDS, str | None),
    notes=dict.fromkeys(DATE_FIELDS, 'Copied as the letter writes it, e.g. "10/20/2016"; null if not stated.'),
    required=True,
)
ReviewerDraft = view(Reviewer, "ReviewerDraft", notes=dict.fromkeys(("licensure", "specialties"), "Copied."), required=True)
PatientDraft = view(Patient, "PatientDraft", notes=dict.fromkeys(("age", "sex"), "From the case summary."), required=True)


def _letter_view(name: str, item: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        name,
        __base__=ModelFacing,
        __doc__="Every disputed item of an IMR letter, plus its header, reviewer and patient.",
        case=(CaseDraft, Field(description=Case.__doc__)),
        reviewer=(ReviewerDraft, Field(description=Reviewer.__doc__)),
        patient=(PatientDraft, Field(description=Patient.__doc__)),
        items=(list[item], Field(description="Every disputed item, in letter order.")),  # type: ignore[valid-type]
    )


LetterDraft = _letter_view("LetterDraft", ItemDraft)
LetterBrief = _letter_view("LetterBrief", ItemDraftBrief)
PER_ITEM_VIEWS = (ItemFill, ItemBrief)


def written_date(written: str | None) -> dt.date | None:
    """The date a copied header date states: as the letter writes it (the header grammar's
    :data:`~llm_extract.fields.DATE_VALUE`, the whole copy) or ISO; None if it is no date, or an
    implausible one (the output model's own year check)."""
    plain = collapse(written or "").strip(" .,;:")
    match = fields.DATE_VALUE.fullmatch(plain)
    try:
        value = fields.parse_date(match) if match else dt.date.fromisoformat(plain)
        return Case(date_of_injury=value).date_of_injury if value else None
    except ValueError:
        return None


def people_of(draft: BaseModel) -> tuple[Case, Reviewer, Patient]:
    """The output models' case, reviewer and patient from a whole-letter draft (dates parsed)."""
    case = draft.case  # type: ignore[attr-defined]
    values = {name: written_date(value) if name in DATE_FIELDS else value for name, value in case}
    return (
        Case(**values),
        Reviewer(**draft.reviewer.model_dump()),  # type: ignore[attr-defined]
        Patient(**draft.patient.model_dump()),  # type: ignore[attr-defined]
    )


# --------------------------------------------------------------------------- checks


def _quote_problems(quotes: Sequence[str], verifier: Any, where: str, what: str = "quote") -> list[str]:
    out = []
    for quote in quotes:
        found = verifier.locate(quote)
        if found.tier not in ACCEPTED_TIERS:
            out.append(
                f"{where}: {what} {collapse(quote)[:100]!r} is not verbatim in the letter "
                "(copy whole sentences exactly)"
            )
    return out


def _citation_problems(citations: list[Any], verifier: Any, text: str, where: str) -> list[str]:
    out = []
    for cit in citations:
        if verifier.locate(cit.text).tier == "none":
            out.append(f"{where}: citation text {collapse(cit.text)[:100]!r} is not in the letter")
        for page in cit.pages:
            if not page_in_letter(page, text):
                out.append(f"{where}: page {page!r} does not appear in the letter")
    return out


def word_problems(word: str, decision: str | None, heading: str | None, where: str) -> list[str]:
    """The copied decision word against the item's heading text and the model's own decision.

    ``heading`` is the text the word must be copied from (None when unknown: whole-letter views
    check nearness to the item name instead, in :func:`word_near_item`).
    """
    plain = collapse(word)
    stated = decision_of_word(plain) if plain else None
    if heading is not None:
        wanted = decision_of_word(m.group(0)) if (m := re.search(DECISION_WORD, heading, re.IGNORECASE)) else None
        if not plain and wanted:
            return [f"{where}: decision_word is empty but the heading says {collapse(m.group(0))!r}"]  # type: ignore[union-attr]
        if plain and fold_needle(plain) not in fold_needle(heading):
            return [f"{where}: decision_word {plain!r} is not in the item's heading (copy it exactly)"]
    if plain and stated is None:
        return [f"{where}: decision_word {plain!r} is not a decision word (Upheld, Overturned, ...)"]
    if stated and decision and stated != decision:
        return [f"{where}: decision_word {plain!r} means {stated!r}, but decision is {decision!r}"]
    if decision == "partial" and stated != "partial":
        return [f"{where}: decision is 'partial' but the letter does not say \"Partially ...\" for this item"]
    return []


def word_near_item(word: str, name: str, folded_text: str) -> tuple[int, int] | None:
    """Where (folded offsets) ``word`` follows an occurrence of ``name`` within DECISION_WORD_REACH."""
    target, needle = fold_needle(word), fold_needle(name)
    if not target or not needle:
        return None
    at = folded_text.find(needle)
    while at != -1:
        start = at + len(needle)
        found = folded_text.find(target, start, start + DECISION_WORD_REACH)
        if found != -1:
            return found, found + len(target)
        at = folded_text.find(needle, at + 1)
    return None


def sentence_problems(numbers: dict[str, int], count: int, where: str) -> list[str]:
    """Sentence numbers must point into the numbered rationale (1..count).

    A one-sentence rationale ("Since the primary procedure is not medically necessary, none of the
    associated services are") has no reason apart from its conclusion, so ``reason_sentence`` is not
    held to it: the model, told to point at a sentence other than the conclusion, wrote 2 for every
    such item of the gold set and was re-asked in vain (13 items). The item then has no supporting
    quote; its conclusion is that sentence.
    """
    return [
        f"{where}: {field} {n} is not a sentence number (the rationale has {count} sentences)"
        for field, n in numbers.items()
        if not 1 <= n <= count and not (field == "reason_sentence" and count == 1)
    ]


def stance_agrees(said: str, decision: str | None) -> bool:
    """Whether a stated stance ("upheld": not medically necessary) fits the decision: the same one,
    or any, where the decision is partial or unknown (a partial item's conclusion may state either)."""
    return said == decision or decision not in ("upheld", "overturned")


def conclusion_problem(sentence: str, decision: str | None, where: str, what: str) -> str | None:
    """The sentence given as the conclusion must state one (the rules backend's rule), and the same
    as the decision: every gold conclusion does."""
    said = rules.stance(sentence)
    if said is None:
        return (
            f"{where}: {what} does not state the conclusion (whether the request is medically necessary; "
            "usually the rationale's last sentence)"
        )
    if not stance_agrees(said, decision):
        return f"{where}: {what} says the request is {_STANCE_WORDS[said]}, but decision is {decision!r}"
    return None


def one_sentence_problem(copied: str, where: str) -> str | None:
    """A copied conclusion is one sentence (by the splitter that numbers rationale sentences; every
    gold conclusion is one): a paragraph that merely contains the conclusion would pass the stance
    check and be filed as ``Item.conclusion``."""
    count = len(sentences(copied, 0, len(copied)))
    if count <= 1:
        return None
    return f"{where}: the conclusion copied is {count} sentences; copy only the one sentence that states it"


def concludes(sentence: str, decision: str | None) -> bool:
    """Whether ``sentence`` states a conclusion that fits ``decision`` (:func:`stance_agrees`), by the
    rules backend's polarity rule: what narrowing and resolving a copied conclusion look for."""
    said = rules.stance(sentence)
    return said is not None and stance_agrees(said, decision)


def narrowed_conclusion(copied: str, decision: str | None) -> str:
    """The one sentence of a copied passage that states the conclusion, where the model copied more.

    Why: asked to copy the concluding sentence of a whole letter, a small model often copies the
    paragraph that ends with it; re-asking costs a whole new answer (~30 s on 2 cores) and often
    fails again, while the sentence is already in the copy. The last sentence whose stance is the
    decision's (any stance, for a partial decision) is kept: still the model's copy, still verbatim.
    A copy with no such sentence is returned as it is, for the checks to reject.
    """
    spans = sentences(copied, 0, len(copied))
    if len(spans) <= 1:
        return copied
    for start, end in reversed(spans):
        if concludes(copied[start:end], decision):
            return copied[start:end]
    return copied


#: Whole-letter views: how far after the model's copied sentence the item's concluding sentence is
#: looked for (a rationale is rarely longer), never past the next decision word (the next item).
CONCLUSION_REACH = 4000


def resolved_conclusion(copied: str, decision: str | None, text: str, verifier: Any) -> str:
    """The item's concluding sentence, from the model's copy: the copy narrowed to its concluding
    sentence (:func:`narrowed_conclusion`), or, where the copy is verbatim but concludes nothing (or
    the other way), the last sentence after it that states the decision's conclusion before the
    next item's decision word (the item's reasoning ends with its conclusion).

    Why: on a whole letter the 1.5B model copies the *first* sentence of an item's reasoning as its
    conclusion (20 of 29 unknown-layout items), and the re-ask, a whole new answer, mostly fails
    again. Its copy still points into the right item's reasoning; the conclusion is the last
    sentence of that reasoning that concludes as the model decided, checked like any conclusion. A copy
    that is not in the letter, or after which nothing concludes, is left for the checks to reject.
    """
    narrowed = narrowed_conclusion(copied, decision)
    if concludes(narrowed, decision):
        return narrowed
    found = verifier.locate(copied)
    if found.tier not in ACCEPTED_TIERS or found.start is None:
        return copied
    stop = min(len(text), found.end + CONCLUSION_REACH)
    if (next_word := DECISION.search(text, found.end, stop)) is not None:
        stop = next_word.start()
    for start, end in reversed(sentences(text, found.end, stop)):
        if concludes(text[start:end], decision):
            return text[start:end]
    return copied


def summary_problem(summary: str | None, decision: str | None, where: str) -> str | None:
    """A summary whose stance (the rules backend's polarity rule) contradicts the decision."""
    if not summary or decision not in ("upheld", "overturned"):
        return None
    said = rules.stance(summary)
    if said is None or said == decision:
        return None
    return f"{where}: the summary says the request is {_STANCE_WORDS[said]}, but decision is {decision!r}"


_STANCE_WORDS = {"upheld": "not medically necessary", "overturned": "medically necessary"}


def problems_of(draft: BaseModel, context: dict[str, Any]) -> list[str]:
    """Every way ``draft`` disagrees with the letter, as sentences the model can act on."""
    verifier, text = context["verifier"], context["text"]
    expected = context.get("expected")  # [(name, decision)] from the layout parser, if it knows the layout
    problems: list[str] = []
    if isinstance(draft, PER_ITEM_VIEWS):
        where = context.get("where", "item")
        want = context.get("decision")
        decision = draft.decision  # type: ignore[attr-defined]
        problems += word_problems(draft.decision_word, decision, context.get("heading"), where)  # type: ignore[attr-defined]
        if want and decision != want:
            problems.append(f"{where}: the letter's heading says {want!r}, not {decision!r}")
        if "sentences" in context:
            spans = context["sentences"]
            numbers = {f: getattr(draft, f) for f in ("conclusion_sentence", "reason_sentence")}
            problems += sentence_problems(numbers, len(spans), where)
            number = numbers["conclusion_sentence"]
            if 1 <= number <= len(spans):
                s, e = spans[number - 1]
                said = conclusion_problem(text[s:e], decision, where, f"sentence {number}")
                problems += [said] if said else []
        if (said := summary_problem(getattr(draft, "rationale_summary", None), decision, where)) is not None:
            problems.append(said)
        for field in CITATION_FIELDS:
            problems += _citation_problems(getattr(draft, field, []), verifier, text, f"{where} {field}")
        return problems
    folded = verifier.folded.text
    items = draft.items  # type: ignore[attr-defined]
    # the parser's item each answer item is (the cross-check's and the evaluation's pairing rule)
    paired = item_pairs([i.item for i in items], [name for name, _ in expected]) if expected else {}
    for index, item in enumerate(items):
        where = f"item {index + 1} ({collapse(item.item)[:60]!r})"
        if verifier.locate(item.item).tier == "none":
            problems.append(
                f"{where}: this item is not in the letter; copy item names from the decisions section"
            )
        problems += word_problems(item.decision_word, item.decision, None, where)
        if item.decision_word.strip() and word_near_item(item.decision_word, item.item, folded) is None:
            problems.append(f"{where}: decision_word {collapse(item.decision_word)!r} is not stated for this item")
        conclusion = resolved_conclusion(item.conclusion, item.decision, text, verifier)
        problems += _quote_problems([conclusion], verifier, where, "conclusion")
        said = one_sentence_problem(conclusion, where) or conclusion_problem(
            conclusion, item.decision, where, "the conclusion"
        )
        problems += [said] if said else []
        want = expected[paired[index]][1] if index in paired else None
        if want and item.decision != want:
            problems.append(f"{where}: the letter's heading says {want!r}, not {item.decision!r}")
        problems += _quote_problems([q.text for q in getattr(item, "quotes", [])], verifier, where)
        if (said := summary_problem(getattr(item, "rationale_summary", None), item.decision, where)) is not None:
            problems.append(said)
        for field in CITATION_FIELDS:
            problems += _citation_problems(getattr(item, field, []), verifier, text, f"{where} {field}")
    return problems
