"""Guideline citations: from a guideline section's text to :class:`~llm_extract.schema.Citation` objects.

Two grammars cover the known layouts:

- "Decision based on MTUS <title> <year>, Section(s): <topic>[, and <title> <year> ...]." and
  "Decision based on Non-MTUS Citation <ODG / ACOEM / other text>." (imr-issues letters);
- prose ("... based its decision on the <title>, <topic>, pages 88-89, which is part of the
  MTUS.") in the older layouts, found by guideline names.

Each citation's ``text`` is the verbatim slice of the letter it was read from, with offsets,
so the verifier can ground it like any quote.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .normalize import collapse
from .schema import Citation

_F = re.IGNORECASE
Span = tuple[int, int]

#: MTUS guideline titles: canonical name -> the ways letters write it.
MTUS_TITLES: dict[str, str] = {
    "Chronic Pain Medical Treatment Guidelines": r"Chronic\s+Pain\s+(?:Medical\s+)?Treatment(?:\s+Guidelines)?",
    "Acupuncture Medical Treatment Guidelines": r"Acupuncture\s+(?:Medical\s+)?Treatment(?:\s+Guidelines)?",
    "Opioids Treatment Guidelines": r"Opioids?\s+Treatment(?:\s+Guidelines)?",
    "Postsurgical Treatment Guidelines": r"Post-?\s?surgical\s+Treatment(?:\s+Guidelines)?",
    "General Approaches": r"General\s+Approach(?:es)?",
    "Neck and Upper Back Complaints": r"Neck\s+(?:and|&)\s+Upper\s+Back\s+Complaints",
    "Shoulder Complaints": r"Shoulder\s+Complaints",
    "Elbow Complaints": r"Elbow\s+(?:Complaints|Disorders)",
    "Forearm, Wrist, and Hand Complaints": r"Forearm,?\s+Wrist,?\s+(?:and|&)\s+Hand\s+Complaints",
    "Low Back Complaints": r"Low\s+Back\s+Complaints",
    "Knee Complaints": r"Knee\s+Complaints",
    "Ankle and Foot Complaints": r"Ankle\s+(?:and|&)\s+Foot\s+Complaints",
    "Stress Related Conditions": r"Stress[\s\-\ufffe]+Related\s+Conditions",
}
_MTUS_ANY = re.compile("|".join(f"(?P<t{i}>{p})" for i, p in enumerate(MTUS_TITLES.values())), _F)
_MTUS_NAMES = list(MTUS_TITLES)

#: ODG chapters (body parts) as letters write them, longest first.
ODG_CHAPTERS = [
    r"Forearm,?\s+Wrist,?\s+(?:and|&)\s+Hand",
    r"Low\s+Back(?:\s*[-,\ufffe]\s*Lumbar\s+(?:and|&)\s+Thoracic)?(?:\s*\(Acute\s+(?:and|&)\s+Chronic\))?",
    r"Neck\s+(?:and|&)\s+Upper\s+Back(?:\s*\(Acute\s+(?:and|&)\s+Chronic\))?",
    r"Knee\s+(?:and|&)\s+Leg(?:\s*\(Acute\s+(?:and|&)\s+Chronic\))?",
    r"Shoulder(?:\s*\(Acute\s+(?:and|&)\s+Chronic\))?",
    r"Hips?\s+(?:and|&)\s+(?:Pelvis|Groin)",
    r"Ankle\s+(?:and|&)\s+Foot",
    r"Mental\s+Illness\s+(?:and|&)\s+Stress",
    r"Pain\s*\(Chronic\)",
    r"Carpal\s+Tunnel\s+Syndrome",
    r"Head",
    r"Elbow",
    r"Pain",
    r"Preface",
    r"Neck",
    r"Knee",
    r"Hand",
    r"Low\s+Back",
]
_ODG_CHAPTER = re.compile(r"(?:" + "|".join(ODG_CHAPTERS) + r")(?![A-Za-z])", _F)

DECISION_BASED_ON = re.compile(r"Decision\s+based\s+on\s+", _F)
NON_MTUS = re.compile(r"Non[\s\-\ufffe]*MTUS\s+(?:Citation\s*:?\s*)?", _F)
MTUS_PREFIX = re.compile(r"(?:the\s+)?MTUS\s+", _F)
#: The ODG by any of its names: its title, its abbreviation, its web edition, its publisher.
ODG_NAME = re.compile(
    r"Official\s+Disability\s+Guidelines?(?:\s*\(ODG\))?|\bODG\b|odg[\-\ufffe\s]*twc"
    r"|Work\s+Loss\s+Data\s+Institute(?:,?\s+LLC)?",
    _F,
)
#: ACOEM by any of its names: the abbreviation, the college's name, the guideline's own title
#: ("Occupational Medicine Practice Guidelines, 2nd Edition" names ACOEM without the abbreviation).
ACOEM_NAME = re.compile(
    r"(?:\bACOEM\b(?:\s+Occupational\s+Medicine\s+Practice\s+Guidelines,?(?:\s+\d\w*\s+ed(?:ition|\.)?,?)?)?"
    r"|American\s+College\s+of\s+Occupational\s+(?:and|&)\s+Environmental\s+Medicine(?:\s*\(ACOEM\))?"
    r"|Occupational\s+Medicine\s+Practice\s+Guidelines,?(?:\s+\d\w*\s+ed(?:ition|\.)?,?)?)"
    r"(?:\s+Guidelines?)?",
    _F,
)
#: Prose that says a guideline was relied on: what follows names it ("The Expert Reviewer also
#: relied on the <name>, <topic>, which is not part of the MTUS").
RELIED_ON = re.compile(
    r"\b(?:based\s+(?:its|his|her|his/her|their)\s+decision\s+on|relied\s+(?:up)?on)\s+(?:the\s+)?", _F
)
#: Where an MPR-style citation's own text ends ("<name>, <topic>, was relied upon because ..."). It
#: starts after a comma or a non-space, so a whitespace run is never rescanned from each of its spaces.
WAS_RELIED_UPON = re.compile(r"(?:,\s*|(?<![\s,])\s+)was\s+relied\s+upon\b.*\Z", _F | re.DOTALL)
#: Prose that places a guideline inside or outside the MTUS.
PART_OF_MTUS = re.compile(r"\b(?:is|are)\s+(?P<not>not\s+)?(?:a\s+)?part\s+of\s+the\s+MTUS\b", _F)
YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")
#: (``\s*(?::\s*)?`` rather than ``\s*:?\s*``: the same strings, but a whitespace run without a
#: colon is tried once, not split every possible way between two quantifiers.)
PAGES = re.compile(
    r"(?:Page\(s\)\s*(?::\s*)?(?:page\(s\)\s*)?|\bpage\(s\)\s*(?::\s*)?|\bpages?\s+|\bpgs?\.?\s*|\bpp\.?\s*)"
    r"(?P<list>\d+(?:\s*-\s*\d+)?(?:\s*(?:,|and)\s*\d+(?:\s*-\s*\d+)?)*)(?:\s+of\s+\d+)?",
    _F,
)
#: Longest parenthetical read as part of a reference ("(Effective July 18, 2009)", "(updated
#: 03/12/15)"): unbounded, every unclosed "(" rescans the rest of the section.
PAREN_MAX_CHARS = 300
SECTIONS = re.compile(r"Section\(s\)\s*:\s*", _F)
#: Regulation references that sit where a topic would ("8 C.C.R. 9792.20 - 9792.26 MTUS (Effective ...)").
REGULATION = re.compile(
    rf"8\s+C\.C\.R\.[^()]*?(?:\([^)]{{0,{PAREN_MAX_CHARS}}}\))?|9792\.\d+(?:\.\d+)?(?:\s+Title\s+8)?,?(?:\s+effective\s+\w+\s+\d+,\s+\d{4})?",
    _F,
)
NOT_A_CITATION = re.compile(
    r"did\s+not\s+cite\s+any\s+medical\s+evidence|based\s+(?:their|its)\s+decision\s+on\s+recommendation"
    r"|did\s+not\s+base\s+their\s+decision\s+on\s+the\s+MTUS",
    _F,
)
#: A sub-citation after the first must follow a list joint, so a title mentioned inside a topic
#: does not split the citation.
JOINT = re.compile(r"(?:,|;|\band)\s*\Z", _F)
PROSE_SPLIT = re.compile(r"(?<=[.;])\s+|(?<!\s)\s+and\s+(?:the\s+)?(?=Official|ODG|ACOEM)", _F)
#: Where a prose citation's own text ends (", which is part of the MTUS").
WHICH_IS = re.compile(r"(?:,\s+|(?<![\s,])\s+)which\s+(?:is|are)\b", _F)
#: Where one Non-MTUS citation gives way to the next guideline it names.
NEXT_GUIDELINE = re.compile(
    r"(?<!\s)\s+and\s+(?:the\s+)?(?=Official\s+Disability|ODG\b|ACOEM\b)|;\s*(?=Official|ODG\b|ACOEM\b)", _F
)
#: What is not a topic in a Non-MTUS citation: update notes, chapter numbers, links, years.
TOPIC_NOISE = re.compile(
    rf"\(updated[^)]{{0,{PAREN_MAX_CHARS}}}\)|\bChapter\s+\d+\b|https?://\S+|(?:,|(?<![\s,]))\s*\b(?:19|20)\d\d\b,?"
    r"|\bWeb\s+Version\b,?",
    _F,
)
#: What a removed year leaves of "(2004)".
EMPTY_PARENS = re.compile(r"\(\s*\)")
PAGE_LIST_SPLIT = re.compile(r"(?<!\s)\s*(?:,|\band\b)\s*", _F)
TRAILING_JUNK = ".,;: \t\r\n\f\u00a0"


@dataclass
class SectionParse:
    citations: list[Citation]
    unparsed: list[Span]


def parse_section(text: str, span: Span | None, page_starts: Sequence[int] = ()) -> SectionParse:
    """Citations in ``text[span]``, plus spans of sentences that named no recognisable guideline.

    ``page_starts`` are the letter's page start offsets (``Letter.pages``): given them, every citation
    carries its page, so the verifier finds it complete and copies nothing.
    """
    if span is None or span[0] >= span[1]:
        return SectionParse([], [])
    start, end = span
    units = list(DECISION_BASED_ON.finditer(text, start, end))
    if not units:
        return _prose(text, start, end, page_starts)
    citations: list[Citation] = []
    unparsed: list[Span] = []
    for index, unit in enumerate(units):
        stop = units[index + 1].start() if index + 1 < len(units) else end
        body = unit.end()
        non = NON_MTUS.match(text, body, stop)
        if non:
            citations += _non_mtus(text, non.end(), stop, page_starts)
            continue
        mtus = MTUS_PREFIX.match(text, body, stop)
        if mtus is None and not _starts_with_mtus_title(text, body, stop):
            # "Decision based on <ACOEM / ODG / another guideline>" without "Non-MTUS Citation":
            # it names no MTUS guideline, so it is read like a Non-MTUS citation, never as MTUS.
            citations += _non_mtus(text, body, stop, page_starts)
            continue
        found = _mtus(text, body, mtus.end() if mtus else body, stop, page_starts)
        if found:
            citations += found
        else:
            unparsed.append(_trim(text, body, stop))
    return SectionParse(citations, unparsed)


def _starts_with_mtus_title(text: str, start: int, stop: int) -> bool:
    """Does ``text[start:stop]`` open with an MTUS guideline's title (after an optional "the")?"""
    title = _MTUS_ANY.search(text, start, stop)
    return title is not None and collapse(text[start : title.start()]).lower() in ("", "the")


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start] in TRAILING_JUNK:
        start += 1
    while end > start and text[end - 1] in TRAILING_JUNK:
        end -= 1
    return start, end


