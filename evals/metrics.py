"""Scoring extractions against the gold set: pure functions, no I/O, no extractor calls.

Why pure: the same numbers must come out of the CLI, the tests and any notebook, and a metric
that cannot be computed on a hand-made three-line case cannot be trusted to gate a release.

**Comparisons.** Every rule that says two things are the same lives in
:mod:`llm_extract.compare`, shared with the cross-check, the LLM validators and the reviewer page:
items are paired one-to-one by :func:`~llm_extract.compare.align_items` (rapidfuzz
``token_sort_ratio`` on collapsed, casefolded headings, at least ``ITEM_MATCH_THRESHOLD`` = 80,
taken greedily by descending score); titles by ``fuzz.ratio`` on letters and digits (at least
``TITLE_MATCH_THRESHOLD`` = 85); pages without whitespace and with dashes folded; a conclusion is
grounded by the predicted ``Item.conclusion`` overlapping the gold sentence. A matched pair is a
true positive, an unmatched predicted item a false positive, an unmatched gold item a false
negative. Every per-item metric (decision, partial fields, citations, conclusion) is computed on
the matched pairs; an unmatched gold item counts as wrong wherever the metric is "over gold items".

**Confidence intervals.** Letters, not items, are the unit of sampling (items of one letter share
a layout and a reviewer, so they are not independent). Each metric is a function of counts
summed over letters; the bootstrap resamples letters with replacement
:data:`BOOTSTRAP_SAMPLES` times with the fixed seed :data:`BOOTSTRAP_SEED` and reports the
2.5th and 97.5th percentiles, so two runs on the same predictions give identical reports.
"""

from __future__ import annotations

import datetime as dt
import operator
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evals.gold import GoldCitation, GoldLetter
from llm_extract.compare import (
    CITATION_PARTS,
    LETTER_SECTIONS,
    align_items,
    alnum_key,
    citation_values,
    compare_citations,
    compare_titles,
    drug_name,
    item_agreement,
    letter_value,
)
from llm_extract.normalize import FURNITURE_LINE, GLYPHS, collapse
from llm_extract.schema import (
    CITATION_FIELDS,
    CITATION_SIDES,
    Citation,
    Determination,
    Grounding,
    Item,
    Quote,
    held,
    stated_values,
)

#: Bootstrap resamples of the letters, and the seed that makes the intervals reproducible.
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20240917
CI_LEVEL = 0.95
#: Characters of letter text shown around a mismatch: this many before the span, the rest after.
CONTEXT_CHARS = 160
CONTEXT_BEFORE = 60
#: Quote tiers whose quote the verifier vouched for without any flag.
VOUCHED_TIERS = ("exact", "normalized")
MATCH_TIERS = ("exact", "normalized", "fuzzy", "none")

#: Short names of the guideline fields in metric names (``citation_titles.maximus``).
GUIDELINE_SHORT = {field: side for side, field in CITATION_SIDES.items()}
PARTIAL_FIELDS = ("original_request", "authorized")
#: The pooled metric each letter-level section's fields also count towards.
SECTION_METRIC = {"case": "header", "reviewer": "reviewer", "patient": "patient"}

Kind = Literal["prf", "accuracy", "count"]
#: Column order of the per-letter counts of each metric kind.
COLUMNS: dict[str, tuple[str, ...]] = {
    "prf": ("tp", "fp", "fn"),
    "accuracy": ("correct", "total"),
    "count": ("count",),
}

#: Each ASCII character :func:`collapse` folds to, with the glyphs it stands for (what
#: :func:`locate` accepts in the letter for it).
_TWINS: dict[str, str] = {}
for _code, _ascii in GLYPHS.items():
    if len(_ascii) == 1:
        _TWINS[_ascii] = _TWINS.get(_ascii, _ascii) + chr(_code)


# --------------------------------------------------------------------------------------------
# Ratios and the bootstrap
# --------------------------------------------------------------------------------------------


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def prf(tp: float, fp: float, fn: float) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1; None where undefined (nothing predicted / nothing to find)."""
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def metric_value(kind: Kind, totals: Sequence[float]) -> float | None:
    """The headline value of a metric from its summed counts: F1, accuracy, or the count."""
    if kind == "prf":
        return prf(*totals)[2]
    if kind == "accuracy":
        return ratio(totals[0], totals[1])
    return float(totals[0])


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 1]."""
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_weights(
    n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
) -> list[list[int]]:
    """How often each of ``n`` letters is drawn in each resample; shared by every metric."""
    rng = random.Random(seed)
    weights = []
    for _ in range(samples):
        w = [0] * n
        for i in rng.choices(range(n), k=n):
            w[i] += 1
        weights.append(w)
    return weights


