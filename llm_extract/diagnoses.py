"""Diagnoses the case summary states ("Diagnoses included lumbar radiculopathy, ...", "diagnosed with
...", "the current diagnosis is documented as ..."), each grounded in the letter, with body regions.

Only the case summary is read (from its title to the first item heading): rationales quote
guidelines about diagnoses in general, not this patient's. A statement's list runs to the end of its
sentence (at most :data:`MAX_LIST_CHARS`) and is split on semicolons, else on commas and a final
"and"; ICD-10 descriptors keep their own commas ("strain of muscle, fascia and tendon at neck level,
subsequent encounter" is one diagnosis).
"""

from __future__ import annotations

import re

from .fields import CASE_SUMMARY
from .ingest import Letter
from .schema import Determination, Diagnosis, Grounding

#: Where the summary ends when no item heading bounds it (a letter whose items were not found).
MAX_SUMMARY_CHARS = 20_000
#: A diagnosis list longer than this is not a list but a paragraph the sentence splitter missed.
MAX_LIST_CHARS = 700
#: Phrases shorter than this ("pain") or longer than that are not diagnoses we can stand behind.
MIN_DIAGNOSIS_CHARS = 4
MAX_DIAGNOSIS_CHARS = 200

_W = r"[\s\ufffe]+"
TRIGGER = re.compile(
    rf"\bdiagnos(?:is|es)(?:,?{_W}and-or{_W}impressions,?)?{_W}"
    rf"(?:(?:is|are|was|were|include[sd]?|including|that{_W}includes?|of){_W}(?:documented{_W}|noted{_W}|listed{_W})?"
    rf"(?:as{_W}|to{_W}include{_W})?|(?:were|was){_W}noted{_W}to{_W}include{_W}?)(?::{_W}?)?"
    rf"|\bdiagnosed{_W}(?:as{_W}having|with|as){_W}"
    rf"|\b(?:being|been|was|is){_W}treated{_W}for{_W}(?:the{_W}diagnos(?:is|es){_W}of{_W})?",
    re.IGNORECASE,
)
#: The end of the statement: a full stop before a capital/digit/quote, a blank line, or a label.
SENTENCE_END = re.compile(r"\.[\"'\u201d]?(?=\s+[\"'\u201c(]?[A-Z0-9])|\.[\"'\u201d]?\s*$|\n[ \t]*\r?\n|\.\s*\f")
#: Words that continue an ICD-10 descriptor after a comma rather than start a new diagnosis.
QUALIFIER = re.compile(
    r"^(?:(?:right|left|bilateral|unspecified|other|both)(?:\s+(?:side|sided|arm|leg|hand|upper\s+arm|lower\s+leg))?"
    r"|(?:initial|subsequent)\s+encounter|sequela|(?:mid|high|upper|lower)?\s*(?:cervical|thoracic|lumbar|lumbosacral|"
    r"cervicothoracic|thoracolumbar)\s+region|(?:fascia|tendon)s?\b.*|not\s+elsewhere\s+classified|nec|nos"
    r"|unspecified\s+\w+|with(?:out)?\s+.*|level\s+.*)$",
    re.IGNORECASE,
)
_LATERALITY = re.compile(r"\b(right|left|bilateral|both)\b(?:\s+and\s+(right|left)\b)?", re.IGNORECASE)
_LEAD = re.compile(r"(?:and|or|of|the|a|an|as|include[sd]?|including|is|are)\s+", re.IGNORECASE)
_FILLER = re.compile(r"\b(?:and|or|of|the|right|left|bilateral|both|sided?)\b|[^\w]+", re.IGNORECASE)
_LATERAL_WORDS = ("right", "left", "bilateral", "both")


def _summary_bounds(letter: Letter, result: Determination) -> tuple[int, int]:
    text = letter.text
    title = CASE_SUMMARY.search(text)
    start = title.end() if title else 0
    headings = [i.heading.start for i in result.items if i.heading is not None and i.heading.start > start]
    end = min(headings) if headings else min(len(text), start + MAX_SUMMARY_CHARS)
    return start, end


