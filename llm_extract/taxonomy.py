"""The DWC's request taxonomy: the (category, subcategory) pairs it publishes per IMR decision.

One reader for ``data/dwc_request_categories.tsv`` (copied byte for byte from the DWC's IMR
decision search form), used by the classifier and by the gold-label validator, so both agree
on what a valid label is. Stdlib only: the rules path imports it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

TAXONOMY_FILE = "dwc_request_categories.tsv"
_HEADER = ("category", "subcategory")


@cache
def load_taxonomy() -> tuple[tuple[str, str], ...]:
    """The (category, subcategory) pairs in file order; comment lines (``#``) and the header skipped."""
    text = files("llm_extract").joinpath("data", TAXONOMY_FILE).read_text(encoding="utf-8")
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        category, subcategory = (part.strip() for part in line.split("\t"))
        if (category, subcategory) != _HEADER:
            pairs.append((category, subcategory))
    return tuple(pairs)


def categories() -> tuple[str, ...]:
    """The categories, each once, in file order (the schema's ``Literal`` of categories)."""
    return tuple(dict.fromkeys(c for c, _ in load_taxonomy()))


def subcategories() -> tuple[str, ...]:
    """The subcategory names, each once, in file order (some names occur under two categories)."""
    return tuple(dict.fromkeys(s for _, s in load_taxonomy()))


def is_valid(category: str | None, subcategory: str | None) -> bool:
    """True for a published pair, a category alone, or nothing at all."""
    if category is None:
        return subcategory is None
    if subcategory is None:
        return category in categories()
    return (category, subcategory) in load_taxonomy()