def bootstrap_ci(
    rows: Sequence[Sequence[float]],
    value: Callable[[Sequence[float]], float | None],
    weights: Sequence[Sequence[int]] | None = None,
    level: float = CI_LEVEL,
) -> tuple[float | None, float | None]:
    """Percentile interval of ``value(summed rows)`` over letter resamples.

    ``rows`` holds one tuple of counts per letter. Resamples where the metric is undefined
    (say, no gold partial item drawn) are skipped.
    """
    if not rows:
        return None, None
    if weights is None:
        weights = bootstrap_weights(len(rows))
    # Letters whose counts are all zero add nothing to any resample: sum over the others only.
    live = [i for i, row in enumerate(rows) if any(row)]
    columns = [[rows[i][c] for i in live] for c in range(len(rows[0]))]
    estimates = []
    for w in weights:
        drawn = [w[i] for i in live]
        totals = [sum(map(operator.mul, drawn, col)) for col in columns]
        v = value(totals)
        if v is not None:
            estimates.append(v)
    if not estimates:
        return None, None
    estimates.sort()
    tail = (1 - level) / 2
    return _percentile(estimates, tail), _percentile(estimates, 1 - tail)


# --------------------------------------------------------------------------------------------
# Scoring one letter
# --------------------------------------------------------------------------------------------


@dataclass
class LetterResult:
    """One gold letter and what the extractor made of it (``prediction`` None when it failed)."""

    gold: GoldLetter
    prediction: Determination | None
    text: str = ""
    error: str | None = None
    error_kind: str | None = None


@dataclass
class LetterScore:
    """Per-letter counts for every metric plus the mismatches a reviewer should open."""

    letter: str
    counts: dict[str, tuple[float, ...]] = field(default_factory=dict)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    quote_tiers: Counter = field(default_factory=Counter)
    flags: Counter = field(default_factory=Counter)
    error_flags: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)


def _add(counts: dict[str, tuple[float, ...]], name: str, values: Sequence[float]) -> None:
    old = counts.get(name)
    counts[name] = tuple(values) if old is None else tuple(a + b for a, b in zip(old, values, strict=True))


def locate(text: str, needle: str | None, start: int = 0) -> int | None:
    """Offset of ``needle`` in the raw letter text, tolerant of line breaks, case and the glyph
    twins :func:`collapse` folds (curly quotes, dashes, U+FFFE)."""
    needle = collapse(needle or "")
    if not needle or not text:
        return None
    parts = []
    for ch in needle:
        if ch == " ":
            parts.append(r"\s+")
        elif ch == "-":
            parts.append(f"[{re.escape(_TWINS[ch])}]\\s*")
        elif ch in _TWINS:
            parts.append(f"[{re.escape(_TWINS[ch])}]")
        else:
            parts.append(re.escape(ch))
    m = re.compile("".join(parts), re.IGNORECASE).search(text, start)
    if m is None and start:
        m = re.compile("".join(parts), re.IGNORECASE).search(text)
    return m.start() if m else None


def context(text: str, offset: int | None) -> str:
    """About :data:`CONTEXT_CHARS` characters of letter text around ``offset``, collapsed."""
    if not text or offset is None:
        return ""
    lo = max(0, offset - CONTEXT_BEFORE)
    hi = min(len(text), lo + CONTEXT_CHARS)
    snippet = collapse(text[lo:hi])
    return ("\u2026" if lo > 0 else "") + snippet + ("\u2026" if hi < len(text) else "")


