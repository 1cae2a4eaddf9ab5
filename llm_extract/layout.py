"""The layout parser: finds where things are in a letter, as offsets, for every known layout.

It does not decide what anything *means* beyond the decision word: it segments the letter
into header fields, reviewer and patient facts, and per item the heading, the decision, the
partial-authorisation parts and the three sections (claims administrator guideline,
MAXIMUS guideline, rationale). :mod:`llm_extract.rules` turns that into a Determination,
and the LLM backend uses the same segmentation for per-item prompts and cross-checks.

Known layouts:

- ``imr-issues``   "IMR ISSUES, DECISIONS AND RATIONALES" (2014-17 letters, with or without
                   the ``Case Number:`` header block).
- ``maximus-2015`` MAXIMUS letterhead, "DOCUMENTS REVIEWED", "IMR DECISION(S) AND RATIONALE(S)".
- ``mpr-2013``     "MEDICAL PROFESSIONAL REVIEW" with "ISSUE AT DISPUTE:" and friends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import NotAnIMRLetterError
from .fields import LetterFields, read_fields
from .normalize import FURNITURE_LINE, collapse, furniture_spans
from .schema import FlagCode, Severity

Span = tuple[int, int]

#: A wrapped item heading spans at most this many lines before we call it a layout surprise.
HEADING_MAX_LINES = 4
#: Lines walked back from a heading (partial-authorisation blocks run longer than headings).
PARTIAL_MAX_LINES = 12
#: Longest item name a "Regarding the request for ...:" heading or a summary line may hold: the
#: bound keeps a label repeated thousands of times without its colon linear, not quadratic. The
#: name starts with a non-space, so the whitespace before it is never re-split between the
#: label's ``\s+`` and the name (that costs run length x bound).
ITEM_NAME_MAX_CHARS = 500

_F = re.IGNORECASE
DECISION_WORD = r"(?:Partially\s+(?:Upheld|Overturned)|Upheld|Overturned)"
DECISION_TAIL = re.compile(r":[\s\u00a0]*(" + DECISION_WORD + r")[\s.\u00a0]*\Z", _F)
#: Text that ends with a finished sentence (a line that cannot run on into a heading; a rationale
#: that was not cut short: rules.py's truncation check).
SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s*\Z")

IMR_ISSUES = re.compile(r"IMR\s+ISSUES(?:\s*,\s+|\s+)DECISIONS\s+AND\s+RATIONALES", _F)
SET_FORTH = re.compile(r"set\s+forth\s+below\s*:", _F)
CA_LABEL = re.compile(r"Claims\s+Administrator\s+guideline\s*:", _F)
MX_LABEL = re.compile(r"MAXIMUS\s+guideline\s*:", _F)
DR_LABEL = re.compile(r"Decision\s+rationale\s*:", _F)

MAXIMUS_DECISIONS = re.compile(r"IMR\s+DECISION\(S\)\s+AND\s+RATIONALE\(S\)\s*:?", _F)
MAXIMUS_ITEM = re.compile(
    r"(?m)^[ \t]*(\d+)\)[ \t]+Regarding\s+the\s+request\s+for\s+"
    rf"(?P<item>\S.{{0,{ITEM_NAME_MAX_CHARS}}}?)(?<!\s)\s*:[ \t]*(?=\r?\n|\f)",
    re.DOTALL | _F,
)
MAXIMUS_CA = re.compile(
    r"Medical\s+Treatment\s+Guideline\(s\)\s+Used\s+by\s+the\s+Claims\s+Administrator\s*(?:\(UR\)\s*)?:", _F
)
MAXIMUS_MX = re.compile(
    r"Medical\s+Treatment\s+Guideline\(s\)\s+Relied\s+on\s+by\s+the\s+Expert\s+Reviewer\s*:", _F
)
MAXIMUS_DR = re.compile(r"Rationale\s+for\s+the\s+Decision\s*:", _F)
MAXIMUS_SUMMARY = re.compile(
    r"(?m)^[ \t]*\d+\)[ \t]+MAXIMUS\s+Federal\s+Services,\s+Inc\.\s+has\s+determined\s+the\s+request(?:ed)?\s+"
    rf"(?:for\s+)?(?P<item>\S.{{0,{ITEM_NAME_MAX_CHARS}}}?)(?<!\s)\s+(?P<polarity>is\s+not|is)\s+medically\s+necessary",
    re.DOTALL | _F,
)
#: Where the last rationale of a letter ends when other text follows it.
TRAILER = re.compile(
    r"(?m)^[ \t]*(?:The\s+(?:Expert|physician)\s+Reviewer\s+is\s|MEDICAL\s+REVIEWER\s+QUALIFICATIONS|"
    r"cc:|/s/|Sincerely|Effect\s+of\s+the\s+Decision)",
    _F,
)

MPR_TITLE = re.compile(r"MEDICAL\s+PROFESSIONAL\s+REVIEW", _F)
MPR_ISSUE = re.compile(r"ISSUE\s+AT\s+DISPUTE\s*:", _F)
MPR_SUMMARY = re.compile(r"CASE\s+SUMMARY\s*:", _F)
MPR_DOCS = re.compile(r"DOCUMENTS\s+REVIEWED\s+FOR\s+DETERMINATION\s*:", _F)
MPR_GUIDELINES = re.compile(
    r"MEDICAL\s+TREATMENT\s+GUIDELINE\(S\)\s+RELIED\s+UPON\s+BY\s+PROFESSIONAL\s+REVIEWER\s+AND\s+WHY\s*:", _F
)
MPR_RATIONALE = re.compile(
    r"RATIONALE\s+FOR\s+WHY\s+THE\s+REQUESTED\s+TREATMENT/SERVICE\s+IS/WAS\s+NOT\s+MEDICALLY\s+NECESSARY\s*:",
    _F,
)
MPR_QUALIFICATIONS = re.compile(r"MEDICAL\s+REVIEWER\s+QUALIFICATIONS\s*:", _F)

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
    r"\s*(?:,\s*)?(?P<z>\S(?:.*?\S)?)(?:,?\s+is)?\s*\Z",
    re.DOTALL | _F,
)

#: Signals that a text is an IMR letter at all; two distinct ones are needed without a layout.
IMR_MARKERS = [
    re.compile(p, _F)
    for p in (
        r"Independent\s+Medical\s+Review",
        r"\bIMR\b",
        r"MAXIMUS",
        r"Decision\s+rationale",
        r"Claims\s+Administrator",
        r"Utilization\s+Review",
    )
]


@dataclass
class Note:
    """A layout surprise, to become a Flag."""

    code: FlagCode
    severity: Severity
    message: str
    span: Span | None = None
    item: int | None = None


@dataclass
class ItemBlock:
    block_start: int
    heading: Span
    decision: str | None
    decision_span: Span | None = None
    decision_inferred: bool = False
    original_request: Span | None = None
    authorized: Span | None = None
    ca: Span | None = None
    mx: Span | None = None
    rationale: Span | None = None


@dataclass
class Parsed:
    layout: str
    #: Header, reviewer and patient values with their spans (:mod:`llm_extract.fields`).
    fields: LetterFields = field(default_factory=LetterFields)
    items: list[ItemBlock] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


#: Characters at the top of a letter searched for the MPR title.
MPR_TITLE_CHARS = 3000


def _detect(text: str) -> tuple[str, re.Match[str] | None]:
    """The layout's name and the match of its section title (None for ``unknown``)."""
    if MPR_TITLE.search(text, 0, MPR_TITLE_CHARS):
        issue = MPR_ISSUE.search(text)
        if issue:
            return "mpr-2013", issue
    for name, title in (("maximus-2015", MAXIMUS_DECISIONS), ("imr-issues", IMR_ISSUES)):
        found = title.search(text)
        if found:
            return name, found
    if sum(1 for marker in IMR_MARKERS if marker.search(text)) >= 2:
        return "unknown", None
    raise NotAnIMRLetterError("this does not look like an IMR determination letter")


