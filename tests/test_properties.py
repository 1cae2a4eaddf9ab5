"""The parser never crashes: arbitrary text, and real letters with arbitrary damage, give a result or a typed error."""

from __future__ import annotations

from conftest import SEEDS, pdf
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_extract import Determination, ExtractionError, extract, load

REAL = load(pdf("CM16-0248698")).text
SEED = load(SEEDS[3]).text
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
]


def outcome(text: str) -> Determination | None:
    try:
        result = extract(text)
    except ExtractionError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    for item in result.items:
        for q in item.quotes:
            assert q.match != "none" or q.start is None
            if q.start is not None:
                assert 0 <= q.start <= q.end <= len(text)
    return result


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_arbitrary_text(text: str) -> None:
    outcome(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LABELS), st.text(max_size=40)), max_size=60))
def test_label_soup(parts: list[str]) -> None:
    outcome("Independent Medical Review IMR ISSUES, DECISIONS AND RATIONALES " + "".join(parts))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_real_letters(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([REAL, SEED]))
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["cut", "insert", "delete"]))
        if action == "cut":
            text = text[:at]
        elif action == "insert":
            text = text[:at] + data.draw(st.one_of(st.sampled_from(LABELS), st.text(max_size=30))) + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 200)) :]
    outcome(text)
