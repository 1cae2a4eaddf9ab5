"""Every gold file is valid and every label it copies from the letter is really in the letter."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from pydantic import ValidationError

from evals.gold import GOLD_DIR, LETTERS_DIR, PHARMACEUTICALS, GoldItem, GoldLetter
from llm_extract import load
from llm_extract.compare import heading_key
from llm_extract.layouts import page_furniture
from llm_extract.normalize import blank, collapse  # GUIDE.md's rule: whitespace collapsed, U+FFFE read as '-'
from llm_extract.taxonomy import load_taxonomy

GOLD_FILES = sorted(GOLD_DIR.glob("*.json"))
MIN_GOLD_LETTERS = 50


@cache
def letter_text(relpath: str) -> str:
    """The letter's text collapsed, then again with its page furniture (running headers and
    footers) removed: GUIDE.md copies a heading wrapped around a page break without them."""
    text = load(LETTERS_DIR / relpath).text
    return collapse(text) + "\n" + collapse(blank(text, page_furniture(text)))


def test_gold_set_is_big_enough() -> None:
    pdf_golds = [p for p in GOLD_FILES if p.stem.startswith("CM")]
    assert len(pdf_golds) >= MIN_GOLD_LETTERS, f"only {len(pdf_golds)} labelled PDFs"


@pytest.mark.parametrize("path", GOLD_FILES, ids=[p.stem for p in GOLD_FILES])
def test_gold_file_matches_its_letter(path: Path) -> None:
    gold = GoldLetter.model_validate(json.loads(path.read_text(encoding="utf-8")))
    assert (LETTERS_DIR / gold.letter).is_file(), f"{gold.letter} is not in evals/letters"
    text = letter_text(gold.letter)
    assert gold.items, "a letter decides at least one item"
    for n, item in enumerate(gold.items):
        assert item.item == collapse(item.item), f"item {n}: whitespace not collapsed"
        assert not item.item.endswith(":"), f"item {n}: trailing colon"
        assert item.item in text, f"item {n} heading not in letter: {item.item!r}"
        for field in ("original_request", "authorized", "conclusion"):
            value = getattr(item, field)
            if value is not None:
                assert collapse(value) in text, f"item {n} {field} not in letter: {value!r}"
        for cit in item.claims_administrator_guideline + item.maximus_guideline:
            for page in cit.pages:
                assert page in text, f"item {n}: page {page!r} not in letter"
    for date in gold.case.model_dump().values():
        if date and re.fullmatch(r"\d{4}-\d\d-\d\d", date or ""):
            y, m, d = date.split("-")
            assert f"{m}/{d}/{y}" in text, f"date {date} not in letter"


# --- Request category, subcategory and drug (issue 15; rules in evals/GUIDE.md) ----------------

REQUEST_KEYS = ("category", "subcategory", "drug")


def raw_items(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["items"]


def test_taxonomy_is_the_dwc_list() -> None:
    pairs = load_taxonomy()
    assert len(pairs) == len(set(pairs)), "a (category, subcategory) row is listed twice"
    assert ("category", "subcategory") not in pairs, "the header row is data"
    assert not any(c.startswith("#") for c, _ in pairs), "a comment line is data"
    assert {("Pharmaceuticals", "Opioids"), ("DMEPOS", "DME"), ("Transportation", "Transportation")} <= set(pairs)


@pytest.mark.parametrize("path", GOLD_FILES, ids=[p.stem for p in GOLD_FILES])
def test_every_item_has_request_labels(path: Path) -> None:
    gold = GoldLetter.model_validate(json.loads(path.read_text(encoding="utf-8")))
    taxonomy = set(load_taxonomy())
    for n, (raw, item) in enumerate(zip(raw_items(path), gold.items)):
        missing = [k for k in REQUEST_KEYS if k not in raw]
        assert not missing, f"item {n} ({item.item!r}) has no {missing}: write null, don't leave it out"
        pair = (item.category, item.subcategory)
        if pair == (None, None):
            assert item.item in gold.notes, f"item {n}: category null but notes don't say why"
            continue
        assert pair in taxonomy, f"item {n}: {pair} is not a row of the DWC taxonomy"
        if item.category == PHARMACEUTICALS:
            if item.drug is None:
                assert item.item in gold.notes, f"item {n}: a drug with no name and no note why"
            else:
                assert item.drug == item.drug.lower().strip(), f"item {n}: drug {item.drug!r} not lower case"
        else:
            assert item.drug is None, f"item {n}: drug {item.drug!r} on a {item.category} item"


def test_fixtures_label_like_the_letters_they_were_built_from() -> None:
    """The fixtures reuse real letters' items (fixtures/README.md): a repeated heading, same labels."""
    real: dict[str, tuple[str | None, ...]] = {}
    fixtures: list[tuple[str, str, tuple[str | None, ...]]] = []
    for path in GOLD_FILES:
        for raw in raw_items(path):
            key = heading_key(raw["item"])
            labels = tuple(raw.get(k) for k in REQUEST_KEYS)
            if path.stem.startswith("fixture-"):
                fixtures.append((path.stem, key, labels))
            else:
                real.setdefault(key, labels)
    shared = [(stem, key, labels) for stem, key, labels in fixtures if key in real]
    assert shared, "no fixture item repeats a real letter's heading: this test checks nothing"
    for stem, key, labels in shared:
        assert labels == real[key], f"{stem}: {key!r} labelled {labels}, the letter says {real[key]}"


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"category": "DMEPOS", "subcategory": "Opioids"}, "not a (category, subcategory) row"),
        ({"category": "DMEPOS", "subcategory": None}, "not a (category, subcategory) row"),
        ({"category": "DMEPOS", "subcategory": "DME", "drug": "lidocaine"}, "only Pharmaceuticals"),
        ({"category": "Pharmaceuticals", "subcategory": "Opioids", "drug": "Norco"}, "lower case"),
        ({"category": "Pharmaceuticals", "subcategory": "Opioids", "drug": "tramadol/"}, "non-empty"),
        ({"category": "Pharmaceuticals", "subcategory": "Opioids", "drug": "a/a"}, "listed twice"),
        (
            {"category": "Pharmaceuticals", "subcategory": "Topical Compounds", "drug": "lidocaine/capsaicin"},
            "alphabetical",
        ),
    ],
)
def test_gold_item_rejects_bad_request_labels(labels: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        GoldItem(item="x", decision="upheld", **labels)


def test_gold_item_accepts_good_request_labels() -> None:
    norco = GoldItem(
        item="Norco 10/325mg #60",
        decision="upheld",
        category="Pharmaceuticals",
        subcategory="Opioids",
        drug="hydrocodone/acetaminophen",
    )
    assert norco.drug == "hydrocodone/acetaminophen"
    assert GoldItem(item="Old label", decision="upheld").category is None  # files before issue 15
