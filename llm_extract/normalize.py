"""Text normalisation that remembers where every character came from.

The verifier compares strings after folding away what PDF extraction and retyping change
(whitespace and line ends, hyphenation across lines, curly quotes, page furniture), but it
must report offsets into the *original* text. :class:`Folded` keeps, for each folded
character, the index of the original character it came from. Everything here is a single
linear pass (regex scans), so a 3 MB letter costs milliseconds per megabyte, not seconds.
"""

from __future__ import annotations

import bisect
import math
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

#: Glyphs that retyping or extraction swap for their ASCII twins.
GLYPHS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u00a0": " ",
        "\u2007": " ",
        "\u202f": " ",
        "\ufffe": "-",
        "\u00ad": "-",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
    }
)

#: Runs of characters the folded form keeps: all but whitespace and hyphen-like marks (a word
#: hyphenated across lines and the same word unbroken must fold alike).
_KEPT = re.compile(r"[^\s\-\u00a0\u2007\u202f\ufffe\u00ad\u2010-\u2014]+")

#: Page furniture by its known shapes: a line that sits next to a page break inside a paragraph.
#: One line ("- 3 -", "Page 2 of 5", "CM16-0230651", "CM14-0198765 - Independent Medical Review -
#: Final Determination Letter"). Linear by construction: the page-number part never crosses a line
#: end (a ``\s*`` there let every line of a long blank run rescan the run), the case number's title
#: is bounded, and every alternative starts with a non-blank, so no two blank runs compete.
FURNITURE_LINE = re.compile(
    r"^[ \t\f]*(?:Page\s+\d+\s+(?:of|/)\s+\d+|CM\d{2}-\d{7}(?:[ \t]+-[ \t]+[^\r\n\f]{1,100}?)?"
    r"|(?:-[ \t]*)?\d{1,3}(?:[ \t]*-)?)[ \t]*\r?$",
    re.MULTILINE | re.IGNORECASE,
)
#: A furniture line that is furniture anywhere, not only next to a page break.
PAGE_N_OF = re.compile(r"page\s+\d+\s+(?:of|/)", re.IGNORECASE)
#: A page-number line (a stripped line, matched whole): where a page ends or starts in text whose
#: pages are not separated by form feeds. No leading blank run: searched, it would rescan one per space.
PAGE_NUMBER_LINE = re.compile(r"Page[ \t]+\d{1,4}(?:[ \t]+(?:of|/)[ \t]+\d{1,4})?|-[ \t]*\d{1,4}[ \t]*-", re.I)
#: How far from a form feed a line may be and still count as page furniture.
FURNITURE_REACH = 200
#: Running headers and footers found by repetition: a line longer than this is prose, never one.
RUNNING_MAX_CHARS = 120
#: Non-blank lines at the top and at the bottom of each page that may be running headers/footers.
RUNNING_EDGE_LINES = 3
#: A running line stands at a page edge on at least this many distinct pages ...
RUNNING_MIN_PAGES = 2
#: ... and on at least this share of the letter's distinct pages (a line at the top of two of ten
#: pages is a coincidence of content, not a running header).
RUNNING_MIN_SHARE = 0.5

_WS = re.compile(r"\s+")
_FORM_FEED = re.compile("\f")
_LINE = re.compile(r"[^\r\n\f]+")
_UPPER = re.compile(r"[A-Z]")
_DIGITS = re.compile(r"\d+")
#: A line that ends mid-sentence, and one that continues a sentence: a repeated line between two
#: such lines interrupts a paragraph, as only page furniture does (text without form feeds).
_RUNS_ON = re.compile(r"[a-z,;]\Z")
_CONTINUES = re.compile(r"[a-z]")
#: Text that ends with a finished sentence (a line that cannot run on into a heading below it, nor
#: be a running header; a rationale that was not cut short: the truncation check of ``rules``).
SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s*\Z")

Span2 = tuple[int, int]


def collapse(text: str) -> str:
    """Whitespace runs to one space, glyph twins to ASCII, stripped: how headings are reported."""
    return _WS.sub(" ", text.translate(GLYPHS)).strip()


