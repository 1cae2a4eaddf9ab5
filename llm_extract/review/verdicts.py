"""What a reviewer judges: gold against predicted, and the gold field a verdict corrects.

The rows are scored by :mod:`llm_extract.compare`, the rules the evaluation report counts by
(:func:`~llm_extract.compare.item_agreement` per item, the same alignment, the same title, page
and conclusion rules), so the page marks a row different exactly where ``python -m evals.run``
lists a mismatch. The fields a ``correct`` verdict may set are ``compare``'s too: the ones
``evals.run.apply_verdicts`` folds into the gold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..compare import (
    ITEM_FIELDS,
    LETTER_FIELDS,
    conclusion_text,
    drug_name,
    item_agreement,
    item_pairs,
    same_letter_value,
)
from ..normalize import collapse
from ..schema import CITATION_FIELDS, Citation, Determination, FlagCode, Grounding, Item

#: Every field a ``correct`` verdict may set, as ``evals.run.apply_verdicts`` accepts them.
VERDICT_FIELDS = ITEM_FIELDS + LETTER_FIELDS
#: A citation as the gold labels it: the citation's own fields, without where it was found.
GOLD_CITATION_FIELDS = tuple(name for name in Citation.model_fields if name not in Grounding.model_fields)

#: The gold field a flag most likely concerns (the reviewer can pick another); "item" otherwise.
FLAG_FIELD: dict[FlagCode, str] = {
    FlagCode.DECISION_CONTRADICTS_RATIONALE: "decision",
    FlagCode.MISSING_DECISION: "decision",
    FlagCode.DECISION_INFERRED: "decision",
    FlagCode.SUMMARY_MISMATCH: "decision",
    FlagCode.CROSSCHECK_DECISION: "decision",
    FlagCode.QUOTE_NOT_FOUND: "conclusion",
    FlagCode.QUOTE_FUZZY: "conclusion",
    FlagCode.NO_CONCLUSION: "conclusion",
    FlagCode.CITATION_NOT_FOUND: "maximus_guideline",
    FlagCode.CITATION_UNPARSED: "maximus_guideline",
    FlagCode.CITATION_UNKNOWN_TITLE: "maximus_guideline",
    FlagCode.CROSSCHECK_CITATION_SOURCE: "maximus_guideline",
    FlagCode.PARTIAL_UNPARSED: "original_request",
    FlagCode.CROSSCHECK_MISSING_ITEM: "item",
    FlagCode.CROSSCHECK_EXTRA_ITEM: "item",
    FlagCode.HEADER_FIELD_MISSING: "case.case_number",
    FlagCode.CASE_NUMBER_INVALID: "case.case_number",
    FlagCode.PATIENT_NOT_FOUND: "patient.age",
    FlagCode.AGE_OUT_OF_RANGE: "patient.age",
    FlagCode.AGE_INCONSISTENT: "patient.age",
    FlagCode.SEX_INCONSISTENT: "patient.sex",
    FlagCode.CATEGORY_UNKNOWN: "category",
    FlagCode.DRUG_UNKNOWN: "drug",
}


def flag_field(code: FlagCode) -> str:
    return FLAG_FIELD.get(code, "item")


def path_field(path: str) -> str:
    """The verdict field a value's dotted path belongs to: ``items.2.decision`` -> ``decision``,
    ``reviewer.licensure.0`` -> ``reviewer.licensure``, ``items.0.drug.name`` -> ``drug``."""
    parts = path.split(".")
    if parts[0] == "items" and len(parts) > 2:
        return parts[2] if parts[2] in ITEM_FIELDS else "item"
    joined = ".".join(parts[:2])
    return joined if joined in LETTER_FIELDS else "item"


def mismatch_field(kind: str, field: str) -> str:
    """The gold field a mismatch of the evaluation report (``kind``, ``field``) is corrected in."""
    if field in VERDICT_FIELDS:
        return field
    head = field.split(".")[0]
    if head in CITATION_FIELDS:
        return head
    if kind in ("conclusion", "fabricated_quote") or field == "quotes":
        return "conclusion"
    if head == "drug":
        return "drug"
    if head == "evidence":
        return path_field(field.split(".", 1)[1])
    return "item"


def gold_citation(c: Citation) -> dict[str, Any]:
    """A citation in the shape a gold file labels it."""
    return {name: getattr(c, name) for name in GOLD_CITATION_FIELDS}


def predicted_fields(item: Item) -> dict[str, Any]:
    """An item's values in gold shape (every :data:`~llm_extract.compare.ITEM_FIELDS`): what a
    ``correct`` verdict starts from."""
    out: dict[str, Any] = {}
    for name in ITEM_FIELDS:
        if name in CITATION_FIELDS:
            out[name] = [gold_citation(c) for c in getattr(item, name)]
        elif name == "conclusion":
            text = conclusion_text(item)
            out[name] = collapse(text) if text else None
        elif name == "drug":
            out[name] = drug_name(item)
        else:
            out[name] = getattr(item, name)
    return out


def letter_fields(det: Determination) -> dict[str, Any]:
    """Every letter-level field's value (``case.date_assigned`` -> "2017-01-12"), JSON-ready."""
    data = det.model_dump(mode="json")
    return {f: data[f.split(".")[0]][f.split(".")[1]] for f in LETTER_FIELDS}


