"""Evidence for every stated value, and the structural checks: flagged, naming both values, never fixed."""

from __future__ import annotations

import datetime as dt

import pytest

from evals.gold import LETTERS_DIR
from llm_extract import extract, load, verify
from llm_extract.checks import CHECK_CODES, WORKER_AGE_MAX, WORKER_AGE_MIN
from llm_extract.schema import FlagCode, Grounding, json_schema, stated_values

NAME = "CM17-0005589"
TEXT = load(LETTERS_DIR / "imr-2016-2017" / f"{NAME}.pdf").text
REAL_PDFS = sorted((LETTERS_DIR / "imr-2016-2017").glob("*.pdf"))


def codes(result, code: FlagCode) -> list:
    return [f for f in result.flags if f.code == code]


def test_every_stated_value_carries_its_evidence() -> None:
    result = extract(TEXT)
    assert result.ok
    values = dict(stated_values(result))
    assert {
        "case.case_number",
        "case.date_assigned",
        "case.priority",
        "case.application_received",
        "reviewer.licensure.0",
        "reviewer.specialties.0",
        "patient.age",
        "patient.sex",
        "items.0.item",
        "items.0.decision",
    } <= set(values)
    assert set(values) == set(result.evidence)
    ev = result.evidence
    assert TEXT[ev["case.date_assigned"].start : ev["case.date_assigned"].end] == "01/12/2017"
    assert ev["items.0.decision"].text == "Overturned" and ev["patient.sex"].text == "male"
    assert ev["case.priority"].page == 1 and all(g.match == "exact" for g in ev.values())


def test_partial_items_carry_evidence_for_original_request_and_authorized() -> None:
    for pdf in REAL_PDFS:
        text = load(pdf).text
        if "original request" not in text:
            continue
        result = extract(text)
        partial = [i for i, item in enumerate(result.items) if item.original_request]
        if partial:
            i = partial[0]
            for field in ("original_request", "authorized"):
                g = result.evidence[f"items.{i}.{field}"]
                assert " ".join(text[g.start : g.end].split()) == getattr(result.items[i], field)
            return
    pytest.fail("no partial item among the real letters")


def test_a_value_without_evidence_is_an_error_and_wrong_evidence_is_not_evidence() -> None:
    letter = load(TEXT)
    result = extract(letter)
    no_evidence = result.model_copy(
        update={"evidence": {k: v for k, v in result.evidence.items() if k != "patient.age"}}
    )
    checked = verify(no_evidence, letter)
    [flag] = codes(checked, FlagCode.EVIDENCE_MISSING)
    assert flag.severity == "error" and "patient.age" in flag.message and not checked.ok
    forged = dict(result.evidence)
    forged["case.date_assigned"] = Grounding(text="01/13/2099", start=0, end=10)
    checked = verify(result.model_copy(update={"evidence": forged}), letter)
    [flag] = codes(checked, FlagCode.EVIDENCE_MISSING)
    assert "case.date_assigned" in flag.message and "not found" in flag.message
    # Evidence with stale offsets is re-grounded where the letter really says it.
    moved = dict(result.evidence)
    g = moved["case.case_number"]
    moved["case.case_number"] = g.model_copy(update={"start": 0, "end": 5, "match": "none"})
    fixed = verify(result.model_copy(update={"evidence": moved}), letter)
    assert fixed.ok and fixed.evidence["case.case_number"] == g
    assert verify(fixed, letter) == fixed  # idempotent


def test_an_empty_item_name_is_a_stated_value_without_evidence() -> None:
    letter = load(TEXT)
    result = extract(letter)
    items = [result.items[0].model_copy(update={"item": ""})]
    evidence = {k: v for k, v in result.evidence.items() if k != "items.0.item"}
    checked = verify(result.model_copy(update={"items": items, "evidence": evidence}), letter)
    assert any("items.0.item" in f.message for f in codes(checked, FlagCode.EVIDENCE_MISSING))


def test_json_schema_shows_the_evidence_map() -> None:
    schema = json_schema()
    evidence = schema["properties"]["evidence"]
    assert evidence["additionalProperties"]["$ref"].endswith("/Grounding")
    assert "case.date_assigned" in evidence["description"]


