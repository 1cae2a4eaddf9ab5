"""Letter-level fields: the header block (case), the reviewer's credentials, the patient's age and sex.

Each value is returned with the span of the letter it was read from, so the rules backend can
state its evidence (``Determination.evidence``). The text may come from any PDF tool, and the
tools lay the same header out differently:

- pdfium, pypdf, pdftotext -raw: ``Date Assigned: 01/12/2017 Date of Injury: 11/01/2016`` (two
  columns read row by row, a wrapped label's value on a later line);
- pdftotext -layout: the same with wide gaps, or a wrapped label's value beside its first word;
- pdftotext: the label column, then the value column (``Case Number:\\nDate Assigned:\\n...\\n\\n
  CM17-0005177\\n01/12/2017\\n...``), either order;
- PyMuPDF: label, value, label, value;
- pdfminer.six: a mixture, values sometimes before their label or inside a wrapped label.

So values are found by their *grammar* (a case number, a date, a priority word), labels by their
words (line breaks and a value allowed between them), and values are assigned to labels in two
steps: a value on the label's own line right after it belongs to it; the rest are paired per
value kind in reading order, which is right whichever way a tool ordered two columns as long as
it kept each column's order. When the counts of a kind disagree, only a label directly followed
by its value (not inside a run of labels or values) is paired; every other label of that kind is
left null and flagged ``header_field_missing``: a value is never guessed.

Everything here is a bounded number of linear regex scans over at most the first few kilobytes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .normalize import collapse
from .schema import MAX_AGE, FlagCode, Severity

Span = tuple[int, int]
_F = re.IGNORECASE

#: Characters of the letter searched for the header block and for a section title that ends it.
HEADER_SEARCH_CHARS = 2500
#: Longest whitespace (a masked value included) between two words of one label.
LABEL_GAP = 300
#: Characters after the reviewer's specialty label searched for its list.
SPECIALTY_SEARCH_CHARS = 400
#: Characters after the licensure label searched for its list (a wrapped list of states).
LICENSURE_SEARCH_CHARS = 300

# --------------------------------------------------------------------------- value grammars

_HYPHENS = "\\-\u2010\u2011\ufffe\u00ad"
#: A case number as tools print it, a line break after its hyphen allowed ("CM17-\\n0005177").
CASE_NUMBER_VALUE = re.compile(
    rf"\b([A-Z]{{2}})[ \t]?(\d{{2}})[ \t]{{0,3}}[{_HYPHENS}][ \t]{{0,3}}(?:\r\n|\r|\n)?[ \t]{{0,3}}(\d{{4,8}})\b"
)
#: What a case number must look like once read (checked, never silently fixed).
CASE_NUMBER_PATTERN = re.compile(r"CM\d{2}-\d{7}")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
DATE_VALUE = re.compile(
    r"(?<![\d/.-])(?P<m>\d{1,2})(?P<sep>[/.-])(?P<d>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?![\d/])"
    r"|\b(?P<mname>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?[ \t]{1,3}"
    r"(?P<mday>\d{1,2}),?[ \t]{1,3}(?P<myear>\d{4})\b",
    _F,
)
#: The priority words a header states (IMR reviews are standard or expedited).
PRIORITY_VALUE = re.compile(r"\b(?:Standard|Expedited|Urgent|Regular|Routine)\b", _F)

# --------------------------------------------------------------------------- labels

#: Header field -> its labels as regex fragments, ``_`` standing for the gap between two words, which
#: in a tool's text may be a line break, a wide ``-layout`` gap, or (pdfminer) a value.
HEADER_LABELS: dict[str, tuple[str, ...]] = {
    "case_number": (r"(?:MAXIMUS_)?Case_(?:Number|No\.?)",),
    "date_assigned": ("Date_Assigned",),
    "date_of_injury": ("Date_of_Injury",),
    "decision_date": ("Decision_Date", "Dated"),
    "ur_denial_date": ("UR_Denial_Date", "Date_of_UR_Decision"),
    "priority": ("Priority",),
    "application_received": ("(?:IMR_)?Application_Received",),
}
#: The kind of value each header field takes.
FIELD_KIND = {
    "case_number": "case",
    "priority": "priority",
    "date_assigned": "date",
    "date_of_injury": "date",
    "decision_date": "date",
    "ur_denial_date": "date",
    "application_received": "date",
}
VALUE_GRAMMARS = {"case": CASE_NUMBER_VALUE, "date": DATE_VALUE, "priority": PRIORITY_VALUE}


_WORD_GAP = rf"[ \t\r\n\f\u00a0]{{1,{LABEL_GAP}}}"


def _label_pattern(words: str) -> str:
    """A label's regex: its words joined by a bounded gap, then its colon."""
    return r"\b" + words.replace("_", _WORD_GAP) + r"[ \t]{0,5}:"