def detect(text: str) -> str:
    """Name of the letter's layout, or ``unknown``; raise if it is not an IMR letter at all."""
    return _detect(text)[0]


def parse(text: str) -> Parsed:
    """Segment ``text`` (``load(letter).text``) by its layout."""
    layout, section = _detect(text)
    parsed = Parsed(layout=layout)
    _read_fields(text, parsed)
    if section is not None and layout == "imr-issues":
        _parse_imr_issues(text, section, parsed)
    elif section is not None and layout == "maximus-2015":
        _parse_maximus(text, section, parsed)
    elif section is not None and layout == "mpr-2013":
        _parse_mpr(text, section, parsed)
    else:
        parsed.notes.append(
            Note(
                FlagCode.LAYOUT_UNKNOWN,
                "error",
                "IMR letter of an unknown layout: no items could be segmented",
            )
        )
    if not parsed.items and layout != "unknown":
        parsed.notes.append(
            Note(FlagCode.NO_ITEMS, "error", f"no disputed items found in the {layout} layout")
        )
    _check_spans(parsed)
    return parsed


def _check_spans(parsed: Parsed) -> None:
    """Every span handed on is ordered: an inverted one (a bug, or a layout we misread) is dropped
    and flagged, never passed to the output models (whose ``Span`` rejects it)."""
    for index, block in enumerate(parsed.items):
        if block.heading[1] < block.heading[0]:
            block.heading = (block.heading[0], block.heading[0])
            parsed.notes.append(
                Note(FlagCode.MISSING_SECTION, "warning", f"item {index + 1}: its heading could not be delimited",
                     None, index)
            )
        for name in ("decision_span", "original_request", "authorized", "ca", "mx", "rationale"):
            span = getattr(block, name)
            if span is not None and span[1] < span[0]:
                setattr(block, name, None)
                parsed.notes.append(
                    Note(
                        FlagCode.MISSING_SECTION,
                        "warning",
                        f"item {index + 1}: its {name.replace('_', ' ')} section is misplaced and was not read",
                        (span[1], span[0]),
                        index,
                    )
                )


