"""``maximus-2015``: the MAXIMUS letterhead notices of 2013-15.

    1) MAXIMUS Federal Services, Inc. has determined the requested X is not medically necessary ...
    ...
    IMR DECISION(S) AND RATIONALE(S)
    1) Regarding the request for X:
    Medical Treatment Guideline(s) Used by the Claims Administrator (UR): ...
    Medical Treatment Guideline(s) Relied on by the Expert Reviewer: ...
    Rationale for the Decision: ...

An item is headed "N) Regarding the request for X:" (no decision word: the decision is read from
the numbered summary at the top, else from the rationale's conclusion) or, as in the other
families, by the decision grammar ("X: Upheld"), whose stated decision the summary must agree with.
"""

from __future__ import annotations

import bisect
import re

from ..normalize import collapse
from ..schema import FlagCode
from .base import ItemBlock, Note, Parsed, Span, line_end
from .grammar import Heading, find_decisions, segment

NAME = "maximus-2015"
#: Families are tried in increasing order of priority (a narrower title first).
PRIORITY = 20
#: Whether a letter without this family's title may be read by its items (decision-grammar headings with its labels).
BY_ITEMS = True
_F = re.IGNORECASE
#: Longest item name a "Regarding the request for ...:" heading or a summary line may hold: the
#: bound keeps a label repeated thousands of times without its colon linear, not quadratic. The
#: name starts with a non-space, so the whitespace before it is never re-split between the
#: label's ``\s+`` and the name (that costs run length x bound).
ITEM_NAME_MAX_CHARS = 500

TITLE = re.compile(r"IMR\s+DECISION\(S\)\s+AND\s+RATIONALE\(S\)\s*:?", _F)
#: The family's own heading: its name runs to a colon at the end of a line.
REGARDING = re.compile(r"(?m)^[ \t]*\d+\)[ \t]+Regarding\s+the\s+request\s+for\s+(?=\S)", _F)
NAME_END = re.compile(r":[ \t\u00a0]*(?=[\r\n\f])")
BLANK_LINE = re.compile(r"\n[ \t\u00a0]*\r?\n")
LABELS = {
    "ca": re.compile(
        r"Medical\s+Treatment\s+Guideline\(s\)\s+Used\s+by\s+the\s+Claims\s+Administrator\s*(?:\(UR\)\s*)?:", _F
    ),
    "mx": re.compile(r"Medical\s+Treatment\s+Guideline\(s\)\s+Relied\s+on\s+by\s+the\s+Expert\s+Reviewer\s*:", _F),
    "rationale": re.compile(r"Rationale\s+for\s+the\s+Decision\s*:", _F),
}
ANY_LABEL = re.compile("|".join(p.pattern for p in LABELS.values()), _F)
SUMMARY = re.compile(
    r"(?m)^[ \t]*\d+\)[ \t]+MAXIMUS\s+Federal\s+Services,\s+Inc\.\s+has\s+determined\s+the\s+request(?:ed)?\s+"
    rf"(?:for\s+)?(?P<item>\S.{{0,{ITEM_NAME_MAX_CHARS}}}?)(?<!\s)\s+(?P<polarity>is\s+not|is)\s+medically\s+necessary",
    re.DOTALL | _F,
)


def title(text: str) -> re.Match[str] | None:
    """The section title this family is recognised by."""
    return TITLE.search(text)


def parse(text: str, section: Span, parsed: Parsed) -> None:
    """Items after the ``section`` title: "Regarding the request for" and decision-grammar headings."""
    body = section[1]
    headings = find_decisions(text, body, len(text), ANY_LABEL)  # in text order
    colons = [h.colon for h in headings]
    own_only = []
    for own in _regarding(text, body):
        # the first decision-grammar heading inside this one, by bisection (a scan per heading is quadratic)
        at = bisect.bisect_left(colons, own.name_start if own.name_start is not None else own.colon)
        if own.name_start is not None and at < len(headings) and headings[at].colon < own.stop:
            # "N) Regarding the request for X: Upheld" states its decision: the grammar reads it
            headings[at].name_start, headings[at].block_start = own.name_start, own.block_start
        else:
            own_only.append(own)
    headings = sorted([*headings, *own_only], key=lambda h: h.colon)
    first = len(parsed.items)
    segment(text, body, LABELS, parsed, headings, inferred=True)
    summary = {
        collapse(m.group("item")).lower(): (
            "upheld" if "not" in m.group("polarity").lower() else "overturned",
            (m.start("polarity"), m.end()),
        )
        for m in SUMMARY.finditer(text, 0, body)
    }
    for index, block in enumerate(parsed.items[first:], first):
        _summary_decision(text, block, summary, parsed, index)


def _regarding(text: str, body: int) -> list[Heading]:
    """"N) Regarding the request for X:" headings: X runs to a colon at a line end, else to a blank
    line or the next label, never over a label (a heading that lost its colon keeps only its name)."""
    found = []
    for m in REGARDING.finditer(text, body):
        limit = min(len(text), m.end() + ITEM_NAME_MAX_CHARS)
        label = ANY_LABEL.search(text, m.end(), limit)
        nxt = REGARDING.search(text, m.end(), limit)
        for stop in (label, nxt):
            if stop is not None:
                limit = min(limit, stop.start())
        colon = NAME_END.search(text, m.end(), limit)
        if colon is not None:
            end, stop = colon.start(), colon.end()
        else:
            blank = BLANK_LINE.search(text, m.end(), limit)
            end = stop = blank.start() if blank else (limit if limit < len(text) else line_end(text, m.end(), limit))
        found.append(Heading(end, stop, name_start=m.end(), block_start=m.start()))
    return found


def _summary_decision(
    text: str, block: ItemBlock, summary: dict[str, tuple[str, tuple[int, int]]], parsed: Parsed, index: int
) -> None:
    """The numbered summary's decision for an item: its decision if the heading states none, else a
    check of the stated one (a disagreement is an error, never resolved silently)."""
    stated = summary.get(collapse(text[block.heading[0] : block.heading[1]]).lower())
    if stated is None:
        return
    decision, span = stated
    if block.decision is None:
        block.decision, block.decision_span = decision, span
    elif block.decision in ("upheld", "overturned") and block.decision != decision:
        parsed.notes.append(
            Note(
                FlagCode.SUMMARY_MISMATCH,
                "error",
                f"item {index + 1} is '{block.decision}' but the summary at the top says '{decision}'",
                span,
                index,
            )
        )
