"""One home for every comparison (llm_extract/compare.py): its keys and rules, and the proof that
the cross-check, the LLM validators, the evaluation, the reviewer page and the verdicts agree on
an LLM answer that is right but worded differently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LETTERS, ROOT
from fake_openai import FakeOpenAI, Step, answer_from
from hypothesis import given, settings
from hypothesis import strategies as st

from evals.gold import GoldCase, GoldItem, GoldLetter, GoldPatient, GoldReviewer
from evals.metrics import LetterResult, score_letter
from evals.run import Verdict, apply_verdicts
from llm_extract import FlagCode, extract, load
from llm_extract.compare import (
    ITEM_FIELDS,
    LETTER_FIELDS,
    LETTER_SECTIONS,
    align_items,
    heading_key,
    item_agreement,
    page_in_letter,
    page_key,
    same_citations,
)
from llm_extract.crosscheck import crosscheck
from llm_extract.review import build_review_data
from llm_extract.review.verdicts import FLAG_FIELD, VERDICT_FIELDS, mismatch_field
from llm_extract.schema import Case, Item, Patient, Reviewer

GOLD_FILE = ROOT / "evals" / "gold" / "seed-000_c56c88992780afee.json"
GOLD_JSON = json.loads(GOLD_FILE.read_text(encoding="utf-8"))
GOLD = GoldLetter.model_validate(GOLD_JSON)
LETTER = LETTERS / GOLD.letter
TEXT = load(LETTER).text
RULES = extract(LETTER)
#: Mismatch kinds that are not gold against predicted (they judge the letter, not the labels).
NOT_LABELLED = {"evidence", "fabricated_quote", "failed_letter"}


# --- the keys and rules ---------------------------------------------------------------------


def test_the_labelled_fields_are_the_gold_models_and_the_schemas() -> None:
    assert set(ITEM_FIELDS) == set(GoldItem.model_fields)  # every labelled field, nothing else
    assert set(ITEM_FIELDS) <= set(Item.model_fields)
    golds = {"case": GoldCase, "reviewer": GoldReviewer, "patient": GoldPatient}
    models = {"case": Case, "reviewer": Reviewer, "patient": Patient}
    for section, fields in LETTER_SECTIONS.items():
        assert set(fields) == set(golds[section].model_fields) == set(models[section].model_fields)
    # what the page offers a verdict, and what a flag points a verdict at, evals.run accepts
    assert set(FLAG_FIELD.values()) <= set(VERDICT_FIELDS)
    assert VERDICT_FIELDS == ITEM_FIELDS + LETTER_FIELDS


def test_heading_key_and_alignment_ignore_whitespace_case_glyphs() -> None:
    assert heading_key("EMG/NCV  bilateral\nlower\u00a0extremities") == heading_key("emg/ncv bilateral lower extremities")
    assert heading_key("Post\ufffeop therapy") == heading_key("post-op therapy") == heading_key("Post\u2013op therapy")
    pairs = align_items(["6 massage therapy sessions for the low back"], ["6 MASSAGE therapy  sessions for the low-back"])
    assert [(i, j) for i, j, _ in pairs] == [(0, 0)]


@pytest.mark.parametrize(
    ("page", "letter", "found"),
    [
        ("88 - 89", "see pages 88-89.", True),
        ("88-89", "see pages 88 \u2013 89.", True),
        ("88\ufffe89", "pp. 88-89", True),
        ("8", "page 88", False),
        ("88", "page 188", False),
        ("60", "Page(s): 60.", True),
        ("", "anything", False),
    ],
)
def test_page_in_letter(page: str, letter: str, found: bool) -> None:
    assert page_in_letter(page, letter) is found


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 999), st.integers(1, 999), st.sampled_from(["-", " - ", "\u2013", " \u2013 ", "\ufffe"]))
def test_a_page_range_written_any_way_is_one_key_and_found_in_the_letter(a: int, b: int, dash: str) -> None:
    written = f"{a}{dash}{b}"
    assert page_key(written) == f"{a}-{b}"
    assert page_in_letter(written, f"Page(s): {a}-{b}.") and page_in_letter(f"{a}-{b}", f"pages {written} of")


def test_citations_differ_by_title_or_page_not_by_writing() -> None:
    gold = [{"source": "MTUS", "title": "Chronic Pain Medical Treatment Guidelines", "pages": ["78-88"]}]
    same = [{"source": "MTUS", "title": "chronic pain medical treatment guidelines", "pages": ["78 - 88"]}]
    assert same_citations(gold, same)
    assert not same_citations(gold, [{**same[0], "pages": ["78"]}])
    assert not same_citations(gold, [{**same[0], "title": "Low Back Complaints"}])
    assert not same_citations(gold, [{**same[0], "source": "ODG"}])


# --- a right answer, worded differently: every consumer agrees -------------------------------


def _reworded() -> dict:
    """The rules result as a model would write it: headings in other case, whitespace and
    hyphenation, titles in lower case, page ranges spaced, quotes with collapsed whitespace."""
    answer = answer_from(RULES)
    names = {
        0: "6 MASSAGE therapy  sessions for the low-back",
        2: "1 prescription of percocet 10 mg #90",
    }
    for index, item in enumerate(answer["items"]):
        item["item"] = names.get(index, item["item"])
        for field in ("claims_administrator_guideline", "maximus_guideline"):
            for c in item[field]:
                c["title"] = (c["title"] or "").lower() or None
                c["pages"] = [p.replace("-", " - ") for p in c["pages"]]
        item["quotes"] = [{"text": " ".join(q["text"].split())} for q in item["quotes"]]
    return answer


@pytest.fixture(scope="module")
def reworded(tmp_path_factory: pytest.TempPathFactory):
    answer = _reworded()
    assert any("78 - 88" in c["pages"] for i in answer["items"] for c in i["maximus_guideline"])
    with FakeOpenAI([Step(answer=answer)]) as server:
        result = extract(
            LETTER,
            backend="openai",
            model="fake-model",
            base_url=server.base_url,
            api_key="sk-test",
            mode="json",
            strategy="whole-letter",
            cache_dir=tmp_path_factory.mktemp("cache"),
            timeout=2.0,
        )
        requests = len(server.requests)
    return result, requests


def test_validators_and_crosscheck_accept_it(reworded) -> None:
    result, requests = reworded
    assert requests == 1  # no re-ask: the validators found nothing wrong
    codes = {f.code for f in result.flags}
    assert FlagCode.LLM_REASK_EXHAUSTED not in codes
    assert not {c for c in codes if c.value.startswith("crosscheck_")}
    assert crosscheck(result, RULES) == []
    assert [i.item for i in result.items][0] == "6 MASSAGE therapy sessions for the low-back"
    # the conclusion is the answer's first quote, grounded like any quote
    for got, rules in zip(result.items, RULES.items, strict=True):
        assert got.conclusion is not None and got.conclusion.match in ("exact", "normalized")
        assert " ".join(got.conclusion.text.split()) == " ".join(rules.conclusion.text.split())


def test_evaluation_and_reviewer_page_agree_field_by_field(reworded) -> None:
    result, _ = reworded
    score = score_letter(LetterResult(GOLD, result, TEXT))
    counts = score.counts
    assert counts["items"] == (3, 0, 0) and counts["decisions"] == (3, 3)
    assert counts["conclusion_grounding"] == (3, 3)
    for part in ("sources", "titles", "pages"):
        assert counts[f"citation_{part}"][1:] == (0, 0), part  # no false positive, no false negative
    labelled = {(m["item"], mismatch_field(m["kind"], m["field"])) for m in score.mismatches if m["kind"] not in NOT_LABELLED}
    # the only labelled difference: two headings are not written as the letter writes them
    assert labelled == {(GOLD.items[0].item, "item"), (GOLD.items[2].item, "item")}

    page = build_review_data([result], [TEXT], [GOLD_JSON])["letters"][0]["gold"]
    assert not [r for r in page["letter_rows"] if r["diff"]]
    marked = {(gi["heading"], row["field"]) for gi in page["items"] for row in gi["rows"] if row["diff"]}
    assert marked == labelled  # the page marks exactly what the evaluation counts
    assert not any(gi["missing"] for gi in page["items"]) and not page["extra"]
    for g, p in zip(GOLD.items, result.items, strict=True):
        agree = item_agreement(g, p)
        assert {f for f, same in agree.items() if same is False} <= {"item"}


def test_verdicts_find_the_gold_item_by_either_wording(reworded) -> None:
    result, _ = reworded
    for name in (GOLD.items[0].item, result.items[0].item):
        verdict = Verdict(letter=GOLD.letter, item=name, field="decision", value="overturned", verdict="correct")
        golds, applied = apply_verdicts([GOLD], [verdict])
        assert applied == 1 and golds[0].items[0].decision == "overturned"
        assert [i.decision for i in golds[0].items[1:]] == [i.decision for i in GOLD.items[1:]]


def test_verdicts_correct_every_labelled_field(tmp_path: Path) -> None:
    fields = {
        "category": "Rehabilitation",
        "subcategory": "Other Therapies",
        "conclusion": "The request is not medically necessary.",
        "case.priority": "Expedited",
    }
    verdicts = [
        Verdict(letter=GOLD.letter, item=None if "." in f else GOLD.items[0].item, field=f, value=v, verdict="correct")
        for f, v in fields.items()
    ]
    assert set(fields) <= set(VERDICT_FIELDS)
    [gold], applied = apply_verdicts([GOLD], verdicts)
    assert applied == len(fields)
    assert (gold.items[0].category, gold.items[0].subcategory) == ("Rehabilitation", "Other Therapies")
    assert gold.items[0].conclusion == fields["conclusion"] and gold.case.priority == "Expedited"
