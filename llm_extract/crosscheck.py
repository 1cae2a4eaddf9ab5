"""Cross-check: an LLM result against the layout parser's, every disagreement a flag.

Where the parser recognises the layout, the two extractions must agree on the items, their
decisions and the citation sources; each disagreement is flagged naming both values, so a
reviewer sees exactly what to look at. Where the parser does not know the layout, the LLM result
stands alone and says so, and one layout-free check remains: the letter states one decision word
(Upheld, Overturned, Partially ...) per item — true of every 2016-17 gold letter and every
unknown-layout fixture (101 letters) — so fewer items than decision words means the model missed
one (a missed item was otherwise silent), and more items than words means it invented or split one.
Items are paired by :func:`llm_extract.compare.align_items`, the rule the evaluation and the
reviewer page pair gold and predicted items by.
"""

from __future__ import annotations

from .compare import align_items
from .layouts.grammar import DECISION
from .schema import CITATION_FIELDS, Determination, Flag, FlagCode, Item


def crosscheck(model: Determination, parser: Determination | None, text: str = "") -> list[Flag]:
    """Flags for every disagreement between the model's result and the parser's (or, where the parser
    does not know the layout, between the model's item count and the decisions ``text`` states)."""
    if parser is None or parser.source.layout == "unknown" or not parser.items:
        return [
            Flag(
                code=FlagCode.CROSSCHECK_UNAVAILABLE,
                severity="info",
                message="the layout parser does not know this layout: the model's result stands alone",
            ),
            *decision_count_flags(model, text),
        ]
    pairs = [(i, j) for i, j, _ in align_items([i.item for i in model.items], [i.item for i in parser.items])]
    matched_m, matched_p = {i for i, _ in pairs}, {j for _, j in pairs}
    flags = [
        _unpaired(FlagCode.CROSSCHECK_MISSING_ITEM, item, None, "the layout parser found", "the model did not return it")
        for j, item in enumerate(parser.items)
        if j not in matched_p
    ]
    flags += [
        _unpaired(FlagCode.CROSSCHECK_EXTRA_ITEM, item, i, "the model returned", "the layout parser found no such item")
        for i, item in enumerate(model.items)
        if i not in matched_m
    ]
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
        for field in CITATION_FIELDS:
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


def _unpaired(code: FlagCode, item: Item, index: int | None, found: str, missing: str) -> Flag:
    """An item one side has and the other does not (located at the parser's heading, if any)."""
    at = item.heading if index is None else None
    return Flag(
        code=code,
        severity="error",
        item=index,
        start=at.start if at else None,
        end=at.end if at else None,
        message=f"{found} item {item.item!r} ({item.decision}); {missing}",
    )


def decision_count_flags(model: Determination, text: str) -> list[Flag]:
    """The model's item count against the decision words the letter states (none stated: no check,
    as in the 2013-15 layouts, whose headings state none)."""
    words = list(DECISION.finditer(text))
    found = len(model.items)
    if not words or found == len(words):
        return []
    if found < len(words):
        return [
            Flag(
                code=FlagCode.CROSSCHECK_MISSING_ITEM,
                severity="error",
                message=f"the letter states {len(words)} decisions ({', '.join(repr(w.group(0)) for w in words[:8])}) "
                f"but the model found {found} item(s): an item is probably missing",
            )
        ]
    return [
        Flag(
            code=FlagCode.CROSSCHECK_EXTRA_ITEM,
            severity="error",
            message=f"the model found {found} items but the letter states {len(words)} decision(s): an item is "
            "probably invented or split",
        )
    ]