def furniture_spans(text: str, protect: re.Pattern[str] | None = None) -> list[Span2]:
    """Spans of page furniture: known shapes near page breaks (or anywhere, for 'Page N of M'),
    and running headers and footers found by what repeats at page boundaries (:func:`running_lines`).

    ``protect`` matches lines that are never furniture (a layout's section labels, decision words).
    Sorted, non-overlapping, each a whole line without its line end. Linear in the text.
    """
    spans = set(_known_furniture(text)) | set(running_lines(text, protect))
    return sorted(spans)


def _known_furniture(text: str) -> list[Span2]:
    """Lines of the known furniture shapes next to a page break or the text's edges.

    Linear: page breaks are looked up by bisection and the text's first and last non-blank
    offsets are computed once, so no match copies or rescans the text around it.
    """
    breaks = [m.start() for m in _FORM_FEED.finditer(text)]
    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    found: list[Span2] = []
    known: list[bool] = []
    for m in FURNITURE_LINE.finditer(text):
        lo, hi = max(0, m.start() - FURNITURE_REACH), m.end() + FURNITURE_REACH
        at = bisect.bisect_left(breaks, lo)
        near_break = at < len(breaks) and breaks[at] < hi
        at_edge = m.end() >= last or m.start() <= first
        start, end = m.span()
        while start < end and text[start] in " \t\f":
            start += 1
        while end > start and text[end - 1] in " \t\r":
            end -= 1
        if end > start:
            found.append((start, end))
            known.append(bool(near_break or at_edge or PAGE_N_OF.search(text, m.start(), m.end())))
    # A furniture-shaped line right next to furniture (only blank space between) is part of the
    # same block: "CM14-... - Final Determination Letter" over a last page's "Page 3 of 3".
    for order in (range(1, len(found)), range(len(found) - 2, -1, -1)):
        for index in order:
            other = index - 1 if order.step == 1 else index + 1
            if not known[index] and known[other]:
                lo, hi = sorted((found[index], found[other]))
                known[index] = not text[lo[1] : hi[0]].strip()
    return [span for span, keep in zip(found, known) if keep]


@dataclass
class _Line:
    start: int
    end: int
    #: The repetition key; None for a line too long to be furniture, or protected.
    key: str | None
    #: What the line reads as next to another line (its key, or its text's hash when it has none).
    context: object
    page: int = 0


def _lines(text: str, protect: re.Pattern[str] | None) -> list[_Line]:
    """The non-blank lines of ``text`` (stripped spans), each with its repetition key: whitespace
    collapsed, case folded, every number read as '#' ("Page 2 of 5" and "Page 3 of 5" repeat).

    A line that starts in lower case (in a text that has capitals at all) continues a sentence
    ("necessary." ending two pages is the end of two conclusions, not a footer), so it has no key:
    it is never furniture.
    """
    lines = []
    cased = _UPPER.search(text) is not None
    for m in _LINE.finditer(text):
        start, end = m.span()
        while start < end and text[start] in " \t\u00a0":
            start += 1
        while end > start and text[end - 1] in " \t\u00a0":
            end -= 1
        if start == end:
            continue
        key = None
        line = text[start:end]
        continues = cased and line[0].islower()
        if end - start <= RUNNING_MAX_CHARS and not continues and (protect is None or not protect.search(line)):
            key = _DIGITS.sub("#", collapse(line).casefold())
        lines.append(_Line(start, end, key, key if key is not None else hash(line)))
    return lines