def _pages(fragment: str) -> list[str]:
    pages: list[str] = []
    for m in PAGES.finditer(fragment):
        for part in PAGE_LIST_SPLIT.split(m.group("list")):
            page = re.sub(r"\s*-\s*", "-", part.strip())
            if page and page not in pages:
                pages.append(page)
    return pages


def _year(fragment: str) -> int | None:
    m = YEAR.search(fragment)
    return int(m.group(1)) if m else None


def _make(text: str, span: Span, page_starts: Sequence[int], **fields: object) -> Citation:
    s, e = _trim(text, *span)
    page = bisect.bisect_right(page_starts, s) if page_starts else None
    return Citation(text=text[s:e], start=s, end=e, page=page, match="exact", score=100.0, **fields)


def _clean_topic(value: str | None) -> str | None:
    if value is None:
        return None
    value = collapse(REGULATION.sub(" ", value)).strip(TRAILING_JUNK)
    value = re.sub(r"^(?:MTUS|Guidelines)\b\s*", "", value).strip(TRAILING_JUNK)
    return value or None


def _mtus(text: str, cite_start: int, titles_from: int, stop: int, page_starts: Sequence[int]) -> list[Citation]:
    """'MTUS <title> <year>, Section(s): <topic>[, and <title> ...]' -> one citation per title."""
    hits = []
    for m in _MTUS_ANY.finditer(text, titles_from, stop):
        if hits and not JOINT.search(text, max(hits[-1].end(), m.start() - 8), m.start()):
            continue
        if not hits and collapse(text[titles_from : m.start()]):
            break  # an unknown title comes first; handled below
        hits.append(m)
    if not hits:
        return _unknown_mtus(text, cite_start, stop, page_starts)
    out = []
    for index, m in enumerate(hits):
        s = cite_start if index == 0 else m.start()
        e = hits[index + 1].start() if index + 1 < len(hits) else stop
        fragment = text[m.end() : e]
        fragment = re.sub(r"(?:,|;|\band)\s*\Z", "", fragment.rstrip(), flags=_F)
        title = _MTUS_NAMES[int(m.lastgroup[1:])]  # type: ignore[index]
        sections = SECTIONS.search(fragment)
        if sections:
            topic = fragment[sections.end() :]
        else:
            page = PAGES.search(fragment)
            topic = YEAR.sub(" ", fragment[: page.start()] if page else fragment)
        topic = re.sub(r"^\s*(?:Guidelines)?\s*,?", "", topic)
        e = m.end() + len(fragment)
        out.append(
            _make(
                text,
                (s, e),
                page_starts,
                source="MTUS",
                title=title,
                year=_year(text[m.end() : e]),
                topic=_clean_topic(topic),
                pages=_pages(fragment),
            )
        )
    return out


