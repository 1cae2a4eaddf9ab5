"""Layout families (llm_extract.layouts): the shared decision grammar, running headers and footers
found by repetition, truncation, and the shapes that must never come back ok with a wrong item."""

from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import FIXTURES, LETTERS, SEEDS, pdf

from llm_extract import Determination, FlagCode, NotAnIMRLetterError, extract, layouts, load
from llm_extract.layouts import FAMILIES, imr_issues, maximus_2015
from llm_extract.normalize import blank, collapse

GOLD = LETTERS.parent / "gold"


def errors(result: Determination) -> set[str]:
    return {f.code.value for f in result.flags if f.severity == "error"}


def names(result: Determination) -> list[tuple[str, str | None]]:
    return [(collapse(i.item), i.decision) for i in result.items]


def gold_names(stem: str) -> list[tuple[str, str | None]]:
    gold = json.loads((GOLD / f"{stem}.json").read_text(encoding="utf-8"))
    return [(collapse(i["item"]), i["decision"]) for i in gold["items"]]


# --------------------------------------------------------------------------- families


def test_every_family_module_declares_the_plugin_contract() -> None:
    for family in FAMILIES:
        assert isinstance(family.NAME, str) and callable(family.title) and callable(family.parse)
        assert {"rationale"} <= set(family.LABELS) <= {"ca", "mx", "rationale"}


@pytest.mark.parametrize(
    ("stem", "layout"), [("maximus-decisions", "maximus-2015"), ("renamed-section", "imr-issues")]
)
def test_decision_grammar_reads_items_whatever_the_section_is_called(stem: str, layout: str) -> None:
    """A MAXIMUS letterhead letter listing "NAME: Upheld" items, and an imr-issues letter whose
    section title is worded otherwise: both parse by the decision grammar, exactly as labelled."""
    result = extract(FIXTURES / f"{stem}.txt")
    assert result.source.layout == layout
    assert result.ok, errors(result)
    assert names(result) == gold_names(f"fixture-{stem}")
    assert all(i.conclusion is not None and i.maximus_guideline for i in result.items)


def test_section_spans_are_kept_with_their_labels() -> None:
    """Each item keeps where its section labels are, so nothing downstream re-finds them."""
    for path, family in ((pdf("CM16-0230651"), imr_issues), (FIXTURES / "maximus-2015-multi.txt", maximus_2015)):
        text = load(path).text
        parsed = layouts.parse(text)
        assert parsed.layout == family.NAME and parsed.section is not None
        for index, block in enumerate(parsed.items):
            assert set(block.labels) == {"ca", "mx", "rationale"}
            for kind, (start, end) in block.labels.items():
                assert family.LABELS[kind].fullmatch(text, start, end), (index, kind)
                assert parsed.label(index, kind) == (start, end)
                assert getattr(block, kind)[0] >= end
        assert parsed.label(len(parsed.items), "ca") is None


def test_a_layout_no_family_reads_still_fails_loudly() -> None:
    text = (
        "Independent Medical Review\nMAXIMUS Federal Services\n"
        "The treatment requested was reviewed by an expert reviewer.\nItem one was found necessary.\n"
    )
    result = extract(text)
    assert result.source.layout == "unknown" and FlagCode.LAYOUT_UNKNOWN.value in errors(result)
    with pytest.raises(NotAnIMRLetterError):
        layouts.parse("Dear customer,\nyour order has shipped.\n")


def test_decision_words_inside_a_rationale_are_not_headings() -> None:
    """"Upheld" in prose (no colon before it, or text after it on its line) never opens an item."""
    text = load(SEEDS[0]).text
    at = text.rfind("Decision rationale:") + len("Decision rationale:")
    prose = " The prior denial was upheld: Overturned decisions are rare in such cases, per the reviewer."
    result = extract(text[:at] + prose + text[at:])
    assert names(result) == names(extract(text))


# --------------------------------------------------------------------------- running headers / footers

#: Running lines no known-shape rule knows: found only by what repeats at page edges.
HEADER = "CM14-0198765 - Independent Medical Review - Final Determination Letter"
FOOTER = "Acme Claims Review Services, Confidential"


def _repaginate(text: str, every: int, separator: str, numbered: bool) -> str:
    """``text`` cut into pages of ``every`` lines, with a running header and footer on each page."""
    lines = text.replace("\f", "\n").split("\n")
    pages = [lines[i : i + every] for i in range(0, len(lines), every)]
    out = []
    for n, page in enumerate(pages, 1):
        foot = [FOOTER] + ([f"Page {n} of {len(pages)}"] if numbered else [])
        out.append("\n".join([HEADER, *page, *foot]))
    return separator.join(out)