def running_lines(text: str, protect: re.Pattern[str] | None = None) -> list[Span2]:
    """Running headers and footers: lines that repeat at page boundaries and nowhere else.

    Pages are split at form feeds; in text without them, at page-number lines ("Page 2 of 5",
    "- 3 -"), else at repeated lines that interrupt a sentence (the line before runs on, the line
    after continues in lower case). A line is furniture when its key (see :func:`_lines`):

    - stands among the first or last :data:`RUNNING_EDGE_LINES` non-blank lines of at least
      :data:`RUNNING_MIN_PAGES` distinct pages and :data:`RUNNING_MIN_SHARE` of them, and never
      elsewhere (identical pages count once: a page printed twice is content, not a header);
    - and its block (the run of such lines it belongs to) is surrounded by different text at two
      places at least, before and after (a paragraph repeated word for word at two page tops has
      the same text after it each time; a running header has the page's own text).

    One pass over the lines plus dictionary counts: linear.
    """
    lines = _lines(text, protect)
    if len(lines) < 2:
        return []
    boundaries = _boundaries(text, lines)
    if not boundaries:
        return []
    bounds = [0, *boundaries, len(text)]
    page_ids: list[int] = []
    seen: dict[int, int] = {}
    for number in range(len(bounds) - 1):
        body = hash(text[bounds[number] : bounds[number + 1]].strip())
        page_ids.append(seen.setdefault(body, number))
    pages: list[list[int]] = [[] for _ in page_ids]
    at = 0
    for index, line in enumerate(lines):
        while at + 1 < len(pages) and line.start >= bounds[at + 1]:
            at += 1
        line.page = at
        pages[at].append(index)
    edge: set[int] = set()
    for members in pages:
        edge.update(members[:RUNNING_EDGE_LINES])
        edge.update(members[-RUNNING_EDGE_LINES:])
    on_pages: dict[str, set[int]] = {}
    elsewhere: set[str] = set(_completions(text, lines))
    for index, line in enumerate(lines):
        if line.key is None:
            continue
        if index in edge:
            on_pages.setdefault(line.key, set()).add(page_ids[line.page])
        else:
            elsewhere.add(line.key)
    needed = max(RUNNING_MIN_PAGES, math.ceil(RUNNING_MIN_SHARE * len(set(page_ids))))
    candidates = {key for key, found in on_pages.items() if len(found) >= needed and key not in elsewhere}
    if not candidates:
        return []
    chosen = [index in edge and lines[index].key in candidates for index in range(len(lines))]
    running = _varied(lines, chosen)
    return [(line.start, line.end) for index, line in enumerate(lines) if chosen[index] and line.key in running]


def _completions(text: str, lines: list[_Line]) -> list[str]:
    """Keys of lines that finish the sentence the line before them broke off.

    In text with capitals a continuation starts in lower case and so has no key (:func:`_lines`);
    in text without any (a letter a tool lower-cased) "necessary." finishing two conclusions at
    page edges repeats like a footer. It is content wherever the line before it (past any
    page-number line) runs on and it ends the sentence itself.
    """
    if _UPPER.search(text) is not None:
        return []
    found = []
    last: _Line | None = None
    for line in lines:
        if (
            last is not None
            and line.key is not None
            and _RUNS_ON.search(text, last.start, last.end)
            and SENTENCE_END.search(text, line.start, line.end)
        ):
            found.append(line.key)
        if not PAGE_NUMBER_LINE.fullmatch(text, line.start, line.end):
            last = line
    return found


def _varied(lines: list[_Line], chosen: list[bool]) -> set[str]:
    """Keys of the chosen lines whose blocks (runs of chosen lines) have at least two different
    texts before them and two different texts after them over the letter."""
    before: dict[str, set[object]] = {}
    after: dict[str, set[object]] = {}
    index = 0
    while index < len(lines):
        if not chosen[index]:
            index += 1
            continue
        end = index
        while end + 1 < len(lines) and chosen[end + 1]:
            end += 1
        ahead = lines[index - 1].context if index > 0 else None
        behind = lines[end + 1].context if end + 1 < len(lines) else None
        for member in range(index, end + 1):
            key = lines[member].key
            assert key is not None
            before.setdefault(key, set()).add(ahead)
            after.setdefault(key, set()).add(behind)
        index = end + 1
    return {key for key in before if len(before[key]) >= RUNNING_MIN_PAGES and len(after[key]) >= RUNNING_MIN_PAGES}


def _boundaries(text: str, lines: list[_Line]) -> list[int]:
    """Page starts after the first page: form feeds, else page-number lines, else interruptions."""
    breaks = [m.end() for m in _FORM_FEED.finditer(text)]
    if breaks:
        return breaks
    numbered: list[int] = []
    last = -RUNNING_EDGE_LINES - 1
    for index, line in enumerate(lines):
        if PAGE_NUMBER_LINE.fullmatch(text, line.start, line.end):
            if index - last > RUNNING_EDGE_LINES:  # page numbers a few lines apart mark one page break
                numbered.append(line.end)
            last = index
    if numbered:
        return numbered
    counts: dict[str, int] = {}
    for line in lines:
        if line.key is not None:
            counts[line.key] = counts.get(line.key, 0) + 1
    interrupting = [False] * len(lines)
    for index in range(1, len(lines) - 1):
        line = lines[index]
        if line.key is None or counts[line.key] < RUNNING_MIN_PAGES:
            continue
        before, after = lines[index - 1], lines[index + 1]
        interrupting[index] = bool(
            _RUNS_ON.search(text, before.start, before.end) and _CONTINUES.match(text, after.start)
        )
    keys = _varied(lines, interrupting)
    return [line.start for line in lines if line.key in keys]


