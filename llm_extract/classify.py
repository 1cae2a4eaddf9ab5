"""The enrichment stage: DWC request category, drug and diagnoses, for every backend's result.

Each item's name is classified by curated lexicons of *kinds* of treatment
(``data/treatments.tsv``: procedure, device, test and service families with priorities) and of drugs
(:mod:`llm_extract.drugs`), onto the DWC's own taxonomy (:mod:`llm_extract.taxonomy`). Deterministic
and linear: a bounded number of regular-expression scans over at most :data:`MAX_NAME_CHARS` of each
item's heading. The words that decided each value are its evidence (``Determination.evidence``,
offsets into the letter); an item nothing fits is left null and flagged ``category_unknown``, a
pharmaceutical whose drug is not recognised ``drug_unknown``: never a guess.

It runs on every backend's result in :func:`llm_extract.extract` (the model never fills these
fields: they are kept out of the model-facing views), and it owns them: running it again gives the
same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import drugs
from .ingest import Letter
from .schema import Determination, Drug, Flag, FlagCode, Grounding, Ingredient, Item

#: Only this much of an item's name is read: a real item name is a line or two, and the bound keeps
#: the stage linear whatever a damaged letter glues into a heading.
MAX_NAME_CHARS = 600
#: A named drug outranks rules below this priority (see the header of data/treatments.tsv).
DRUG_PRIORITY = 50
PHARMACEUTICALS = "Pharmaceuticals"
#: What a match inside parentheses or brackets loses: "(magnetic resonance imaging)" restates the
#: request, "[following TPII]" or "(DOS 11/18/16)" is context, never the request itself.
PARENTHETICAL_PENALTY = 30
_PARENTHETICAL = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
#: Words that make an "injection" a procedure rather than a drug given by injection.
_SPECIFIC_INJECTION = re.compile(
    r"epidural|esi|trigger|block|prp|platelet|botox|botulinum|joint|intra[\s\-]*articular|facet|prolo|"
    r"stellate|sympathetic|nerve|root|sacroiliac|\bsi\b|bursa|tendon|sheath|plantar|steroid|cortisone",
    re.IGNORECASE,
)
#: A course of sessions ("times 6", "2 times a week", "12 visits"): therapy, not equipment.
_SESSIONS = re.compile(
    r"\b(?:times|x)\s*\d+\b|\b\d+\s*(?:x|times)\b|\b(?:sessions?|visits?|treatments?)\b|per\s+week|weekly"
    r"|\ba\s+week\b",
    re.IGNORECASE,
)
#: A consult "for" a procedure: "consultation for carpal tunnel release".
_FOR = re.compile(r"\bfor\b", re.IGNORECASE)
_CLEARED_CODES = (FlagCode.CATEGORY_UNKNOWN, FlagCode.DRUG_UNKNOWN)
_OWN_EVIDENCE = re.compile(r"^(?:items\.\d+\.(?:category|subcategory|drug)\b|diagnoses\.)")


@dataclass(frozen=True)
class Rule:
    family: str
    category: str
    subcategory: str
    priority: int
    pattern: re.Pattern[str]


def compile_pattern(source: str) -> re.Pattern[str]:
    """A data-file pattern as a whole-word, case-insensitive regex; a space matches spaces and hyphens."""
    body = source.replace(" ", r"[\s\-]*")
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    from .taxonomy import load_taxonomy

    pairs = set(load_taxonomy())
    out = []
    for row in drugs._data("treatments.tsv"):
        family, category, subcategory, priority, pattern = row
        if (category, subcategory) not in pairs:
            raise ValueError(f"treatments.tsv: ({category}, {subcategory}) is not in the DWC taxonomy")
        out.append(Rule(family, category, subcategory, int(priority), compile_pattern(pattern)))
    return tuple(out)


@lru_cache(maxsize=1)
def regions() -> tuple[tuple[str, bool, re.Pattern[str]], ...]:
    """Body regions: (canonical name, is it spine, pattern), longer patterns first within a scan."""
    return tuple(
        (name, spine == "yes", compile_pattern(pattern)) for name, spine, pattern in drugs._data("body_regions.tsv")
    )


def body_regions(text: str) -> list[tuple[str, bool, int, int]]:
    """Regions named in ``text``: (name, spine?, start, end), in text order, no overlaps."""
    found: list[tuple[str, bool, int, int]] = []
    for name, spine, pattern in regions():
        for m in pattern.finditer(text):
            if m.end() > m.start() and not any(s < m.end() and m.start() < e for _, _, s, e in found):
                found.append((name, spine, m.start(), m.end()))
    return sorted(found, key=lambda r: r[2])


# --------------------------------------------------------------------------------------------------
# One item
# --------------------------------------------------------------------------------------------------


@dataclass
class Classification:
    """An item's category, subcategory and drug, with spans into the classified text."""

    category: str | None = None
    subcategory: str | None = None
    span: tuple[int, int] | None = None
    drug: drugs.DrugReading | None = None
    problem: str | None = None  # why category (or the drug class) is unknown
    drug_problem: str | None = None


