"""The rules backend: the layout parser's segmentation turned into a Determination, no model.

It is the offline default and the cross-check for the LLM backend. What it cannot be sure
of, it flags: a decision that contradicts the rationale's conclusion, a rationale with no
conclusion, a letter that stops mid-item, a guideline sentence it could not read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .citations import parse_section
from .ingest import Letter
from .layouts import ItemBlock, Parsed
from .layouts.base import SECTION_FIELDS, TRAILER
from .negation import NEGATED_NECESSITY, NEGATOR
from .normalize import SENTENCE_END, blank, collapse, sentences
from .schema import (
    Case,
    Determination,
    Flag,
    FlagCode,
    Grounding,
    Item,
    Patient,
    Quote,
    Reviewer,
    SourceInfo,
    Span,
)
from .version import __version__

#: Longest rationale summary, whoever writes it (the rules backend's whole sentences here, a
#: language model's own words in the LLM views, which take this bound from here).
SUMMARY_MAX_CHARS = 300
#: Quotes per item: the conclusion (``Item.conclusion``) plus up to two supporting sentences (``Item.quotes``).
MAX_RULE_QUOTES = 3
#: A sentence longer than this is a paragraph glued together, not a quotable sentence.
MAX_QUOTE_CHARS = 600

_F = re.IGNORECASE
NECESSITY = re.compile(r"medical(?:ly)?[\s\-]+(?:necess|appropriate|reasonable)|\bnecessary\b", _F)
WEAK_CONCLUSION = re.compile(
    r"\b(?:is|are|was|were|be)\s+(?:not\s+)?(?:\w+\s+)?(?:supported|recommended|indicated|warranted|established|certified)\b",
    _F,
)
#: A conclusion that the request is not necessary: a negation (the one vocabulary,
#: :mod:`llm_extract.negation`) within a few words of a necessity word, or a negated one.
NEGATIVE = re.compile(
    rf"\b{NEGATOR}\b[\s\-]*(?:\w+[\s\-]+){{0,5}}?"
    r"(?:medically[\s\-]+)?(?:necessary|necessity|appropriate|supported|recommended|indicated|warranted|established"
    rf"|certified|reasonable)\b|\b{NEGATED_NECESSITY}\b",
    _F,
)
#: Boilerplate that mentions necessity without concluding (opioid-tapering advice).
BOILERPLATE = re.compile(
    r"\badvised\s+to\b|\bweaning\b|should\s+not\s+be\s+interpreted|\bthis\s+decision\s+addresses\b|\bif\s+necessary\b",
    _F,
)
GUIDELINE_WORDS = re.compile(r"\b(?:MTUS|ODG|ACOEM|guidelines?|recommend\w*)\b", _F)
FINDING_WORDS = re.compile(
    r"\b(?:no|lack|without|absence|exceed\w*|fail\w*|documentation|documented|evidence|records?)\b", _F
)
#: Characters of a rejected value quoted in its flag message.
WRITTEN_MAX_CHARS = 80

SentenceSpans = tuple[tuple[int, int], ...]
M = TypeVar("M", bound=BaseModel)


def build(letter: Letter, parsed: Parsed) -> Determination:
    """A Determination from the layout parse of ``letter`` (not yet verified).

    Names, parts, sentences and conclusions are read from the letter with its page furniture
    blanked (same offsets), so a running header between two lines of a heading or a sentence is
    never part of a value; quotes and evidence are the letter's own text at those offsets.
    """
    text = letter.text
    clean = blank(text, parsed.furniture)
    flags: list[Flag] = [
        Flag(
            code=n.code,
            severity=n.severity,
            message=n.message,
            item=n.item,
            start=n.span[0] if n.span else None,
            end=n.span[1] if n.span else None,
        )
        for n in parsed.notes
    ]
    items = []
    letter_fields = parsed.fields
    spans: dict[str, tuple[int, int]] = {f"case.{name}": f.span for name, f in letter_fields.header.items()}
    for field, entries in (("licensure", letter_fields.licensure), ("specialties", letter_fields.specialties)):
        spans.update((f"reviewer.{field}.{i}", f.span) for i, f in enumerate(entries))
    for field, found in (("age", letter_fields.age), ("sex", letter_fields.sex)):
        if found is not None:
            spans[f"patient.{field}"] = found.span
    for index, block in enumerate(parsed.items):
        item, item_flags, item_spans = _item(letter, clean, block, index)
        items.append(item)
        flags += item_flags
        spans.update((f"items.{index}.{field}", span) for field, span in item_spans.items())
    if parsed.items:
        flags += _truncation(clean, parsed)
    header = {name: f.value for name, f in letter_fields.header.items()}
    people = {name: found.value for name in ("age", "sex") if (found := getattr(letter_fields, name)) is not None}
    lists = {"licensure": letter_fields.licensure, "specialties": letter_fields.specialties}
    case = _checked(Case, header, text, spans, flags)
    reviewer = _checked(Reviewer, {name: [f.value for f in found] for name, found in lists.items()}, text, spans, flags)
    patient = _checked(Patient, people, text, spans, flags)
    return Determination(
        case=case,
        reviewer=reviewer,
        patient=patient,
        items=items,
        # offsets, page and tier are known here; the verifier confirms them (or corrects them)
        evidence={
            path: Grounding(text=text[s:e], start=s, end=e, page=letter.page_of(s), match="exact", score=100.0)
            for path, (s, e) in spans.items()
        },
        flags=flags,
        source=SourceInfo(
            sha256=letter.sha256,
            name=letter.name,
            kind=letter.kind,
            page_count=letter.page_count,
            characters=len(text),
            layout=parsed.layout,
            backend="rules",
            extractor_version=__version__,
        ),
    )


def _checked(model: type[M], values: dict[str, Any], text: str, spans: dict[str, tuple[int, int]], flags: list[Flag]) -> M:
    """``model(**values)``, where every value the model rejects becomes its default plus a flag.

    The parser reads what the letter states; the model says what is possible. A rejected value is
    never a crash and never a guess: it is left out (null), its evidence is dropped, and a
    ``value_out_of_range`` flag names the field and the value as the letter writes it.
    """
    try:
        return model(**values)
    except ValidationError as err:
        problems: dict[str, str] = {}
        for error in err.errors():
            if error["loc"]:
                problems.setdefault(str(error["loc"][0]), error["msg"])
    section = model.__name__.lower()
    for name, why in problems.items():
        path = f"{section}.{name}"
        span = spans.get(path) or spans.get(f"{path}.0")
        written = collapse(text[span[0] : span[1]]) if span else repr(values.get(name))
        if len(written) > WRITTEN_MAX_CHARS:
            written = written[: WRITTEN_MAX_CHARS - 1] + "\u2026"
        for key in [k for k in spans if k == path or k.startswith(f"{path}.")]:
            del spans[key]
        flags.append(
            Flag(
                code=FlagCode.VALUE_OUT_OF_RANGE,
                severity="warning",
                start=span[0] if span else None,
                end=span[1] if span else None,
                message=f"{path}: the letter states {written!r}, which is out of range ({why}); left null",
            )
        )
    return model(**{name: value for name, value in values.items() if name not in problems})


def _truncation(text: str, parsed: Parsed) -> list[Flag]:
    """A letter that ends inside its last item is flagged ``truncated`` (error).

    It ends inside the item when the last item has no rationale, when its rationale reaches no
    conclusion, or when the rationale stops mid-sentence after something other than its conclusion.
    A rationale whose last sentence is its conclusion is complete even without a full stop, and a
    letter whose signature block follows the rationale did not stop there. ``text`` is the letter
    with its page furniture blanked, so a page footer at the end is not an unfinished sentence.
    """
    last, index = parsed.items[-1], len(parsed.items) - 1
    at = last.rationale[1] if last.rationale else last.heading[1]

    def truncated(message: str) -> list[Flag]:
        return [Flag(code=FlagCode.TRUNCATED, severity="error", item=index, start=at, end=at, message=message)]

    if last.rationale is None:
        return truncated("the letter stops before the last item's rationale")
    if TRAILER.search(text, last.rationale[1]):
        return []
    spans = sentences(text, *last.rationale)
    concl = conclusion(text, last.rationale, spans)
    if concl is None:
        return truncated("the letter ends inside the last item: its rationale reaches no conclusion")
    if concl == spans[-1] or SENTENCE_END.search(text, last.rationale[0], last.rationale[1]):
        return []
    return truncated("the letter stops mid-sentence, after the last rationale's conclusion")


def conclusion(
    text: str, span: tuple[int, int], spans: SentenceSpans | None = None
) -> tuple[int, int] | None:
    """The sentence of a rationale that states its conclusion (the last one about necessity).

    ``spans`` are the rationale's sentences when the caller has them already.
    """
    spans = sentences(text, *span) if spans is None else spans
    for pattern in (NECESSITY, WEAK_CONCLUSION):
        found = [
            s for s in spans if pattern.search(text, s[0], s[1]) and not BOILERPLATE.search(text, s[0], s[1])
        ]
        if found:
            return found[-1]
    return None


def polarity(sentence: str) -> str:
    """``upheld`` when a conclusion says the request is not necessary, else ``overturned``."""
    plain = re.sub(r"[\"'\u201c\u201d\u2018\u2019*]", "", collapse(sentence))
    return "upheld" if NEGATIVE.search(plain) else "overturned"


def _item(
    letter: Letter, clean: str, block: ItemBlock, index: int
) -> tuple[Item, list[Flag], dict[str, tuple[int, int]]]:
    """The item, its flags, and the span each of its stated values was read from. Quotes and
    citations carry offsets, page and tier, so the verifier confirms them without copying."""
    text = clean  # the letter with its page furniture blanked (same offsets)
    flags: list[Flag] = []
    decision = block.decision
    spans: dict[str, tuple[int, int]] = {"item": block.heading}
    if block.decision_span is not None:
        spans["decision"] = block.decision_span
    quotes: list[Quote] = []
    concluding = None
    summary = None

    def flag(code: FlagCode, severity: str, span: tuple[int, int], message: str) -> None:
        flags.append(Flag(code=code, severity=severity, item=index, start=span[0], end=span[1], message=message))

    rationale = Span(start=block.rationale[0], end=block.rationale[1]) if block.rationale else None
    if block.rationale is None or block.rationale[0] >= block.rationale[1]:
        flag(FlagCode.MISSING_RATIONALE, "error", block.heading, "item has no decision rationale")
        rationale = None
    else:
        sentence_spans = sentences(text, *block.rationale)
        concl = conclusion(text, block.rationale, sentence_spans)
        if concl is None:
            unconcluded = "the rationale states no conclusion about medical necessity"
            flag(FlagCode.NO_CONCLUSION, "warning", block.rationale, unconcluded)
        else:
            said = polarity(text[concl[0] : concl[1]])
            if decision is None and block.decision_inferred:
                decision = said
                spans["decision"] = concl
                inferred = f"layout states no decision word; '{said}' read from the rationale's conclusion"
                flag(FlagCode.DECISION_INFERRED, "info", concl, inferred)
            elif decision in ("upheld", "overturned") and decision != said:
                code = (
                    FlagCode.SUMMARY_MISMATCH
                    if block.decision_inferred
                    else FlagCode.DECISION_CONTRADICTS_RATIONALE
                )
                concludes = collapse(text[concl[0] : concl[1]])
                flag(code, "error", concl, f"decision is '{decision}' but the rationale concludes {concludes!r}")
        quotes = _quotes(letter, sentence_spans, concl)
        if concl and concl[1] - concl[0] <= MAX_QUOTE_CHARS:
            concluding = _quote(letter, *concl)
        summary = _summary(text, sentence_spans, concl)
    citations = {}
    for field, span in (("claims_administrator_guideline", block.ca), ("maximus_guideline", block.mx)):
        parsed = parse_section(text, span, letter.pages)  # read past page furniture; quoted verbatim
        citations[field] = [
            c if c.start is None or letter.text[c.start : c.end] == c.text
            else c.model_copy(update={"text": letter.text[c.start : c.end]})
            for c in parsed.citations
        ]
        for s, e in parsed.unparsed:
            unread = collapse(text[s:e])[:80]
            flag(FlagCode.CITATION_UNPARSED, "warning", (s, e), f"{field}: no guideline recognised in {unread!r}")

    def part(span: tuple[int, int] | None) -> str | None:
        return collapse(text[span[0] : span[1]]) if span else None

    for field in ("original_request", "authorized"):
        span = getattr(block, field)
        if span is not None:
            spans[field] = span

    item = Item(
        item=collapse(text[block.heading[0] : block.heading[1]]),
        decision=decision,
        original_request=part(block.original_request),
        authorized=part(block.authorized),
        heading=Span(start=block.heading[0], end=block.heading[1]),
        rationale_summary=summary,
        rationale=rationale,
        sections={SECTION_FIELDS[kind]: Span(start=a, end=b) for kind, (a, b) in block.labels.items()},
        conclusion=concluding,
        quotes=quotes,
        **citations,
    )
    return item, flags, spans


def _quotes(letter: Letter, spans: SentenceSpans, concl: tuple[int, int] | None) -> list[Quote]:
    """The supporting quotes: a sentence citing the guidelines, then one stating a finding."""
    text = letter.text
    chosen: list[tuple[int, int]] = []
    candidates = [s for s in spans if s != concl and s[1] - s[0] <= MAX_QUOTE_CHARS]
    for pattern in (GUIDELINE_WORDS, FINDING_WORDS):
        for s in candidates:
            if s not in chosen and pattern.search(text, s[0], s[1]):
                chosen.append(s)
                break
    chosen = sorted(chosen[: MAX_RULE_QUOTES - 1])
    return [_quote(letter, s, e) for s, e in chosen]


def _quote(letter: Letter, start: int, end: int) -> Quote:
    """The letter's sentence at ``[start, end)`` as a quote, already grounded (the verifier confirms it)."""
    return Quote(text=letter.text[start:end], start=start, end=end, page=letter.page_of(start), match="exact", score=100.0)


