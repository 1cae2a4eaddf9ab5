"""Fuzzy must not change meaning: a quote that adds or drops a negation or changes a number is
not the letter's sentence, however close its characters (llm_extract.negation, used by verify)."""

from __future__ import annotations

import pytest
from conftest import pdf
from rapidfuzz import fuzz

from llm_extract import FlagCode, Verifier, extract, load, verify
from llm_extract.negation import meaning_changes, negations, numbers
from llm_extract.normalize import fold_needle
from llm_extract.verify import FUZZY_THRESHOLD

LETTER = load(pdf("CM16-0230651"))
TEXT = LETTER.text
SENTENCE = "Given the above, the request for Flexeril 10mg #60 is not medically necessary."


@pytest.mark.parametrize(
    "changed",
    [
        "Given the above, the request for Flexeril 10mg #60 is medically necessary.",  # negation dropped
        "Given the above, the request for Flexeril 10mg #90 is not medically necessary.",  # quantity
        "Given the above, the request for Flexeril 5mg #60 is not medically necessary.",  # strength
        "Given the above, the request for Flexeril 10mg #60 isn't not medically necessary.",  # negation added
        "Given the above, the request for Flexeril 10mg #60 is not medically unnecessary.",
    ],
)
def test_a_fuzzy_match_that_changes_meaning_is_no_match(changed: str) -> None:
    assert SENTENCE in TEXT
    # close enough that, characters alone, it would pass the fuzzy tier
    assert fuzz.partial_ratio(fold_needle(changed), fold_needle(SENTENCE)) >= FUZZY_THRESHOLD
    assert Verifier(TEXT).locate(changed).tier == "none"


def test_a_slip_that_keeps_the_meaning_still_matches_fuzzy() -> None:
    found = Verifier(TEXT).locate("Given the above, the reqest for Flexeril 10mg #60 is not medicaly necesary.")
    assert found.tier == "fuzzy" and "Flexeril 10mg #60 is not medically" in TEXT[found.start : found.end]


def test_a_flipped_conclusion_makes_the_result_not_ok() -> None:
    result = extract(LETTER)
    index = next(i for i, item in enumerate(result.items) if item.conclusion and "Flexeril" in item.conclusion.text)
    flipped = result.items[index].conclusion.model_copy(
        update={"text": SENTENCE.replace("is not", "is"), "start": None, "end": None, "match": "none", "score": 0.0}
    )
    items = list(result.items)
    items[index] = items[index].model_copy(update={"conclusion": flipped})
    checked = verify(result.model_copy(update={"items": items}), LETTER)
    assert not checked.ok
    assert any(f.code == FlagCode.QUOTE_NOT_FOUND and f.item == index for f in checked.flags)


def test_the_vocabulary() -> None:
    assert negations("It isn't supported, and is not necessary; unwarranted.") == ["isnt", "not", "unwarranted"]
    assert negations("Notable findings were noted.") == []
    assert numbers("Norco 10/325 #1,000 for 2.5 weeks") == ["10/325", "1000", "2.5"]
    assert meaning_changes("is not necessary", "is not necessary") is None
    assert "negation" in (meaning_changes("is necessary", "is not necessary") or "")
    assert "numbers" in (meaning_changes("#60 tablets", "#90 tablets") or "")
