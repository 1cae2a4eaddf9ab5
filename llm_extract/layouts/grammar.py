"""The item grammar every family shares: decisions, headings, partial authorisations, sections.

An item heading is found by the **decision grammar**, whatever the section around it is called:
a name, a colon, and a decision word (``Upheld``, ``Overturned``, ``Partially Upheld``, any case),
where the name may wrap over lines and the decision may stand on its own line, and nothing but a
line end or the item's first section label may follow the decision word (pdfium and other tools
glue the label on: "UpheldClaims Administrator guideline:"). A family that words its headings
otherwise ("Regarding the request for X:") adds its own headings; the rest is shared:
:func:`segment` groups a family's section labels into items, gives every group the heading right
before it, and flags whatever is missing (a group with no heading, a heading with no sections).

Everything here is linear: each decision word looks a bounded distance either side of itself,
and headings and label groups are merged in one ordered pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..schema import FlagCode
from .base import (
    HEADING_MAX_LINES,
    SECTION_KINDS,
    SECTION_NAMES,
    ItemBlock,
    Note,
    Parsed,
    Span,
    before_furniture,
    letter_end,
    line_start,
    trim,
    walk_back,
)

_F = re.IGNORECASE
DECISION_WORD = r"(?:Partially\s+(?:Upheld|Overturned)|Upheld|Overturned)"
DECISION = re.compile(DECISION_WORD, _F)
#: Whitespace allowed between a heading's colon and its decision word (a decision on its own line,
#: blank lines of a double-spaced letter, a blanked page header between them).
DECISION_GAP_CHARS = 400
#: A list number before an item's name ("1) ", "2. ", "(3) "): numbering, not part of the name.
ITEM_NUMBER = re.compile(r"[ \t]*(?:\(\d{1,2}\)|\d{1,2}[.)])[ \t]+")
#: An item name holds at least one letter or digit (", is" left by a removed name names nothing).
NAMES_SOMETHING = re.compile(r"[^\W_]")
#: Lines walked back from a heading (partial-authorisation blocks run longer than headings).
PARTIAL_MAX_LINES = 12

PARTIAL_HINT = re.compile(r"original\s+request|IMR\s+eligible", _F)
ORIGINAL = re.compile(r"(?<!\s)\s+(?:was|is|as)\s+the\s+original\s+request\b\.?", _F)
#: The parts' bodies end on a non-space (``\S(?:.*?\S)?``): the shortest body never ends in
#: whitespace anyway, and a body that may end anywhere lets every position of a whitespace run
#: rescan the rest of the run.
AUTHORIZED_BY = re.compile(
    r"\s*(?P<y>\S(?:.*?\S)?)\s+(?:was|were)\s+authorized\s+by\s+the\s+Claims\s+Administrator\b\.?",
    re.DOTALL | _F,
)
CA_AUTHORIZED = re.compile(
    r"\s*The\s+Claims\s+Administrator\s+authorized\s+(?P<y>\S(?:.*?\S)?),?\s+leaving\s+the\s+original\s+"
    r"request\s+IMR\s+eligible\b\.?",
    re.DOTALL | _F,
)
REMAINING = re.compile(
    r"\s*(?:The\s+remaining\s+IMR\s+eligible\s+portion\s+of\s+the\s+original\s+request|The\s+original\s+request)"
    r"\s*(?:,\s*)?(?P<z>(?!is\s*\Z)[^\s,](?:.*?\S)?)(?:,?\s+is)?\s*\Z",
    re.DOTALL | _F,
)


def decision_value(word: str) -> str:
    """``upheld``, ``overturned`` or ``partial`` for a decision word as written."""
    return "partial" if word.lower().startswith("partially") else word.lower()


@dataclass
class Heading:
    """An item heading: where its name ends and, if it states one, its decision."""

    #: Where the name ends (the colon before the decision word, or the family's own end).
    colon: int
    #: Where the heading ends (after the decision word).
    stop: int
    decision: str | None = None
    decision_span: Span | None = None
    #: Where the name starts, when the family's own grammar knows ("Regarding the request for ");
    #: otherwise the heading's lines are walked back from the colon.
    name_start: int | None = None
    block_start: int | None = None


def find_decisions(text: str, start: int, end: int, labels: re.Pattern[str] | None) -> list[Heading]:
    """Every "NAME: Decision" heading tail in ``text[start:end]`` by the decision grammar.

    A decision word counts when a colon precedes it (across whitespace only) and a line end, the
    end of the text, or one of the family's ``labels`` follows it (after spaces or a full stop).
    """
    found = []
    for m in DECISION.finditer(text, start, end):
        colon = m.start()
        floor = max(start, colon - DECISION_GAP_CHARS)
        while colon > floor and (text[colon - 1].isspace() or text[colon - 1] == "\u00a0"):
            colon -= 1
        if colon <= start or text[colon - 1] != ":":
            continue
        after = m.end()
        while after < end and text[after] in " \t\u00a0.":
            after += 1
        if not (after >= end or text[after] in "\r\n\f" or (labels is not None and labels.match(text, after))):
            continue
        found.append(
            Heading(colon - 1, m.end(), decision_value(m.group(0)), (m.start(), m.end()))
        )
    return found


def group_labels(hits: list[tuple[int, int, str]]) -> list[dict[str, Span]]:
    """Section labels (sorted (start, end, kind)) grouped into items.

    A new item starts at a label whose kind the current item has already, or that comes before a
    kind it has in the usual order (a claims-administrator label after a rationale label).
    """
    order = {kind: rank for rank, kind in enumerate(SECTION_KINDS)}
    groups: list[dict[str, Span]] = []
    for start, end, kind in hits:
        current = groups[-1] if groups else None
        if current is None or any(order[k] >= order[kind] for k in current):
            groups.append({})
            current = groups[-1]
        current[kind] = (start, end)
    return groups


def segment(
    text: str,
    body: int,
    labels: Mapping[str, re.Pattern[str]],
    parsed: Parsed,
    headings: list[Heading],
    *,
    inferred: bool = False,
) -> None:
    """Items of ``text`` (furniture-blanked) from ``body`` on: label groups joined to their headings.

    ``headings`` (sorted) are the family's headings: the decision grammar's and its own. Each
    group of section labels takes the last heading between the previous group and it; a heading
    with no group after it is an item without sections (flagged), a group with no heading gets
    the lines right before its first label as its heading, without a decision (flagged unless the
    family ``inferred`` decisions anyway: then the rationale's conclusion gives it).
    """
    hits = sorted((m.start(), m.end(), kind) for kind, pattern in labels.items() for m in pattern.finditer(text, body))
    groups = group_labels(hits)
    plan: list[tuple[Heading | None, dict[str, Span]]] = []
    at, floor = 0, body
    for group in groups:
        anchor = min(s for s, _ in group.values())
        pending = []
        while at < len(headings) and headings[at].stop <= anchor:
            if headings[at].colon >= floor:
                pending.append(headings[at])
            at += 1
        plan += [(h, {}) for h in pending[:-1]]
        plan.append((pending[-1] if pending else None, group))
        floor = max(e for _, e in group.values())
    plan += [(h, {}) for h in headings[at:] if h.colon >= floor]
    blocks: list[ItemBlock] = []
    floor = body
    for heading, group in plan:
        index = len(blocks)
        anchor = min((s for s, _ in group.values()), default=None)
        block = _block(text, floor, heading, anchor, parsed, index, inferred)
        block.labels = dict(group)
        _missing_sections(group, block, parsed, index)
        blocks.append(block)
        floor = max([block.heading[1], *(e for _, e in group.values())])
    # Sections run from their label to the next label of the item, the last one to the next item.
    for index, block in enumerate(blocks):
        stop = blocks[index + 1].block_start if index + 1 < len(blocks) else None
        ordered = sorted(block.labels.items(), key=lambda kv: kv[1])
        for position, (kind, (_, label_end)) in enumerate(ordered):
            if position + 1 < len(ordered):
                end = ordered[position + 1][1][0]
            else:
                end = stop if stop is not None else letter_end(text, label_end)
            setattr(block, kind, trim(text, label_end, max(label_end, end)))
    parsed.items += blocks


def _missing_sections(group: dict[str, Span], block: ItemBlock, parsed: Parsed, index: int) -> None:
    missing = [SECTION_NAMES[k] for k in SECTION_KINDS if k not in group]
    if missing:
        at = min((s for s, _ in group.values()), default=block.heading[1])
        parsed.notes.append(
            Note(
                FlagCode.MISSING_SECTION,
                "warning",
                f"item {index + 1} has no {', '.join(missing)} label",
                (at, at),
                index,
            )
        )


def _block(
    text: str, floor: int, heading: Heading | None, anchor: int | None, parsed: Parsed, index: int, inferred: bool
) -> ItemBlock:
    """The item block of one heading (or, with none, of the lines right before ``anchor``)."""
    unrecognised = heading is None
    if heading is None:
        assert anchor is not None
        colon = before_furniture(text, anchor, floor)
        while colon > floor and text[colon - 1].isspace():
            colon -= 1
        heading = Heading(colon, colon)
    elif anchor is not None and text[heading.stop : anchor].strip(" \t\r\n\f\u00a0."):
        parsed.notes.append(
            Note(
                FlagCode.UNEXPECTED_TEXT,
                "warning",
                f"item {index + 1}: text between its decision and its first section label was not read",
                trim(text, heading.stop, anchor),
                index,
            )
        )
    if heading.name_start is not None:
        start, lines = heading.name_start, 1
    else:
        start, lines = walk_back(text, line_start(text, heading.colon, floor), floor, HEADING_MAX_LINES)
    numbered = ITEM_NUMBER.match(text, start, heading.colon)
    name = trim(text, numbered.end() if numbered else start, heading.colon)
    block = ItemBlock(
        block_start=heading.block_start if heading.block_start is not None else start,
        heading=name,
        decision=heading.decision,
        decision_span=heading.decision_span,
        decision_inferred=heading.decision is None and inferred,
    )
    if unrecognised:  # sections with no heading of the decision grammar or the family's own before them
        parsed.notes.append(
            Note(
                FlagCode.MISSING_DECISION,
                "error",
                "item heading has no Upheld/Overturned decision"
                + (" and is not in the layout's own heading form either" if inferred else ""),
                name,
                index,
            )
        )
    if PARTIAL_HINT.search(text, name[0], name[1]):
        partial(text, floor, block, parsed, index)
    elif lines >= HEADING_MAX_LINES:
        parsed.notes.append(
            Note(
                FlagCode.LONG_HEADING,
                "warning",
                f"item heading spans {lines}+ lines; it may include rationale text",
                name,
                index,
            )
        )
    if not NAMES_SOMETHING.search(text, block.heading[0], block.heading[1]):
        parsed.notes.append(
            Note(
                FlagCode.ITEM_NAME_MISSING,
                "error",
                f"item {index + 1}: its heading names no treatment",
                (block.block_start, heading.stop),
                index,
            )
        )
    return block


def partial(text: str, floor: int, block: ItemBlock, parsed: Parsed, index: int) -> None:
    """Split "X was the original request. Y was authorized ... Z is:" into its parts."""
    colon = block.heading[1]
    original = None
    for m in ORIGINAL.finditer(text, max(floor, block.heading[0] - 2000), colon):
        original = m
    if original is None:
        parsed.notes.append(
            Note(
                FlagCode.PARTIAL_UNPARSED,
                "error",
                "partial-authorisation heading without 'was the original request': the item it names is unsure",
                block.heading,
                index,
            )
        )
        return
    start, _ = walk_back(text, line_start(text, original.start(), floor), floor, PARTIAL_MAX_LINES)
    x = trim(text, start, original.start())
    rest = original.end()
    y = None
    for pattern in (AUTHORIZED_BY, CA_AUTHORIZED):
        ym = pattern.match(text, rest, colon)
        if ym:
            y, rest = trim(text, ym.start("y"), ym.end("y")), ym.end()
            break
    zm = REMAINING.match(text, rest, colon)
    if not zm or y is None:
        parsed.notes.append(
            Note(
                FlagCode.PARTIAL_UNPARSED,
                "error",
                "partial-authorisation wording not recognised; heading kept whole (the item it names is unsure)",
                (start, colon),
                index,
            )
        )
        block.block_start = min(block.block_start, start)
        return
    block.block_start = start
    block.original_request = x
    block.authorized = y
    block.heading = trim(text, zm.start("z"), zm.end("z"))


def split_decision(text: str, span: Span) -> tuple[Span, str | None, Span | None]:
    """A heading region that may end in "...: Decision": its name, decision and decision span."""
    tails = find_decisions(text, span[0], span[1], None)
    if not tails or text[tails[-1].stop : span[1]].strip(" \t\r\n\f\u00a0."):
        return span, None, None
    tail = tails[-1]
    return trim(text, span[0], tail.colon), tail.decision, tail.decision_span
