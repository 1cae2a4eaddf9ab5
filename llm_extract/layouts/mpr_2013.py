"""``mpr-2013``: the 2013 "MEDICAL PROFESSIONAL REVIEW" letters.

    MEDICAL PROFESSIONAL REVIEW
    ISSUE AT DISPUTE: 6 massage therapy sessions for the low back
    CASE SUMMARY: ...
    DOCUMENTS REVIEWED FOR DETERMINATION: ...
    MEDICAL TREATMENT GUIDELINE(S) RELIED UPON BY PROFESSIONAL REVIEWER AND WHY: ...
    RATIONALE FOR WHY THE REQUESTED TREATMENT/SERVICE IS/WAS NOT MEDICALLY NECESSARY: ...
    MEDICAL REVIEWER QUALIFICATIONS: ...

One item per letter. The issue states no decision word (it is read from the rationale's
conclusion), unless it ends in the decision grammar ("...: Upheld").
"""

from __future__ import annotations

import re

from ..schema import FlagCode
from .base import ItemBlock, Note, Parsed, Span, sections_between, trim
from .grammar import NAMES_SOMETHING, split_decision

NAME = "mpr-2013"
#: Families are tried in increasing order of priority (a narrower title first).
PRIORITY = 10
#: Never read by its items alone: one item per letter, no decision grammar of its own.
BY_ITEMS = False
_F = re.IGNORECASE
#: Characters at the top of a letter searched for the MPR title.
TITLE_CHARS = 3000
MPR_TITLE = re.compile(r"MEDICAL\s+PROFESSIONAL\s+REVIEW", _F)
ISSUE = re.compile(r"ISSUE\s+AT\s+DISPUTE\s*:", _F)
MARKS = {
    "summary": re.compile(r"CASE\s+SUMMARY\s*:", _F),
    "documents": re.compile(r"DOCUMENTS\s+REVIEWED\s+FOR\s+DETERMINATION\s*:", _F),
    "mx": re.compile(
        r"MEDICAL\s+TREATMENT\s+GUIDELINE\(S\)\s+RELIED\s+UPON\s+BY\s+PROFESSIONAL\s+REVIEWER\s+AND\s+WHY\s*:", _F
    ),
    "rationale": re.compile(
        r"RATIONALE\s+FOR\s+WHY\s+THE\s+REQUESTED\s+TREATMENT/SERVICE\s+IS/WAS\s+NOT\s+MEDICALLY\s+NECESSARY\s*:", _F
    ),
    "qualifications": re.compile(r"MEDICAL\s+REVIEWER\s+QUALIFICATIONS\s*:", _F),
}
#: The section labels of an item (the other marks only bound them).
LABELS = {kind: MARKS[kind] for kind in ("mx", "rationale")}


def title(text: str) -> re.Match[str] | None:
    """"ISSUE AT DISPUTE:" in a letter titled MEDICAL PROFESSIONAL REVIEW."""
    if MPR_TITLE.search(text, 0, TITLE_CHARS):
        return ISSUE.search(text)
    return None


def parse(text: str, section: Span, parsed: Parsed) -> None:
    """The one item: the issue (after the ``section`` label) up to the next section, then its
    guideline and rationale sections."""
    body = section[1]
    marks = {name: pattern.search(text, body) for name, pattern in MARKS.items()}
    next_start = min((m.start() for m in marks.values() if m), default=len(text))
    name, decision, decision_span = split_decision(text, trim(text, body, next_start))
    index = len(parsed.items)
    block = ItemBlock(
        block_start=section[0],
        heading=name,
        decision=decision,
        decision_span=decision_span,
        decision_inferred=decision is None,
    )
    for kind, (label, section) in sections_between(marks, len(text)).items():
        if kind in LABELS:
            setattr(block, kind, trim(text, *section))
            block.labels[kind] = label
    if not NAMES_SOMETHING.search(text, *name):
        parsed.notes.append(
            Note(FlagCode.ITEM_NAME_MISSING, "error", "the ISSUE AT DISPUTE names no treatment", name, index)
        )
    parsed.items.append(block)
