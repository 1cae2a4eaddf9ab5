"""Cross-check: an LLM result against the layout parser's, every disagreement a flag.

Where the parser recognises the layout, the two extractions must agree on the items, their
decisions and the citation sources; each disagreement is flagged naming both values, so a
reviewer sees exactly what to look at. Where the parser does not know the layout, the LLM result
stands alone and says so.
"""

from __future__ import annotations

from rapidfuzz import fuzz

from .schema import Determination, Flag, FlagCode

#: Item names at least this similar (rapidfuzz token_sort_ratio, 0-100) are the same item.
ITEM_MATCH_THRESHOLD = 80


def _key(name: str) -> str:
    return " ".join(name.replace("\ufffe", "-").lower().split())


def align(
    left: list[str], right: list[str], threshold: float = ITEM_MATCH_THRESHOLD
) -> list[tuple[int, int]]:
    """One-to-one pairs (i, j) of similar names, greedily by descending similarity."""
    scored = sorted(
        (
            (fuzz.token_sort_ratio(_key(a), _key(b)), i, j)
            for i, a in enumerate(left)
            for j, b in enumerate(right)
        ),
        reverse=True,
    )
    used_l, used_r, pairs = set(), set(), []
    for score, i, j in scored:
        if score < threshold:
            break
        if i not in used_l and j not in used_r:
            used_l.add(i)
            used_r.add(j)
            pairs.append((i, j))
    return sorted(pairs)


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
    pairs = align([i.item for i in model.items], [i.item for i in parser.items])
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