HEADER_LABEL = re.compile(
    "|".join(
        f"(?P<{name}>{'|'.join(_label_pattern(w) for w in words)})" for name, words in HEADER_LABELS.items()
    ),
    _F,
)
#: Where the header block ends at the latest: the first section title.
HEADER_END = re.compile(
    r"HOW\s+THE\s+IMR\s+FINAL\s+DETERMINATION\s+WAS\s+MADE|CLINICAL\s+CASE\s+SUMMARY|IMR\s+ISSUES\b", _F
)
#: Four lower-case words in a row: a sentence, so the form above it has ended.
PROSE = re.compile(r"\b[a-z]{2,30}[ \t]{1,5}[a-z]{2,30}[ \t]{1,5}[a-z]{2,30}[ \t]{1,5}[a-z]{2,30}\b")
_H_SPACE = " \t\u00a0"


class Problem(NamedTuple):
    """Something a reader must know about a field (becomes a Flag)."""

    code: FlagCode
    severity: Severity
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Found:
    """A value read from the letter and the span it was read from."""

    value: Any
    span: Span


@dataclass
class LetterFields:
    header: dict[str, Found] = field(default_factory=dict)
    licensure: list[Found] = field(default_factory=list)
    specialties: list[Found] = field(default_factory=list)
    age: Found | None = None
    sex: Found | None = None
    problems: list[Problem] = field(default_factory=list)


def read_fields(text: str) -> LetterFields:
    """Header, reviewer and patient fields of ``text`` with their spans."""
    out = LetterFields()
    read_header(text, out)
    read_reviewer(text, out)
    read_patient(text, out)
    return out


# --------------------------------------------------------------------------- dates


def to_date(month: str, day: str, year: str) -> dt.date | None:
    """A calendar date from its parts (two-digit years: 00-40 are 20xx), None if there is none."""
    y = int(year)
    if len(year) == 2:
        y += 2000 if y <= 40 else 1900
    try:
        return dt.date(y, int(month), int(day))
    except ValueError:
        return None


def parse_date(match: re.Match[str]) -> dt.date | None:
    """The date a :data:`DATE_VALUE` match states."""
    if match.group("m"):
        return to_date(match.group("m"), match.group("d"), match.group("y"))
    month = _MONTHS[match.group("mname").lower()]
    return to_date(str(month), match.group("mday"), match.group("myear"))


# --------------------------------------------------------------------------- header


@dataclass
class _Token:
    start: int
    end: int
    kind: str  # case | date | priority, or the field name of a label
    value: Any = None
    label: bool = False
    paired: bool = False


def _header_limit(text: str) -> int:
    """Where the search for the header block stops: the first section title, else a bounded prefix."""
    end_match = HEADER_END.search(text, 0, HEADER_SEARCH_CHARS * 2)
    return end_match.start() if end_match else min(len(text), HEADER_SEARCH_CHARS)