def _split(raw: str) -> list[tuple[int, int]]:
    """Spans (into ``raw``) of the diagnoses of one listed statement."""
    separator = r";" if ";" in raw else r","
    pieces: list[list[int]] = []
    for m in re.finditer(rf"[^{separator}]+", raw):
        s, e = m.span()
        piece = " ".join(raw[s:e].replace("\ufffe", "-").split())
        piece = _LEAD.sub("", piece, count=1) if piece.lower().startswith("and ") else piece
        if pieces and (QUALIFIER.match(piece) or _only_regions(piece)):
            pieces[-1][1] = e  # an ICD-10 qualifier or a region list continues the previous diagnosis
        else:
            pieces.append([s, e])
    if separator == "," and pieces:  # "X, Y and Z": the last piece may hold two
        last = pieces[-1]
        inner = raw[last[0] : last[1]]
        conj = list(re.finditer(r"\s+and\s+", inner))
        if conj:
            m = conj[-1]
            left, right = inner[: m.start()].split(), inner[m.end() :].split()
            tail = " ".join(right)
            if (
                len(left) >= 2
                and len(right) >= 2
                and left[-1].lower() not in _LATERAL_WORDS
                and not left[-1].endswith(",")
                and not QUALIFIER.match(tail)
            ):
                pieces[-1:] = [[last[0], last[0] + m.start()], [last[0] + m.end(), last[1]]]
    spans = []
    for s, e in pieces:
        while s < e and (raw[s].isspace() or raw[s] in "\"'\u201c:"):
            s += 1
        lead = _LEAD.match(raw, s, e)
        while lead:
            s = lead.end()
            lead = _LEAD.match(raw, s, e)
        while e > s and (raw[e - 1].isspace() or raw[e - 1] in ".,;:\"'\u201d"):
            e -= 1
        if MIN_DIAGNOSIS_CHARS <= e - s <= MAX_DIAGNOSIS_CHARS:
            spans.append((s, e))
    return spans


def _only_regions(piece: str) -> bool:
    """True for a fragment that only names body regions ("scalp and neck", "shoulder")."""
    from .classify import body_regions

    found = body_regions(piece)
    if not found:
        return False
    rest = piece
    for _, _, start, end in reversed(found):
        rest = rest[:start] + " " + rest[end:]
    return not _FILLER.sub("", rest).strip()


def regions_of(phrase: str) -> list[str]:
    """Body regions a diagnosis names, with laterality ("right knee", "bilateral shoulder")."""
    from .classify import body_regions

    found = body_regions(phrase)
    specific_spine = any(spine and name != "spine" for name, spine, _, _ in found)
    out: list[str] = []
    for name, _, start, _ in found:
        if name == "spine" and specific_spine:
            continue
        side = None
        for m in _LATERALITY.finditer(phrase, max(0, start - 30), start):
            side = "bilateral" if m.group(2) or m.group(1).lower() in ("bilateral", "both") else m.group(1).lower()
        label = f"{side} {name}" if side and not name.endswith("spine") else name
        if label not in out:
            out.append(label)
    return out


def find_diagnoses(letter: Letter, result: Determination) -> tuple[list[Diagnosis], list[Grounding]]:
    """The case summary's diagnoses and, for each, where the letter states it."""
    from .classify import clean

    text = letter.text
    start, end = _summary_bounds(letter, result)
    diagnoses: list[Diagnosis] = []
    grounds: list[Grounding] = []
    seen: set[str] = set()
    for trigger in TRIGGER.finditer(text, start, end):
        stop_match = SENTENCE_END.search(text, trigger.end(), min(end, trigger.end() + MAX_LIST_CHARS))
        if stop_match is None:
            continue
        raw = text[trigger.end() : stop_match.start()]
        for s, e in _split(raw):
            a, b = trigger.end() + s, trigger.end() + e
            name, _ = clean(text[a:b])
            key = name.lower()
            if key in seen:
                continue
            seen.add(key)
            diagnoses.append(Diagnosis(name=name, body_regions=regions_of(name)))
            grounds.append(
                Grounding(text=text[a:b], start=a, end=b, page=letter.page_of(a), match="exact", score=100.0)
            )
    return diagnoses, grounds
