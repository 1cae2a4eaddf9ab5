"""Every comparison of two extractions, or of an extraction and the gold labels: one home.

Used by the cross-check (an LLM result against the layout parser), the LLM validators (an answer
against the parser's items and the letter), the evaluation metrics and verdicts (gold against
predicted) and the reviewer page (the same gold-against-predicted rows the evaluation counts). A
rule changed here changes all of them, so they cannot disagree about whether two headings are the
same item, two titles the same title, two page ranges the same pages, or a conclusion grounded.

The text keys build on :func:`llm_extract.normalize.collapse` (whitespace runs to one space, glyph
twins such as curly quotes, non-breaking spaces, dashes and U+FFFE to ASCII): that is how a value
is *written* once folded, and every key below starts from it. Values may be models or plain
mappings (a gold file read as JSON), so the reviewer page needs no copy of the gold models.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rapidfuzz import fuzz

from .normalize import GLYPHS, collapse
from .schema import CITATION_FIELDS, Case, Patient, Reviewer

#: Item names at least this similar (rapidfuzz token_sort_ratio on :func:`heading_key`, 0-100)
#: are the same item.
ITEM_MATCH_THRESHOLD = 80.0
#: Lowest fuzz.ratio (0-100) of two :func:`alnum_key` titles at which they are the same title.
TITLE_MATCH_THRESHOLD = 85.0
#: A quote lying inside the gold conclusion grounds it only if it covers at least this share of
#: the conclusion ("medically necessary" alone does not ground a conclusion).
CONCLUSION_MIN_SHARE = 0.5
#: The parts of a citation compared one by one.
CITATION_PARTS = ("sources", "titles", "pages")

#: Item fields the gold set labels, so the fields compared gold against predicted and the fields a
#: ``correct`` verdict may set (``evals.run.apply_verdicts``). ``conclusion`` is the concluding
#: sentence's text, ``drug`` the generic name (``Item.drug.name``); the rest are the schema's own
#: values. tests/test_compare.py checks this against ``Item`` and ``evals.gold.GoldItem``.
ITEM_FIELDS = (
    "item",
    "decision",
    "original_request",
    "authorized",
    "conclusion",
    *CITATION_FIELDS,
    "category",
    "subcategory",
    "drug",
)
#: The letter-level sections the gold set labels, and their fields: the schema's, in its order.
LETTER_SECTIONS: dict[str, tuple[str, ...]] = {
    "case": tuple(Case.model_fields),
    "reviewer": tuple(Reviewer.model_fields),
    "patient": tuple(Patient.model_fields),
}
#: ``section.field`` for every letter-level field, in schema order.
LETTER_FIELDS = tuple(f"{section}.{name}" for section, names in LETTER_SECTIONS.items() for name in names)

_WS = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[\W_]+")


# --------------------------------------------------------------------------------------------
# Text keys
# --------------------------------------------------------------------------------------------


def heading_key(text: str | None) -> str:
    """How two item names are compared: collapsed (whitespace, glyphs, U+FFFE) and casefolded."""
    return collapse(text or "").casefold()


def alnum_key(text: str | None) -> str:
    """Letters and digits only, casefolded: "Low Back" == "low-back" == "LOWBACK"."""
    return _NON_ALNUM.sub("", (text or "").casefold())


def page_key(page: str) -> str:
    """Pages compare without whitespace and with dashes folded: "88 - 89" == "88-89" == "88–89"."""
    return _WS.sub("", page.translate(GLYPHS))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a model or of a mapping (a gold file read as plain JSON)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------


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
    """Pair two lists of item names one-to-one: ``(left_index, right_index, score)``.

    rapidfuzz ``token_sort_ratio`` on :func:`heading_key`; pairs at or above ``threshold`` taken
    greedily by descending score (ties: the earlier left item, then the earlier right item).
    """
    left_keys = [heading_key(a) for a in left]
    right_keys = [heading_key(b) for b in right]
    scores = (
        (fuzz.token_sort_ratio(a, b), i, j) for i, a in enumerate(left_keys) for j, b in enumerate(right_keys)
    )
    return greedy_pairs(scores, threshold)


def item_pairs(left: Sequence[str], right: Sequence[str]) -> dict[int, int]:
    """:func:`align_items` as a map: left index -> right index."""
    return {i: j for i, j, _ in align_items(left, right)}


# --------------------------------------------------------------------------------------------
# Values, gold against predicted
# --------------------------------------------------------------------------------------------


def same_heading(gold: str | None, predicted: str | None) -> bool:
    """A matched item's name written the same (collapsed, case kept): "verbatim" in the report."""
    return gold is not None and predicted is not None and collapse(gold) == collapse(predicted)


def same_text(gold: str | None, predicted: str | None) -> bool:
    """Two stated strings (a partial authorisation's parts) are the same: both given, collapsed equal."""
    return gold is not None and predicted is not None and collapse(gold) == collapse(predicted)


