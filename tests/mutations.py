"""Mutations of real letters, and what a right result for each must hold.

Every mutation damages a real letter the way a tool, a scanner or a person does: a colon dropped,
the whole text lower-cased, a section or an item removed, a page printed twice, two items swapped,
running headers and footers added at every page break, the letter cut off inside an item. For each,
the expected items are derived from the original letter's own result: equal where the mutation
leaves them alone, changed exactly as the mutation changes them, or ``None`` where no right result
exists without a flag (a truncated letter, an item with no name).

The rule checked (``tests/test_mutations.py``, and ``python tests/mutations.py`` over every letter):
a mutated letter's result is either right (equal to the expected items) or carries an error flag;
never ``ok`` with a wrong value. Mutations marked ``must_recover`` must be read right, not merely
flagged: the parser is built to read past them.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_extract import Determination, ExtractionError, Item, extract, layouts, load  # noqa: E402
from llm_extract.normalize import collapse, sentences  # noqa: E402
from llm_extract.rules import NECESSITY, WEAK_CONCLUSION  # noqa: E402

LETTERS = ROOT / "evals" / "letters"
ItemKey = tuple


def item_key(item: Item, fold: bool = False) -> ItemKey:
    """What must not change: name, decision, partial parts, citation sources and titles, quotes at all."""

    def norm(value: str | None) -> str | None:
        if value is None:
            return None
        value = collapse(value)
        return value.casefold() if fold else value

    def cites(citations: list) -> tuple:
        return tuple(sorted((c.source, norm(c.title) or "") for c in citations))

    return (
        norm(item.item),
        item.decision,
        norm(item.original_request),
        norm(item.authorized),
        cites(item.claims_administrator_guideline),
        cites(item.maximus_guideline),
        bool(item.quotes),
    )


def _without(key: ItemKey, field: str) -> ItemKey:
    """``key`` with one citation field emptied (its section was removed)."""
    index = {"ca": 4, "mx": 5}[field]
    return (*key[:index], (), *key[index + 1 :])


@dataclass
class Mutation:
    kind: str
    detail: str
    text: str
    #: The items a right result holds, or None when the mutated letter cannot be read right.
    expected: list[ItemKey] | None
    fold: bool = False
    must_recover: bool = False


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # "right", "flagged", "WRONG" (ok with a wrong value), "NOT RECOVERED"
    got: list[ItemKey] | None = None
    flags: tuple[str, ...] = ()


HEADERS = {
    "running header": ("CM14-0198765 - Independent Medical Review - Final Determination Letter", None),
    "running footer": (None, "CM14-0198765 - Independent Medical Review - Final Determination Letter"),
    "page numbers and header": ("Independent Medical Review - Final Determination Letter", "Page {n} of {m}"),
    "two-line footer": (None, "MAXIMUS Federal Services, Inc.\nPage {n} of {m}"),
}


def mutations(text: str, original: Determination) -> Iterator[Mutation]:
    """Every mutation of one letter, with the expected items of its right result."""
    parsed = layouts.parse(text)
    blocks = parsed.items
    keys = [item_key(i) for i in original.items]
    folded = [item_key(i, fold=True) for i in original.items]
    n = len(blocks)
    if n != len(keys) or not n:
        return
    for k, block in enumerate(blocks):
        # the colon that ends the name: before the decision word, or ending a heading that states none
        # ("N) Regarding the request for X:", "ISSUE AT DISPUTE: X" has none to drop)
        colon = -1
        if block.decision_span is not None:  # (a decision read from the summary lies before the heading)
            colon = text.rfind(":", block.heading[1], block.decision_span[0])
        if colon == -1:
            colon = text.find(":", block.heading[1], block.heading[1] + 3)
        if colon != -1:
            yield Mutation("drop a colon", f"item {k}", text[:colon] + text[colon + 1 :], keys)
        s, e = block.heading
        yield Mutation("empty item name", f"item {k}", text[:s] + text[e:], None)
        for kind in ("ca", "mx"):
            label, body = block.labels.get(kind), getattr(block, kind)
            if label is not None and body is not None:
                expected = [*keys[:k], _without(keys[k], kind), *keys[k + 1 :]]
                yield Mutation("remove a section", f"item {k} {kind}", text[: label[0]] + text[body[1] :], expected)
        label = block.labels.get("rationale")
        if label is not None and block.rationale is not None:
            yield Mutation("remove a section", f"item {k} rationale", text[: label[0]] + text[block.rationale[1] :], None)
        end = blocks[k + 1].block_start if k + 1 < n else len(text)
        if n > 1:  # (without its only item, a letter is rightly flagged no_items)
            yield Mutation(
                "remove an item", f"item {k}", text[: block.block_start] + text[end:], [*keys[:k], *keys[k + 1 :]],
                must_recover=True,
            )
        yield from _cuts(text, block, k, keys)
    if n >= 2:
        for i, j in {(0, 1), (0, n - 1), (n - 2, n - 1)}:
            if i < j:
                yield _swap(text, blocks, i, j, keys)
    yield Mutation("lower-case", "whole letter", text.lower(), folded, fold=True, must_recover=True)
    pages = text.split("\f")
    for p in range(len(pages)):
        doubled = "\f".join([*pages[: p + 1], pages[p], *pages[p + 1 :]])
        yield Mutation("duplicate a page", f"page {p + 1}", doubled, keys)
    if len(pages) >= 2:
        for style, (head, foot) in HEADERS.items():
            yield Mutation("running header/footer", style, _furnished(pages, head, foot, "\f"), keys, must_recover=True)
        head, foot = HEADERS["page numbers and header"]
        yield Mutation(
            "running header/footer", "no form feeds", _furnished(pages, head, foot, "\n"), keys, must_recover=True
        )


def _swap(text: str, blocks: list, i: int, j: int, keys: list[ItemKey]) -> Mutation:
    def span(k: int) -> tuple[int, int]:
        end = blocks[k + 1].block_start if k + 1 < len(blocks) else blocks[k].rationale[1]
        return blocks[k].block_start, end

    (a, b), (c, d) = span(i), span(j)
    first, second = text[a:b], text[c:d]
    # keep each block's trailing line break where it was
    swapped = text[:a] + second.rstrip() + first[len(first.rstrip()) :] + text[b:c] + first.rstrip() + second[len(second.rstrip()) :] + text[d:]
    order = list(range(len(keys)))
    order[i], order[j] = order[j], order[i]
    return Mutation("swap items", f"items {i} and {j}", swapped, [keys[k] for k in order], must_recover=True)


def _cuts(text: str, block, k: int, keys: list[ItemKey]) -> Iterator[Mutation]:
    """The letter cut off inside item ``k``: in its heading, in a guideline section, and in its
    rationale before any sentence that could conclude it (mid-word and after a full sentence)."""
    s, e = block.heading
    if e - s > 4:
        yield Mutation("cut inside an item", f"item {k} heading", text[: (s + e) // 2], None)
    if block.ca is not None and block.ca[1] - block.ca[0] > 10:
        yield Mutation("cut inside an item", f"item {k} guideline", text[: (block.ca[0] + block.ca[1]) // 2], None)
    if block.rationale is None:
        return
    spans = sentences(text, *block.rationale)
    concluding = [i for i, (a, b) in enumerate(spans) if NECESSITY.search(text, a, b) or WEAK_CONCLUSION.search(text, a, b)]
    stop = concluding[0] if concluding else len(spans)
    if stop >= 2:  # at least one full sentence that concludes nothing
        yield Mutation("cut inside an item", f"item {k} rationale, after a sentence", text[: spans[stop - 1][1]], None)
    if stop >= 1:
        a, b = spans[stop - 1] if stop >= 2 else spans[0]
        words = [m.start() for m in re.finditer(r"\w+", text[a:b])]
        if len(words) > 3:
            yield Mutation("cut inside an item", f"item {k} rationale, mid-word", text[: a + words[len(words) // 2] + 2], None)


def _furnished(pages: list[str], head: str | None, foot: str | None, separator: str) -> str:
    """The pages with a running header at every top and a running footer at every bottom."""
    m = len(pages)
    out = []
    for n, page in enumerate(pages, 1):
        top = head.format(n=n, m=m) + "\r\n" if head else ""
        bottom = "\r\n" + foot.format(n=n, m=m).replace("\n", "\r\n") + "\r\n" if foot else ""
        out.append(top + page + bottom)
    return separator.join(out)


def judge(mutation: Mutation) -> Outcome:
    """Run the mutated letter and say whether its result is right, flagged, or wrong."""
    try:
        result = extract(mutation.text)
    except ExtractionError as err:  # a typed error is loud: as good as a flag
        return Outcome(mutation, "NOT RECOVERED" if mutation.must_recover else "flagged", None, (err.code,))
    got = [item_key(i, mutation.fold) for i in result.items]
    errors = tuple(sorted({f.code.value for f in result.flags if f.severity == "error"}))
    right = result.ok and mutation.expected is not None and got == mutation.expected
    if mutation.must_recover and not right:
        return Outcome(mutation, "NOT RECOVERED", got, errors)
    if right:
        return Outcome(mutation, "right", got, errors)
    return Outcome(mutation, "flagged" if not result.ok else "WRONG", got, errors)


def letter_texts(names: list[str] | None = None) -> list[tuple[str, str]]:
    """(name, text) of the real letters (pdfium), their other tools' text, the seeds and fixtures."""
    paths = sorted((LETTERS / "imr-2016-2017").glob("*.pdf"))
    paths += sorted((LETTERS / "variants").glob("*/*.txt")) + sorted((LETTERS / "seeds").glob("*.txt"))
    paths += sorted((LETTERS / "fixtures").glob("*.txt"))
    chosen = [p for p in paths if names is None or str(p.relative_to(LETTERS)) in names]
    return [(str(p.relative_to(LETTERS)), load(p).text) for p in chosen]