@pytest.mark.parametrize(("separator", "numbered"), [("\f", False), ("\f", True), ("\n", True)])
@pytest.mark.parametrize("path", [pdf("CM16-0230651"), pdf("CM16-0248698"), SEEDS[0], FIXTURES / "maximus-2015-multi.txt"])
def test_running_headers_and_footers_are_found_by_repetition(path, separator: str, numbered: bool) -> None:
    """Pages cut every few lines (inside headings and sentences) with unknown running lines at
    every edge: the same items, citations and quotes as the original, no furniture in any value."""
    text = load(path).text
    furnished = _repaginate(text, 23, separator, numbered)
    furniture = layouts.page_furniture(furnished)
    removed = {collapse(furnished[s:e]) for s, e in furniture}
    assert {HEADER, FOOTER} <= removed
    assert furnished.count(HEADER) == sum(collapse(furnished[s:e]) == HEADER for s, e in furniture)
    before, after = extract(text), extract(furnished)
    assert after.ok, errors(after)
    assert names(after) == names(before)
    for a, b in zip(after.items, before.items):
        assert [collapse(c.title or "") for c in a.maximus_guideline] == [collapse(c.title or "") for c in b.maximus_guideline]
        assert len(a.quotes) == len(b.quotes) and (a.conclusion is None) == (b.conclusion is None)
        assert HEADER not in collapse(a.item) and FOOTER not in collapse(a.item)


def test_repeated_content_is_not_furniture() -> None:
    """A section label standing at the top of every page, and a line repeated with the same
    text after it each time, are content: never blanked."""
    body = "Decision rationale:\nThe request is not medically necessary.\nMore text follows here on this page.\n"
    pages = [body + f"Page {n} text, different on every page number {n}.\n" for n in range(1, 5)]
    text = "\f".join(pages)
    assert not layouts.page_furniture(text) or all(
        "rationale" not in text[s:e] and "medically" not in text[s:e] for s, e in layouts.page_furniture(text)
    )


def test_furniture_blanking_keeps_offsets() -> None:
    text = _repaginate(load(SEEDS[0]).text, 17, "\f", True)
    clean = blank(text, layouts.page_furniture(text))
    assert len(clean) == len(text) and HEADER not in clean and FOOTER not in clean


# --------------------------------------------------------------------------- truncation


def test_a_letter_ending_inside_a_rationale_is_truncated() -> None:
    """Cut after a full sentence of the last rationale, before any conclusion: truncated (error),
    though the text ends with a full stop."""
    text = load(SEEDS[1]).text
    start = text.rfind("Decision rationale:")
    first_stop = text.index(". ", start) + 1
    result = extract(text[:first_stop])
    assert FlagCode.TRUNCATED.value in errors(result)


@pytest.mark.parametrize("footer", ["\nPage 3 of 3\n", "\n\f- 3 -\n", f"\n{HEADER}\nPage 3 of 3\n"])
def test_a_complete_letter_with_a_page_footer_is_not_truncated(footer: str) -> None:
    for path in (SEEDS[0], SEEDS[1], pdf("CM16-0230651")):
        text = load(path).text.rstrip()
        result = extract(text + footer)
        assert FlagCode.TRUNCATED.value not in {f.code.value for f in result.flags}, (path, footer)
        assert result.ok


def test_a_conclusion_without_its_full_stop_is_complete() -> None:
    text = load(SEEDS[1]).text.rstrip()
    assert text.endswith(".")
    result = extract(text[:-1])
    assert FlagCode.TRUNCATED.value not in {f.code.value for f in result.flags}


# --------------------------------------------------------------------------- no ok=True with a wrong item


def _heading_colon(text: str) -> list[int]:
    return [m.start() for m in re.finditer(r":[ \t]*(?:Upheld|Overturned)", text)]


@pytest.mark.parametrize("path", [SEEDS[0], SEEDS[3], pdf("CM16-0230651"), FIXTURES / "renamed-section.txt"])
def test_a_heading_missing_its_colon_is_right_or_flagged(path) -> None:
    text = load(path).text
    right = names(extract(text))
    for colon in _heading_colon(text):
        result = extract(text[:colon] + text[colon + 1 :])
        assert names(result) == right or not result.ok, colon
        # never a label swallowed into a name
        assert not any(re.search(r"guideline\s*:|rationale\s*:", i.item, re.I) for i in result.items if result.ok)


