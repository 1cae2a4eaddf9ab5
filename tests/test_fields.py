"""Header, reviewer and patient fields from any tool's text: every column/spacing shape, the
committed text variants, and shuffled header blocks (hypothesis). A value is right or null and
flagged, never a guess."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evals.gold import GOLD_DIR, LETTERS_DIR, load_gold
from evals.make_text_variants import VARIANTS_DIR, variant_path
from llm_extract import extract, load
from llm_extract.fields import DATE_VALUE, parse_date, read_fields
from llm_extract.schema import FlagCode, stated_values

EXPECTED = {
    "case_number": "CM17-0005177",
    "date_assigned": "2017-01-12",
    "decision_date": "2017-02-06",
    "priority": "Standard",
    "date_of_injury": "2016-11-01",
    "ur_denial_date": "2016-12-27",
    "application_received": "2017-01-09",
}
WRITTEN = {
    "case_number": "CM17-0005177",
    "date_assigned": "01/12/2017",
    "decision_date": "02/06/2017",
    "priority": "Standard",
    "date_of_injury": "11/01/2016",
    "ur_denial_date": "12/27/2016",
    "application_received": "01/09/2017",
}
END = "\nHOW THE IMR FINAL DETERMINATION WAS MADE\nMAXIMUS Federal Services sent the complete case file to an expert.\n"

#: The header block as each tool lays it out (taken from the tools' output for real letters, with
#: this file's values), plus shapes no tool here produced but a tool could.
SHAPES = {
    "pdfium": (
        "Case Number: CM17-0005177\r\nDate Assigned: 01/12/2017 Date of Injury: 11/01/2016\r\n"
        "Decision Date: 02/06/2017 UR Denial Date: 12/27/2016\r\nPriority: Standard Application \r\n"
        "Received: \r\n01/09/2017\r\n"
    ),
    "pdftotext columns": (
        "Case Number:\nDate Assigned:\nDecision Date:\nPriority:\n\nCM17-0005177\n01/12/2017\n02/06/2017\n"
        "Standard\n\nDate of Injury:\nUR Denial Date:\nApplication\nReceived:\n\n11/01/2016\n12/27/2016\n"
        "01/09/2017\n"
    ),
    "values column first": (
        "CM17-0005177\n01/12/2017\n02/06/2017\nStandard\n\nCase Number:\nDate Assigned:\nDecision Date:\n"
        "Priority:\n\n11/01/2016\n12/27/2016\n01/09/2017\n\nDate of Injury:\nUR Denial Date:\n"
        "Application Received:\n"
    ),
    "pdftotext -layout": (
        "Case Number:          CM17-0005177\n"
        "Date Assigned:        01/12/2017                      Date of Injury:      11/01/2016\n"
        "Decision Date:        02/06/2017                      UR Denial Date:      12/27/2016\n"
        "Priority:             Standard                        Application          01/09/2017\n"
        "                                                      Received:\n"
    ),
    "layout label row over value row": (
        "Case Number:      Date Assigned:    Decision Date:    Priority:\n"
        "CM17-0005177      01/12/2017        02/06/2017        Standard\n"
        "Date of Injury:   UR Denial Date:   Application Received:\n"
        "11/01/2016        12/27/2016        01/09/2017\n"
    ),
    "pymupdf": (
        " \nCase Number: \nCM17-0005177 \n \nDate Assigned: \n01/12/2017 \nDate of Injury:  \n11/01/2016 \n"
        "Decision Date: \n02/06/2017 \nUR Denial Date:  \n12/27/2016 \nPriority:  \nStandard \nApplication \n"
        "Received:  \n01/09/2017 \n"
    ),
    "pdfminer, value inside a wrapped label": (
        "Case Number: \nDate Assigned: \nDecision Date: \nPriority:  \n\nCM17-0005177 \n01/12/2017 \n"
        "02/06/2017 \nStandard \n\nDate of Injury:  \n11/01/2016 \nUR Denial Date:   12/27/2016 \n"
        "Application \n01/09/2017 \nReceived:  \n"
    ),
    "pdfminer, value before its label": (
        "Case Number: \nDate Assigned: \nDecision Date: \nPriority:  \n\nCM17-0005177 \n01/12/2017 \n"
        "02/06/2017 \nStandard \n\n11/01/2016 \nDate of Injury:  \nUR Denial Date:   12/27/2016 \n"
        "01/09/2017 \nApplication \nReceived:  \n"
    ),
    "labels and a case number broken across lines": (
        "Case\nNumber: CM17-\n0005177\nDate\nAssigned: 01/12/2017 Date of\nInjury: 11/01/2016\n"
        "Decision Date: 02/06/2017 UR Denial\nDate: 12/27/2016\nPriority: Standard Application\n"
        "Received:\n01/09/2017\n"
    ),
    "tabs and non-breaking spaces": (
        "Case Number:\tCM17-0005177\nDate Assigned:\u00a001/12/2017\tDate of Injury:\t11/01/2016\n"
        "Decision Date:\t02/06/2017\tUR Denial Date:\t12/27/2016\nPriority:\tStandard\t"
        "Application Received:\t01/09/2017\n"
    ),
}


def header_of(text: str) -> tuple[dict[str, str], list]:
    found = read_fields(text)
    values = {
        name: f.value.isoformat() if isinstance(f.value, dt.date) else f.value
        for name, f in found.header.items()
    }
    return values, found


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_header_shape_reads_every_field(shape: str) -> None:
    text = SHAPES[shape] + END
    values, found = header_of(text)
    assert values == EXPECTED, shape
    assert not [p for p in found.problems if p.code == FlagCode.HEADER_FIELD_MISSING]
    for name, f in found.header.items():  # the evidence is the value as written
        assert re.sub(r"\s", "", text[f.span[0] : f.span[1]]) == WRITTEN[name], (shape, name)


@pytest.mark.parametrize("shape", ["pdftotext columns", "pymupdf", "pdfminer, value inside a wrapped label"])
def test_a_missing_value_is_null_and_flagged_never_a_neighbours_value(shape: str) -> None:
    text = SHAPES[shape].replace("12/27/2016", "") + END  # UR Denial Date left empty
    values, found = header_of(text)
    assert "ur_denial_date" not in values
    for name, value in values.items():
        assert value == EXPECTED[name], (shape, name)  # whatever is read is right
    flagged = {p.message.split(":")[0] for p in found.problems if p.code == FlagCode.HEADER_FIELD_MISSING}
    assert "case.ur_denial_date" in flagged
    assert flagged | {f"case.{n}" for n in values} == {f"case.{n}" for n in EXPECTED}


def test_priority_without_a_value_is_not_the_case_number() -> None:
    """The issue's pdftotext case: 'Priority' must never take 'CM' (or any non-priority word)."""
    text = SHAPES["pdftotext columns"].replace("Standard\n", "") + END
    values, found = header_of(text)
    assert "priority" not in values
    assert values["case_number"] == "CM17-0005177"
    assert any(p.message.startswith("case.priority") for p in found.problems)