@dataclass(frozen=True)
class _Hit:
    priority: int
    start: int
    end: int
    rule: Rule


def classify_text(text: str) -> Classification:
    """Classify an item's name (already whitespace-collapsed)."""
    hits: list[_Hit] = []
    asides = [m.span() for m in _PARENTHETICAL.finditer(text)]
    for rule in rules():
        for m in rule.pattern.finditer(text):
            if m.end() > m.start():
                aside = any(a <= m.start() and m.end() <= b for a, b in asides)
                hits.append(_Hit(rule.priority - (PARENTHETICAL_PENALTY if aside else 0), m.start(), m.end(), rule))
    families: dict[str, list[_Hit]] = {}
    for hit in hits:
        families.setdefault(hit.rule.family, []).append(hit)
    hits = _surgical_consults(text, hits, families)
    best = max(hits, key=lambda h: (h.priority, -h.start), default=None)
    drug_matters = best is None or best.priority < DRUG_PRIORITY or best.rule.family in ("injection", "visco")
    mentions = drugs.find(text) if drug_matters else []
    if mentions and (best is None or best.priority < DRUG_PRIORITY):
        return _pharmaceutical(text, mentions)
    if best is None:
        return _fallback(text)
    result = Classification(best.rule.category, best.rule.subcategory, (best.start, best.end))
    family = best.rule.family
    if family == "injection" and mentions:
        specific = any(_SPECIFIC_INJECTION.search(text, h.start, h.end) for h in families.get("injection", []))
        if not specific and not _SPECIFIC_INJECTION.search(text) and not body_regions(text):
            pharma = _pharmaceutical(text, mentions)
            pharma.subcategory, pharma.problem = "Injection", None
            return pharma
    if family == "visco" and mentions:
        pharma = _pharmaceutical(text, mentions)
        pharma.subcategory, pharma.span, pharma.problem = best.rule.subcategory, (best.start, best.end), None
        return pharma
    if family in ("dme", "thermal") and "thermal" in families and _SESSIONS.search(text):
        thermal = families["thermal"][0]
        return Classification("Rehabilitation", "Other Therapies", (thermal.start, thermal.end))
    if family == "surgery":
        named = body_regions(text)
        if named and all(spine for _, spine, _, _ in named):
            return Classification("Surgery", "Spine", (best.start, best.end))
    return result