# --------------------------------------------------------------------------- structural checks


def test_real_letters_raise_no_structural_error_and_two_genuine_sex_slips() -> None:
    """All 158 real letters: only two letters contradict themselves (a female patient, then "He had
    normal strength" / "His diagnoses include"); they get a warning, nothing else is flagged."""
    warned = {}
    for pdf in REAL_PDFS:
        result = extract(pdf)
        found = [f for f in result.flags if f.code in CHECK_CODES]
        assert all(f.severity == "warning" for f in found), (pdf.name, found)
        if found:
            warned[pdf.stem] = [f.code for f in found]
    assert warned == {
        "CM16-0240900": [FlagCode.SEX_INCONSISTENT],
        "CM17-0007886": [FlagCode.SEX_INCONSISTENT],
    }


def test_a_malformed_case_number_is_flagged_with_its_value() -> None:
    result = extract(TEXT.replace("CM17-0005589", "CM17-005589"))
    [flag] = codes(result, FlagCode.CASE_NUMBER_INVALID)
    assert result.case.case_number == "CM17-005589"  # kept as written, not fixed
    assert "CM17-005589" in flag.message and "CMyy-nnnnnnn" in flag.message and not result.ok


def test_dates_out_of_order_name_both_fields_and_values() -> None:
    # The misread: the application date taken from the date of injury.
    letter = load(TEXT)
    result = extract(letter)
    misread = result.model_copy(
        update={"case": result.case.model_copy(update={"application_received": result.case.date_of_injury})}
    )
    [flag] = codes(verify(misread, letter), FlagCode.DATES_OUT_OF_ORDER)
    assert (
        "case.ur_denial_date 2016-12-27" in flag.message
        and "case.application_received 2016-11-01" in flag.message
    )
    # And in a letter that says so itself: the date of injury after the decision.
    swapped = extract(TEXT.replace("11/01/2016", "03/01/2017", 1))
    assert swapped.case.date_of_injury == dt.date(2017, 3, 1)
    flags = codes(swapped, FlagCode.DATES_OUT_OF_ORDER)
    assert flags and "case.date_of_injury 2017-03-01" in flags[0].message and not swapped.ok


@pytest.mark.parametrize("age", [WORKER_AGE_MIN - 7, WORKER_AGE_MAX + 1, 150])
def test_an_implausible_age_is_flagged(age: int) -> None:
    result = extract(TEXT.replace("19 year old male", f"{age} year old male"))
    [flag] = codes(result, FlagCode.AGE_OUT_OF_RANGE)
    assert str(age) in flag.message and f"{WORKER_AGE_MIN}-{WORKER_AGE_MAX}" in flag.message
    assert result.patient.age == (age if age <= 130 else None)  # 150 does not fit the model: null, flagged
    assert TEXT.replace("19 year old male", f"{age} year old male")[flag.start : flag.end] == str(age)


def test_two_different_ages_or_sexes_are_flagged_naming_both() -> None:
    text = TEXT.replace(
        "restrictions. The physical exam", "restrictions. This 23-year-old female's physical exam", 1
    )
    result = extract(text)
    [sex] = codes(result, FlagCode.SEX_INCONSISTENT)
    [age] = codes(result, FlagCode.AGE_INCONSISTENT)
    assert sex.severity == "error" and "'male'" in sex.message and "'female'" in sex.message
    assert "19" in age.message and "23" in age.message and age.severity == "warning"
    assert result.patient.sex == "male" and result.patient.age == 19  # as first stated


def test_a_pronoun_of_the_other_sex_is_a_warning() -> None:
    text = TEXT.replace(
        "restrictions. The physical exam", "restrictions. She reports pain. The physical exam", 1
    )
    result = extract(text)
    [flag] = codes(result, FlagCode.SEX_INCONSISTENT)
    assert flag.severity == "warning" and "'male'" in flag.message and "She reports pain" in flag.message
    assert text[flag.start : flag.end] == "She"
    # A pronoun inside "He/she" boilerplate or mid-sentence (a physician) is no contradiction.
    assert not codes(
        extract(TEXT.replace("restrictions.", "restrictions; she said so. He/she agreed.", 1)),
        FlagCode.SEX_INCONSISTENT,
    )