_CASE_LABELS = {
    "case_number": r"Case\s+Number",
    "date_assigned": r"Date\s+Assigned",
    "date_of_injury": r"Date\s+of\s+Injury",
    "decision_date": r"Decision\s+Date|Dated:",
    "ur_denial_date": r"UR\s+Denial\s+Date|Date\s+of\s+UR\s+Decision",
    "priority": r"Priority",
    "application_received": r"Application\s+Received",
}
_REVIEWER_LABELS = {
    "licensure": r"State\(s\)\s+of\s+Licensure|licensed\s+to\s+practice",
    "specialties": r"Certification\(s\)|Board\s+Certified",
}
_PATIENT_LABEL = r"\b\d{1,3}\s*-?\s*(?:year|yr|y/o|yo\b)"


def _search(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text, re.IGNORECASE)
    return m.start() if m else None


def _field_offset(text: str, section: str, fname: str, gold: Any, predicted: Any) -> int | None:
    """Where a header/reviewer/patient mismatch shows: its label, or the first entry that differs."""
    if section == "case":
        return _search(text, _CASE_LABELS[fname])
    if section == "patient":
        return _search(text, _PATIENT_LABEL)
    label = _search(text, _REVIEWER_LABELS[fname])
    gold_list, pred_list = gold or [], predicted or []
    differing = [g for g in gold_list if g not in pred_list] + [p for p in pred_list if p not in gold_list]
    for entry in differing:
        pos = locate(text, entry, label or 0)
        if pos is not None:
            return pos
    return label


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def quote_in_letter(quote: str, letter_collapsed: str, letter_words: str) -> bool:
    """Is the quote really in the letter? Checked independently of the verifier.

    First verbatim after collapsing whitespace; failing that, its letters and digits in order
    among the letter's letters and digits with page headers/footers removed (so a quote the
    verifier legitimately matched across a page break or a line-end hyphen still counts).
    """
    collapsed = collapse(quote)
    if not collapsed:
        return False
    if collapsed in letter_collapsed:
        return True
    words = alnum_key(quote)
    return bool(words) and words in letter_words


def letter_folds(text: str) -> tuple[str, str]:
    """The two forms of the letter :func:`quote_in_letter` searches."""
    return collapse(text), alnum_key(FURNITURE_LINE.sub(" ", text))


def evidence_in_letter(text: str, g: Grounding | None) -> bool:
    """Does ``g`` show where the letter states a value? Checked independently of the verifier:
    a vouched tier, offsets inside the letter, and the letter's text there is the evidence's text
    (verbatim, or the same letters and digits for the ``normalized`` tier)."""
    if g is None or g.match not in VOUCHED_TIERS or g.start is None or g.end is None:
        return False
    if not 0 <= g.start < g.end <= len(text):
        return False
    there = text[g.start : g.end]
    return there == g.text or (bool(alnum_key(g.text)) and alnum_key(there) == alnum_key(g.text))


def _mismatch(
    letter: str,
    kind: str,
    field_name: str,
    item: str | None,
    gold: Any,
    predicted: Any,
    text: str,
    offset: int | None,
) -> dict[str, Any]:
    return {
        "letter": letter,
        "kind": kind,
        "field": field_name,
        "item": item,
        "gold": _jsonable(gold),
        "predicted": _jsonable(predicted),
        "offset": offset,
        "context": context(text, offset),
    }


def _citation_offset(
    text: str, pred_item: Item, field_name: str, gold_cits: Sequence[GoldCitation], part: str
) -> int | None:
    """Where a reviewer should look for a citation mismatch.

    The predicted citation carrying a value gold lacks, else the gold title/page found in the
    letter after the item heading, else the section's label (as the layout found it), else the heading.
    """
    predicted = getattr(pred_item, field_name)
    gold_values = citation_values(gold_cits, part)
    for c in predicted:
        mine = citation_values([c], part)
        if part == "titles":
            extra = [t for t in mine if t and compare_titles(gold_values, [t])[1]]
        else:
            extra = [v for v in mine if v and v not in gold_values]
        if extra and c.start is not None:
            return c.start
    after = pred_item.heading.start if pred_item.heading else 0
    if part in ("titles", "pages"):
        found = set(citation_values(predicted, part))
        for value in gold_values:
            if value and value not in found:
                pos = locate(text, value, after)
                if pos is not None:
                    return pos
    label = pred_item.sections.get(field_name)  # where the layout found it, in any layout family
    if label is not None:
        return label.start
    return pred_item.heading.start if pred_item.heading else None