@pytest.mark.parametrize("path", [SEEDS[0], FIXTURES / "maximus-decisions.txt", FIXTURES / "mpr-2013-upheld.txt"])
def test_an_empty_item_name_is_flagged(path) -> None:
    text = load(path).text
    parsed = layouts.parse(text)
    s, e = parsed.items[0].heading
    result = extract(text[:s] + text[e:])
    assert not result.ok
    assert all(collapse(i.item) for i in result.items) or FlagCode.ITEM_NAME_MISSING.value in errors(result)


@pytest.mark.parametrize("path", [SEEDS[0], pdf("CM16-0248698"), FIXTURES / "maximus-2015-multi.txt"])
def test_an_all_lower_case_letter_reads_right_with_its_quotes(path) -> None:
    text = load(path).text
    before, after = extract(text), extract(text.lower())
    assert after.ok, errors(after)
    assert [(n.casefold(), d) for n, d in names(after)] == [(n.casefold(), d) for n, d in names(before)]
    for a, b in zip(after.items, before.items):
        assert len(a.quotes) == len(b.quotes) and (a.conclusion is None) == (b.conclusion is None)
        assert all(q.match == "exact" for q in a.quotes)


@pytest.mark.parametrize(
    "path", [pdf("CM16-0230651"), FIXTURES / "maximus-2015-multi.txt", FIXTURES / "mpr-2013-upheld.txt"]
)
def test_results_keep_each_sections_label(path) -> None:
    """``Item.sections``: where each section's label is, in every family, so the evaluation report
    points a reviewer at it without re-finding labels."""
    text = load(path).text
    result = extract(path)
    family = {f.NAME: f for f in FAMILIES}[result.source.layout]
    kinds = {v: k for k, v in layouts.base.SECTION_FIELDS.items()}
    for item in result.items:
        assert "rationale" in item.sections
        for field, span in item.sections.items():
            assert family.LABELS[kinds[field]].fullmatch(text, span.start, span.end), (field, text[span.start : span.end])
        assert item.rationale is not None and item.rationale.start >= item.sections["rationale"].end


TOY_FAMILY = '''
"""A layout family written the way the README says: one module, found without registration."""
import re

from llm_extract.layouts.grammar import find_decisions, segment

NAME = "toy-2020"
PRIORITY = 5
BY_ITEMS = False
LABELS = {"rationale": re.compile(r"Reasoning\\s*:", re.IGNORECASE)}
TITLE = re.compile(r"TOY\\s+DECISIONS", re.IGNORECASE)


def title(text):
    return TITLE.search(text)


def parse(text, section, parsed):
    body = section[1]
    segment(text, body, LABELS, parsed, find_decisions(text, body, len(text), LABELS["rationale"]))
'''

TOY_LETTER = (
    "Independent Medical Review\nThe Claims Administrator denied two requests.\nTOY DECISIONS\n"
    "MRI of the left knee: Upheld\nReasoning: Imaging is not medically necessary.\n"
    "Physical therapy for the knee, 6 sessions:\nOverturned\nReasoning: The therapy is medically necessary.\n"
)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A directory on the layouts package's path; the modules imported from it are forgotten after."""
    monkeypatch.setattr(layouts, "__path__", [*layouts.__path__, str(tmp_path)])
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("llm_extract.layouts.") and n.rsplit(".", 1)[1] in
                 {p.stem for p in tmp_path.glob("*.py")}]:
        del sys.modules[name]


def test_a_new_family_is_one_module(plugin_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    (plugin_dir / "toy_2020.py").write_text(TOY_FAMILY, encoding="utf-8")
    found = layouts.families()
    assert [f.NAME for f in found] == ["toy-2020", "mpr-2013", "maximus-2015", "imr-issues"]
    monkeypatch.setattr(layouts, "FAMILIES", found)
    result = extract(TOY_LETTER)
    assert result.source.layout == "toy-2020"
    assert names(result) == [("MRI of the left knee", "upheld"), ("Physical therapy for the knee, 6 sessions", "overturned")]
    assert [i.conclusion.text for i in result.items if i.conclusion] == [
        "Imaging is not medically necessary.", "The therapy is medically necessary."
    ]


def test_a_family_missing_part_of_the_contract_is_an_error(plugin_dir) -> None:
    (plugin_dir / "half_done.py").write_text('NAME = "half-done"\nPRIORITY = 1\n', encoding="utf-8")
    with pytest.raises(TypeError, match="half_done lacks"):
        layouts.families()