# --------------------------------------------------------------------------- header & people


def _read_fields(text: str, parsed: Parsed) -> None:
    """Header, reviewer and patient fields (:mod:`llm_extract.fields`), each with its span."""
    found = parsed.fields = read_fields(text)
    parsed.notes += [Note(p.code, p.severity, p.message, p.span) for p in found.problems]


# --------------------------------------------------------------------------- line helpers


def _line_start(text: str, pos: int, floor: int) -> int:
    """Start of the line holding ``pos`` (a line ends at CR, LF or form feed), not before floor.

    Each separator is searched only after the nearest one found so far, so the cost is the
    line's length: searching all three back to ``floor`` costs the whole text for a separator
    the letter never uses (no CR in a PDF's text), once per line walked.
    """
    best = floor
    for sep in ("\n", "\r", "\f"):
        i = text.rfind(sep, best, pos)
        if i != -1:
            best = i + 1
    return best


def _walk_back(text: str, line_start: int, floor: int, max_lines: int) -> tuple[int, int]:
    """Extend a heading upwards over wrapped lines; stop at a sentence end or page furniture.

    Blank lines are stepped over, not stopped at: double-spaced letters put one between every
    line, wrapped headings included. Returns the heading's start and its number of lines.
    """
    start, lines = line_start, 1
    cursor = start
    while cursor > floor and lines < max_lines:
        prev_end = cursor
        while prev_end > floor and text[prev_end - 1] in "\r\n\f":
            prev_end -= 1
        if prev_end <= floor:
            break
        prev_start = _line_start(text, prev_end, floor)
        line = text[prev_start:prev_end]
        cursor = prev_start
        if not line.strip() or not line.strip("\u00a0 \t"):
            continue
        if SENTENCE_END.search(line) or FURNITURE_LINE.match(line):
            break
        start, lines = prev_start, lines + 1
    return start, lines


def _before_furniture(text: str, pos: int, floor: int) -> int:
    """Move ``pos`` back over whitespace and page-furniture lines (a footer between heading and label)."""
    while True:
        end = pos
        while end > floor and text[end - 1].isspace():
            end -= 1
        start = _line_start(text, end, floor)
        if end > start and FURNITURE_LINE.match(text[start:end]):
            pos = start
            continue
        return pos


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and (text[start].isspace() or text[start] == "\u00a0"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] == "\u00a0"):
        end -= 1
    return start, end


# --------------------------------------------------------------------------- imr-issues


def _decision_value(word: str) -> str:
    return "partial" if word.lower().startswith("partially") else word.lower()


