"""The verifier: every quote, citation and piece of evidence is located in the letter before anyone sees it.

Tiers, tried in order and recorded on each :class:`~llm_extract.schema.Grounding`:

1. ``exact``      - the string occurs verbatim (at the claimed offsets, else anywhere).
2. ``normalized`` - it occurs once whitespace, line-end hyphenation, quote glyphs, case and
                    page furniture are folded away; offsets map back to the original text.
3. ``fuzzy``      - rapidfuzz's best partial alignment scores at least ``FUZZY_THRESHOLD``;
                    searched only in windows around anchor substrings, so cost stays linear.
                    An alignment that adds or drops a negation or changes a number is not a
                    match, whatever its score: "is medically necessary" is not "is not
                    medically necessary" (:mod:`llm_extract.negation`).
4. ``none``       - not found: an error flag, never silently dropped.

Everything is linear in the letter's length: one fold of the letter per verifier, ``str.find``
for the first two tiers, and a bounded number of bounded windows for the fuzzy tier.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, get_args

from pydantic import BaseModel
from rapidfuzz import fuzz

from .checks import CHECK_CODES, check
from .ingest import Letter
from .layouts import page_furniture
from .negation import meaning_changes
from .normalize import Folded, blank, fold, fold_needle
from .schema import Citation, Determination, Flag, FlagCode, Grounding, MatchTier, Quote, stated_values

#: Lowest rapidfuzz partial-ratio (0-100) that still counts as the same sentence; below it a
#: quote is a paraphrase or a fabrication.
FUZZY_THRESHOLD = 90.0
#: Length of the anchor substrings that pick candidate windows for fuzzy matching.
ANCHOR_CHARS = 12
#: How many anchors are taken from one quote, and how many hits of one anchor are followed.
MAX_ANCHORS = 12
MAX_HITS_PER_ANCHOR = 20
#: Quotes longer than this (folded) are not fuzzy-matched: a paragraph is not a quote.
MAX_FUZZY_CHARS = 3000
#: Folded quotes shorter than this are too generic to ground ("Upheld", "the request").
MIN_QUOTE_CHARS = 8

#: Tiers at which evidence supports a value. Not fuzzy: a fuzzy match may differ in a digit, and a
#: date, an age or a case number is mostly digits.
EVIDENCE_TIERS = ("exact", "normalized")

VERIFIER_CODES = {
    FlagCode.QUOTE_NOT_FOUND,
    FlagCode.QUOTE_FUZZY,
    FlagCode.CITATION_NOT_FOUND,
    FlagCode.EVIDENCE_MISSING,
} | CHECK_CODES


@dataclass(frozen=True)
class Match:
    tier: MatchTier
    score: float
    start: int | None = None
    end: int | None = None


class Verifier:
    """Locates strings in one letter. Build once per letter; the folded text is cached."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def furniture(self) -> list[tuple[int, int]]:
        """The letter's page furniture, as the layout parser reads past it (one rule for both)."""
        return page_furniture(self.text)

    @cached_property
    def folded(self) -> Folded:
        return fold(self.text, furniture=self.furniture)

    def locate(self, needle: str, hint: tuple[int, int] | None = None) -> Match:
        """Find ``needle`` in the letter; ``hint`` is where the extractor says it is."""
        if not needle or not needle.strip():
            return Match("none", 0.0)
        text = self.text
        if hint is not None:
            start, end = hint
            if 0 <= start <= end <= len(text) and text[start:end] == needle:
                return Match("exact", 100.0, start, end)
        pos = text.find(needle)
        if pos != -1:
            return Match("exact", 100.0, pos, pos + len(needle))
        target = fold_needle(needle)
        if len(target) < MIN_QUOTE_CHARS:
            return Match("none", 0.0)
        folded = self.folded
        pos = folded.text.find(target)
        if pos != -1:
            start, end = folded.span(pos, pos + len(target))
            return Match("normalized", 100.0, start, end)
        if len(target) > MAX_FUZZY_CHARS:
            return Match("none", 0.0)
        return self._fuzzy(target, needle)

    def _fuzzy(self, target: str, needle: str) -> Match:
        """The best fuzzy alignment that keeps the needle's meaning: an alignment whose passage adds
        or drops a negation or changes a number (:func:`~llm_extract.negation.meaning_changes`) is
        not a match, however high it scores."""
        haystack = self.folded.text
        width = len(target)
        windows: list[tuple[int, int]] = []
        step = max(1, (width - ANCHOR_CHARS) // max(1, MAX_ANCHORS - 1))
        for offset in range(0, max(1, width - ANCHOR_CHARS + 1), step):
            anchor = target[offset : offset + ANCHOR_CHARS]
            hit, hits = haystack.find(anchor), 0
            while hit != -1 and hits < MAX_HITS_PER_ANCHOR:
                lo = max(0, hit - offset - width // 4)
                windows.append((lo, min(len(haystack), lo + width + width // 2)))
                hit, hits = haystack.find(anchor, hit + 1), hits + 1
        best: Match = Match("none", 0.0)
        for lo, hi in _merge(windows):
            result = fuzz.partial_ratio_alignment(target, haystack[lo:hi], score_cutoff=FUZZY_THRESHOLD)
            if result is not None and result.score > best.score:
                s, e = lo + result.dest_start, lo + result.dest_end
                if e > s:
                    start, end = self.folded.span(s, e)
                    if meaning_changes(needle, self._passage(start, end)) is None:
                        best = Match("fuzzy", round(result.score, 2), start, end)
        return best

    def _passage(self, start: int, end: int) -> str:
        """The letter's words at ``[start, end)``, widened to whole words, page furniture blanked."""
        text = self.text
        while start > 0 and text[start - 1].isalnum():
            start -= 1
        while end < len(text) and text[end].isalnum():
            end += 1
        inside = [(max(s, start) - start, min(e, end) - start) for s, e in self.furniture if s < end and e > start]
        return blank(text[start:end], inside)


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def ground(item: Grounding, verifier: Verifier, letter: Letter) -> Grounding:
    """Locate ``item.text`` and return a copy carrying the tier, score, offsets and page."""
    hint = (item.start, item.end) if item.start is not None and item.end is not None else None
    found = verifier.locate(item.text, hint)
    page = letter.page_of(found.start) if found.start is not None else None
    if (item.match, item.score, item.start, item.end, item.page) == (
        found.tier,
        found.score,
        found.start,
        found.end,
        page,
    ):
        return item  # already verified as it stands (a cache hit, a second pass): no copy
    return item.model_copy(
        update={
            "match": found.tier,
            "score": found.score,
            "start": found.start,
            "end": found.end,
            "page": page,
        }
    )


def verify(result: Determination, letter: Letter, verifier: Verifier | None = None) -> Determination:
    """Re-ground every quote, citation and piece of evidence of ``result`` in ``letter``; flag what fails.

    Groundings are found wherever the model holds them (nothing here lists field names), so a
    field added to the schema is verified as soon as it exists. Every stated value (a field
    marked :data:`~llm_extract.schema.STATED`) needs evidence found at an ``exact`` or
    ``normalized`` tier, else ``evidence_missing``; then the structural checks run
    (:mod:`llm_extract.checks`). Idempotent: the verifier's own earlier flags are replaced, other
    flags are kept, and only what changed is copied.
    """
    verifier = verifier or Verifier(letter.text)
    found: list[tuple[str, Grounding]] = []
    grounded = _reground(result, verifier, letter, "", found)
    flags = [f for f in result.flags if f.code not in VERIFIER_CODES]
    for path, g in found:
        flags += _grounding_flags(path, g)
    flags += _evidence_flags(grounded)
    flags += check(grounded, letter.text)
    return grounded.model_copy(update={"flags": flags})


@cache
def _holds_groundings(annotation: Any) -> bool:
    """Can a value of this type contain a Grounding? (decided once per type)"""
    if isinstance(annotation, type) and issubclass(annotation, Grounding):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_holds_groundings(info.annotation) for info in annotation.model_fields.values())
    return any(_holds_groundings(arg) for arg in get_args(annotation))


@cache
def _walked_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, info in cls.model_fields.items() if _holds_groundings(info.annotation))


def _reground(
    value: Any, verifier: Verifier, letter: Letter, path: str, found: list[tuple[str, Grounding]]
) -> Any:
    """``value`` with every Grounding inside it re-grounded; unchanged parts are returned as they are."""
    if isinstance(value, Grounding):
        grounded = ground(value, verifier, letter)
        found.append((path, grounded))
        return grounded
    if isinstance(value, BaseModel):
        update = {}
        for name in _walked_fields(type(value)):
            old = getattr(value, name)
            new = _reground(old, verifier, letter, f"{path}.{name}" if path else name, found)
            if new is not old:
                update[name] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, list):
        items = [_reground(v, verifier, letter, f"{path}.{i}", found) for i, v in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value)) else items
    if isinstance(value, dict):
        entries = {k: _reground(v, verifier, letter, f"{path}.{k}", found) for k, v in value.items()}
        return value if all(entries[k] is value[k] for k in value) else entries
    return value


def _item_index(path: str) -> int | None:
    """The item a dotted path is about (``items.2.quotes.0`` -> 2)."""
    parts = path.split(".")
    if len(parts) > 1 and parts[0] == "items" and parts[1].isdigit():
        return int(parts[1])
    return None


def _grounding_flags(path: str, g: Grounding) -> list[Flag]:
    """Flags for one re-grounded quote or citation (evidence is judged with its value, below)."""
    if path.startswith("evidence."):
        return []
    if g.match not in ("none", "fuzzy"):
        return []
    if isinstance(g, Quote):  # a conclusion or a supporting quote
        fuzzy = g.match == "fuzzy"
        return [
            Flag(
                code=FlagCode.QUOTE_FUZZY if fuzzy else FlagCode.QUOTE_NOT_FOUND,
                severity="warning" if fuzzy else "error",
                item=_item_index(path),
                start=g.start,
                end=g.end,
                message=f"quote only matches approximately (score {g.score:.0f}): {_clip(g.text)!r}"
                if fuzzy
                else f"quote not found in the letter: {_clip(g.text)!r}",
            )
        ]
    if isinstance(g, Citation):
        field = path.split(".")[2] if _item_index(path) is not None else path
        return [
            Flag(
                code=FlagCode.CITATION_NOT_FOUND,
                severity="error" if g.match == "none" else "warning",
                item=_item_index(path),
                start=g.start,
                end=g.end,
                message=f"{field} citation text {'not found' if g.match == 'none' else 'only fuzzy'}"
                f" in the letter: {_clip(g.text)!r}",
            )
        ]
    return [
        Flag(
            code=FlagCode.EVIDENCE_MISSING,
            severity="error",
            item=_item_index(path),
            start=g.start,
            end=g.end,
            message=f"{path}: {_clip(g.text)!r} {'not found' if g.match == 'none' else 'only matches approximately'}"
            " in the letter",
        )
    ]


def _evidence_flags(result: Determination) -> list[Flag]:
    """``evidence_missing`` for every stated value whose evidence is absent or was not found."""
    flags = []
    for path, value in stated_values(result):
        g = result.evidence.get(path)
        if g is not None and g.match in EVIDENCE_TIERS:
            continue
        shown = value.isoformat() if isinstance(value, dt.date) else value
        why = (
            "no evidence"
            if g is None
            else f"evidence {_clip(g.text)!r} {'not found' if g.match == 'none' else 'only matches approximately'}"
        )
        flags.append(
            Flag(
                code=FlagCode.EVIDENCE_MISSING,
                severity="error",
                item=_item_index(path),
                start=g.start if g is not None else None,
                end=g.end if g is not None else None,
                message=f"{path} = {_clip(str(shown))!r}: {why} in the letter",
            )
        )
    return flags


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