def cite_str(c: Mapping[str, Any]) -> str:
    parts = [c.get("source") or "", c.get("title") or ""]
    if c.get("year"):
        parts.append(str(c["year"]))
    if c.get("topic"):
        parts.append(f"— {c['topic']}")
    if c.get("pages"):
        parts.append("p. " + ", ".join(c["pages"]))
    return " ".join(p for p in parts if p)


def show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(cite_str(v) if isinstance(v, dict) else str(v) for v in value)
    return collapse(str(value))


def _empty(value: Any) -> bool:
    return value is None or value == []


def comparison(gold: Mapping[str, Any], det: Determination) -> dict[str, Any]:
    """Gold vs predicted, field by field, items aligned as the evaluation aligns them."""
    letter_rows = []
    predicted = letter_fields(det)
    for f in LETTER_FIELDS:
        section, name = f.split(".")
        gv = (gold.get(section) or {}).get(name)
        pv = predicted[f]
        if _empty(gv) and _empty(pv):
            continue
        letter_rows.append({"field": f, "gold": show(gv), "pred": show(pv), "diff": not same_letter_value(gv, pv)})
    gold_items = gold.get("items") or []
    pairs = item_pairs([g.get("item", "") for g in gold_items], [p.item for p in det.items])
    items = []
    for gi, g in enumerate(gold_items):
        pi = pairs.get(gi)
        pred = predicted_fields(det.items[pi]) if pi is not None else None
        agree = item_agreement(g, det.items[pi]) if pi is not None else {}
        rows = []
        for f in ITEM_FIELDS:
            gv = g.get(f)
            pv = pred.get(f) if pred else None
            if _empty(gv) and _empty(pv) and agree.get(f) is not False:
                continue
            differs = agree.get(f) is False if pred is not None else not _empty(gv)
            rows.append({"field": f, "gold": show(gv), "pred": show(pv), "diff": differs})
        items.append({"gold_index": gi, "pred_index": pi, "heading": g.get("item", ""), "rows": rows, "missing": pi is None})
    matched = set(pairs.values())
    extra = [{"pred_index": pi, "heading": p.item} for pi, p in enumerate(det.items) if pi not in matched]
    return {
        "letter": gold.get("letter"),
        "labeller": gold.get("labeller"),
        "notes": gold.get("notes") or "",
        "letter_rows": letter_rows,
        "items": items,
        "extra": extra,
        "pairs": {str(g): p for g, p in pairs.items()},
    }


def gold_headings(gold: Mapping[str, Any] | None, compared: Mapping[str, Any] | None) -> dict[int, str]:
    """predicted index -> the gold heading it is aligned with (what a verdict names the item by)."""
    if gold is None or compared is None:
        return {}
    gold_items: Sequence[Mapping[str, Any]] = gold.get("items") or []
    return {p: gold_items[int(g)].get("item") for g, p in compared["pairs"].items()}
