"""Citation sources: a guideline is recognised by any of its names, in either grammar, and a
citation that names no MTUS guideline is never labelled MTUS."""

from __future__ import annotations

import pytest

from llm_extract.citations import parse_section


def cites(text: str) -> list[tuple[str, str | None, str | None]]:
    found = parse_section(text, (0, len(text)))
    assert not found.unparsed, found.unparsed
    for c in found.citations:
        assert c.start is not None and text[c.start : c.end] == c.text
    return [(c.source, c.title, c.topic) for c in found.citations]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "Decision based on Non-MTUS Citation Occupational Medicine Practice Guidelines, 2nd Edition (2004), "
            "Chapter 12, Low Back Complaints, page 303.",
            [("ACOEM", "Low Back Complaints", None)],
        ),
        (
            "Decision based on Non-MTUS Citation American College of Occupational and Environmental Medicine "
            "(ACOEM), Chapter 7, Independent Medical Examinations and Consultations, page 127.",
            [("ACOEM", "Independent Medical Examinations and Consultations", None)],
        ),
        ("Decision based on ACOEM Guidelines, Chapter 12, Low Back Complaints, page 303.",
         [("ACOEM", "Low Back Complaints", None)]),
        ("Decision based on Official Disability Guidelines, Knee and Leg, Arthroscopic surgery.",
         [("ODG", "Knee and Leg", "Arthroscopic surgery")]),
        (
            "Decision based on Non-MTUS Citation Work Loss Data Institute, LLC; Section: Pain (Chronic).",
            [("ODG", ..., ...)],
        ),
        (
            "Decision based on the American Academy of Orthopaedic Surgeons Clinical Practice Guideline, "
            "Management of Osteoarthritis of the Knee, 2013.",
            [("other", "the American Academy of Orthopaedic Surgeons Clinical Practice Guideline",
              "Management of Osteoarthritis of the Knee")],
        ),
        ("Decision based on Chronic Pain Medical Treatment 2016, Section(s): Opioids.",
         [("MTUS", "Chronic Pain Medical Treatment Guidelines", "Opioids")]),
    ],
)
def test_decision_based_on_citations_name_their_source(section: str, expected: list) -> None:
    """(``...`` where only the source is checked.)"""
    got = cites(section)
    assert len(got) == len(expected)
    for have, want in zip(got, expected):
        assert all(w is ... or h == w for h, w in zip(have, want)), (have, want)


@pytest.mark.parametrize(
    ("section", "source", "title"),
    [
        (
            "The Expert Reviewer also relied on the American Society of Anesthesiologists Practice Guidelines for "
            "Chronic Pain Management, Neuraxial interventions, page 12, which is not part of the MTUS.",
            "other",
            "American Society of Anesthesiologists Practice Guidelines for Chronic Pain Management",
        ),
        (
            "The Claims Administrator based its decision on the National Comprehensive Cancer Network "
            "Guidelines, Breast Cancer.",
            "other",
            "National Comprehensive Cancer Network Guidelines",
        ),
        (
            "The Expert Reviewer relied on the Medical Disability Advisor, Lumbar strain, which is part of the MTUS.",
            "MTUS",
            "Medical Disability Advisor",
        ),
        (
            "The Expert Reviewer relied on the Occupational Medicine Practice Guidelines, 2nd Edition, Chapter 8, "
            "Neck and Upper Back Complaints, page 177, which is not part of the MTUS.",
            "ACOEM",
            "Neck and Upper Back Complaints",
        ),
    ],
)
def test_prose_citations_of_other_guidelines_are_citations_not_unparsed(section: str, source: str, title: str) -> None:
    assert [(s, t) for s, t, _ in cites(section)] == [(source, title)]