def _unknown_mtus(text: str, start: int, stop: int, page_starts: Sequence[int]) -> list[Citation]:
    fragment = text[start:stop]
    if not collapse(fragment):
        return []
    cut = re.search(r"\s(?:19|20)\d\d\b|Section\(s\)|Page\(s\)|\.\s*\Z", fragment)
    title = collapse(re.sub(r"^MTUS\s+", "", fragment[: cut.start() if cut else len(fragment)])).strip(
        TRAILING_JUNK
    )
    sections = SECTIONS.search(fragment)
    return [
        _make(
            text,
            (start, stop),
            page_starts,
            source="MTUS",
            title=title or None,
            year=_year(fragment),
            topic=_clean_topic(fragment[sections.end() :]) if sections else None,
            pages=_pages(fragment),
        )
    ]


def _source_of(fragment: str) -> str:
    odg, acoem = ODG_NAME.search(fragment), ACOEM_NAME.search(fragment)
    if odg and (not acoem or odg.start() < acoem.start()):
        return "ODG"
    return "ACOEM" if acoem else "other"


def _non_mtus(text: str, start: int, stop: int, page_starts: Sequence[int]) -> list[Citation]:
    """One citation per named guideline in a Non-MTUS citation."""
    fragment = text[start:stop]
    cuts = [0]
    first = _source_of(fragment)
    # _source_of(fragment[p:]) for each cut p, without a copy per cut: the first name of each
    # kind at or after p, by bisection over one scan of the fragment.
    odg = [m.start() for m in ODG_NAME.finditer(fragment)]
    acoem = [m.start() for m in ACOEM_NAME.finditer(fragment)]
    for m in NEXT_GUIDELINE.finditer(fragment):
        o, a = bisect.bisect_left(odg, m.end()), bisect.bisect_left(acoem, m.end())
        at_odg = odg[o] if o < len(odg) else None
        at_acoem = acoem[a] if a < len(acoem) else None
        if at_odg is not None and (at_acoem is None or at_odg < at_acoem):
            source = "ODG"
        else:
            source = "ACOEM" if at_acoem is not None else "other"
        if source != first or first == "other":
            cuts.append(m.end())
    out = []
    for index, cut in enumerate(cuts):
        s = start + cut
        e = start + cuts[index + 1] if index + 1 < len(cuts) else stop
        piece = text[s:e]
        out.append(_named(text, (s, e), page_starts, _source_of(piece), piece))
    return out


