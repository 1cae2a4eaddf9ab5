"""Text normalisation that remembers where every character came from.

The verifier compares strings after folding away what PDF extraction and retyping change
(whitespace and line ends, hyphenation across lines, curly quotes, page furniture), but it
must report offsets into the *original* text. :class:`Folded` keeps, for each folded
character, the index of the original character it came from. Everything here is a single
linear pass (regex scans), so a 3 MB letter costs milliseconds per megabyte, not seconds.
"""

from __future__ import annotations

import bisect
import re
from array import array
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

#: Page furniture: running headers/footers that sit next to a page break inside a paragraph.
#: One line ("- 3 -", "Page 2 of 5", "CM16-0230651"). Linear by construction: the page-number
#: part never crosses a line end (a ``\s*`` there let every line of a long blank run rescan the
#: run), and every alternative starts with a non-blank, so no two blank runs compete.
FURNITURE_LINE = re.compile(
    r"^[ \t\f]*(?:Page\s+\d+\s+(?:of|/)\s+\d+|CM\d{2}-\d{7}|(?:-[ \t]*)?\d{1,3}(?:[ \t]*-)?)[ \t]*\r?$",
    re.MULTILINE | re.IGNORECASE,
)
#: A furniture line that is furniture anywhere, not only next to a page break.
PAGE_N_OF = re.compile(r"page\s+\d+\s+(?:of|/)", re.IGNORECASE)
#: How far from a form feed a line may be and still count as page furniture.
FURNITURE_REACH = 200

_WS = re.compile(r"\s+")
_FORM_FEED = re.compile("\f")


def collapse(text: str) -> str:
    """Whitespace runs to one space, glyph twins to ASCII, stripped: how headings are reported."""
    return _WS.sub(" ", text.translate(GLYPHS)).strip()


def furniture_spans(text: str) -> list[tuple[int, int]]:
    """Spans of page-furniture lines near page breaks (or everywhere, for 'Page N of M').

    Linear: page breaks are looked up by bisection and the text's first and last non-blank
    offsets are computed once, so no match copies or rescans the text around it.
    """
    breaks = [m.start() for m in _FORM_FEED.finditer(text)]
    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    spans = []
    for m in FURNITURE_LINE.finditer(text):
        lo, hi = max(0, m.start() - FURNITURE_REACH), m.end() + FURNITURE_REACH
        at = bisect.bisect_left(breaks, lo)
        near_break = at < len(breaks) and breaks[at] < hi
        at_edge = m.end() >= last or m.start() <= first
        if near_break or at_edge or PAGE_N_OF.search(text, m.start(), m.end()):
            spans.append((m.start(), m.end()))
    return spans


@dataclass(frozen=True)
class Folded:
    """A folded copy of a text plus, per folded character, its index in the original."""

    text: str
    origin: array

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original half-open span covering folded characters ``[start, end)``."""
        return self.origin[start], self.origin[end - 1] + 1


def fold(text: str, *, drop_furniture: bool = False) -> Folded:
    """Casefold, ASCII-fy glyphs, drop whitespace and hyphen marks (and page furniture)."""
    source = text
    if drop_furniture:
        pieces, last = [], 0
        for start, end in furniture_spans(text):
            pieces.append(text[last:start])
            pieces.append(" " * (end - start))
            last = end
        pieces.append(text[last:])
        source = "".join(pieces)
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


def sentences(text: str, start: int, end: int) -> tuple[tuple[int, int], ...]:
    """Sentence spans inside ``text[start:end]`` (offsets into ``text``), whitespace-trimmed.

    A period inside an open double quote (straight or curly) does not end the sentence. The
    quote counts are carried forward from one candidate end to the next, never recounted from
    the sentence start, so a quote left open over thousands of sentences stays linear. Not
    cached: callers that need one rationale's sentences several times compute them once (a
    cache keyed by whole letters held hundreds of megabytes).
    """
    spans: list[tuple[int, int]] = []
    cursor = counted = start
    straight = opened = closed = 0
    for m in _SENTENCE_END.finditer(text, start, end):
        stop = m.end()
        if _ABBREVIATIONS.search(text[max(cursor, stop - 8) : stop]):  # an 8-character window
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