def test_an_impossible_date_is_null_and_flagged() -> None:
    values, found = header_of(SHAPES["pdfium"].replace("01/12/2017", "13/45/2017") + END)
    assert "date_assigned" not in values and values["date_of_injury"] == EXPECTED["date_of_injury"]
    assert any("not a valid date" in p.message for p in found.problems)


def test_month_name_dates_and_the_maximus_labels() -> None:
    text = (
        "Notice of Independent Medical Review Determination\n\nDated: December 30, 2014\n\nEmployee: [redacted]\n"
        "Date of UR Decision: 11/04/2014\nDate of Injury: 10/07/2011\nIMR Application Received: 11/14/2014\n"
        "MAXIMUS Case Number: CM14-0203418\n\n1) MAXIMUS Federal Services, Inc. has determined the requested "
        "massage is not medically necessary. The application was received on 11/14/2014.\n"
    )
    values, found = header_of(text)
    assert values == {
        "decision_date": "2014-12-30",
        "ur_denial_date": "2014-11-04",
        "date_of_injury": "2011-10-07",
        "application_received": "2014-11-14",
        "case_number": "CM14-0203418",
    }
    assert not [p for p in found.problems if p.code == FlagCode.HEADER_FIELD_MISSING]


def test_a_letter_without_a_header_block_states_no_header_and_raises_nothing() -> None:
    text = (LETTERS_DIR / "seeds" / "000_c56c88992780afee.txt").read_text(encoding="utf-8")
    values, found = header_of(text)
    assert values == {} and not [p for p in found.problems if p.code == FlagCode.HEADER_FIELD_MISSING]