def _named(text: str, span: Span, page_starts: Sequence[int], source: str, piece: str, read_as: str = "") -> Citation:
    """A citation outside the MTUS grammar: title, topic, year and pages read from ``piece`` the way
    ``read_as`` (default: ``source``) names its guideline."""
    title, topic = _title_topic(piece, read_as or source)
    return _make(
        text, span, page_starts, source=source, title=title, topic=topic, year=_year(piece), pages=_pages(piece)
    )


def _title_topic(piece: str, source: str) -> tuple[str | None, str | None]:
    rest = piece
    name = {"ODG": ODG_NAME, "ACOEM": ACOEM_NAME}.get(source)
    if name:
        m = name.search(rest)
        if m:
            rest = rest[m.end() :]
    rest = EMPTY_PARENS.sub(" ", TOPIC_NOISE.sub(" ", rest))
    rest = PAGES.sub(" ", rest)
    rest = collapse(rest).lstrip(" ,:;-\u2013/").strip(TRAILING_JUNK)
    if source in ("other", "ACOEM"):  # ACOEM's chapters are titles ("Low Back Complaints"), not ODG's
        parts = re.split(r",\s+|\s+-\s+|\s+\u2013\s+", rest, maxsplit=1)
        return (parts[0] or None), (_clean_topic(parts[1]) if len(parts) > 1 else None)
    chapter = _ODG_CHAPTER.match(rest)
    if chapter:
        title = chapter.group(0)
        topic = re.sub(r"^\s*Chapter\b", "", rest[chapter.end() :], flags=_F)
    else:
        parts = re.split(r",\s+|\s+-\s+|\s+\u2013\s+|:\s+", rest, maxsplit=1)
        title, topic = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
    topic = re.sub(r"^\s*(?:Chapter|section|Guidelines)\b", "", topic or "", flags=_F)
    topic = topic.strip(" ,:;-\u2013/()").strip(TRAILING_JUNK)
    return (title or None), (_clean_topic(topic) if topic else None)