def letter_value(value: Any) -> Any:
    """A letter-level value as it compares: ISO dates, collapsed strings, lists of collapsed
    strings; empty strings and empty lists are None (nothing stated)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return collapse(value) or None
    if isinstance(value, (list, tuple)):
        return [collapse(str(v)) for v in value] or None
    return value


def same_letter_value(gold: Any, predicted: Any) -> bool:
    return letter_value(gold) == letter_value(predicted)


def citation_values(citations: Iterable[Any], part: str) -> list[str | None]:
    """The values of one citation part (sources, titles, pages) a guideline field holds."""
    if part == "sources":
        return [_get(c, "source") for c in citations]
    if part == "titles":
        return [_get(c, "title") for c in citations]
    return [page_key(p) for c in citations for p in _get(c, "pages") or []]


def compare_sets(gold: Iterable[str], predicted: Iterable[str]) -> tuple[int, int, int]:
    """(tp, fp, fn) of two sets."""
    g, p = set(gold), set(predicted)
    return len(g & p), len(p - g), len(g - p)


def compare_titles(
    gold: Iterable[str | None], predicted: Iterable[str | None], threshold: float = TITLE_MATCH_THRESHOLD
) -> tuple[int, int, int]:
    """(tp, fp, fn) of two title sets; a predicted title matches an unmatched gold title by fuzz.ratio."""
    g = sorted({alnum_key(t) for t in gold} - {""})
    p = sorted({alnum_key(t) for t in predicted} - {""})
    pairs = greedy_pairs(
        ((fuzz.ratio(gt, pt), gi, pi) for gi, gt in enumerate(g) for pi, pt in enumerate(p)), threshold
    )
    return len(pairs), len(p) - len(pairs), len(g) - len(pairs)


def compare_citations(gold: Iterable[Any], predicted: Iterable[Any], part: str) -> tuple[int, int, int]:
    """(tp, fp, fn) of one guideline field of one matched item, compared as sets."""
    g, p = citation_values(list(gold), part), citation_values(list(predicted), part)
    if part == "titles":
        return compare_titles(g, p)
    return compare_sets([x for x in g if x], [x for x in p if x])


def same_citations(gold: Iterable[Any], predicted: Iterable[Any]) -> bool:
    """The same guidelines: no source, title or page found on one side only."""
    gold, predicted = list(gold), list(predicted)
    return all(compare_citations(gold, predicted, part)[1:] == (0, 0) for part in CITATION_PARTS)


def conclusion_grounded(conclusion: str, quotes: Iterable[str | None]) -> bool:
    """Does some predicted quote overlap the gold conclusion sentence (collapsed text)?"""
    gold = collapse(conclusion)
    for q in quotes:
        quote = collapse(q or "")
        if not quote:
            continue
        if gold in quote:
            return True
        if quote in gold and len(quote) >= CONCLUSION_MIN_SHARE * len(gold):
            return True
    return False


def drug_key(name: str | None) -> frozenset[str]:
    """A drug's ingredients as a set: "hydrocodone/acetaminophen" is "acetaminophen/hydrocodone"."""
    return frozenset(part.strip().lower() for part in (name or "").split("/") if part.strip())


def drug_name(item: Any) -> str | None:
    """The generic name of an item's drug: ``Item.drug.name``, or a gold item's ``drug``."""
    drug = _get(item, "drug")
    return drug if drug is None or isinstance(drug, str) else _get(drug, "name")


def conclusion_text(item: Any) -> str | None:
    """The concluding sentence of an item: a gold item's ``conclusion``, an ``Item``'s quote's text."""
    value = _get(item, "conclusion")
    return value if value is None or isinstance(value, str) else _get(value, "text")


def item_agreement(gold: Any, predicted: Any) -> dict[str, bool | None]:
    """Per labelled field of a matched item: True the same, False different, None nothing to
    compare (the gold labels nothing there and nothing was predicted). The rule for each field is
    the evaluation's: the report counts a mismatch exactly where this says False."""
    out: dict[str, bool | None] = {}
    out["item"] = same_heading(_get(gold, "item"), _get(predicted, "item"))
    out["decision"] = _get(gold, "decision") == _get(predicted, "decision")
    for name in ("original_request", "authorized"):
        g, p = _get(gold, name), _get(predicted, name)
        out[name] = None if g is None and p is None else same_text(g, p)
    g_conclusion = conclusion_text(gold)
    out["conclusion"] = (
        None if g_conclusion is None else conclusion_grounded(g_conclusion, [conclusion_text(predicted)])
    )
    for name in CITATION_FIELDS:
        g, p = _get(gold, name) or [], _get(predicted, name) or []
        out[name] = None if not g and not p else same_citations(g, p)
    category, subcategory = _get(gold, "category"), _get(gold, "subcategory")
    out["category"] = None if category is None else _get(predicted, "category") == category
    out["subcategory"] = (
        None
        if category is None or subcategory is None
        else (_get(predicted, "category"), _get(predicted, "subcategory")) == (category, subcategory)
    )
    g_drug = _get(gold, "drug")
    out["drug"] = None if not g_drug else drug_key(drug_name(predicted)) == drug_key(g_drug)
    return out


# --------------------------------------------------------------------------------------------
# Against the letter
# --------------------------------------------------------------------------------------------

_DASHES = "".join(sorted({"-", *(chr(c) for c, to in GLYPHS.items() if to == "-")}))


def page_in_letter(page: str, text: str) -> bool:
    """Does the letter state this page (or range) anywhere, the way :func:`page_key` compares?

    Whitespace between a page's parts and the dash glyph are free ("88 - 89" is in a letter that
    says "88-89" or "88–89"); digits must not run on ("8" is not in "88").
    """
    tokens = _PAGE_TOKEN.findall(page.translate(GLYPHS))
    if not tokens:
        return False
    parts = [rf"[{re.escape(_DASHES)}]" if t == "-" else re.escape(t) for t in tokens]
    return re.search(r"(?<!\d)" + r"\s*".join(parts) + r"(?!\d)", text) is not None


_PAGE_TOKEN = re.compile(r"\w+|[^\w\s]")