def letter_outcomes(job: tuple[str, str]) -> list[tuple[str, Outcome]]:
    name, text = job
    original = extract(text)
    if not original.ok:
        return []
    return [(name, judge(m)) for m in mutations(text, original)]


def main() -> None:
    """Every mutation of every letter: a count per kind and verdict, and every wrong result."""
    from concurrent.futures import ProcessPoolExecutor

    counts: Counter = Counter()
    bad = []
    with ProcessPoolExecutor() as pool:
        for outcomes in pool.map(letter_outcomes, letter_texts(), chunksize=4):
            for name, outcome in outcomes:
                mutation = outcome.mutation
                counts[(mutation.kind, outcome.verdict)] += 1
                if outcome.verdict in ("WRONG", "NOT RECOVERED"):
                    bad.append((name, mutation.kind, mutation.detail, outcome.verdict, outcome.flags))
    kinds = sorted({k for k, _ in counts})
    print(f"{'mutation':24s} {'right':>7s} {'flagged':>8s} {'WRONG':>6s} {'not recovered':>14s}")
    for kind in kinds:
        print(
            f"{kind:24s} {counts[(kind, 'right')]:7d} {counts[(kind, 'flagged')]:8d} {counts[(kind, 'WRONG')]:6d}"
            f" {counts[(kind, 'NOT RECOVERED')]:14d}"
        )
    for row in bad[:60]:
        print(*row)
    print(f"{sum(counts.values())} mutated letters; {len(bad)} wrong or not recovered")


if __name__ == "__main__":
    main()
