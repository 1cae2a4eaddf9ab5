"""The evaluation metrics on hand-made cases whose answers are known without running anything."""

from __future__ import annotations

import datetime as dt

import pytest

from evals.gold import GoldCase, GoldCitation, GoldItem, GoldLetter, GoldPatient, GoldReviewer
from evals.metrics import (
    LetterResult,
    bootstrap_ci,
    bootstrap_weights,
    context,
    locate,
    metric_value,
    score_letter,
    summarize,
)
from llm_extract.compare import (
    ITEM_MATCH_THRESHOLD,
    align_items,
    compare_citations,
    compare_sets,
    compare_titles,
    conclusion_grounded,
    drug_key,
    item_agreement,
)
from llm_extract.schema import (
    Case,
    Citation,
    Determination,
    Grounding,
    Item,
    Patient,
    Quote,
    Reviewer,
    SourceInfo,
    Span,
    stated_values,
)

SOURCE = SourceInfo(sha256="0" * 64, page_count=1, characters=1000, layout="imr-issues", backend="test")

LETTER = (
    "Case Number: CM16-0000001 Date Assigned: 12/05/2016\n"
    "The patient is a 45-year-old male.\n"
    "Massage therapy 1 x 6 is: Upheld\n"
    "Decision rationale: MTUS allows up to 6 sessions of massage.\n"
    "The request for massage is not medically necessary.\n"
    "Norco 10/325mg #60 is: Overturned\n"
    "Decision rationale: Opioids help this patient work.\n"
    "The request for Norco is medically necessary.\n"
    "State(s) of Licensure: California Certification(s)/Specialty: Occupational Medicine\n"
)


def gold_item(name: str, decision: str = "upheld", **kw: object) -> GoldItem:
    return GoldItem(item=name, decision=decision, **kw)


def pred_item(
    name: str,
    decision: str | None = "upheld",
    quotes: tuple[str, ...] = (),
    conclusion: str | None = None,
    **kw: object,
) -> Item:
    start = LETTER.find(name)
    heading = Span(start=start, end=start + len(name)) if start >= 0 else None
    return Item(
        item=name,
        decision=decision,
        heading=heading,
        conclusion=Quote(text=conclusion, match="exact", score=100.0) if conclusion else None,
        quotes=[Quote(text=q, match="exact", score=100.0) for q in quotes],
        **kw,
    )


GOLD_ITEMS = [
    gold_item(
        "Massage therapy 1 x 6",
        "upheld",
        maximus_guideline=[
            GoldCitation(source="MTUS", title="Chronic Pain Medical Treatment Guidelines", pages=["60"])
        ],
        conclusion="The request for massage is not medically necessary.",
    ),
    gold_item("Norco 10/325mg #60", "overturned", conclusion="The request for Norco is medically necessary."),
]
GOLD = GoldLetter(
    letter="test/letter.txt",
    labeller="test",
    case=GoldCase(case_number="CM16-0000001", date_assigned="2016-12-05"),
    reviewer=GoldReviewer(licensure=["California"], specialties=["Occupational Medicine"]),
    patient=GoldPatient(age=45, sex="male"),
    items=GOLD_ITEMS,
)


def perfect_items() -> list[Item]:
    return [
        pred_item(
            "Massage therapy 1 x 6",
            "upheld",
            conclusion="The request for massage is not medically necessary.",
            maximus_guideline=[
                Citation(
                    text="MTUS",
                    source="MTUS",
                    title="Chronic Pain Medical Treatment Guidelines",
                    pages=["60"],
                )
            ],
        ),
        pred_item(
            "Norco 10/325mg #60", "overturned", conclusion="The request for Norco is medically necessary."
        ),
    ]


def determination(items: list[Item], **kw: object) -> Determination:
    defaults: dict[str, object] = {
        "case": Case(case_number="CM16-0000001", date_assigned=dt.date(2016, 12, 5)),
        "reviewer": Reviewer(licensure=["California"], specialties=["Occupational Medicine"]),
        "patient": Patient(age=45, sex="male"),
    }
    defaults.update(kw)
    det = Determination(items=items, source=SOURCE, **defaults)
    if "evidence" in kw:
        return det
    return det.model_copy(update={"evidence": evidence_in(LETTER, det)})


