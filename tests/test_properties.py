"""The parser never crashes: arbitrary text, damaged real letters and mutated real PDFs give a
result that survives a JSON round trip, or a typed one-line error; values the letter states but
the schema cannot hold become null plus a flag."""

from __future__ import annotations

import itertools
import re

import pytest
from conftest import FIXTURES, PDFS, SEEDS, pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_extract import (
    Determination,
    ExtractionError,
    FlagCode,
    InternalExtractionError,
    extract,
    load,
    rules,
)

REAL = load(pdf("CM16-0248698")).text
SEED = load(SEEDS[3]).text
MPR = (FIXTURES / "mpr-2013-upheld.txt").read_text(encoding="utf-8")
MAXIMUS = (FIXTURES / "maximus-2015-single.txt").read_text(encoding="utf-8")
LABELS = [
    "Claims Administrator guideline:",
    "MAXIMUS guideline:",
    "Decision rationale:",
    ": Upheld",
    ": Overturned",
    "IMR ISSUES, DECISIONS AND RATIONALES",
    "set forth below:",
    "\f",
    "\r\n",
    "was the original request.",
    "The remaining IMR eligible portion of the original request, ",
    " is: ",
    "Section(s): ",
    "Page(s): 1-2",
    "ISSUE AT DISPUTE:",
    "RATIONALE FOR WHY THE REQUESTED TREATMENT/SERVICE IS/WAS NOT MEDICALLY NECESSARY:",
    "MEDICAL REVIEWER QUALIFICATIONS:",
    "1) Regarding the request for ",
    "Rationale for the Decision:",
    "is a 937-year-old male",
    "Date Assigned: 02/30/2015",
    "Date of Injury: 99999999999999999999/1/0201",
    "\ud800",
    "\udcff",
    "9" * 5000,
]
#: Any code point, lone surrogates included (hypothesis leaves them out of st.text() by default).
ANY_CHAR = st.characters(blacklist_categories=())


def outcome(text: str | bytes) -> Determination | None:
    """A typed error, or a result whose offsets index the letter and that survives JSON."""
    try:
        result = extract(text)
    except ExtractionError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    letter = load(text)
    assert Determination.model_validate_json(result.model_dump_json()) == result
    for item in result.items:
        assert item.heading is None or 0 <= item.heading.start <= item.heading.end <= len(letter.text)
        for g in (*item.quotes, *item.claims_administrator_guideline, *item.maximus_guideline):
            assert g.match != "none" or g.start is None
            if g.start is not None:
                assert 0 <= g.start <= g.end <= len(letter.text)
    return result


@settings(max_examples=200, deadline=None)
@given(st.text(ANY_CHAR, max_size=3000))
def test_arbitrary_text(text: str) -> None:
    outcome(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LABELS), st.text(ANY_CHAR, max_size=40)), max_size=60))