# --------------------------------------------------------------------------- reviewer and patient

REVIEWER_SHAPES = {
    "one line each": "State(s) of Licensure: California, New York\nCertification(s)/Specialty: Internal Medicine, "
    "Pain Management\n",
    "values on the next lines": "State(s) of Licensure:\n\nCalifornia, New York\nCertification(s)/Specialty:\n"
    "Internal Medicine, Pain Management\n",
    "label column then value column": "State(s) of Licensure:\nCertification(s)/Specialty:\n\nCalifornia, New York\n"
    "Internal Medicine, Pain Management\n",
    "wrapped lists, -layout spacing": "State(s) of Licensure:     California,\n     New York\n"
    "Certification(s)/Specialty:     Internal Medicine, Pain Manage-\nment\n",
    "labels broken across lines": "State(s) of\nLicensure: California,New York\nCertification(s)/\nSpecialty: "
    "Internal Medicine,\nPain Management\n",
}


@pytest.mark.parametrize("shape", list(REVIEWER_SHAPES))
def test_reviewer_shapes(shape: str) -> None:
    text = (
        "The Expert Reviewer has the following credentials:\n"
        + REVIEWER_SHAPES[shape]
        + "CLINICAL CASE SUMMARY\n"
    )
    found = read_fields(text)
    assert [f.value for f in found.licensure] == ["California", "New York"], shape
    assert [f.value for f in found.specialties] == ["Internal Medicine", "Pain Management"], shape
    for f in found.licensure + found.specialties:
        start, end = f.span
        assert text[start] not in " ,\n" and text[end - 1] not in " ,\n"


@pytest.mark.parametrize(
    "sentence, age, sex",
    [
        ("The injured worker is a 45-year-old male who was hurt.", 45, "male"),
        ("This is a 62 year old\nfemale, who sustained an injury.", 62, "female"),
        ("The patient is a 38-year-\nold woman.", 38, "female"),
        ("The claimant is a 51 y/o Hispanic gentleman.", 51, "male"),
        ("This case involves a now 49-yearold male.", 49, "male"),
    ],
)
def test_patient_phrases_across_line_breaks_and_hyphenation(sentence: str, age: int, sex: str) -> None:
    text = "CLINICAL CASE SUMMARY\n" + sentence
    found = read_fields(text)
    assert (found.age.value, found.sex.value) == (age, sex)
    assert text[found.age.span[0] : found.age.span[1]] == str(age)


# --------------------------------------------------------------------------- the committed variants

GOLDS = [g for g in load_gold(GOLD_DIR) if g.letter.endswith(".pdf")]
SOURCES = sorted(p.name for p in VARIANTS_DIR.iterdir() if p.is_dir())


def test_variants_cover_every_gold_pdf_in_every_source() -> None:
    assert set(SOURCES) >= {"pdftotext", "pdftotext-layout", "pdfminer", "pypdf", "pymupdf"}
    for source in SOURCES:
        for g in GOLDS:
            assert variant_path(source, g.letter).is_file(), (source, g.letter)