def as_written(value: object) -> str:
    """How the test letter writes a value: dates as MM/DD/YYYY, decisions capitalised."""
    if isinstance(value, dt.date):
        return value.strftime("%m/%d/%Y")
    if value in ("upheld", "overturned"):
        return str(value).capitalize()
    return str(value)


def evidence_in(text: str, det: Determination) -> dict[str, Grounding]:
    """Evidence for each stated value the text contains, as an extractor would state it."""
    evidence = {}
    for path, value in stated_values(det):
        at = text.find(as_written(value))
        if at >= 0:
            written = as_written(value)
            evidence[path] = Grounding(text=written, start=at, end=at + len(written), match="exact", score=100.0)
    return evidence


def summary_of(*results: LetterResult) -> dict[str, dict]:
    return summarize([score_letter(r) for r in results], samples=200)


def with_change(index: int, **update: object) -> tuple[LetterResult, dict[str, dict]]:
    """The perfect prediction with one item changed, and its summary."""
    items = perfect_items()
    items[index] = items[index].model_copy(update=update)
    result = LetterResult(GOLD, determination(items), LETTER)
    return result, summary_of(result)


def test_perfect_prediction_scores_one_everywhere() -> None:
    s = summary_of(LetterResult(GOLD, determination(perfect_items()), LETTER))
    for metric in (
        "items",
        "item_headings",
        "decisions",
        "citation_sources",
        "citation_titles",
        "citation_pages",
        "header",
        "reviewer.licensure",
        "reviewer.specialties",
        "patient.age",
        "patient.sex",
        "conclusion_grounding",
        "quotes.exact",
    ):
        assert s[metric]["value"] == 1.0, metric
    assert s["items"]["precision"] == s["items"]["recall"] == 1.0
    assert s["fabricated_quotes"]["value"] == 0
    assert s["original_request"]["value"] is None  # no gold partial item: undefined, not 0 or 1


def test_empty_prediction_has_zero_recall_and_zero_decisions() -> None:
    result = LetterResult(GOLD, determination([]), LETTER)
    s = summary_of(result)
    assert s["items"]["recall"] == 0.0
    assert s["items"]["fn"] == 2 and s["items"]["tp"] == 0
    assert s["items"]["precision"] is None
    assert s["decisions"]["value"] == 0.0
    assert s["conclusion_grounding"]["value"] == 0.0
    kinds = [m["kind"] for m in score_letter(result).mismatches]
    assert kinds.count("missing_item") == 2


def test_failed_letter_misses_every_gold_item_and_is_counted() -> None:
    s = summary_of(LetterResult(GOLD, None, LETTER, error="boom", error_kind="not_imr"))
    assert s["items"]["fn"] == 2 and s["items"]["recall"] == 0.0
    assert s["decisions"]["value"] == 0.0
    assert s["failed_letters"]["value"] == 1
    assert s["header"]["value"] == 0.0  # gold header values with no prediction are wrong


def test_extra_item_lowers_precision_only() -> None:
    items = [*perfect_items(), pred_item("Physical therapy 6 sessions", "upheld")]
    s = summary_of(LetterResult(GOLD, determination(items), LETTER))
    assert s["items"]["recall"] == 1.0
    assert s["items"]["precision"] == pytest.approx(2 / 3)
    assert (s["items"]["tp"], s["items"]["fp"], s["items"]["fn"]) == (2, 1, 0)
    assert s["decisions"]["value"] == 1.0


def test_swapped_decision_is_half_of_two() -> None:
    result, s = with_change(1, decision="upheld")
    assert s["decisions"]["value"] == 0.5
    assert (s["decisions"]["correct"], s["decisions"]["total"]) == (1, 2)
    assert s["items"]["value"] == 1.0
    [mm] = [m for m in score_letter(result).mismatches if m["kind"] == "decision"]
    assert (mm["gold"], mm["predicted"]) == ("overturned", "upheld")
    assert "Norco" in mm["context"]