def _score_request(
    counts: dict[str, tuple[float, ...]],
    mm: list,
    letter: str,
    g: Any,
    p: Item,
    agree: dict[str, bool | None],
    text: str,
    where: int | None,
) -> None:
    """Category, subcategory and drug name of one matched gold item that carries those labels
    (an unmatched gold item is already counted by the item metrics). The rules are
    :func:`~llm_extract.compare.item_agreement`'s: subcategory is right only with the right
    category (names repeat across categories); drug names compare as sets of ingredients."""
    predicted = {"category": p.category, "subcategory": p.subcategory, "drug": drug_name(p)}
    for metric, field_name in (("category", "category"), ("subcategory", "subcategory"), ("drug", "drug.name")):
        right = agree[metric]
        if right is None:
            continue
        _add(counts, metric, [int(right), 1])
        if not right:
            mm.append(_mismatch(letter, metric, field_name, g.item, getattr(g, metric), predicted[metric], text, where))


def _citation_repr(citations: Sequence[GoldCitation] | Sequence[Citation], part: str) -> list[str]:
    values = citation_values(citations, part)
    return sorted({v for v in values if v})


def score_letter(result: LetterResult) -> LetterScore:
    """Every count and mismatch for one letter; a failed letter misses all its gold items."""
    gold, pred, text = result.gold, result.prediction, result.text
    name = gold.letter
    score = LetterScore(letter=name)
    counts = score.counts
    mm = score.mismatches
    pred_items = pred.items if pred is not None else []
    pairs = align_items([g.item for g in gold.items], [p.item for p in pred_items])
    score.pairs = pairs
    gold_to_pred = {gi: pi for gi, pi, _ in pairs}
    pred_matched = {pi for _, pi, _ in pairs}

    if result.error is not None:
        mm.append(_mismatch(name, "failed_letter", "extract", None, None, result.error, text, None))
    _add(counts, "failed_letters", [1 if pred is None else 0])

    # Items.
    _add(counts, "items", [len(pairs), len(pred_items) - len(pairs), len(gold.items) - len(pairs)])
    for gi, g in enumerate(gold.items):
        if gi not in gold_to_pred:
            mm.append(
                _mismatch(name, "missing_item", "item", g.item, g.item, None, text, locate(text, g.item))
            )
    for pi, p in enumerate(pred_items):
        if pi not in pred_matched:
            offset = p.heading.start if p.heading else locate(text, p.item)
            mm.append(_mismatch(name, "extra_item", "item", p.item, None, p.item, text, offset))

    # Per gold item: decision, request labels, partial fields, conclusion, citations. Whether a
    # field agrees is item_agreement's answer (the reviewer page marks the same rows different).
    for gi, g in enumerate(gold.items):
        p = pred_items[gold_to_pred[gi]] if gi in gold_to_pred else None
        agree = item_agreement(g, p) if p is not None else {}
        where = (p.heading.start if p is not None and p.heading else None) or locate(text, g.item)
        if p is not None:
            _add(counts, "item_headings", [int(agree["item"]), 1])
            if not agree["item"]:
                mm.append(_mismatch(name, "item_heading", "item", g.item, g.item, p.item, text, where))
        correct = p is not None and bool(agree["decision"])
        _add(counts, "decisions", [int(correct), 1])
        _add(counts, "decisions.matched", [int(correct), int(p is not None)])
        if p is not None and not correct:
            mm.append(_mismatch(name, "decision", "decision", g.item, g.decision, p.decision, text, where))
        if p is not None:
            _score_request(counts, mm, name, g, p, agree, text, where)
        for fname in PARTIAL_FIELDS:
            gv = getattr(g, fname)
            pv = getattr(p, fname) if p is not None else None
            same = bool(agree.get(fname))
            _add(counts, fname, [int(same), 1] if gv is not None else [0, 0])
            if p is not None and (gv is not None or pv is not None) and not same:
                offset = locate(text, gv or pv) if (gv or pv) else where
                mm.append(_mismatch(name, "partial_field", fname, g.item, gv, pv, text, offset or where))
        if g.conclusion is not None:
            hit = p is not None and bool(agree["conclusion"])
            _add(counts, "conclusion_grounding", [int(hit), 1])
            if p is not None and not hit:
                predicted = collapse(p.conclusion.text) if p.conclusion is not None else None
                offset = locate(text, g.conclusion)
                mm.append(_mismatch(name, "conclusion", "conclusion", g.item, g.conclusion, predicted, text, offset))
        if p is None:
            continue
        for fname in CITATION_FIELDS:
            gc, pc = getattr(g, fname), getattr(p, fname)
            for part in CITATION_PARTS:
                tp, fp, fn = compare_citations(gc, pc, part)
                _add(counts, f"citation_{part}", [tp, fp, fn])
                _add(counts, f"citation_{part}.{GUIDELINE_SHORT[fname]}", [tp, fp, fn])
                if fp or fn:
                    offset = _citation_offset(text, p, fname, gc, part)
                    mm.append(
                        _mismatch(
                            name,
                            f"citation_{part[:-1] if part != 'pages' else 'pages'}",
                            f"{fname}.{part}",
                            g.item,
                            _citation_repr(gc, part),
                            _citation_repr(pc, part),
                            text,
                            offset,
                        )
                    )

    # Header, reviewer, patient: accuracy over letters where either side has a value.
    for section, fields in LETTER_SECTIONS.items():
        for fname in fields:
            gv = letter_value(getattr(getattr(gold, section), fname))
            pv = letter_value(getattr(getattr(pred, section), fname)) if pred is not None else None
            key = f"{section}.{fname}"
            if gv is None and pv is None:
                _add(counts, key, [0, 0])
                _add(counts, SECTION_METRIC[section], [0, 0])
                continue
            same = gv == pv
            _add(counts, key, [int(same), 1])
            _add(counts, SECTION_METRIC[section], [int(same), 1])
            if not same:
                offset = _field_offset(text, section, fname, gv, pv)
                mm.append(_mismatch(name, section, key, None, gv, pv, text, offset))

    # Evidence: every value the prediction states has evidence really in the letter at its offsets.
    evidenced = stated = 0
    if pred is not None:
        for path, value in stated_values(pred):
            stated += 1
            g = pred.evidence.get(path)
            if evidence_in_letter(text, g):
                evidenced += 1
                continue
            mm.append(
                _mismatch(
                    name,
                    "evidence",
                    f"evidence.{path}",
                    None,
                    None,
                    _jsonable(value),
                    text,
                    g.start if g is not None else None,
                )
            )
    _add(counts, "evidence", [evidenced, stated])
    _add(counts, "evidence_missing", [stated - evidenced])

    # Quotes: tiers, and quotes the verifier vouched for that are not in the letter.
    fabricated = 0
    total_quotes = 0
    if pred is not None:
        letter_collapsed, letter_words = letter_folds(text)
        for p in pred.items:
            for q in held(p, Quote):
                total_quotes += 1
                score.quote_tiers[q.match] += 1
                if q.match in VOUCHED_TIERS and not quote_in_letter(q.text, letter_collapsed, letter_words):
                    fabricated += 1
                    mm.append(
                        _mismatch(
                            name, "fabricated_quote", "quotes", p.item, None, collapse(q.text), text, q.start
                        )
                    )
        for f in pred.flags:
            score.flags[f.code.value] += 1
            if f.severity == "error":
                score.error_flags.append(f.code.value)
    for tier in MATCH_TIERS:
        _add(counts, f"quotes.{tier}", [score.quote_tiers[tier], total_quotes])
    _add(counts, "fabricated_quotes", [fabricated])

    decisions = counts["decisions"] if gold.items else (0, 0)
    score.row = {
        "letter": name,
        "id": letter_id(name),
        "layout": pred.source.layout if pred is not None else None,
        "error": result.error,
        "gold_items": len(gold.items),
        "predicted_items": len(pred_items),
        "matched_items": len(pairs),
        "decisions_correct": int(decisions[0]),
        "quotes": total_quotes,
        "fabricated_quotes": fabricated,
        "flags": dict(sorted(score.flags.items())),
        "error_flags": sorted(set(score.error_flags)),
        "mismatches": len(mm),
    }
    return score