def _values(text: str, start: int, end: int) -> list[_Token]:
    tokens: list[_Token] = []
    for kind, grammar in VALUE_GRAMMARS.items():
        for m in grammar.finditer(text, start, end):
            if kind == "case":
                value: Any = f"{m.group(1)}{m.group(2)}-{m.group(3)}"
            elif kind == "date":
                value = parse_date(m)
            else:
                value = m.group(0)
            tokens.append(_Token(m.start(), m.end(), kind, value))
    tokens.sort(key=lambda t: t.start)
    kept: list[_Token] = []  # the grammars do not overlap on real headers; if they ever do, the
    for t in tokens:  # first match keeps its span, so no span carries two values
        if kept and t.start < kept[-1].end:
            continue
        kept.append(t)
    return kept


def read_header(text: str, out: LetterFields) -> None:
    """Fill ``out.header``: labels and values located, then assigned (see the module docstring)."""
    hi = _header_limit(text)
    values = _values(text, 0, hi)
    masked = list(text[:hi])
    for v in values:  # a value inside a wrapped label ("Application\n01/09/2017\nReceived:")
        masked[v.start : v.end] = " " * (v.end - v.start)
    labels = [
        _Token(m.start(), m.end(), m.lastgroup or "", label=True)
        for m in HEADER_LABEL.finditer("".join(masked))
    ]
    if not labels:
        return
    block_start, block_end = _block(text, labels, values, hi)
    tokens = sorted(
        [t for t in labels if block_start <= t.start < block_end]
        + [v for v in values if block_start <= v.start < block_end],
        key=lambda t: t.start,
    )
    pairs: dict[int, _Token] = {}  # index of label token -> value token
    _pair_inline(text, tokens, pairs)
    for kind in VALUE_GRAMMARS:
        _pair_by_order(tokens, kind, pairs)
    answered = {tokens[i].kind for i in pairs}
    for index, token in enumerate(tokens):
        if not token.label or token.kind in out.header:
            continue
        name = token.kind
        value = pairs.get(index)
        label_text = collapse(text[token.start : token.end])
        if value is None:
            if name in answered:
                continue  # a repeated label, another occurrence of which has its value
            out.problems.append(
                Problem(
                    FlagCode.HEADER_FIELD_MISSING,
                    "warning",
                    f"case.{name}: the header has {label_text!r} but no value could be assigned to it with "
                    "confidence",
                    (token.start, token.end),
                )
            )
            continue
        if value.value is None:
            out.problems.append(
                Problem(
                    FlagCode.HEADER_FIELD_MISSING,
                    "warning",
                    f"case.{name}: {text[value.start : value.end]!r} is not a valid date",
                    (value.start, value.end),
                )
            )
            continue
        stored = value.value.isoformat() if isinstance(value.value, dt.date) else value.value
        out.header[name] = Found(stored, (value.start, value.end))


def _block(text: str, labels: list[_Token], values: list[_Token], hi: int) -> tuple[int, int]:
    """The header block: from its first label (and the values right before it, for a tool that
    puts the value column first) to the first sentence after it."""
    first = labels[0].start
    prose = PROSE.search(text, first, hi)
    end = hi
    if prose:
        end = _line_start(text, prose.start())
    start = first
    for v in reversed([v for v in values if v.end <= first]):
        if text[v.end : start].strip():
            break
        start = v.start
    return start, max(end, labels[0].end)


def _line_start(text: str, pos: int) -> int:
    return max(text.rfind("\n", 0, pos), text.rfind("\r", 0, pos), text.rfind("\f", 0, pos)) + 1


def _pair_inline(text: str, tokens: list[_Token], pairs: dict[int, _Token]) -> None:
    """A value of the label's kind on the label's own line, right after it, is its value."""
    for index, token in enumerate(tokens[:-1]):
        nxt = tokens[index + 1]
        if (
            token.label
            and not nxt.label
            and not nxt.paired
            and nxt.kind == FIELD_KIND[token.kind]
            and not text[token.end : nxt.start].strip(_H_SPACE)
        ):
            pairs[index] = nxt
            token.paired = nxt.paired = True