def test_duplicate_predicted_items_match_once() -> None:
    items = [*perfect_items(), pred_item("Massage therapy 1 x 6", "upheld")]
    s = summary_of(LetterResult(GOLD, determination(items), LETTER))
    assert (s["items"]["tp"], s["items"]["fp"], s["items"]["fn"]) == (2, 1, 0)
    assert align_items(["A massage", "B norco"], ["A massage", "A massage"]) == [(0, 0, 100.0)]


def test_alignment_is_fuzzy_casefolded_and_reads_ufffe_as_hyphen() -> None:
    pairs = align_items(["EMG/NCV bilateral lower extremities"], ["emg/ncv  bilateral\nlower extremities"])
    assert pairs == [(0, 0, 100.0)]
    assert align_items(["Post-op physical therapy"], ["Post\ufffeop physical therapy"])[0][2] == 100.0
    assert align_items(["Massage therapy 1 x 6"], ["Norco 10/325mg #60"]) == []
    assert align_items(["Massage therapy 1 x 6"], ["Massage therapy 1 x 8"])[0][2] >= ITEM_MATCH_THRESHOLD
    # Greedy by descending score: the near-identical pair wins, the rest go unmatched.
    pairs = align_items(["Norco 10mg #60", "Norco 5mg #30"], ["Norco 10mg #60"])
    assert pairs == [(0, 0, 100.0)]
    assert ITEM_MATCH_THRESHOLD == 80


def test_near_heading_aligns_but_is_not_verbatim() -> None:
    result, s = with_change(1, item="Norco 10/325 mg #60")
    assert s["items"]["value"] == 1.0
    assert (s["item_headings"]["correct"], s["item_headings"]["total"]) == (1, 2)
    # The near heading is not what the letter says, so it has no evidence either.
    assert [m["kind"] for m in score_letter(result).mismatches] == ["item_heading", "evidence"]
    assert s["evidence_missing"]["value"] == 1


def test_partial_fields_exact_after_collapsing_whitespace() -> None:
    gold = GOLD.model_copy(
        update={
            "items": [
                GOLD_ITEMS[0].model_copy(
                    update={"original_request": "Massage x 12", "authorized": "Massage x 6"}
                ),
                GOLD_ITEMS[1],
            ]
        }
    )
    items = perfect_items()
    items[0] = items[0].model_copy(update={"original_request": "Massage\n x 12", "authorized": "Massage x 8"})
    s = summary_of(LetterResult(gold, determination(items), LETTER))
    assert s["original_request"]["value"] == 1.0
    assert s["authorized"]["value"] == 0.0
    assert (s["authorized"]["correct"], s["authorized"]["total"]) == (0, 1)


def test_citation_set_comparison() -> None:
    gold = [
        GoldCitation(source="MTUS", title="Chronic Pain Medical Treatment Guidelines", pages=["88", "89"]),
        GoldCitation(source="MTUS", title="Chronic Pain Medical Treatment Guidelines", pages=["76-78"]),
        GoldCitation(source="ODG", title="Pain (Chronic)"),
    ]
    predicted = [
        Citation(
            text="x", source="MTUS", title="Chronic pain medical treatment guideline", pages=["88", "76 - 78"]
        ),
        Citation(text="y", source="ACOEM", title="Low Back"),
    ]
    assert compare_citations(gold, predicted, "sources") == (1, 1, 1)  # {MTUS, ODG} vs {MTUS, ACOEM}
    assert compare_citations(gold, predicted, "titles") == (1, 1, 1)  # fuzzy title match; Pain vs Low Back
    assert compare_citations(gold, predicted, "pages") == (2, 0, 1)  # 89 missed; "76 - 78" == "76-78"
    assert compare_sets(["a", "a", "b"], ["b", "c"]) == (1, 1, 1)
    assert compare_titles(["Pain (Chronic)"], ["pain chronic"]) == (1, 0, 0)
    assert compare_titles(["Pain (Chronic)"], ["Pain"]) == (0, 1, 1)
    assert compare_titles([None], [None]) == (0, 0, 0)