def _surgical_consults(text: str, hits: list[_Hit], families: dict[str, list[_Hit]]) -> list[_Hit]:
    """Keep "surgeon" hits only beside a consult word; add consults "for" a surgical procedure."""
    consults = families.get("consult", [])
    kept = [
        h for h in hits
        if h.rule.family != "surgeon" or consults or re.search(r"surgeons?$", text[h.start : h.end], re.IGNORECASE)
    ]
    surgical = [h for h in hits if h.rule.category == "Surgery" and h.rule.family not in ("surgeon", "adjunct")]
    surgeon_rule = next((r for r in rules() if r.family == "surgeon"), None)
    for consult in consults:
        later_for = _FOR.search(text, consult.end)
        if later_for and surgeon_rule and any(h.start > later_for.start() for h in surgical):
            kept.append(_Hit(surgeon_rule.priority, consult.start, consult.end, surgeon_rule))
    return kept


def _pharmaceutical(text: str, mentions: list[drugs.Mention]) -> Classification:
    reading = drugs.read(text, mentions)
    result = Classification(PHARMACEUTICALS, reading.subcategory, reading.as_written, reading)
    if reading.subcategory is None:
        result.problem = f"no DWC drug class known for {reading.name!r}"
    return result


_PHARMA_CUES = re.compile(
    r"\b(?:tablets?|tabs?|capsules?|caps|cream|gel|ointment|lotion|patch(?:es)?|oral|suspension|solution"
    r"|mg|mcg|medications?|prescription|rx|refills?)\b|\d\s*(?:mg|mcg|%)",
    re.IGNORECASE,
)


def _fallback(text: str) -> Classification:
    """No family fits: a drug we cannot name still shows as a drug ("Zyxtra 50mg #30"), else unknown."""
    cue = _PHARMA_CUES.search(text)
    if cue is None:
        return Classification(problem="no DWC request category fits this item's name")
    word = re.search(r"[A-Za-z][A-Za-z\-]{2,}", text)
    span = (word.start(), word.end()) if word else cue.span()
    topical = re.search(r"\b(?:cream|gel|ointment|lotion|patch(?:es)?)\b|\d\s*%", text, re.IGNORECASE)
    result = Classification(PHARMACEUTICALS, drugs.TOPICAL_ANALGESICS if topical else None, span)
    result.drug_problem = f"drug name not recognised in {text[:80]!r}"
    if result.subcategory is None:
        result.problem = "no DWC drug class: the drug is not recognised"
    return result


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


def clean(raw: str) -> tuple[str, list[int]]:
    """Whitespace runs to one space, pdfium's U+FFFE line-end hyphen joined, and each character's
    offset in ``raw`` (so spans found in the clean text point back into the letter)."""
    out: list[str] = []
    origin: list[int] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\ufffe":
            j = i + 1
            while j < n and raw[j].isspace():
                j += 1
            if j > i + 1:  # a word broken at a line end: join it
                i = j
                continue
            out.append("-")
            origin.append(i)
            i += 1
        elif ch.isspace():
            j = i
            while j < n and raw[j].isspace():
                j += 1
            if out and j < n:
                out.append(" ")
                origin.append(i)
            i = j
        else:
            out.append(ch)
            origin.append(i)
            i += 1
    return "".join(out), origin


class _Grounder:
    """Spans of the classified text -> Groundings in the letter."""

    def __init__(self, letter: Letter, base: int, origin: list[int]) -> None:
        self.letter, self.base, self.origin = letter, base, origin

    def __call__(self, span: tuple[int, int] | None) -> Grounding | None:
        if span is None or span[1] <= span[0]:
            return None
        start = self.base + self.origin[span[0]]
        end = self.base + self.origin[span[1] - 1] + 1
        return Grounding(
            text=self.letter.text[start:end],
            start=start,
            end=end,
            page=self.letter.page_of(start),
            match="exact",
            score=100.0,
        )


def _heading(item: Item, letter: Letter, verifier: Any) -> tuple[int, int] | None:
    if item.heading is not None and item.heading.end > item.heading.start:
        return item.heading.start, item.heading.end
    found = verifier.locate(item.item)
    return (found.start, found.end) if found.start is not None and found.end is not None else None


