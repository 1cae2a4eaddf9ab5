"""Negations and numbers: what no paraphrase of a letter may change.

One vocabulary serves two rules. The rules backend reads a conclusion's polarity with it ("the
request is *not* medically necessary" upholds the denial), and the verifier refuses a fuzzy match
that adds or drops a negation or changes a number: "is medically necessary" scores 90+ against
"is not medically necessary", and "Norco 10/325 #90" against "#60", yet each says something the
letter does not.
"""

from __future__ import annotations

import re

_F = re.IGNORECASE
#: Words that negate what follows them, as a regex fragment (used between word boundaries). The
#: contractions are also matched without their apostrophe (the polarity rule strips quote marks).
NEGATOR = (
    r"(?:not|non|cannot|no|nor|neither|never|un"
    r"|(?:is|are|was|were|does|do|did|has|have|had|would|could|should|ca|wo)n[\u2019']?t)"
)
#: A conclusion word negated by its own prefix ("unnecessary" is "not necessary").
NEGATED_NECESSITY = r"un(?:necessary|supported|warranted|reasonable|indicated|established|certified)"
#: Any word negated by its own prefix.
NEGATED_WORD = (
    rf"(?:{NEGATED_NECESSITY}|un(?:approv|substantiat|clear|document|remarkabl|changed|responsive|successful)\w*)"
)
#: One negation, wherever it stands.
NEGATION_TOKEN = re.compile(rf"\b(?:{NEGATOR}|none|nothing|without|{NEGATED_WORD})\b", _F)
#: A number as letters write it: "10", "10/325", "1,000", "2.5".
NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")


def negations(text: str) -> list[str]:
    """The negations of ``text`` in order, lower-cased, apostrophes dropped ("isn't" -> "isnt")."""
    return [m.group(0).lower().replace("'", "").replace("\u2019", "") for m in NEGATION_TOKEN.finditer(text)]


def numbers(text: str) -> list[str]:
    """The numbers of ``text`` in order, thousands separators dropped ("1,000" -> "1000")."""
    return [re.sub(r"(?<=\d),(?=\d{3}\b)", "", m.group(0)) for m in NUMBER.finditer(text)]


def meaning_changes(written: str, found: str) -> str | None:
    """Why ``found`` (a passage of the letter) does not say what ``written`` (a quote) says, or None.

    Two texts that differ in their negations or their numbers differ in meaning, however similar
    their characters: the reason names what was added, dropped or changed.
    """
    ours, theirs = negations(written), negations(found)
    if ours != theirs:
        return f"negation {' '.join(ours) or '(none)'!r} where the letter has {' '.join(theirs) or '(none)'!r}"
    ours, theirs = numbers(written), numbers(found)
    if ours != theirs:
        return f"numbers {' '.join(ours) or '(none)'!r} where the letter has {' '.join(theirs) or '(none)'!r}"
    return None