def _parse_imr_issues(text: str, section: re.Match[str], parsed: Parsed) -> None:
    body = section.end()
    set_forth = SET_FORTH.search(text, body, body + 400)
    if set_forth:
        body = set_forth.end()
    labels = sorted(
        [(m.start(), m.end(), "ca") for m in CA_LABEL.finditer(text, body)]
        + [(m.start(), m.end(), "mx") for m in MX_LABEL.finditer(text, body)]
        + [(m.start(), m.end(), "dr") for m in DR_LABEL.finditer(text, body)]
    )
    # Group labels into items: an item starts at a CA label, or at an MX/DR label that
    # follows a rationale without a CA label in between (a layout surprise).
    groups: list[dict[str, tuple[int, int]]] = []
    for start, end, kind in labels:
        current = groups[-1] if groups else None
        opens_new = current is None or kind in current or (kind == "ca") or (kind == "mx" and "dr" in current)
        if opens_new:
            groups.append({})
            current = groups[-1]
        current[kind] = (start, end)
    floor = body
    blocks: list[ItemBlock] = []
    for index, group in enumerate(groups):
        anchor = min(s for s, _ in group.values())
        block = _imr_heading(text, floor, anchor, parsed, len(blocks))
        if "ca" not in group or "mx" not in group or "dr" not in group:
            missing = [
                name
                for key, name in (
                    ("ca", "Claims Administrator guideline"),
                    ("mx", "MAXIMUS guideline"),
                    ("dr", "Decision rationale"),
                )
                if key not in group
            ]
            parsed.notes.append(
                Note(
                    FlagCode.MISSING_SECTION,
                    "warning",
                    f"item {index + 1} has no {', '.join(missing)} label",
                    (anchor, anchor),
                    len(blocks),
                )
            )
        ends = sorted(group.values())
        for key in ("ca", "mx"):
            if key in group:
                nxt = [s for s, _ in ends if s > group[key][0]]
                stop = nxt[0] if nxt else group[key][1]
                block.__setattr__(key, _trim(text, group[key][1], stop))
        blocks.append(block)
        floor = max(e for _, e in group.values())
    # Rationales run from their label to the next item's heading block (or the letter's end).
    for index, (block, group) in enumerate(zip(blocks, groups)):
        if "dr" not in group:
            continue
        stop = blocks[index + 1].block_start if index + 1 < len(blocks) else _letter_end(text, group["dr"][1])
        block.rationale = _trim(text, group["dr"][1], stop)
        if block.mx and "dr" in group and block.mx[1] > group["dr"][0]:
            block.mx = _trim(text, block.mx[0], group["dr"][0])
    parsed.items = blocks


def _letter_end(text: str, start: int) -> int:
    """Where the last item's text stops: before any signature block and trailing page furniture."""
    trailer = TRAILER.search(text, start)
    end = trailer.start() if trailer else len(text)
    for s, e in reversed(furniture_spans(text[start:end])):
        if text[start + e : end].strip():
            break
        end = start + s
    return end


def _imr_heading(text: str, floor: int, anchor: int, parsed: Parsed, index: int) -> ItemBlock:
    """Find the heading (and decision) that sits right before the label at ``anchor``."""
    anchor = _before_furniture(text, anchor, floor)
    look = max(floor, anchor - 600)
    m = DECISION_TAIL.search(text, look, anchor)
    if m:
        colon, decision = m.start(), _decision_value(collapse(m.group(1)))
        decision_span: Span | None = (m.start(1), m.end(1))
    else:
        colon, decision, decision_span = anchor, None, None
        while colon > floor and text[colon - 1].isspace():
            colon -= 1
    line_start = _line_start(text, colon, floor)
    start, lines = _walk_back(text, line_start, floor, HEADING_MAX_LINES)
    heading = _trim(text, start, colon)
    block = ItemBlock(block_start=heading[0], heading=heading, decision=decision, decision_span=decision_span)
    if decision is None:
        parsed.notes.append(
            Note(
                FlagCode.MISSING_DECISION,
                "error",
                "item heading has no Upheld/Overturned decision",
                heading,
                index,
            )
        )
    if PARTIAL_HINT.search(text, heading[0], heading[1]):
        _imr_partial(text, floor, block, parsed, index)
    elif lines >= HEADING_MAX_LINES:
        parsed.notes.append(
            Note(
                FlagCode.LONG_HEADING,
                "warning",
                f"item heading spans {lines}+ lines; it may include rationale text",
                heading,
                index,
            )
        )
    return block


