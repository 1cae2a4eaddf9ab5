"""Cross-check: an LLM result against the layout parser's, every disagreement a flag.

Where the parser recognises the layout, the two extractions must agree on the items, their
decisions and the citation sources; each disagreement is flagged naming both values, so a
reviewer sees exactly what to look at. Where the parser does not know the layout, the LLM result
stands alone and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rapidfuzz import fuzz

from .schema import Determination, Flag, FlagCode

#: Item names at least this similar (rapidfuzz token_sort_ratio, 0-100) are the same item.
ITEM_MATCH_THRESHOLD = 80.0

_WS = re.compile(r"\s+")


def heading_key(text: str) -> str:
    """How item headings are compared: whitespace collapsed, U+FFFE read as '-', casefolded."""
    return _WS.sub(" ", text.replace("\ufffe", "-").replace("\u00a0", " ")).strip().casefold()


def greedy_pairs(scores: Iterable[tuple[float, int, int]], threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (a, b, score) taken by descending score; ties go to lower indices."""
    ranked = sorted((s for s in scores if s[0] >= threshold), key=lambda s: (-s[0], s[1], s[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for score, a, b in ranked:
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            pairs.append((a, b, score))
    return sorted(pairs)


def align_items(
    left: Sequence[str], right: Sequence[str], threshold: float = ITEM_MATCH_THRESHOLD
) -> list[tuple[int, int, float]]:
    """Pair two lists of item headings one-to-one: ``(left_index, right_index, score)``.

    The one alignment rule shared by the cross-check and the evaluation harness.
    """
    left_keys = [heading_key(a) for a in left]
    right_keys = [heading_key(b) for b in right]
    scores = (
        (fuzz.token_sort_ratio(a, b), i, j) for i, a in enumerate(left_keys) for j, b in enumerate(right_keys)
    )
    return greedy_pairs(scores, threshold)


def crosscheck(model: Determination, parser: Determination | None) -> list[Flag]:
    """Flags for every disagreement between the model's result and the parser's."""
    if parser is None or parser.source.layout == "unknown" or not parser.items:
        return [
            Flag(
                code=FlagCode.CROSSCHECK_UNAVAILABLE,
                severity="info",
                message="the layout parser does not know this layout: the model's result stands alone",
            )
        ]
    flags: list[Flag] = []
    pairs = [(i, j) for i, j, _ in align_items([i.item for i in model.items], [i.item for i in parser.items])]
    matched_m, matched_p = {i for i, _ in pairs}, {j for _, j in pairs}
    for j, item in enumerate(parser.items):
        if j not in matched_p:
            flags.append(
                Flag(
                    code=FlagCode.CROSSCHECK_MISSING_ITEM,
                    severity="error",
                    start=item.heading.start if item.heading else None,
                    end=item.heading.end if item.heading else None,
                    message=f"the layout parser found item {item.item!r} ({item.decision}); "
                    "the model did not return it",
                )
            )
    for i, item in enumerate(model.items):
        if i not in matched_m:
            flags.append(
                Flag(
                    code=FlagCode.CROSSCHECK_EXTRA_ITEM,
                    severity="error",
                    item=i,
                    message=f"the model returned item {item.item!r} ({item.decision}); "
                    "the layout parser found no such item",
                )
            )
    for i, j in pairs:
        mine, theirs = model.items[i], parser.items[j]
        if mine.decision != theirs.decision:
            flags.append(
                Flag(
                    code=FlagCode.CROSSCHECK_DECISION,
                    severity="error",
                    item=i,
                    message=f"{mine.item!r}: model says {mine.decision!r}, layout parser says "
                    f"{theirs.decision!r}",
                )
            )
        for field in ("claims_administrator_guideline", "maximus_guideline"):
            got = sorted({c.source for c in getattr(mine, field)})
            want = sorted({c.source for c in getattr(theirs, field)})
            if got != want:
                flags.append(
                    Flag(
                        code=FlagCode.CROSSCHECK_CITATION_SOURCE,
                        severity="warning",
                        item=i,
                        message=f"{mine.item!r} {field}: model cites {got}, layout parser reads {want}",
                    )
                )
    return flags
