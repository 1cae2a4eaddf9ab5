"""Rationale summaries: whole sentences within one limit, and a stance that must match the decision."""

from __future__ import annotations

from conftest import PDFS
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_extract import extract, load
from llm_extract.normalize import collapse, sentences
from llm_extract.rules import SUMMARY_MAX_CHARS, conclusion, stance, summarize
from llm_extract.schema import Span


def test_rules_summaries_are_whole_sentences_of_the_rationale_within_the_limit() -> None:
    seen = 0
    for path in PDFS:
        text = load(path).text
        for item in extract(path).items:
            summary = item.rationale_summary
            if item.rationale is None:
                continue
            seen += 1
            rationale = collapse(text[item.rationale.start : item.rationale.end])
            assert summary and len(summary) <= SUMMARY_MAX_CHARS, summary
            assert not summary.endswith("\u2026"), summary
            assert summary in rationale or _whole_sentences(summary, text, item.rationale), summary
            found = conclusion(text, (item.rationale.start, item.rationale.end))
            if found and len(collapse(text[found[0] : found[1]])) <= SUMMARY_MAX_CHARS:
                assert collapse(text[found[0] : found[1]]) in summary  # the conclusion is always in it
    assert seen >= 350


def _whole_sentences(summary: str, text: str, span: Span) -> bool:
    """``summary`` is some of the rationale's sentences, whole, in letter order."""
    rest = summary
    for s, e in sentences(text, span.start, span.end):
        sentence = collapse(text[s:e])
        if rest.startswith(sentence):
            rest = rest[len(sentence) :].lstrip()
    return rest == ""


def test_a_run_on_sentence_keeps_its_last_whole_sentences() -> None:
    """An unbalanced quotation stops the sentence splitter; the summary still ends on the conclusion."""
    text = (
        'The guideline says "therapy is an option. ' + "It may help in selected cases. " * 12
        + "There is no documented benefit. The request is not medically necessary."
    )
    span = (0, len(text))
    summary = summarize(text, [span], span, None)
    assert summary is not None and len(summary) <= SUMMARY_MAX_CHARS
    assert summary.endswith("There is no documented benefit. The request is not medically necessary.")
    assert not summary.endswith("\u2026")


def test_the_reason_is_dropped_when_both_do_not_fit() -> None:
    reason = "The records show " + "no change, " * 30 + "at all."
    concl = "The request is not medically necessary."
    text = f"{reason} {concl}"
    summary = summarize(text, [(0, len(reason)), (len(reason) + 1, len(text))], (len(reason) + 1, len(text)),
                        (0, len(reason)))
    assert summary == concl


def test_stance_reads_a_summary_like_a_conclusion() -> None:
    assert stance("Physical therapy is not medically necessary because no functional gains were shown.") == "upheld"
    assert stance("The MRI is medically necessary given the new neurological deficit.") == "overturned"
    assert stance("The request is not supported by the guidelines.") == "upheld"
    assert stance("The reviewer read the records of the patient.") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=400), min_size=1, max_size=6))
def test_summarize_never_exceeds_the_limit(parts: list[str]) -> None:
    text = " ".join(parts)
    spans, at = [], 0
    for part in parts:
        spans.append((at, at + len(part)))
        at += len(part) + 1
    summary = summarize(text, spans, spans[-1], spans[0])
    assert summary is None or len(summary) <= SUMMARY_MAX_CHARS
