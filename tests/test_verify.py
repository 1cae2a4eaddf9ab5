"""The verifier: tiers, scores and offsets, flags for what is not found, and no crash on anything."""

from __future__ import annotations

import pytest
from conftest import SEEDS, pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_extract import FlagCode, Quote, Verifier, extract, load, verify
from llm_extract.verify import FUZZY_THRESHOLD

LETTER = load(pdf("CM16-0230651"))
TEXT = LETTER.text


def test_exact_match_and_offsets() -> None:
    needle = "The patient has not trialed and \r\nfailed a proper conservative course of care prior to this request."
    found = Verifier(TEXT).locate(needle)
    assert found.tier == "exact" and found.score == 100
    assert TEXT[found.start : found.end] == needle


def test_normalized_match_across_line_breaks_hyphenation_and_glyphs() -> None:
    # The letter has "electro\ufffemyography", CRLF line ends and straight quotes.
    needle = "The California MTUS 2016 Chronic Pain Guidelines state, electromyography and nerve conduction studies are separate studies"
    found = Verifier(TEXT).locate(needle)
    assert found.tier == "normalized" and found.score == 100
    span = TEXT[found.start : found.end]
    assert span.startswith("The California MTUS") and span.endswith("separate studies") and "\ufffe" in span


def test_normalized_match_with_curly_quotes_and_case() -> None:
    text = load(SEEDS[3]).text
    needle = "\u201cRecommended as an option as indicated below. This treatment should be an adjunct"
    found = Verifier(text).locate(needle.upper())
    assert found.tier == "normalized"
    assert text[found.start : found.end].startswith('"Recommended as an option')


def test_page_furniture_inside_a_quote_is_folded_away() -> None:
    sentence = "Physical exam of the lumbar spine revealed a no gross abnormality"
    assert TEXT.count(sentence) == 1
    at = TEXT.index(sentence) + 30
    with_footer = TEXT[:at] + "\r\nPage 2 of 6\r\n\fCM16-0230651\r\n" + TEXT[at:]
    found = Verifier(with_footer).locate(sentence)
    assert found.tier == "normalized"
    assert "Page 2 of 6" in with_footer[found.start : found.end]


def test_fuzzy_match_for_a_small_slip() -> None:
    needle = "Nerve conduction studies in the lower extremitys are not recomended, but electromyography is recommended"
    found = Verifier(TEXT).locate(needle)
    assert found.tier == "fuzzy" and FUZZY_THRESHOLD <= found.score < 100
    assert "Nerve conduction studies in the lower" in TEXT[found.start : found.end]


@pytest.mark.parametrize(
    "needle",
    [
        "The patient responded well to twelve sessions of aquatic therapy and returned to full duty.",
        "MTUS strongly recommends lumbar fusion for all patients with chronic pain.",
        "",
        "   ",
        "Upheld!",
    ],
)
def test_fabricated_or_empty_quotes_are_not_found(needle: str) -> None:
    found = Verifier(TEXT).locate(needle)
    assert found.tier == "none" and found.start is None and found.score == 0


def test_verify_flags_a_fabricated_quote_and_fixes_offsets_of_a_true_one() -> None:
    result = extract(LETTER)
    true = result.items[0].quotes[0]
    moved = true.model_copy(update={"start": 0, "end": 5, "match": "none"})  # wrong offsets claimed
    fake = Quote(text="The MRI showed a complete rotator cuff tear requiring surgery.")
    items = [result.items[0].model_copy(update={"quotes": [moved, fake]}), *result.items[1:]]
    checked = verify(result.model_copy(update={"items": items}), LETTER)
    good, bad = checked.items[0].quotes
    assert (good.match, good.start, good.end) == ("exact", true.start, true.end)
    assert good.page == LETTER.page_of(true.start)
    assert bad.match == "none" and bad.start is None
    flags = [f for f in checked.flags if f.code == FlagCode.QUOTE_NOT_FOUND]
    assert len(flags) == 1 and flags[0].item == 0 and flags[0].severity == "error"
    assert not checked.ok
    assert verify(checked, LETTER) == checked  # idempotent


def test_the_conclusion_is_grounded_like_any_quote() -> None:
    result = extract(LETTER)
    item = result.items[1]
    assert item.conclusion is not None and item.conclusion.match == "exact"
    assert LETTER.text[item.conclusion.start : item.conclusion.end] == item.conclusion.text
    assert item.conclusion not in item.quotes  # the supporting quotes are the other sentences
    fake = Quote(text="The requested treatment is medically necessary and appropriate for this patient.")
    items = [*result.items[:1], item.model_copy(update={"conclusion": fake}), *result.items[2:]]
    checked = verify(result.model_copy(update={"items": items}), LETTER)
    assert checked.items[1].conclusion.match == "none"
    [flag] = [f for f in checked.flags if f.code == FlagCode.QUOTE_NOT_FOUND]
    assert flag.item == 1 and flag.severity == "error"


def test_verify_flags_a_citation_not_in_the_letter() -> None:
    result = extract(LETTER)
    cit = (
        result.items[0]
        .maximus_guideline[0]
        .model_copy(update={"text": "ODG Knee chapter, page 999", "start": None})
    )
    items = [result.items[0].model_copy(update={"maximus_guideline": [cit]}), *result.items[1:]]
    checked = verify(result.model_copy(update={"items": items}), LETTER)
    assert any(f.code == FlagCode.CITATION_NOT_FOUND and f.severity == "error" for f in checked.flags)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_substring_is_found_exactly_where_it_is(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(TEXT) - 20))
    length = data.draw(st.integers(12, 300))
    needle = TEXT[start : start + length]
    found = Verifier(TEXT).locate(needle, hint=(start, start + len(needle)))
    assert (found.tier, found.start, found.end) == ("exact", start, start + len(needle))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_reflowed_substrings_are_found_normalized_at_the_same_place(data: st.DataObject) -> None:
    words = TEXT.split()
    i = data.draw(st.integers(0, len(words) - 12))
    n = data.draw(st.integers(6, 30))
    needle = " ".join(words[i : i + n]).replace("\ufffe", "-").upper()
    found = Verifier(TEXT).locate(needle)
    assert found.tier in ("exact", "normalized")
    got = "".join(TEXT[found.start : found.end].split()).replace("\ufffe", "").replace("-", "").upper()
    assert got == "".join(needle.split()).replace("-", "")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=2000), needle=st.text(max_size=300))
def test_verifier_never_crashes_on_arbitrary_text(text: str, needle: str) -> None:
    found = Verifier(text).locate(needle)
    assert found.tier in ("exact", "normalized", "fuzzy", "none")
    if found.start is not None:
        assert 0 <= found.start <= found.end <= len(text)