def _pair_by_order(tokens: list[_Token], kind: str, pairs: dict[int, _Token]) -> None:
    """Pair the still unpaired labels and values of one kind in reading order, if their counts agree;
    otherwise pair only a label immediately followed by its value outside any run of them."""
    labels = [i for i, t in enumerate(tokens) if t.label and not t.paired and FIELD_KIND[t.kind] == kind]
    values = [i for i, t in enumerate(tokens) if not t.label and not t.paired and t.kind == kind]
    if not labels or not values:
        return
    if len(labels) == len(values):
        for li, vi in zip(labels, values):
            pairs[li] = tokens[vi]
            tokens[li].paired = tokens[vi].paired = True
        return
    unpaired_value = set(values)
    for li in labels:
        vi = li + 1
        if vi not in unpaired_value:
            continue
        if (li > 0 and tokens[li - 1].label) or (vi + 1 < len(tokens) and not tokens[vi + 1].label):
            continue  # inside a column of labels or of values (of any kind): which is whose is unknown
        pairs[li] = tokens[vi]
        tokens[li].paired = tokens[vi].paired = True


# --------------------------------------------------------------------------- list values

#: Line-end hyphenation inside a word ("Rehabili-\\ntation"): the hyphen and break are not text.
_LINE_HYPHEN = re.compile(r"(?<=[a-z])[\-\u00ad\ufffe][ \t]*(?:\r\n|\r|\n)[ \t\f]*(?=[a-z])")


def clean_value(raw: str) -> str:
    """A value as reported: line-end hyphenation joined, whitespace collapsed, edge punctuation off."""
    return collapse(_LINE_HYPHEN.sub("", raw)).strip(" .;:")


def _entries(
    text: str, start: int, end: int, separator: re.Pattern[str], protect: re.Pattern[str] | None
) -> list[Found]:
    """Split ``text[start:end]`` on ``separator`` (not inside ``protect`` matches), with trimmed spans."""
    guarded = [(m.start(), m.end()) for m in protect.finditer(text, start, end)] if protect else []
    cuts: list[Span] = []
    for m in separator.finditer(text, start, end):
        if any(s < m.end() and m.start() < e for s, e in guarded):
            continue
        cuts.append((m.start(), m.end()))
    out: list[Found] = []
    cursor = start
    for s, e in [*cuts, (end, end)]:
        a, b = cursor, s
        while a < b and (text[a].isspace() or text[a] in " .;:\u00a0"):
            a += 1
        while b > a and (text[b - 1].isspace() or text[b - 1] in " .;:\u00a0"):
            b -= 1
        if b > a:
            out.append(Found(clean_value(text[a:b]), (a, b)))
        cursor = e
    return out


# --------------------------------------------------------------------------- reviewer