def _prose(text: str, start: int, end: int, page_starts: Sequence[int]) -> SectionParse:
    """Older layouts: guideline names inside sentences."""
    if NOT_A_CITATION.search(text, start, end) and not (
        _MTUS_ANY.search(text, start, end) or ODG_NAME.search(text, start, end)
    ):
        return SectionParse([], [])
    citations: list[Citation] = []
    unparsed: list[Span] = []
    pieces = [(m.start(), m.end()) for m in PROSE_SPLIT.finditer(text, start, end)]
    bounds = [start] + [e for _, e in pieces] + [end]
    for s, e in zip(bounds, bounds[1:]):
        sentence = text[s:e]
        mtus = _MTUS_ANY.search(sentence)
        odg, acoem = ODG_NAME.search(sentence), ACOEM_NAME.search(sentence)
        # A guideline named before an MTUS title is the source, not the title's MTUS: always for the
        # ODG; for ACOEM (whose chapters the MTUS adopted) when the letter says it is not the MTUS.
        part = PART_OF_MTUS.search(sentence)
        named = odg or (acoem if part is not None and part.group("not") else None)
        if mtus and not (named and named.start() < mtus.start()):
            tail = WHICH_IS.split(sentence[mtus.end() :], maxsplit=1)[0]
            page = PAGES.search(tail)
            topic = tail[: page.start()] if page else tail
            title = _MTUS_NAMES[int(mtus.lastgroup[1:])]  # type: ignore[index]
            cite_end = s + mtus.end() + len(tail)
            citations.append(
                _make(
                    text,
                    (s + mtus.start(), cite_end),
                    page_starts,
                    source="MTUS",
                    title=title,
                    year=_year(tail),
                    topic=_clean_topic(topic),
                    pages=_pages(tail),
                )
            )
        elif odg or acoem:
            first = odg if odg and (not acoem or odg.start() < acoem.start()) else acoem
            tail = WHICH_IS.split(sentence[first.start() :], maxsplit=1)[0]
            span = (s + first.start(), s + first.start() + len(tail))
            citations.append(_named(text, span, page_starts, _source_of(tail), tail))
        elif (relied := RELIED_ON.search(sentence)) or PART_OF_MTUS.search(sentence):
            citations.append(_prose_other(text, s, sentence, relied.end() if relied else 0, page_starts))
        elif collapse(sentence) and not NOT_A_CITATION.search(sentence):
            unparsed.append(_trim(text, s, e))
    return SectionParse(citations, unparsed)


def _prose_other(text: str, s: int, sentence: str, name_at: int, page_starts: Sequence[int]) -> Citation:
    """A prose sentence that cites a guideline none of the known names match: ``other``, or MTUS when
    the sentence itself says the guideline is part of the MTUS. Its title is the name up to the first
    comma, its topic what follows, up to "which is (not) part of the MTUS"."""
    part = PART_OF_MTUS.search(sentence, name_at)
    source = "MTUS" if part is not None and not part.group("not") else "other"
    tail = WHICH_IS.split(sentence[name_at:], maxsplit=1)[0]
    if part is not None and part.start() < name_at + len(tail):
        tail = tail[: part.start() - name_at]
    tail = WAS_RELIED_UPON.sub("", tail)
    return _named(text, (s + name_at, s + name_at + len(tail)), page_starts, source, tail, read_as="other")