def _imr_partial(text: str, floor: int, block: ItemBlock, parsed: Parsed, index: int) -> None:
    """Split "X was the original request. Y was authorized ... Z is:" into its parts."""
    colon = block.heading[1]
    original = None
    for m in ORIGINAL.finditer(text, max(floor, block.heading[0] - 2000), colon):
        original = m
    if original is None:
        parsed.notes.append(
            Note(
                FlagCode.PARTIAL_UNPARSED,
                "warning",
                "partial-authorisation heading without 'was the original request'",
                block.heading,
                index,
            )
        )
        return
    start, _ = _walk_back(text, _line_start(text, original.start(), floor), floor, PARTIAL_MAX_LINES)
    x = _trim(text, start, original.start())
    rest = original.end()
    y = None
    for pattern in (AUTHORIZED_BY, CA_AUTHORIZED):
        ym = pattern.match(text, rest, colon)
        if ym:
            y, rest = _trim(text, ym.start("y"), ym.end("y")), ym.end()
            break
    zm = REMAINING.match(text, rest, colon)
    if not zm or y is None:
        parsed.notes.append(
            Note(
                FlagCode.PARTIAL_UNPARSED,
                "warning",
                "partial-authorisation wording not recognised; heading kept whole",
                (start, colon),
                index,
            )
        )
        block.block_start = min(block.block_start, start)
        return
    block.block_start = start
    block.original_request = x
    block.authorized = y
    block.heading = _trim(text, zm.start("z"), zm.end("z"))


# --------------------------------------------------------------------------- maximus-2015


def _sections(marks: dict[str, re.Match[str] | None], stop: int) -> dict[str, Span]:
    """Each found label's section: from its end to the next label (of any kind) or ``stop``.

    Sections may come in any order; a section never runs over another label, so every span
    is ordered whatever the order of the labels.
    """
    found = sorted((m.start(), m.end(), name) for name, m in marks.items() if m is not None)
    spans = {}
    for index, (_, end, name) in enumerate(found):
        nxt = found[index + 1][0] if index + 1 < len(found) else stop
        spans[name] = (end, max(end, nxt))
    return spans


def _parse_maximus(text: str, section: re.Match[str], parsed: Parsed) -> None:
    heads = list(MAXIMUS_ITEM.finditer(text, section.end()))
    # The numbered summary states each decision: "... the requested X is not medically necessary".
    summary = {
        collapse(m.group("item")).lower(): (
            "upheld" if "not" in m.group("polarity").lower() else "overturned",
            (m.start("polarity"), m.end()),
        )
        for m in MAXIMUS_SUMMARY.finditer(text, 0, section.start())
    }
    for index, head in enumerate(heads):
        stop = heads[index + 1].start() if index + 1 < len(heads) else _letter_end(text, head.end())
        block = ItemBlock(
            block_start=head.start(),
            heading=_trim(text, head.start("item"), head.end("item")),
            decision=None,
            decision_inferred=True,
        )
        sections = _sections(
            {
                "ca": MAXIMUS_CA.search(text, head.end(), stop),
                "mx": MAXIMUS_MX.search(text, head.end(), stop),
                "rationale": MAXIMUS_DR.search(text, head.end(), stop),
            },
            stop,
        )
        for name, (start, end) in sections.items():
            setattr(block, name, _trim(text, start, end))
        if "rationale" not in sections:
            parsed.notes.append(
                Note(
                    FlagCode.MISSING_SECTION,
                    "warning",
                    f"item {index + 1} has no rationale label",
                    block.heading,
                    index,
                )
            )
        name = collapse(text[block.heading[0] : block.heading[1]]).lower()
        if summary and name in summary:
            block.decision, block.decision_span = summary[name]
        parsed.items.append(block)


# --------------------------------------------------------------------------- mpr-2013


def _parse_mpr(text: str, issue: re.Match[str], parsed: Parsed) -> None:
    marks = {
        name: pattern.search(text, issue.end())
        for name, pattern in (
            ("summary", MPR_SUMMARY),
            ("documents", MPR_DOCS),
            ("mx", MPR_GUIDELINES),
            ("rationale", MPR_RATIONALE),
            ("qualifications", MPR_QUALIFICATIONS),
        )
    }
    next_start = min((m.start() for m in marks.values() if m), default=len(text))
    heading = _trim(text, issue.end(), next_start)
    # A multi-line issue block may number its items; otherwise it is one item.
    block = ItemBlock(block_start=issue.start(), heading=heading, decision=None, decision_inferred=True)
    sections = _sections(marks, len(text))
    for name in ("mx", "rationale"):
        if name in sections:
            setattr(block, name, _trim(text, *sections[name]))
    parsed.items.append(block)
