"""Every gold file is valid and every label it copies from the letter is really in the letter."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from evals.gold import GOLD_DIR, LETTERS_DIR, GoldLetter
from evals.metrics import collapse  # GUIDE.md's rule: whitespace collapsed, U+FFFE read as '-'
from llm_extract import load

GOLD_FILES = sorted(GOLD_DIR.glob("*.json"))
MIN_GOLD_LETTERS = 50


@cache
def letter_text(relpath: str) -> str:
    return collapse(load(LETTERS_DIR / relpath).text)


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
