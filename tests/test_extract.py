"""The rules backend end to end: every layout, every kind of debris, every flag it must raise."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES, PDFS, SEEDS, pdf

from llm_extract import Citation, Determination, FlagCode, Quote, extract, load
from llm_extract.schema import held

CA = re.compile(r"Claims\s+Administrator\s+guideline\s*:", re.IGNORECASE)


def codes(result: Determination, severity: str | None = None) -> set[str]:
    return {f.code.value for f in result.flags if severity is None or f.severity == severity}


def assert_grounded(result: Determination, text: str) -> None:
    """Every offset in the result shows exactly the text it claims."""
    for item in result.items:
        assert item.heading is not None
        assert (
            " ".join(text[item.heading.start : item.heading.end].split()).replace("\ufffe", "-") == item.item
        )
        for quote in held(item, Quote):  # the conclusion and the supporting quotes
            assert quote.match == "exact" and text[quote.start : quote.end] == quote.text
        for cit in held(item, Citation):
            assert text[cit.start : cit.end] == cit.text


@pytest.mark.parametrize("path", PDFS, ids=[p.stem for p in PDFS])
def test_every_real_pdf_extracts_every_item_cleanly(path) -> None:
    text = load(path).text
    result = extract(path)
    section = text[re.search(r"IMR ISSUES", text).start() :]
    assert len(result.items) == len(CA.findall(section)) > 0
    assert all(item.decision in ("upheld", "overturned") for item in result.items)
    assert all(item.rationale and held(item, Quote) and item.rationale_summary for item in result.items)
    assert not codes(result, "error"), result.flags
    assert result.source.layout == "imr-issues" and result.source.kind == "pdf"
    assert result.case.case_number == path.stem
    assert result.patient.age and result.patient.sex
    assert_grounded(result, text)


def test_seed_letter_items_and_citations() -> None:
    result = extract(SEEDS[0])
    assert [(i.item, i.decision) for i in result.items] == [
        ("6 massage therapy sessions for the low back", "upheld"),
        ("6 sessions of cognitive behavioral therapy", "upheld"),
        ("1 prescription of Percocet 10mg #90", "upheld"),
    ]
    mx = result.items[0].maximus_guideline[0]
    assert (mx.source, mx.title, mx.topic, mx.pages) == (
        "MTUS",
        "Chronic Pain Medical Treatment Guidelines",
        "Massage therapy",
        ["60"],
    )
    assert result.items[2].maximus_guideline[0].pages == ["78-88"]
    assert result.reviewer.licensure == ["Texas", "Illinois"]
    assert result.case.case_number is None and result.source.layout == "imr-issues"
    assert (result.patient.age, result.patient.sex) == (37, "male")


def test_seed_pages_list_and_prose_credentials() -> None:
    result = extract(SEEDS[3])
    assert result.items[1].maximus_guideline[0].pages == ["88", "89", "76-78"]
    assert result.reviewer.licensure == ["California"]
    assert result.reviewer.specialties == ["Physical Medicine and Rehabilitation", "Interventional spine"]


def test_header_block() -> None:
    result = extract(pdf("CM16-0230651"))
    assert result.case.model_dump(mode="json") == {
        "case_number": "CM16-0230651",
        "date_assigned": "2016-12-07",
        "date_of_injury": "2016-10-13",
        "decision_date": "2017-01-09",
        "ur_denial_date": "2016-11-22",
        "priority": "Standard",
        "application_received": "2016-11-29",
    }
    assert result.reviewer.licensure == ["California", "Washington"]
    assert result.source.page_count == 6


def test_partial_authorisation_items() -> None:
    result = extract(pdf("CM16-0230651"))
    last = result.items[-1]
    assert last.item == "Physical therapy to the low back two sessions"
    assert last.original_request == "Physical therapy to the low back eight sessions"
    assert last.authorized == "Physical therapy to the low back six sessions"
    assert last.decision == "upheld"  # the decision word stands on its own line there
    other = extract(pdf("CM16-0249536")).items
    acu = [i for i in other if i.authorized][0]
    assert acu.item == "Acupuncture treatments (unspecified quantity)"
    assert acu.authorized == "Acupuncture treatments, 6 sessions"


def test_colons_inside_headings_and_associated_surgical_services() -> None:
    names = [i.item for i in extract(pdf("CM16-0248698")).items]
    assert "NCV bilateral lower extremities QTY: 2" in names
    surgical = [i.item for i in extract(pdf("CM17-0014449")).items]
    assert "Associated surgical service: EKG" in surgical


def test_decision_glued_to_next_label() -> None:
    text = load(pdf("CM17-0009441")).text
    assert "Upheld\fClaims Administrator" in text  # pdfium: a form feed, no newline
    glued = text.replace("Upheld\fClaims", "UpheldClaims")  # other extractors drop even that
    for variant in (text, glued):
        result = extract(variant)
        assert len(result.items) == 8 and not codes(result, "error")
        assert all(i.decision == "upheld" for i in result.items)


def test_first_item_glued_to_set_forth_below_by_a_form_feed() -> None:
    text = load(pdf("CM16-0243394")).text
    assert "set forth below:\f" in text
    first = extract(text).items[0]
    assert first.item.startswith("Voltaren gel apply to affected area")
    assert first.item.endswith("DOS: 11/11/2016")


def test_overturned_and_hyphenation_mark() -> None:
    result = extract(pdf("CM17-0005589"))
    assert result.items[0].decision == "overturned"
    text = load(pdf("CM16-0230651")).text
    assert "\ufffe" in text
    assert not codes(extract(text), "error")


@pytest.mark.parametrize("name", ["maximus-2015-single", "maximus-2015-multi"])
def test_maximus_2015_layout(name: str) -> None:
    result = extract(FIXTURES / f"{name}.txt")
    assert result.source.layout == "maximus-2015"
    assert result.items and all(i.decision for i in result.items)
    assert result.case.case_number and result.case.date_of_injury
    assert not codes(result, "error")
    if name.endswith("multi"):
        assert [i.decision for i in result.items] == ["upheld", "overturned", "overturned"]
        assert {c.source for c in result.items[2].maximus_guideline} >= {"MTUS"}


@pytest.mark.parametrize(
    ("name", "decision"), [("mpr-2013-upheld", "upheld"), ("mpr-2013-overturned", "overturned")]
)
def test_mpr_2013_layout(name: str, decision: str) -> None:
    result = extract(FIXTURES / f"{name}.txt")
    assert result.source.layout == "mpr-2013"
    assert [i.decision for i in result.items] == [decision]
    assert FlagCode.DECISION_INFERRED.value in codes(result, "info")
    assert result.items[0].maximus_guideline and result.reviewer.licensure


def test_case_number_header_fixture() -> None:
    result = extract(FIXTURES / "case-number-header.txt")
    assert result.case.case_number == "CM15-0131234" and result.case.application_received is not None
    assert [i.decision for i in result.items] == ["overturned"]


def test_debris_fixture_matches_the_clean_letter() -> None:
    clean = extract(pdf("CM17-0012582"))
    debris = extract(FIXTURES / "debris.txt")
    assert [(i.item, i.decision) for i in debris.items] == [(i.item, i.decision) for i in clean.items]
    assert not codes(debris, "error")


DEBRIS = {
    "lf_only": lambda t: t.replace("\r\n", "\n"),
    "nbsp": lambda t: t.replace(" the ", " the\u00a0"),
    "curly_quotes": lambda t: (
        re.sub(r'"([^"\r\n]{1,80})"', "\u201c\\1\u201d", t)
        .replace("'", "\u2019")
        .replace("not medically necessary", "not \u201cmedically necessary\u201d")
    ),
    "upper_case_decisions": lambda t: re.sub(
        r": (Upheld|Overturned)", lambda m: ": " + m.group(1).upper(), t
    ),
    "footers": lambda t: t.replace("\f", "\r\nPage 2 of 4\r\n\fCM16-0000000\r\n"),
    "double_spaced": lambda t: t.replace("\r\n", " \r\n\r\n"),
}


@pytest.mark.parametrize("kind", sorted(DEBRIS))
@pytest.mark.parametrize("name", ["CM16-0230651", "CM17-0009441", "CM16-0248698", "CM16-0249536"])
def test_debris_keeps_items_and_decisions(kind: str, name: str) -> None:
    clean_text = load(pdf(name)).text
    clean = extract(clean_text)
    dirty_text = DEBRIS[kind](clean_text)
    assert dirty_text != clean_text
    dirty = extract(dirty_text)
    normal = lambda s: " ".join(s.replace("\u00a0", " ").split())  # noqa: E731
    assert [(normal(i.item), i.decision) for i in dirty.items] == [
        (normal(i.item), i.decision) for i in clean.items
    ]
    assert not codes(dirty, "error"), dirty.flags
    assert_grounded(dirty, dirty_text) if kind != "nbsp" else None


def test_decision_contradicting_rationale_is_flagged_not_fixed() -> None:
    text = load(SEEDS[1]).text  # one overturned item concluding "is medically necessary"
    swapped = text.replace(": Overturned", ": Upheld")
    result = extract(swapped)
    assert result.items[0].decision == "upheld"  # reported as written...
    flag = [f for f in result.flags if f.code == FlagCode.DECISION_CONTRADICTS_RATIONALE][0]
    assert flag.severity == "error" and flag.item == 0 and "medically necessary" in flag.message
    assert swapped[flag.start : flag.end].endswith("is medically necessary.")
    assert not result.ok


def test_truncated_letter_is_flagged() -> None:
    text = load(pdf("CM16-0230651")).text
    cut = text[: text.rfind("Decision rationale:") + 60]
    result = extract(cut)
    assert FlagCode.TRUNCATED.value in codes(result, "error")
    assert len(result.items) == 10


def test_item_without_rationale_is_flagged() -> None:
    text = load(SEEDS[0]).text
    last = text.rfind("Decision rationale:")
    result = extract(text[:last])
    assert {"missing_section", "missing_rationale", "truncated"} <= codes(result)
    assert result.items[-1].rationale is None


def test_letter_with_no_items_is_flagged() -> None:
    text = load(SEEDS[0]).text
    head = text[: text.find("6 massage therapy sessions for the low back:")]
    result = extract(head)
    assert not result.items and FlagCode.NO_ITEMS.value in codes(result, "error")


def test_unknown_layout_is_flagged() -> None:
    text = "Independent Medical Review\nMAXIMUS Federal Services\nSome other form of letter entirely.\n"
    result = extract(text)
    assert result.source.layout == "unknown" and FlagCode.LAYOUT_UNKNOWN.value in codes(result, "error")


def test_result_round_trips_through_json() -> None:
    result = extract(pdf("CM16-0248698"))
    again = Determination.model_validate_json(result.model_dump_json())
    assert again == result and len(result.items) == 21