def test_label_soup(parts: list[str]) -> None:
    outcome("Independent Medical Review IMR ISSUES, DECISIONS AND RATIONALES " + "".join(parts))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_real_letters(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([REAL, SEED, MPR, MAXIMUS]))
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["cut", "insert", "delete", "move"]))
        if action == "cut":
            text = text[:at]
        elif action == "insert":
            text = text[:at] + data.draw(st.one_of(st.sampled_from(LABELS), st.text(ANY_CHAR, max_size=30))) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 200)) :]
        else:  # a block of the letter moved elsewhere: sections out of order
            size = data.draw(st.integers(1, 2000))
            block, rest = text[at : at + size], text[:at] + text[at + size :]
            to = data.draw(st.integers(0, len(rest)))
            text = rest[:to] + block + rest[to:]
    outcome(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_pdfs(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(PDFS[:20])).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        # positions spread over the whole file (hypothesis favours small integers)
        at = int(data.draw(st.floats(0, 1, exclude_max=True)) * len(raw))
        action = data.draw(st.sampled_from(["flip", "flip", "zero", "duplicate", "insert", "cut"]))
        if action == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "zero":
            size = min(data.draw(st.integers(1, 512)), len(raw) - at)
            raw[at : at + size] = bytes(size)
        elif action == "duplicate":
            raw[at:at] = raw[at : at + data.draw(st.integers(1, 4096))]
        elif action == "insert":
            raw[at:at] = data.draw(st.sampled_from([b"obj", b"endobj", b"/Kids [", b"<<", b">>", b"stream\n", b"R"]))
        else:
            del raw[max(len(raw) // 2, at) :]
    outcome(bytes(raw))


# --------------------------------------------------------------------------- null + flag


def flagged(result: Determination, code: FlagCode) -> list[str]:
    return [f.message for f in result.flags if f.code == code]


@pytest.mark.parametrize("age", ["137", "937"])
def test_age_out_of_range_is_null_and_flagged(age: str) -> None:
    result = extract(MPR.replace("37-year-old", f"{age}-year-old"))
    assert result.patient.age is None and result.patient.sex == "male"
    [message] = flagged(result, FlagCode.AGE_OUT_OF_RANGE)
    assert age in message
    assert result.items and result.items[0].decision == "upheld"


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("02/30/2015", FlagCode.HEADER_FIELD_MISSING),
        ("13/01/2015", FlagCode.HEADER_FIELD_MISSING),
        ("01/01/0201", FlagCode.VALUE_OUT_OF_RANGE),
        ("1/1/9999", FlagCode.VALUE_OUT_OF_RANGE),
    ],
)
def test_impossible_header_date_is_null_and_flagged(written: str, code: FlagCode) -> None:
    text = f"Case Number: CM16-0230651\nDate Assigned: {written}\n" + SEED
    result = extract(text)
    assert result.case.date_assigned is None and "case.date_assigned" not in result.evidence
    [message] = flagged(result, code)
    assert "case.date_assigned" in message and written in message
    assert Determination.model_validate_json(result.model_dump_json()) == result


def test_huge_digit_strings_are_not_ints() -> None:
    digits = "9" * 5000
    text = MPR.replace("37-year-old", f"{digits}-year-old").replace("11/8/13", f"{digits}/8/{digits}")
    assert outcome(text) is not None


_MPR_LABELS = [
    "CASE SUMMARY:",
    "DOCUMENTS REVIEWED FOR DETERMINATION:",
    "MEDICAL TREATMENT GUIDELINE(S) RELIED UPON BY PROFESSIONAL \nREVIEWER AND WHY:",
    "RATIONALE FOR WHY THE REQUESTED TREATMENT/SERVICE IS/WAS NOT \nMEDICALLY NECESSARY:",
    "MEDICAL REVIEWER QUALIFICATIONS:",
]


def _sections(text: str, labels: list[str]) -> tuple[str, list[str]]:
    """The text before the first label, and each label's section (label included)."""
    starts = sorted(text.index(label) for label in labels)
    head = text[: starts[0]]
    parts = [text[s:e] for s, e in zip(starts, [*starts[1:], len(text)])]
    return head, parts


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::7])
def test_mpr_sections_in_any_order(order: tuple[int, ...]) -> None:
    head, parts = _sections(MPR, _MPR_LABELS)
    text = head + "".join(parts[i] if parts[i].endswith("\n") else parts[i] + "\n" for i in order)
    result = outcome(text)
    assert result is not None and len(result.items) == 1
    rationale = result.items[0].rationale
    if rationale is not None:
        body = text[rationale.start : rationale.end]
        assert "MEDICAL REVIEWER QUALIFICATIONS" not in body and "CASE SUMMARY" not in body


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_maximus_sections_in_any_order(order: tuple[int, ...]) -> None:
    labels = [
        re.search(r"Medical Treatment Guideline\(s\) Used by the Claims Administrator[^:]*:", MAXIMUS).group(0),
        re.search(r"Medical Treatment Guideline\(s\) Relied on by the Expert Reviewer:", MAXIMUS).group(0),
        "Rationale for the Decision:",
    ]
    head, parts = _sections(MAXIMUS, labels)
    tail_at = parts[-1].find("\n\n\n")
    tail = ""
    if tail_at != -1:
        parts[-1], tail = parts[-1][:tail_at] + "\n", parts[-1][tail_at:]
    result = outcome(head + "".join(parts[i] for i in order) + tail)
    assert result is not None and result.items


def test_lone_surrogates_are_replaced_one_for_one_and_flagged() -> None:
    text = SEED.replace("massage", "mass\ud800age", 1).replace("Tramadol", "Tram\udcffadol", 1)
    result = outcome(text)
    assert result is not None
    letter = load(text)
    assert len(letter.text) == len(text) and letter.replaced == 2
    assert letter.first_replaced == min(text.index("\ud800"), text.index("\udcff"))
    assert letter.text[letter.first_replaced] == "\ufffd"
    [flag] = [f for f in result.flags if f.code == FlagCode.INVALID_CHARACTERS]
    assert flag.severity == "warning" and flag.start == letter.first_replaced and "2 lone surrogate" in flag.message
    clean = extract(text.replace("\ud800", "\ufffd").replace("\udcff", "\ufffd"))
    assert [i.item for i in clean.items] == [i.item for i in result.items]
    assert [q.start for i in clean.items for q in i.quotes] == [q.start for i in result.items for q in i.quotes]


def test_an_unexpected_bug_becomes_a_typed_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(rules, "build", broken)
    with pytest.raises(InternalExtractionError) as info:
        extract(SEED)
    assert info.value.code == "internal" and "KeyError" in str(info.value) and "boom" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


def test_wrong_calls_stay_type_errors() -> None:
    with pytest.raises(TypeError):
        extract(SEED, model="x")
    with pytest.raises(TypeError):
        extract(12345)  # type: ignore[arg-type]