def test_citation_mismatch_is_reported_per_guideline_field() -> None:
    items = perfect_items()
    wrong = Citation(
        text="MTUS", source="ODG", title="Chronic Pain Medical Treatment Guidelines", pages=["61"]
    )
    items[0] = items[0].model_copy(update={"maximus_guideline": [wrong]})
    result = LetterResult(GOLD, determination(items), LETTER)
    s = summary_of(result)
    assert s["citation_sources.maximus"]["value"] == 0.0
    assert s["citation_titles.maximus"]["value"] == 1.0
    assert s["citation_pages"]["value"] == 0.0
    assert s["citation_sources.claims_administrator"]["value"] is None  # nothing on either side
    fields = {m["field"] for m in score_letter(result).mismatches}
    assert fields == {"maximus_guideline.sources", "maximus_guideline.pages"}


def test_header_reviewer_patient_accuracy_and_mismatches() -> None:
    pred = determination(
        perfect_items(),
        case=Case(case_number="CM16-0000001", date_assigned=dt.date(2016, 12, 6), priority="Standard"),
        reviewer=Reviewer(licensure=["California"], specialties=[]),
        patient=Patient(age=45, sex=None),
    )
    result = LetterResult(GOLD, pred, LETTER)
    s = summary_of(result)
    assert s["case.case_number"]["value"] == 1.0
    assert s["case.date_assigned"]["value"] == 0.0
    assert s["case.priority"]["value"] == 0.0  # predicted where gold has none: counted, and wrong
    assert s["case.decision_date"]["total"] == 0  # null on both sides: not counted
    assert (s["header"]["correct"], s["header"]["total"]) == (1, 3)
    assert s["reviewer.specialties"]["value"] == 0.0
    assert s["patient.sex"]["value"] == 0.0 and s["patient.age"]["value"] == 1.0
    by_field = {m["field"]: m for m in score_letter(result).mismatches}
    assert by_field["case.date_assigned"]["gold"] == "2016-12-05"
    assert by_field["case.date_assigned"]["predicted"] == "2016-12-06"
    assert "Date Assigned" in by_field["case.date_assigned"]["context"]


def test_conclusion_grounding() -> None:
    conclusion = "Given the above, the request for massage is not medically necessary."
    assert conclusion_grounded(
        conclusion, ["Given the above, the request for\nmassage is not medically necessary."]
    )
    assert conclusion_grounded(conclusion, ["Rationale text. " + conclusion])  # quote contains it
    assert conclusion_grounded(conclusion, ["the request for massage is not medically necessary."])
    assert not conclusion_grounded(conclusion, ["medically necessary."])  # too small a piece
    assert not conclusion_grounded(conclusion, ["Massage helps some patients."])
    assert not conclusion_grounded(conclusion, [])


def test_fabricated_quotes_count_only_what_the_verifier_vouched_for() -> None:
    items = perfect_items()
    items[1] = items[1].model_copy(
        update={
            "conclusion": Quote(text="The request for Norco is medically necessary.", match="exact", score=100),
            "quotes": [
                Quote(text="Norco cures everything.", match="exact", score=100),  # vouched, not in letter
                Quote(text="Opioids always help.", match="none"),  # flagged by the verifier
                Quote(
                    text="Opioids  help this\npatient work.", match="normalized", score=100
                ),  # really there
            ]
        }
    )
    result = LetterResult(GOLD, determination(items), LETTER)
    s = summary_of(result)
    assert s["fabricated_quotes"]["value"] == 1
    assert (s["quotes.none"]["correct"], s["quotes.none"]["total"]) == (1, 5)
    [mm] = [m for m in score_letter(result).mismatches if m["kind"] == "fabricated_quote"]
    assert mm["predicted"] == "Norco cures everything."