def _summary(text: str, spans: SentenceSpans, concl: tuple[int, int] | None) -> str | None:
    """Extractive: the conclusion and the main reason, whole sentences.

    The main reason is the first sentence with finding words ("no documentation", "exceeds") that
    fits beside the conclusion, preferring one that is not itself another conclusion.
    """
    room = SUMMARY_MAX_CHARS - (len(collapse(text[concl[0] : concl[1]])) + 1 if concl else 0)
    fits = [
        s
        for s in spans
        if s != concl and FINDING_WORDS.search(text, s[0], s[1]) and len(collapse(text[s[0] : s[1]])) <= room
    ]
    finding = next((s for s in fits if not NECESSITY.search(text, s[0], s[1])), fits[0] if fits else None)
    return summarize(text, spans, concl, finding)


def summarize(
    text: str,
    spans: Sequence[tuple[int, int]],
    conclusion: tuple[int, int] | None,
    reason: tuple[int, int] | None,
) -> str | None:
    """A summary of whole sentences within SUMMARY_MAX_CHARS: the main reason and the conclusion.

    Shared by the rules backend (which picks the reason by its finding words) and the local LLM
    (which numbers the conclusion and the main reason). In letter order; the reason is left out if
    both do not fit. Without a conclusion, the reason (or the rationale's last sentence) stands alone.
    A single sentence over the limit (a run-on the sentence splitter could not break, e.g. inside an
    unbalanced quotation) keeps its last whole sentences by a looser split; only a sentence with no
    break at all is cut at a word, with an ellipsis.
    """
    main = conclusion or reason or (spans[-1] if spans else None)
    if main is None:
        return None
    chosen = [main]
    both = len(collapse(text[main[0] : main[1]])) + 1 + (len(collapse(text[reason[0] : reason[1]])) if reason else 0)
    if reason and reason != main and both <= SUMMARY_MAX_CHARS:
        chosen.append(reason)
    summary = " ".join(collapse(text[s:e]) for s, e in sorted(chosen))
    return summary if len(summary) <= SUMMARY_MAX_CHARS else _tail_sentences(summary)


#: Quotation marks hidden from the sentence splitter when a run-on must be broken up.
_QUOTE_MARKS = str.maketrans({c: " " for c in "\"\u201c\u201d"})


def _tail_sentences(text: str) -> str:
    """The longest run of whole final sentences of ``text`` within the limit.

    The sentence splitter does not break inside an open quotation; a run-on that long usually has
    an unbalanced quote, so here the marks are hidden (same length, same offsets) and it splits.
    """
    spans = sentences(text.translate(_QUOTE_MARKS), 0, len(text))
    for s, _ in spans:  # the longest suffix that fits, copied whole (closing quotes included)
        if len(text) - s <= SUMMARY_MAX_CHARS:
            return text[s:].strip()
    return text[: SUMMARY_MAX_CHARS - 1].rsplit(" ", 1)[0] + "\u2026"


def stance(text: str) -> str | None:
    """What ``text`` concludes about necessity: ``upheld`` (not necessary), ``overturned``, or None.

    The rules backend's own rule, for any text (a summary): its conclusion sentence is found the
    way a rationale's is, and read with :func:`polarity`; a text that concludes nothing has no stance.
    """
    found = conclusion(text, (0, len(text)))
    return polarity(text[found[0] : found[1]]) if found else None