LICENSURE = re.compile(r"State\(s\)\s{1,20}of\s{1,20}Licensure\s{0,5}:", _F)
SPECIALTY = re.compile(r"Certification\(s\)\s{0,5}/\s{0,5}Specialt(?:y|ies)\s{0,5}:", _F)
#: The specialty list ends at the next section title (an upper-case line), a sentence, or the other label.
SPECIALTY_END = re.compile(
    r"CLINICAL\s+CASE\s+SUMMARY|DOCUMENTS\s+REVIEWED|State\(s\)\s+of\s+Licensure"
    r"|(?:^|\n)[ \t]{0,80}[A-Z][A-Z ,()/]{12,200}\r?(?:\n|$)"
    r"|(?:^|\n)[ \t]{0,80}The\s+(?:expert|physician)\s+reviewer\b"
)
#: A list of states continues on the next line only after a trailing comma or "and".
LICENSURE_CONTINUES = re.compile(r"(?:,|\band)[ \t]*\Z", _F)
LIST_SEPARATOR = re.compile(
    r"[ \t\r\n\f]{0,5},[ \t\r\n\f]{0,5}(?:and[ \t\r\n\f]{1,5})?|[ \t\r\n\f]{1,5}and[ \t\r\n\f]{1,5}"
)
COMMA = re.compile(r"[ \t\r\n\f]{0,5},")
#: Older letters describe the reviewer in a sentence; a list in it is at most PROSE_LIST_CHARS long.
PROSE_LIST_CHARS = 300
PROSE_BOARD = re.compile(
    rf"Board\s{{1,5}}Certified\s{{1,5}}in\s{{1,5}}(.{{1,{PROSE_LIST_CHARS}}}?)"
    r"(?=,\s{1,5}has\b|\s{1,5}and\s{1,5}is\s{1,5}licensed|\s{1,5}and\s{1,5}has\b|\.)",
    re.DOTALL | _F,
)
PROSE_SUB = re.compile(
    rf"subspecialty\s{{1,5}}in\s{{1,5}}(.{{1,{PROSE_LIST_CHARS}}}?)(?=\s{{1,5}}and\s{{1,5}}is\s{{1,5}}licensed|,|\.)",
    re.DOTALL | _F,
)
PROSE_LICENSED = re.compile(
    rf"licensed\s{{1,5}}to\s{{1,5}}practice\s{{1,5}}in\s{{1,5}}(.{{1,{PROSE_LIST_CHARS}}}?)\.", re.DOTALL | _F
)
#: Specialty names with "and" inside, which prose lists must not split.
COMPOUND_SPECIALTIES = re.compile(
    r"Physical\s+Medicine\s+and\s+Rehabilitation|Obstetrics\s+and\s+Gynecology|Psychiatry\s+and\s+Neurology"
    r"|Hospice\s+and\s+Palliative\s+Medicine|Allergy\s+and\s+Immunology"
    r"|Public\s+Health\s+and\s+General\s+Preventive\s+Medicine",
    _F,
)


def _line_end(text: str, pos: int, limit: int) -> int:
    ends = [
        i
        for i in (text.find("\n", pos, limit), text.find("\r", pos, limit), text.find("\f", pos, limit))
        if i != -1
    ]
    return min(ends) if ends else limit


def read_reviewer(text: str, out: LetterFields) -> None:
    """States of licensure and specialties, from the credentials labels or, in older letters, prose."""
    lic = LICENSURE.search(text)
    spec = SPECIALTY.search(text)
    if lic and spec and lic.end() <= spec.start() and not text[lic.end() : spec.start()].strip():
        _reviewer_columns(text, lic, spec, out)
        return
    if lic:
        limit = min(len(text), lic.end() + LICENSURE_SEARCH_CHARS)
        if spec and spec.start() > lic.end():
            limit = min(limit, spec.start())
        start = _skip_blank_lines(text, lic.end(), limit)
        end = _line_end(text, start, limit)
        while LICENSURE_CONTINUES.search(text, start, end) and end < limit:
            end = _line_end(text, _skip_blank_lines(text, end, limit), limit)
        out.licensure = _entries(text, start, end, COMMA, None)
    if spec:
        limit = min(len(text), spec.end() + SPECIALTY_SEARCH_CHARS)
        stop = SPECIALTY_END.search(text, spec.end(), limit)
        out.specialties = _entries(text, spec.end(), stop.start() if stop else limit, COMMA, None)
    if lic or spec:
        return
    board = PROSE_BOARD.search(text)
    if board:
        out.specialties = _entries(text, board.start(1), board.end(1), LIST_SEPARATOR, COMPOUND_SPECIALTIES)
        sub = PROSE_SUB.search(text, board.end())
        if sub:
            out.specialties += _entries(text, sub.start(1), sub.end(1), LIST_SEPARATOR, COMPOUND_SPECIALTIES)
    licensed = PROSE_LICENSED.search(text)
    if licensed:
        out.licensure = _entries(text, licensed.start(1), licensed.end(1), LIST_SEPARATOR, None)