@pytest.mark.parametrize("source", ["pdfium", *SOURCES])
def test_every_value_of_every_gold_letter_has_its_evidence(source: str) -> None:
    """``text[start:end]`` is the evidence's text for every value, in every source, and says the value."""
    for g in GOLDS:
        path = LETTERS_DIR / g.letter if source == "pdfium" else variant_path(source, g.letter)
        text = load(path).text
        result = extract(text)
        assert result.ok, (source, g.letter, [f.message for f in result.flags if f.severity == "error"])
        values = dict(stated_values(result))
        assert set(values) == set(result.evidence), (source, g.letter)
        for key, evidence in result.evidence.items():
            assert evidence.match == "exact" and text[evidence.start : evidence.end] == evidence.text, (
                source,
                key,
            )
            value = values[key]
            if isinstance(value, dt.date):
                assert parse_date(DATE_VALUE.search(evidence.text)) == value
            elif (
                key.startswith(("case.", "reviewer.", "items."))
                and not key.endswith((".decision", ".category", ".subcategory"))
                and ".drug." not in key  # derived from the words (Norco -> acetaminophen/hydrocodone)
            ):
                assert re.sub(r"[\s\-\ufffe]", "", evidence.text) == re.sub(r"[\s\-\ufffe]", "", str(value))
        assert result.case.model_dump(mode="json") == g.case.model_dump(), (source, g.letter)


# --------------------------------------------------------------------------- hypothesis: shuffled blocks

LABELS = {
    "case_number": "Case Number:",
    "date_assigned": "Date Assigned:",
    "date_of_injury": "Date of Injury:",
    "decision_date": "Decision Date:",
    "ur_denial_date": "UR Denial Date:",
    "priority": "Priority:",
    "application_received": "Application\nReceived:",
}
dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31))
values_st = st.fixed_dictionaries(
    {
        "case_number": st.from_regex(r"CM[0-9]{2}-[0-9]{7}", fullmatch=True),
        "date_assigned": dates,
        "date_of_injury": dates,
        "decision_date": dates,
        "ur_denial_date": dates,
        "priority": st.sampled_from(["Standard", "Expedited"]),
        "application_received": dates,
    }
)


def written(value: object) -> str:
    return value.strftime("%m/%d/%Y") if isinstance(value, dt.date) else str(value)


@st.composite
def header_blocks(draw: st.DrawFn) -> tuple[str, dict[str, object], set[str]]:
    """A header block in a random shape: (text, the values, the fields whose value was left out)."""
    values = draw(values_st)
    names = draw(st.permutations(list(LABELS)))
    names = names[: draw(st.integers(min_value=1, max_value=len(names)))]
    empty = set(draw(st.lists(st.sampled_from(names), unique=True, max_size=2)))
    shape = draw(st.sampled_from(["inline", "alternating", "columns", "values first", "two groups"]))
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n", " \n"]))
    gap = draw(st.sampled_from([" ", "  ", "\t", "          "]))
    label = {n: LABELS[n].replace("\n", sep) for n in names}
    value = {n: ("" if n in empty else written(values[n])) for n in names}
    if shape == "inline":
        text = sep.join(f"{label[n]}{gap}{value[n]}" for n in names)
    elif shape == "alternating":
        text = sep.join(f"{label[n]}{sep}{value[n]}" for n in names)
    else:
        groups = [names] if shape != "two groups" else [names[: len(names) // 2], names[len(names) // 2 :]]
        parts = []
        for group in groups:
            labels = sep.join(label[n] for n in group)
            vals = sep.join(value[n] for n in group if value[n])
            parts.append(
                f"{vals}{sep}{sep}{labels}" if shape == "values first" else f"{labels}{sep}{sep}{vals}"
            )
        text = (sep + sep).join(parts)
    return text + sep + END, {n: values[n] for n in names}, empty


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_blocks())
def test_shuffled_header_blocks_are_read_or_flagged_never_guessed(block: tuple[str, dict, set]) -> None:
    text, expected, empty = block
    found = read_fields(text)
    flagged = {p.message.split(":")[0].removeprefix("case.") for p in found.problems}
    for name, want in expected.items():
        got = found.header.get(name)
        if got is None:
            assert name in flagged, (name, text)  # null, and said so
            continue
        assert name not in empty, (name, text)  # never a neighbour's value for an empty field
        assert got.value == (want.isoformat() if isinstance(want, dt.date) else want), (name, text)
        assert text[got.span[0] : got.span[1]] == written(want)
    if not empty:
        assert set(found.header) == set(expected), text  # a complete block is read completely
