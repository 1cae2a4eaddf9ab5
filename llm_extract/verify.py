"""The verifier: every quote and citation is located in the letter before anyone sees it.

Tiers, tried in order and recorded on each :class:`~llm_extract.schema.Grounding`:

1. ``exact``      - the string occurs verbatim (at the claimed offsets, else anywhere).
2. ``normalized`` - it occurs once whitespace, line-end hyphenation, quote glyphs, case and
                    page furniture are folded away; offsets map back to the original text.
3. ``fuzzy``      - rapidfuzz's best partial alignment scores at least ``FUZZY_THRESHOLD``;
                    searched only in windows around anchor substrings, so cost stays linear.
4. ``none``       - not found: an error flag, never silently dropped.

Everything is linear in the letter's length: one fold of the letter per verifier, ``str.find``
for the first two tiers, and a bounded number of bounded windows for the fuzzy tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from rapidfuzz import fuzz

from .ingest import Letter
from .normalize import Folded, fold, fold_needle
from .schema import Determination, Flag, FlagCode, Grounding, MatchTier

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

VERIFIER_CODES = {
    FlagCode.QUOTE_NOT_FOUND,
    FlagCode.QUOTE_FUZZY,
    FlagCode.CITATION_NOT_FOUND,
}


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
    def folded(self) -> Folded:
        return fold(self.text, drop_furniture=True)

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
        return self._fuzzy(target)

    def _fuzzy(self, target: str) -> Match:
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
                    best = Match("fuzzy", round(result.score, 2), start, end)
        return best


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
    """Re-ground every quote and citation of ``result`` in ``letter`` and flag what fails.

    Idempotent: the verifier's own earlier flags are replaced, other flags are kept.
    """
    verifier = verifier or Verifier(letter.text)
    flags = [f for f in result.flags if f.code not in VERIFIER_CODES]
    items = []
    for index, item in enumerate(result.items):
        quotes = [ground(q, verifier, letter) for q in item.quotes]
        for q in quotes:
            if q.match == "none":
                flags.append(
                    Flag(
                        code=FlagCode.QUOTE_NOT_FOUND,
                        severity="error",
                        item=index,
                        message=f"quote not found in the letter: {_clip(q.text)!r}",
                    )
                )
            elif q.match == "fuzzy":
                flags.append(
                    Flag(
                        code=FlagCode.QUOTE_FUZZY,
                        severity="warning",
                        item=index,
                        start=q.start,
                        end=q.end,
                        message=f"quote only matches approximately (score {q.score:.0f}): {_clip(q.text)!r}",
                    )
                )
        groups = {}
        for field in ("claims_administrator_guideline", "maximus_guideline"):
            cited = [ground(c, verifier, letter) for c in getattr(item, field)]
            for c in cited:
                if c.match in ("none", "fuzzy"):
                    flags.append(
                        Flag(
                            code=FlagCode.CITATION_NOT_FOUND,
                            severity="error" if c.match == "none" else "warning",
                            item=index,
                            start=c.start,
                            end=c.end,
                            message=f"{field} citation text {'not found' if c.match == 'none' else 'only fuzzy'}"
                            f" in the letter: {_clip(c.text)!r}",
                        )
                    )
            groups[field] = cited
        unchanged = all(a is b for a, b in zip(quotes, item.quotes)) and all(
            a is b for field, cited in groups.items() for a, b in zip(cited, getattr(item, field))
        )
        items.append(item if unchanged else item.model_copy(update={"quotes": quotes, **groups}))
    return result.model_copy(update={"items": items, "flags": flags})


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