def letter_id(path: str) -> str:
    """Short name of a letter for tables: its file stem."""
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is, how its counts combine, and which direction is better."""

    name: str
    kind: Kind
    label: str
    higher_is_better: bool = True


def metric_specs() -> list[MetricSpec]:
    """Every summary metric, in report order."""
    specs = [
        MetricSpec("items", "prf", "Items (heading alignment)"),
        MetricSpec("item_headings", "accuracy", "Matched headings verbatim (collapsed)"),
        MetricSpec("decisions", "accuracy", "Decision accuracy (end to end)"),
        MetricSpec("decisions.matched", "accuracy", "Decision accuracy (matched items)"),
        MetricSpec("category", "accuracy", "DWC request category (matched items)"),
        MetricSpec("subcategory", "accuracy", "DWC subcategory / drug class (matched items)"),
        MetricSpec("drug", "accuracy", "Drug generic name (matched pharmaceutical items)"),
        MetricSpec("original_request", "accuracy", "Original request (partial items)"),
        MetricSpec("authorized", "accuracy", "Authorized (partial items)"),
    ]
    for part in CITATION_PARTS:
        specs.append(MetricSpec(f"citation_{part}", "prf", f"Citation {part} (both fields)"))
        for fname, short in GUIDELINE_SHORT.items():
            label = "claims administrator" if fname.startswith("claims") else "MAXIMUS"
            specs.append(MetricSpec(f"citation_{part}.{short}", "prf", f"Citation {part} ({label})"))
    for section, fields in LETTER_SECTIONS.items():
        label = SECTION_METRIC[section].capitalize()
        specs.append(MetricSpec(SECTION_METRIC[section], "accuracy", f"{label} fields (all)"))
        specs += [MetricSpec(f"{section}.{f}", "accuracy", f"{label} {f}") for f in fields]
    specs.append(MetricSpec("evidence", "accuracy", "Stated values with evidence in the letter"))
    specs.append(MetricSpec("evidence_missing", "count", "Stated values without evidence", False))
    specs.append(MetricSpec("conclusion_grounding", "accuracy", "Conclusion grounded by a quote"))
    for tier in MATCH_TIERS:
        specs.append(
            MetricSpec(f"quotes.{tier}", "accuracy", f"Quotes matched {tier}", tier in VOUCHED_TIERS)
        )
    specs.append(MetricSpec("fabricated_quotes", "count", "Fabricated quotes not flagged", False))
    specs.append(MetricSpec("failed_letters", "count", "Letters that failed to extract", False))
    return specs


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def summarize(
    scores: Sequence[LetterScore],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """Every metric over all letters, with counts and a bootstrap CI over letters."""
    weights = bootstrap_weights(len(scores), samples, seed) if scores else []
    summary: dict[str, dict[str, Any]] = {}
    for spec in metric_specs():
        width = len(COLUMNS[spec.kind])
        rows = [s.counts.get(spec.name, (0,) * width) for s in scores]
        totals = [sum(col) for col in zip(*rows, strict=True)] if rows else [0] * width
        value = metric_value(spec.kind, totals)
        entry: dict[str, Any] = {
            "label": spec.label,
            "kind": spec.kind,
            "higher_is_better": spec.higher_is_better,
        }
        entry["value"] = int(value) if spec.kind == "count" and value is not None else _round(value)
        if value is None:
            low = high = None
        elif spec.kind != "count" and len({metric_value(spec.kind, r) for r in rows} - {None}) == 1:
            low = high = value  # every letter has the same ratio, so every resample has it too
        else:
            low, high = bootstrap_ci(rows, lambda t, k=spec.kind: metric_value(k, t), weights)
        entry["ci_low"], entry["ci_high"] = _round(low), _round(high)
        for col, total in zip(COLUMNS[spec.kind], totals, strict=True):
            entry[col] = int(total)
        if spec.kind == "prf":
            precision, recall, f1 = prf(*totals)
            entry.update(precision=_round(precision), recall=_round(recall), f1=_round(f1))
        summary[spec.name] = entry
    return summary


def flag_summary(scores: Sequence[LetterScore], results: Sequence[LetterResult]) -> dict[str, Any]:
    """Flag counts by code and severity, and which letters carry error flags."""
    by_code: Counter = Counter()
    by_severity: Counter = Counter()
    for r in results:
        if r.prediction is not None:
            for f in r.prediction.flags:
                by_code[f.code.value] += 1
                by_severity[f.severity] += 1
    return {
        "by_code": dict(sorted(by_code.items())),
        "by_severity": dict(sorted(by_severity.items())),
        "letters_with_errors": sorted(s.letter for s in scores if s.error_flags),
    }
