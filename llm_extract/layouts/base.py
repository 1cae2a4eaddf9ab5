"""What every layout family shares: the parse it fills, and the line helpers it segments with.

A family finds *where* things are, as offsets into the letter; it never rewrites the text. It
reads a copy of the letter in which page furniture (running headers and footers, page numbers:
:func:`llm_extract.normalize.furniture_spans`) is blanked to spaces, character for character, so
every offset it finds indexes the original letter too, and no furniture line can be read as part of
an item's name or cut a section short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..fields import LetterFields
from ..normalize import FURNITURE_LINE, SENTENCE_END
from ..schema import FlagCode, Severity

Span = tuple[int, int]

_F = re.IGNORECASE
#: A wrapped item heading spans at most this many lines before we call it a layout surprise.
HEADING_MAX_LINES = 4
#: A line that introduces what follows ("... set forth below:"): never part of a heading under it.
LINE_INTRODUCES = re.compile(r"\b(?:below|follows?|following)[ \t\u00a0]*:[\s\u00a0]*\Z", _F)
#: A line that ends like a rationale's conclusion ("... is not medically necessary", its full stop
#: lost): the end of the item above, never a line of the heading below.
CONCLUDES = re.compile(r"\bnecessary[\s\u00a0]*\Z", _F)
_LOWER = re.compile(r"[a-z]")
CASE_NUMBER = re.compile(r"\bCM\d{2}-\d{7}\b", _F)
_UPPER_WORDS = re.compile(r"[A-Z]{2,}\W+[A-Z]{2,}")
#: Where the last rationale of a letter ends when other text follows it: the signature block and
#: what comes after the decisions in every family.
TRAILER = re.compile(
    r"(?m)^[ \t]*(?:The\s+(?:Expert|physician)\s+Reviewer\s+is\s|MEDICAL\s+REVIEWER\s+QUALIFICATIONS|"
    r"cc:|/s/|Sincerely|Effect\s+of\s+the\s+Decision)",
    _F,
)
#: The section kinds an item can have, in the order letters give them.
SECTION_KINDS = ("ca", "mx", "rationale")
SECTION_NAMES = {"ca": "claims administrator guideline", "mx": "MAXIMUS guideline", "rationale": "decision rationale"}
#: The :class:`~llm_extract.schema.Item` field each section kind fills (``Item.sections`` keys).
SECTION_FIELDS = {"ca": "claims_administrator_guideline", "mx": "maximus_guideline", "rationale": "rationale"}


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
    """One disputed item as the layout lays it out: offsets only."""

    block_start: int
    heading: Span
    decision: str | None
    decision_span: Span | None = None
    #: The layout states no decision word for this item: it is read from the summary or the conclusion.
    decision_inferred: bool = False
    original_request: Span | None = None
    authorized: Span | None = None
    ca: Span | None = None
    mx: Span | None = None
    rationale: Span | None = None
    #: Section kind (``ca``, ``mx``, ``rationale``) -> the span of the label that opens it.
    labels: dict[str, Span] = field(default_factory=dict)


@dataclass
class Parsed:
    """A letter segmented by its layout family: every span indexes the letter's text."""

    layout: str
    #: Header, reviewer and patient values with their spans (:mod:`llm_extract.fields`).
    fields: LetterFields = field(default_factory=LetterFields)
    items: list[ItemBlock] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: The title of the decisions section the family was recognised by (None when read by its items).
    section: Span | None = None
    #: Page furniture blanked before segmenting (running headers and footers, page numbers).
    furniture: list[Span] = field(default_factory=list)

    def label(self, item: int, kind: str) -> Span | None:
        """Where item ``item``'s section ``kind`` (``ca``, ``mx``, ``rationale``) is labelled."""
        return self.items[item].labels.get(kind) if 0 <= item < len(self.items) else None


def check_spans(parsed: Parsed) -> None:
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


# --------------------------------------------------------------------------- line helpers


def line_start(text: str, pos: int, floor: int) -> int:
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


def line_end(text: str, pos: int, limit: int) -> int:
    """End of the line holding ``pos`` (before its CR, LF or form feed), not after ``limit``."""
    best = limit
    for sep in ("\n", "\r", "\f"):
        i = text.find(sep, pos, best)
        if i != -1:
            best = i
    return best


def walk_back(text: str, start_of_line: int, floor: int, max_lines: int) -> tuple[int, int]:
    """Extend a heading upwards over wrapped lines; stop at a sentence end (or a conclusion that
    lost its full stop), a line introducing what follows ("... set forth below:"), a title in
    capitals over a mixed-case heading, or page furniture.

    Blank lines are stepped over, not stopped at: double-spaced letters put one between every
    line, wrapped headings included. Returns the heading's start and its number of lines.
    """
    start, lines = start_of_line, 1
    cursor = start
    cased = _LOWER.search(text, start_of_line, line_end(text, start_of_line, len(text))) is not None
    while cursor > floor and lines < max_lines:
        prev_end = cursor
        while prev_end > floor and text[prev_end - 1] in "\r\n\f":
            prev_end -= 1
        if prev_end <= floor:
            break
        prev_start = line_start(text, prev_end, floor)
        line = text[prev_start:prev_end]
        cursor = prev_start
        if not line.strip() or not line.strip("\u00a0 \t"):
            continue
        if SENTENCE_END.search(line) or CONCLUDES.search(line) or LINE_INTRODUCES.search(line) or FURNITURE_LINE.match(line):
            break
        if CASE_NUMBER.search(line):
            break  # the letter's case number: a page header, never part of an item's name
        if cased and not _LOWER.search(line) and _UPPER_WORDS.search(line):
            break  # a section title in capitals above a heading in mixed case
        start, lines = prev_start, lines + 1
    return start, lines


def before_furniture(text: str, pos: int, floor: int) -> int:
    """Move ``pos`` back over whitespace and page-furniture lines (a footer between heading and label)."""
    while True:
        end = pos
        while end > floor and text[end - 1].isspace():
            end -= 1
        start = line_start(text, end, floor)
        if end > start and FURNITURE_LINE.match(text[start:end]):
            pos = start
            continue
        return pos


def trim(text: str, start: int, end: int) -> Span:
    """``(start, end)`` without the whitespace (and non-breaking spaces) at either end."""
    while start < end and (text[start].isspace() or text[start] == "\u00a0"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] == "\u00a0"):
        end -= 1
    return start, end


def letter_end(text: str, start: int) -> int:
    """Where the last item's text stops: before any signature block (``text`` is furniture-blanked)."""
    trailer = TRAILER.search(text, start)
    return trailer.start() if trailer else len(text)


def sections_between(marks: dict[str, re.Match[str] | None], stop: int) -> dict[str, tuple[Span, Span]]:
    """Each found label's (label span, section span): from its end to the next label of any kind or ``stop``.

    Sections may come in any order; a section never runs over another label, so every span is
    ordered whatever the order of the labels.
    """
    found = sorted((m.start(), m.end(), name) for name, m in marks.items() if m is not None)
    spans = {}
    for index, (start, end, name) in enumerate(found):
        nxt = found[index + 1][0] if index + 1 < len(found) else stop
        spans[name] = ((start, end), (end, max(end, nxt)))
    return spans
