"""``imr-issues``: the 2014-17 letters (all 158 real 2016-17 PDFs and the 2013-15 seeds).

    IMR ISSUES, DECISIONS AND RATIONALES
    The Final Determination was based on decisions for the disputed items/services set forth below:
    6 massage therapy sessions for the low back:  Upheld
    Claims Administrator guideline: Decision based on MTUS ...
    MAXIMUS guideline: Decision based on MTUS ...
    Decision rationale: ...

Recognised by its section title, or, where the title is missing or worded otherwise, by its
items: decision-grammar headings followed by these three labels.
"""

from __future__ import annotations

import re

from .base import Parsed, Span
from .grammar import find_decisions, segment

NAME = "imr-issues"
#: Families are tried in increasing order of priority (a narrower title first).
PRIORITY = 30
#: Whether a letter without this family's title may be read by its items (decision-grammar headings with its labels).
BY_ITEMS = True
_F = re.IGNORECASE

TITLE = re.compile(r"IMR\s+ISSUES(?:\s*,\s+|\s+)DECISIONS\s+AND\s+RATIONALES", _F)
SET_FORTH = re.compile(r"set\s+forth\s+below\s*:", _F)
#: Characters after the title searched for the "set forth below:" sentence that introduces the items.
SET_FORTH_REACH = 400
LABELS = {
    "ca": re.compile(r"Claims\s+Administrator\s+guideline\s*:", _F),
    "mx": re.compile(r"MAXIMUS\s+guideline\s*:", _F),
    "rationale": re.compile(r"Decision\s+rationale\s*:", _F),
}
#: Any of the labels (what may follow a decision word glued to it).
ANY_LABEL = re.compile("|".join(p.pattern for p in LABELS.values()), _F)


def title(text: str) -> re.Match[str] | None:
    """The section title this family is recognised by."""
    return TITLE.search(text)


def parse(text: str, section: Span, parsed: Parsed) -> None:
    """Items after the ``section`` title (``(0, 0)`` when the letter is read by its items)."""
    body = section[1]
    set_forth = SET_FORTH.search(text, body, body + SET_FORTH_REACH)
    if set_forth:
        body = set_forth.end()
    segment(text, body, LABELS, parsed, find_decisions(text, body, len(text), ANY_LABEL))