def enrich(result: Determination, letter: Letter, verifier: Any = None) -> Determination:
    """``result`` with every item's category, subcategory and drug, the diagnoses, their evidence
    and flags (replacing this stage's own earlier output, so it can run twice)."""
    from .diagnoses import find_diagnoses
    from .verify import Verifier

    verifier = verifier or Verifier(letter.text)
    evidence = {k: v for k, v in result.evidence.items() if not _OWN_EVIDENCE.match(k)}
    flags = [f for f in result.flags if f.code not in _CLEARED_CODES]
    items = []
    for index, item in enumerate(result.items):
        span = _heading(item, letter, verifier)
        if span is None:
            items.append(item.model_copy(update={"category": None, "subcategory": None, "drug": None}))
            flags.append(_flag(FlagCode.CATEGORY_UNKNOWN, index, None, "the item's name is not in the letter"))
            continue
        raw = letter.text[span[0] : min(span[1], span[0] + MAX_NAME_CHARS)]
        text, origin = clean(raw)
        ground = _Grounder(letter, span[0], origin)
        found = classify_text(text)
        drug = _drug(found.drug, text, ground, evidence, index) if found.drug else None
        where = ground(found.span)
        if found.category is not None and where is not None:
            evidence[f"items.{index}.category"] = where
            if found.subcategory is not None:
                evidence[f"items.{index}.subcategory"] = where
        if found.problem:
            flags.append(_flag(FlagCode.CATEGORY_UNKNOWN, index, span, f"{found.problem}: {collapse_for(text)!r}"))
        if found.drug_problem or (found.drug is not None and found.drug.name is None):
            flags.append(_flag(FlagCode.DRUG_UNKNOWN, index, span, found.drug_problem or "drug name not resolved"))
        items.append(
            item.model_copy(update={"category": found.category, "subcategory": found.subcategory, "drug": drug})
        )
    diagnoses, grounds = find_diagnoses(letter, result)
    for index, g in enumerate(grounds):
        evidence[f"diagnoses.{index}"] = g
    return result.model_copy(update={"items": items, "flags": flags, "evidence": evidence, "diagnoses": diagnoses})


def collapse_for(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _flag(code: FlagCode, index: int, span: tuple[int, int] | None, message: str) -> Flag:
    return Flag(
        code=code,
        severity="warning",
        item=index,
        start=span[0] if span else None,
        end=span[1] if span else None,
        message=message,
    )


def _drug(
    reading: drugs.DrugReading, text: str, ground: _Grounder, evidence: dict[str, Grounding], index: int
) -> Drug:
    prefix = f"items.{index}.drug"

    def put(key: str, span: tuple[int, int] | None) -> str | None:
        g = ground(span)
        if g is not None:
            evidence[f"{prefix}.{key}"] = g
        return text[span[0] : span[1]] if span else None

    as_written = put("as_written", reading.as_written) or ""
    if reading.name is not None:
        evidence[f"{prefix}.name"] = evidence[f"{prefix}.as_written"]
    ingredients = []
    for j, (name, name_span, strength_span) in enumerate(reading.ingredients):
        written = put(f"ingredients.{j}.name", name_span) or name
        strength = put(f"ingredients.{j}.strength", strength_span)
        ingredients.append(Ingredient(name=name, strength=strength, as_written=written))
    if reading.form is not None:  # stated, or implied by the product named ("Lidoderm": a patch)
        put("form", reading.form_span or reading.as_written)
    if reading.quantity_span is not None:
        put("quantity", reading.quantity_span)
    if reading.refills_span is not None:
        put("refills", reading.refills_span)
    if reading.supply_span is not None:
        put("supply_days", reading.supply_span)
    return Drug(
        name=reading.name,
        as_written=as_written,
        strength=put("strength", reading.strength),
        form=reading.form,
        quantity=reading.quantity,
        amount=put("amount", reading.amount),
        refills=reading.refills,
        supply_days=reading.supply_days,
        ingredients=ingredients,
    )