def test_bootstrap_ci_contains_point_estimate_and_is_degenerate_when_constant() -> None:
    rows = [(1, 2), (2, 2), (0, 1), (3, 4), (1, 1)]
    value = metric_value("accuracy", [sum(c) for c in zip(*rows, strict=True)])
    low, high = bootstrap_ci(
        rows, lambda t: metric_value("accuracy", t), bootstrap_weights(len(rows), 500, 7)
    )
    assert low is not None and high is not None
    assert low <= value <= high
    assert low < high
    const = [(2, 2), (1, 1), (3, 3)]
    assert bootstrap_ci(const, lambda t: metric_value("accuracy", t)) == (1.0, 1.0)
    # Reproducible: the same seed gives the same interval.
    again = bootstrap_ci(rows, lambda t: metric_value("accuracy", t), bootstrap_weights(len(rows), 500, 7))
    assert again == (low, high)


def test_summary_ci_brackets_value_over_several_letters() -> None:
    results = [LetterResult(GOLD, determination(perfect_items()), LETTER) for _ in range(4)]
    swapped = perfect_items()
    swapped[0] = swapped[0].model_copy(update={"decision": "overturned"})
    results.append(LetterResult(GOLD, determination(swapped), LETTER))
    s = summarize([score_letter(r) for r in results])
    d = s["decisions"]
    assert d["value"] == pytest.approx(0.9)
    assert d["ci_low"] <= d["value"] <= d["ci_high"] and d["ci_low"] < d["ci_high"]
    assert s["items"]["ci_low"] == s["items"]["ci_high"] == 1.0


def test_locate_and_context_tolerate_line_breaks_and_hyphen_marks() -> None:
    text = "x" * 100 + "Post\ufffe\r\nop physical\n therapy is: Upheld" + "y" * 200
    pos = locate(text, "Post-op physical therapy")
    assert pos == 100
    snippet = context(text, pos)
    assert "Post-" in snippet and snippet.startswith("\u2026") and snippet.endswith("\u2026")
    assert len(snippet) <= 170
    assert locate(text, "not there") is None
    assert context("", 3) == ""


def test_request_category_subcategory_and_drug_scoring() -> None:
    """Matched gold items with request labels: category, subcategory (with its category) and the
    drug's generic name as a set of ingredients (order free)."""
    from types import SimpleNamespace

    from evals.metrics import _score_request
    from llm_extract.schema import Drug, Item

    assert drug_key("hydrocodone/acetaminophen") == drug_key("acetaminophen/hydrocodone")
    assert drug_key("tramadol") != drug_key("glucosamine/tramadol")
    gold = SimpleNamespace(item="Norco 10/325 #60", category="Pharmaceuticals", subcategory="Opioids",
                           drug="hydrocodone/acetaminophen")
    right = Item(item="Norco 10/325 #60", decision="upheld", category="Pharmaceuticals", subcategory="Opioids",
                 drug=Drug(name="acetaminophen/hydrocodone", as_written="Norco"))
    counts: dict = {}
    mm: list = []
    _score_request(counts, mm, "x", gold, right, item_agreement(gold, right), "", None)
    assert counts == {"category": (1, 1), "subcategory": (1, 1), "drug": (1, 1)} and not mm
    wrong = right.model_copy(update={"subcategory": "Muscle Relaxant", "drug": Drug(name="cyclobenzaprine", as_written="x")})
    _score_request(counts, mm, "x", gold, wrong, item_agreement(gold, wrong), "", None)
    assert counts == {"category": (2, 2), "subcategory": (1, 2), "drug": (1, 2)}
    assert {m["kind"] for m in mm} == {"subcategory", "drug"}
    unlabelled = SimpleNamespace(item="x", category=None, subcategory=None, drug=None)
    # gold labelled before issue 15: nothing to count
    _score_request(counts, mm, "x", unlabelled, right, item_agreement(unlabelled, right), "", None)
    assert counts == {"category": (2, 2), "subcategory": (1, 2), "drug": (1, 2)}
    # an unmatched gold item counts only in the item metrics, never in the request metrics
    unmatched = GoldItem(item="Norco 10/325 #60", decision="upheld", category="Pharmaceuticals",
                         subcategory="Opioids", drug="hydrocodone/acetaminophen")
    letter = GoldLetter(letter="t.txt", labeller="t", items=[unmatched])
    scored = score_letter(LetterResult(letter, determination([pred_item("Massage therapy 1 x 6")]), LETTER))
    assert not {"category", "subcategory", "drug"} & set(scored.counts)