@dataclass(frozen=True)
class Folded:
    """A folded copy of a text plus, per folded character, its index in the original."""

    text: str
    origin: array

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original half-open span covering folded characters ``[start, end)``."""
        return self.origin[start], self.origin[end - 1] + 1


def blank(text: str, spans: Sequence[Span2]) -> str:
    """``text`` with every span (sorted, non-overlapping) replaced by as many spaces: same length,
    same offsets, so what is found in the copy indexes the original."""
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        pieces.append(" " * (end - start))
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def fold(text: str, *, furniture: Sequence[Span2] = ()) -> Folded:
    """Casefold, ASCII-fy glyphs, drop whitespace and hyphen marks (and the ``furniture`` spans)."""
    source = blank(text, furniture)
    out: list[str] = []
    origin = array("l")
    for m in _KEPT.finditer(source):
        run = m.group(0)
        folded = run.translate(GLYPHS).lower()
        if len(folded) == len(run):
            out.append(folded)
            origin.extend(range(m.start(), m.end()))
        else:  # a glyph expanded ("…" -> "...") or a case mapping changed length
            for offset, ch in enumerate(run):
                piece = ch.translate(GLYPHS).lower()
                out.append(piece)
                origin.extend([m.start() + offset] * len(piece))
    return Folded("".join(out), origin)


def fold_needle(text: str) -> str:
    """The folded form of a quote (no offsets needed)."""
    return "".join(m.group(0).translate(GLYPHS).lower() for m in _KEPT.finditer(text))


_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c(\[]?[A-Z0-9])")
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:e\.g|i\.e|Dr|Mr|Mrs|Ms|vs|No|pg|pp|approx|etc|Inc|St|mg|ml|cm|mm|Fig|ed|rd|U\.S|et al|al)\.$"
    r"|\b[A-Z]\.$)"
)
#: Text with no capital letter at all (a letter a tool lower-cased, see ``_UPPER``): a sentence may
#: start in lower case, and abbreviations are matched in any case.
_SENTENCE_END_LOWER = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c(\[]?[a-z0-9])")
_ABBREVIATIONS_LOWER = re.compile(
    r"\b(?:e\.g|i\.e|dr|mr|mrs|ms|vs|no|pg|pp|approx|etc|inc|st|mg|ml|cm|mm|fig|ed|rd|u\.s|et al|al)\.$"
)


def sentences(text: str, start: int, end: int) -> tuple[tuple[int, int], ...]:
    """Sentence spans inside ``text[start:end]`` (offsets into ``text``), whitespace-trimmed.

    A sentence starts with a capital or a digit, or, in text with no capital letter at all (a
    letter a tool lower-cased), with any letter. A period inside an open double quote (straight
    or curly) does not end the sentence. The
    quote counts are carried forward from one candidate end to the next, never recounted from
    the sentence start, so a quote left open over thousands of sentences stays linear. Not
    cached: callers that need one rationale's sentences several times compute them once (a
    cache keyed by whole letters held hundreds of megabytes).
    """
    spans: list[tuple[int, int]] = []
    cursor = counted = start
    straight = opened = closed = 0
    lower = _UPPER.search(text, start, end) is None
    ends, abbreviations = (_SENTENCE_END_LOWER, _ABBREVIATIONS_LOWER) if lower else (_SENTENCE_END, _ABBREVIATIONS)
    for m in ends.finditer(text, start, end):
        stop = m.end()
        if abbreviations.search(text[max(cursor, stop - 8) : stop]):  # an 8-character window
            continue
        straight += text.count('"', counted, stop)
        opened += text.count("\u201c", counted, stop)
        closed += text.count("\u201d", counted, stop)
        counted = stop
        if straight % 2 == 1 or opened > closed:
            continue  # a period inside a quoted request does not end the sentence
        spans.append((cursor, stop))
        cursor = stop
        straight = opened = closed = 0
    spans.append((cursor, end))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return tuple(trimmed)