def _skip_blank_lines(text: str, pos: int, limit: int) -> int:
    """From the end of a label to its value: the rest of the line, or the next non-blank line."""
    line_end = _line_end(text, pos, limit)
    if text[pos:line_end].strip():
        return pos
    cursor = line_end
    while cursor < limit and text[cursor] in " \t\r\n\f\u00a0":
        cursor += 1
    return cursor


def _reviewer_columns(text: str, lic: re.Match[str], spec: re.Match[str], out: LetterFields) -> None:
    """Both labels first, then both values (a tool that reads the label column first)."""
    limit = min(len(text), spec.end() + SPECIALTY_SEARCH_CHARS)
    stop = SPECIALTY_END.search(text, spec.end(), limit)
    end = stop.start() if stop else limit
    lines: list[Span] = []
    cursor = spec.end()
    while cursor < end:
        line_end = _line_end(text, cursor, end)
        if text[cursor:line_end].strip():
            lines.append((cursor, line_end))
        cursor = line_end + 1
    if len(lines) != 2:
        out.problems.append(
            Problem(
                FlagCode.HEADER_FIELD_MISSING,
                "warning",
                f"reviewer: {len(lines)} value lines under the licensure and specialty labels; "
                "which is whose cannot be told",
                (lic.start(), spec.end()),
            )
        )
        return
    out.licensure = _entries(text, *lines[0], COMMA, None)
    out.specialties = _entries(text, *lines[1], COMMA, None)


# --------------------------------------------------------------------------- patient

_GAP = r"[\-\u2010\u2011\ufffe\u00ad \t\r\n\u00a0]{0,4}"
PATIENT = re.compile(
    rf"\b(?P<age>\d{{1,3}}){_GAP}(?:years?|yrs?\.?|y/o|y\.o\.?|yo\b)(?:{_GAP}old)?,?{_GAP}"
    r"(?:[A-Za-z]{1,30}[\- \t\r\n\u00a0]{1,4}){0,3}?"
    r"(?P<sex>male|female|man|woman|gentleman|lady|gentlemen)\b",
    _F,
)
CASE_SUMMARY = re.compile(r"CLINICAL\s+CASE\s+SUMMARY|CASE\s+SUMMARY\s*:", _F)
SEX_WORDS = {
    "male": "male",
    "man": "male",
    "gentleman": "male",
    "gentlemen": "male",
    "female": "female",
    "woman": "female",
    "lady": "female",
}


def summary_start(text: str) -> int:
    """Where the case summary starts (the patient is described there), else 0."""
    summary = CASE_SUMMARY.search(text)
    return summary.end() if summary else 0


def patient_mentions(text: str, start: int | None = None) -> list[tuple[Found, Found]]:
    """Every "N-year-old <sex>" phrase from the case summary on: (age, sex) with their spans."""
    begin = summary_start(text) if start is None else start
    return [
        (
            Found(int(m.group("age")), (m.start("age"), m.end("age"))),
            Found(SEX_WORDS[m.group("sex").lower()], (m.start("sex"), m.end("sex"))),
        )
        for m in PATIENT.finditer(text, begin)
    ]


def read_patient(text: str, out: LetterFields) -> None:
    """The first "N-year-old <sex>" of the case summary."""
    m = PATIENT.search(text, summary_start(text))
    if not m:
        out.problems.append(Problem(FlagCode.PATIENT_NOT_FOUND, "info", "patient age and sex not stated"))
        return
    age = int(m.group("age"))
    if age <= MAX_AGE:  # beyond what the model holds: left null, and checks.py flags the age it read
        out.age = Found(age, (m.start("age"), m.end("age")))
    out.sex = Found(SEX_WORDS[m.group("sex").lower()], (m.start("sex"), m.end("sex")))
