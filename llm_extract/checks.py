"""Structural checks: values that are each plausible but cannot all be true. Flagged, never fixed.

A misread header (the date of injury taken for the application date, a priority of ``"CM"``)
or a letter that contradicts itself ("a 59 year old female ... His diagnoses include") looks
fine field by field. These checks compare values with each other and with the letter, and name
both sides in the flag; the values are kept exactly as extracted. They run inside
:func:`llm_extract.verify.verify`, so every backend and every cached result is checked alike.
"""

from __future__ import annotations

import datetime as dt
import re

from .fields import CASE_NUMBER_PATTERN, patient_mentions, summary_start
from .schema import Determination, Flag, FlagCode, Severity

#: The header dates in the order the IMR process produces them; each is on or after the one before.
DATE_ORDER = ("date_of_injury", "ur_denial_date", "application_received", "date_assigned", "decision_date")
#: Ages an injured worker can plausibly have; outside it the age is a misread (a "5-year history").
WORKER_AGE_MIN = 14
WORKER_AGE_MAX = 100
#: A pronoun opening a sentence of the case summary or a rationale: in these letters it is the
#: patient ("He had normal strength"); mid-sentence pronouns are often a physician ("stated that he").
SENTENCE_PRONOUN = re.compile(
    r"[.!?][\"'\u201d)\]]?[ \t\r\n\f]{1,10}(?P<word>He|His|Him|Himself|She|Her|Hers|Herself)\b(?![ \t]{0,3}/)"
)
PRONOUN_SEX = {
    "he": "male",
    "his": "male",
    "him": "male",
    "himself": "male",
    "she": "female",
    "her": "female",
    "hers": "female",
    "herself": "female",
}
CHECK_CODES = frozenset(
    {
        FlagCode.CASE_NUMBER_INVALID,
        FlagCode.DATES_OUT_OF_ORDER,
        FlagCode.AGE_OUT_OF_RANGE,
        FlagCode.AGE_INCONSISTENT,
        FlagCode.SEX_INCONSISTENT,
    }
)
#: Characters of the letter quoted around a conflicting statement in a flag message.
CONTEXT_CHARS = 40


def check(result: Determination, text: str) -> list[Flag]:
    """Every structural violation in ``result`` (read from ``text``) as a flag naming both values."""
    return _case_number(result) + _dates(result) + _patient(result, text)


def _span(result: Determination, path: str) -> tuple[int | None, int | None]:
    g = result.evidence.get(path)
    return (g.start, g.end) if g is not None else (None, None)


def _flag(code: FlagCode, severity: Severity, message: str, span: tuple[int | None, int | None]) -> Flag:
    return Flag(code=code, severity=severity, message=message, start=span[0], end=span[1])


def _case_number(result: Determination) -> list[Flag]:
    number = result.case.case_number
    if number is None or CASE_NUMBER_PATTERN.fullmatch(number):
        return []
    return [
        _flag(
            FlagCode.CASE_NUMBER_INVALID,
            "error",
            f"case.case_number {number!r} is not of the form CMyy-nnnnnnn",
            _span(result, "case.case_number"),
        )
    ]


def _dates(result: Determination) -> list[Flag]:
    present: list[tuple[str, dt.date]] = [
        (name, value) for name in DATE_ORDER if (value := getattr(result.case, name)) is not None
    ]
    flags = []
    for (first, a), (second, b) in zip(present, present[1:]):
        if a > b:
            flags.append(
                _flag(
                    FlagCode.DATES_OUT_OF_ORDER,
                    "error",
                    f"case.{first} {a.isoformat()} is after case.{second} {b.isoformat()} "
                    f"(expected {' <= '.join(DATE_ORDER)})",
                    _span(result, f"case.{second}"),
                )
            )
    return flags


def _clip(text: str, start: int) -> str:
    return " ".join(text[start : start + CONTEXT_CHARS].split())


def _patient(result: Determination, text: str) -> list[Flag]:
    flags: list[Flag] = []
    age, sex = result.patient.age, result.patient.sex
    mentions = patient_mentions(text)
    ages = [(a.value, a.span) for a, _ in mentions]
    if age is not None:
        ages.insert(0, (age, _span(result, "patient.age")))
    wild = next(
        ((value, span) for value, span in ages if not WORKER_AGE_MIN <= value <= WORKER_AGE_MAX), None
    )
    if wild is not None:
        flags.append(
            _flag(
                FlagCode.AGE_OUT_OF_RANGE,
                "error",
                f"patient age {wild[0]} is outside {WORKER_AGE_MIN}-{WORKER_AGE_MAX}",
                wild[1],
            )
        )
    if age is not None:
        other = next(((a.value, a.span) for a, _ in mentions if a.value != age), None)
        if other is not None:
            flags.append(
                _flag(
                    FlagCode.AGE_INCONSISTENT,
                    "warning",
                    f"patient.age is {age} but the letter also says {other[0]} "
                    f"({_clip(text, other[1][0])!r})",
                    other[1],
                )
            )
    if sex is None:
        return flags
    stated = next((s for _, s in mentions if s.value != sex), None)
    if stated is not None:
        flags.append(
            _flag(
                FlagCode.SEX_INCONSISTENT,
                "error",
                f"patient.sex is {sex!r} but the letter also says {stated.value!r} "
                f"({text[stated.span[0] : stated.span[1]]!r})",
                stated.span,
            )
        )
        return flags
    for m in SENTENCE_PRONOUN.finditer(text, summary_start(text)):
        if PRONOUN_SEX[m.group("word").lower()] != sex:
            flags.append(
                _flag(
                    FlagCode.SEX_INCONSISTENT,
                    "warning",
                    f"patient.sex is {sex!r} but a sentence about the patient reads {_clip(text, m.start('word'))!r}",
                    (m.start("word"), m.end("word")),
                )
            )
            break
    return flags
